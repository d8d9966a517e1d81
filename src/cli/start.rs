//! `engine start [-a] [OPTIONS] NAME IMAGE|ROOTFS [CMD...]`: start a container in the background,
//! or with `-a` stay attached to it as `engine attach` does (its output from the start).
use super::client::{unexpected, Connection};
use super::create::{CreateOptions, Target};
use super::{CliError, CliResult, Client};
use crate::protocol::{Request, Response};
use crate::supervisor::spec::ContainerSpec;

/// `--pull`: what a start does when the store lacks the image it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull it, then start (Docker's default)
    Missing,
    /// Fail in one line
    Never,
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// Attach to the container's output (and its stdin with -i) until it ends; Ctrl-P Ctrl-Q detaches
    #[arg(short = 'a', long)]
    attach: bool,
    #[command(flatten)]
    container: Args,
}

/// Also the arguments of `run`, which adds `--rm`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: CreateOptions,
    #[command(flatten)]
    target: Target,
    /// Pull the image when the store lacks it (missing) or fail (never)
    #[arg(long, value_enum, default_value = "missing", value_name = "POLICY")]
    pull: PullPolicy,
}

impl Args {
    /// The spec, and the `--pull` policy for [`send_pulling`]; relative paths from `cwd` (empty:
    /// this process's own).
    pub fn into_spec(self, cwd: &std::path::Path) -> Result<(ContainerSpec, PullPolicy), CliError> {
        Ok((self.options.into_spec(self.target, cwd)?, self.pull))
    }
}

/// Sends `request(spec)` and returns the connection with its first answer. An image the store
/// lacks is pulled into the supervisor's store (progress on stderr: `run`'s stdout is the
/// container's), as `docker run` does, and the request is sent again.
pub fn send_pulling(
    client: &Client,
    spec: ContainerSpec,
    pull: PullPolicy,
    request: impl Fn(ContainerSpec) -> Request,
) -> Result<(Connection, Response), CliError> {
    let mut conn = client.send(request(spec.clone()))?;
    let (message, reference, store) = match conn.next()? {
        Response::NoSuchImage { message, reference, store } => (message, reference, store),
        first => return Ok((conn, first)),
    };
    match client.missing_image() {
        Some(fetch) if pull == PullPolicy::Missing => fetch(&store, &reference)?,
        _ => return Err(message.into()),
    }
    let mut conn = client.send(request(spec))?;
    match conn.next()? {
        Response::NoSuchImage { message, .. } => Err(message.into()),
        first => Ok((conn, first)),
    }
}

/// engine-core's [`MissingImage`](super::client::MissingImage): pulls `reference` into `store`.
pub fn pull_missing(store: &std::path::Path, reference: &str) -> Result<(), CliError> {
    eprintln!("Unable to find image '{reference}' locally");
    super::pull::require_root()?;
    let opts = crate::image::PullOptions { platform: None, insecure: false, quiet: false, to_stderr: true };
    crate::image::pull(store, reference, &opts)?;
    Ok(())
}

/// `start` as the `engine` client sent it (see `thin`): `-a` is the front's.
pub(super) fn sent(args: StartArgs, cwd: &std::path::Path) -> super::thin::Sent {
    use super::thin::Sent;
    if args.attach {
        return Sent::HandOver;
    }
    match args.container.into_spec(cwd) {
        Err(e) => Sent::Failed(e),
        Ok((spec, _)) => Sent::Start { spec },
    }
}

pub fn execute(args: StartArgs, client: &Client) -> CliResult {
    let (spec, pull) = args.container.into_spec(std::path::Path::new(""))?;
    if args.attach {
        super::attach::check_tty(spec.tty, spec.interactive)?;
    }
    let (_conn, first) = send_pulling(client, spec, pull, |spec| Request::Start { spec })?;
    match first {
        Response::Started { name, .. } if args.attach => {
            let conn = client.send(Request::Attach { name: name.clone(), logs: true })?;
            super::attach::attached(conn, client, &name, true)
        }
        Response::Started { name, .. } => {
            println!("{name}");
            Ok(0)
        }
        other => Err(unexpected(other)),
    }
}

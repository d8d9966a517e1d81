//! `engine start [-a] [OPTIONS] NAME IMAGE|ROOTFS [CMD...]`: start a container in the background,
//! or with `-a` stay attached to it as `engine attach` does (its output from the start).
use super::client::unexpected;
use super::create::{CreateOptions, Target};
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

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
}

impl Args {
    pub fn into_spec(self) -> Result<crate::supervisor::spec::ContainerSpec, super::CliError> {
        self.options.into_spec(self.target)
    }
}

pub fn execute(args: StartArgs, client: &Client) -> CliResult {
    let spec = args.container.into_spec()?;
    if args.attach {
        super::attach::check_tty(spec.tty, spec.interactive)?;
    }
    match client.call(Request::Start { spec })? {
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

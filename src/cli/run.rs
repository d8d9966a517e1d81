//! `engine run [--rm] [OPTIONS] NAME IMAGE|ROOTFS [CMD...]`: run in the foreground, stream the output
//! live, and exit with the container's exit code (128+N for signal N). Ctrl-C and SIGTERM are
//! passed on to the container's command, like `docker run`. With `-i`/`-t` the client's stdin and
//! terminal are attached too (see `attach::session`).
use signal_hook::consts::{SIGINT, SIGTERM};

use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Remove the container and its log when it ends
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    container: super::start::Args,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let (spec, pull) = args.container.into_spec()?;
    let name = spec.name.clone();
    let (tty, interactive) = (spec.tty, spec.interactive);
    super::attach::check_tty(tty, interactive)?;
    let remove = args.rm;
    let (mut conn, first) = super::start::send_pulling(client, spec, pull, |spec| Request::Run { spec, remove })?;
    match first {
        Response::Started { .. } => {}
        other => return Err(unexpected(other)),
    }
    forward_signals(client.socket().to_path_buf(), name)?;
    if tty || interactive {
        return super::attach::session(conn, tty, interactive);
    }
    match conn.print_output()? {
        Response::Exited { code } => Ok(code),
        other => Err(unexpected(other)),
    }
}

pub(super) fn forward_signals(socket: std::path::PathBuf, name: String) -> Result<(), super::CliError> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        let client = Client::new(socket);
        for signal in signals.forever() {
            let _ = client.call(Request::Kill { name: name.clone(), signal });
        }
    });
    Ok(())
}

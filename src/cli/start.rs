//! `engine start [OPTIONS] NAME ROOTFS CMD...`: start a container in the background.
use super::client::unexpected;
use super::create::{CreateOptions, Target};
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: CreateOptions,
    #[command(flatten)]
    target: Target,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let spec = args.options.into_spec(args.target)?;
    match client.call(Request::Start { spec })? {
        Response::Started { name, .. } => {
            println!("{name}");
            Ok(0)
        }
        other => Err(unexpected(other)),
    }
}

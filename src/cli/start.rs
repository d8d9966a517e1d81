//! `engine start [OPTIONS] NAME IMAGE|ROOTFS [CMD...]`: start a container in the background.
use super::client::unexpected;
use super::create::{CreateOptions, Target};
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

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

pub fn execute(args: Args, client: &Client) -> CliResult {
    let spec = args.into_spec()?;
    match client.call(Request::Start { spec })? {
        Response::Started { name, .. } => {
            println!("{name}");
            Ok(0)
        }
        other => Err(unexpected(other)),
    }
}

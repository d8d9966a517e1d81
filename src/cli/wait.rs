//! `engine wait NAME`: block until the container ends, print its exit code.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    match client.call(Request::Wait { name: args.name })? {
        Response::Exited { code } => {
            println!("{code}");
            Ok(0)
        }
        other => Err(unexpected(other)),
    }
}

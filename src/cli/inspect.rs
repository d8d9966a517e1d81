//! `engine inspect NAME`: the container's record as JSON.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    match client.call(Request::Inspect { name: args.name })? {
        Response::Record { container } => {
            println!("{}", serde_json::to_string_pretty(&container)?);
            Ok(0)
        }
        other => Err(unexpected(other)),
    }
}

//! `engine rm [-f] NAME`: remove a finished container's record and log (-f kills it first).
use super::{CliResult, Client};
use crate::protocol::Request;

#[derive(clap::Args)]
pub struct Args {
    /// Kill the container first if it is running
    #[arg(short, long)]
    force: bool,
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    client.call_done(Request::Rm { name: args.name.clone(), force: args.force }, &args.name)
}

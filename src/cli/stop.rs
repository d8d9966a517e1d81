//! `engine stop [-t SECS] NAME`: SIGTERM to the command, SIGKILL to the container after SECS.
use super::{CliResult, Client};
use crate::protocol::Request;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    client.call_done(Request::Stop { name: args.name.clone(), timeout_secs: args.time }, &args.name)
}

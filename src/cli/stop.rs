//! `engine stop [-t SECS] NAME`: SIGTERM to the command, SIGKILL to the container after SECS.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    match client.call(Request::Stop { name: args.name.clone(), timeout_secs: args.time })? {
        Response::Done => {
            println!("{}", args.name);
            Ok(0)
        }
        other => Err(unexpected(other)),
    }
}

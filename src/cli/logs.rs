//! `engine logs [-f] [--timestamps] [--tail N] NAME`: the container's output, stdout to stdout
//! and stderr to stderr.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Keep printing new output until the container ends
    #[arg(short, long)]
    follow: bool,
    /// Prefix each line with its RFC 3339 time
    #[arg(short, long)]
    timestamps: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let mut conn = client.send(Request::Logs {
        name: args.name,
        follow: args.follow,
        timestamps: args.timestamps,
        tail: args.tail,
    })?;
    match conn.print_output()? {
        Response::Done => Ok(0),
        other => Err(unexpected(other)),
    }
}

//! `start ID`: lets a created container's process go (exec.fifo), then runs the poststart hooks.
use super::error::{OciError, Result};
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub fn run(_ctx: &Ctx, _args: Args) -> Result<i32> {
    Err(OciError::Unsupported("start: not wired to the container core yet".into()))
}

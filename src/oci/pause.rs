//! `pause ID`: freezes every process of a running container (cgroup freezer).
use super::error::{OciError, Result};
use super::state::Status;
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let c = ctx.root.open(&args.id)?;
    match c.status() {
        Status::Running => {}
        Status::Paused => return Ok(0),
        s => return Err(OciError::Status { id: args.id, status: s.as_str(), verb: "pause", wanted: "running" }),
    }
    super::cgroups::set_frozen(&c.record()?.cgroup_paths, true)?;
    Ok(0)
}

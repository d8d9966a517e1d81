//! `resume ID`: thaws a paused container.
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
        Status::Paused => {}
        Status::Running => return Ok(0),
        s => return Err(OciError::Status { id: args.id, status: s.as_str(), verb: "resume", wanted: "paused" }),
    }
    super::cgroups::set_frozen(&c.record()?.cgroup_paths, false)?;
    Ok(0)
}

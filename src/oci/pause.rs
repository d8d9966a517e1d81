//! `pause ID`: freezes every process of a running container (cgroup freezer); `resume` undoes it.
use super::error::{OciError, Result};
use super::state::Status;
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub(super) id: String,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    set_paused(ctx, args.id, true)
}

/// Freezes (`pause`) or thaws (`resume`) the container; a container already so is left alone.
pub(super) fn set_paused(ctx: &Ctx, id: String, paused: bool) -> Result<i32> {
    let c = ctx.root.open(&id)?;
    let (verb, from, to) =
        if paused { ("pause", Status::Running, Status::Paused) } else { ("resume", Status::Paused, Status::Running) };
    match c.status() {
        s if s == from => {}
        s if s == to => return Ok(0),
        s => return Err(OciError::Status { id, status: s.as_str(), verb, wanted: from.as_str() }),
    }
    super::cgroups::set_frozen(c.record()?, paused)?;
    Ok(0)
}

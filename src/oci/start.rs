//! `start ID`: lets a created container's process go (exec.fifo), then runs the poststart hooks.
use super::error::{OciError, Result};
use super::state::{Container, Status};
use super::{hooks, Ctx};
use crate::container;

#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let c = ctx.root.open(&args.id)?;
    start(&c)?;
    Ok(0)
}

/// Lets the created container's process go and runs the poststart hooks (a failing one is a
/// warning: runtime-spec says the lifecycle goes on).
pub fn start(c: &Container) -> Result<()> {
    let rec = c.record()?;
    match c.status() {
        Status::Created => {}
        s => return Err(OciError::Status { id: rec.id.clone(), status: s.as_str(), verb: "start", wanted: "created" }),
    }
    container::start_fifo(&c.fifo()).map_err(super::create::core_error)?;
    if let Some(hooks) = rec.hooks.as_ref() {
        let st = rec.spec_state(Status::Running);
        hooks::run_all_warn("poststart", hooks.poststart().as_ref(), &st);
    }
    Ok(())
}

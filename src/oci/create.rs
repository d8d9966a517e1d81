//! `create --bundle DIR [--pid-file F] [--console-socket S] ID`: the container made up to its
//! start gate; its process waits on exec.fifo for `start`.
use std::path::PathBuf;

use super::console::ConsoleError;
use super::error::{OciError, Result};
use super::{config, log, monitor, state, Ctx};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The bundle: config.json and the root it names.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid here once it exists.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty master to (process.terminal).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Keep the root with chroot-like MS_MOVE instead of pivot_root (refused: engine always pivots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not make a new session keyring (accepted: engine makes none).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass fds 3 .. 3+N-1 on to the container's process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

/// Everything checked before anything is made: a refusal here leaves nothing behind.
pub struct Checked {
    pub bundle: config::Bundle,
    pub monitor: monitor::Request,
}

pub fn check(args: &Args) -> Result<Checked> {
    state::validate_id(&args.id)?;
    let bundle = config::load(&args.bundle)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    match (terminal, &args.console_socket) {
        (true, None) => return Err(ConsoleError::NoSocket.into()),
        (false, Some(_)) => return Err(ConsoleError::NotTerminal.into()),
        _ => {}
    }
    if args.preserve_fds > 0 {
        return Err(OciError::Unsupported("--preserve-fds: create cannot pass extra fds to the container yet".into()));
    }
    if args.no_pivot {
        // pivot_root is the safer of the two and works wherever the root is not on ramfs.
        log::warn("--no-pivot: engine-oci always uses pivot_root");
    }
    let monitor = monitor::request(&bundle.spec)?;
    Ok(Checked { bundle, monitor })
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let _checked = check(&args)?;
    let _ = &ctx.root;
    Err(OciError::Unsupported("create: not wired to the container core yet".into()))
}

//! `create --bundle DIR [--pid-file F] [--console-socket S] ID`: the container made up to its
//! start gate; its process waits on exec.fifo for `start`.
use std::path::PathBuf;

use super::error::{OciError, Result};
use super::Ctx;

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

pub fn run(_ctx: &Ctx, _args: Args) -> Result<i32> {
    Err(OciError::Unsupported("create: not wired to the container core yet".into()))
}

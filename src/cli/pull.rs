//! `engine pull [--platform os/arch[/variant]] [--insecure-registry] [-q] REF`: fetch an image
//! into the store (daemonless, as podman: the store is shared with the supervisor by flock).
use std::path::{Path, PathBuf};

use super::CliResult;
use crate::image::{self, store::Lock, Store};
use crate::supervisor::DEFAULT_ROOT;

#[derive(clap::Args)]
pub struct Args {
    /// The supervisor's root; images live in ROOT/images
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// Platform to pick from a multi-platform image [default: linux/<host arch>]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Speak plain HTTP to this registry (loopback registries always are)
    #[arg(long)]
    insecure_registry: bool,
    /// Print only the image ID
    #[arg(short, long)]
    quiet: bool,
    /// Image reference (busybox, 127.0.0.1:5000/app:v1, name@sha256:...)
    reference: String,
}

/// The image verbs work on files only root may touch; say so before a confusing EACCES.
pub fn require_root() -> Result<(), super::CliError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("image commands need root: the image store is owned by root".into())
    }
}

/// The store under the supervisor's root `root`, opened after `require_root` and locked: shared
/// for the verbs that read, exclusive for those that remove. Also returns the store's folder.
pub fn open_store(root: &Path, exclusive: bool) -> Result<(PathBuf, Store, Lock), super::CliError> {
    require_root()?;
    let dir = image::store_dir(root);
    let store = Store::open(&dir)?;
    let lock = if exclusive { store.lock_exclusive()? } else { store.lock_shared()? };
    Ok((dir, store, lock))
}

pub fn execute(args: Args) -> CliResult {
    require_root()?;
    let opts = image::PullOptions {
        platform: args.platform,
        insecure: args.insecure_registry,
        quiet: args.quiet,
        to_stderr: false,
    };
    let pulled = image::pull(&image::store_dir(&args.root), &args.reference, &opts)?;
    println!("{}", pulled.id);
    Ok(0)
}

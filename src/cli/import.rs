//! `engine import [-q] FILE`: load a docker-archive or oci-archive tarball into the image store
//! (what `docker load` / `podman load` do with `docker save`, `podman save`, `skopeo copy` output).
use std::path::PathBuf;

use super::CliResult;
use crate::image;
use crate::supervisor::DEFAULT_ROOT;

#[derive(clap::Args)]
pub struct Args {
    /// The supervisor's root; images live in ROOT/images
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Print only the image IDs
    #[arg(short, long)]
    quiet: bool,
    /// The archive
    file: PathBuf,
}

pub fn execute(args: Args) -> CliResult {
    super::pull::require_root()?;
    let imported = image::archive::import(&image::store_dir(&args.root), &args.file, args.quiet)?;
    for i in imported {
        println!("{}", i.id);
    }
    Ok(0)
}

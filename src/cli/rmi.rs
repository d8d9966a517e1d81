//! `engine rmi [-f] REF...`: remove images (by name: the name; by ID: the image and all its
//! names), then every layer no image references any more.
use std::path::PathBuf;

use super::{CliError, CliResult, EXIT_ENGINE_ERROR};
use crate::image::{self, Reference, Store};
use crate::supervisor::DEFAULT_ROOT;

#[derive(clap::Args)]
pub struct Args {
    /// The supervisor's root; images live in ROOT/images
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Remove even if containers use it, or if an ID names an image with several names
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "REF")]
    images: Vec<String>,
}

pub fn execute(args: Args) -> CliResult {
    let (dir, store, lock) = super::pull::open_store(&args.root, true)?;
    let mut failures = Vec::new();
    for query in &args.images {
        match remove_one(&store, &dir, query, args.force) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => failures.push(format!("{query}: {e}")),
        }
    }
    for layer in store.gc(&lock)? {
        println!("Deleted layer: {layer}");
    }
    if failures.is_empty() {
        Ok(0)
    } else {
        Err(CliError {
            message: failures.join("; "),
            exit_code: if failures.len() == 1 { EXIT_ENGINE_ERROR } else { 2 },
        })
    }
}

fn remove_one(store: &Store, dir: &std::path::Path, query: &str, force: bool) -> Result<Vec<String>, image::Error> {
    let record = store.find(query)?;
    // Named by one of its names and it has others: only that name goes (Docker's untag), in use
    // or not: the image stays.
    let by_name = Reference::parse(query).ok().map(|r| r.to_string()).filter(|n| record.names.contains(n));
    if let Some(name) = by_name {
        if record.names.len() > 1 {
            store.remove_name(&name)?;
            return Ok(vec![format!("Untagged: {name}")]);
        }
    } else if record.names.len() > 1 && !force {
        return Err(image::Error::Invalid(format!(
            "image {} has several names ({}): remove them by name, or use -f",
            query,
            record.names.join(", ")
        )));
    }
    let users = image::in_use(dir, &record.id)?;
    if !users.is_empty() {
        if !force {
            return Err(image::Error::InUse(query.to_string(), users.join(", ")));
        }
        // Docker's `rmi -f` of an image a container uses: its names go, the image itself stays
        // (listed as <none>) with its layers while a container's root is made of them; `image
        // prune` removes it once they are gone.
        if record.names.is_empty() {
            return Err(image::Error::Invalid(format!(
                "image {query} is used by container(s) {}: it cannot be removed before them, even with -f",
                users.join(", ")
            )));
        }
        for n in &record.names {
            store.remove_name(n)?;
        }
        return Ok(record.names.iter().map(|n| format!("Untagged: {n}")).collect());
    }
    let mut lines: Vec<String> = record.names.iter().map(|n| format!("Untagged: {n}")).collect();
    store.remove_image(&record)?;
    lines.push(format!("Deleted: {}", record.id));
    Ok(lines)
}

//! `engine images [--format json]`, and `engine image prune|inspect|ls`.
use std::path::PathBuf;

use super::CliResult;
use crate::image::{self, pull::human, pull::short};
use crate::supervisor::DEFAULT_ROOT;

#[derive(clap::Args)]
pub struct Args {
    /// The supervisor's root; images live in ROOT/images
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// `table` (default) or `json`
    #[arg(long, default_value = "table")]
    format: String,
    /// Show only image IDs
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// List images
    Ls(Args),
    /// Remove images that no name points to, and every unreferenced layer
    Prune(PruneArgs),
    /// Print an image's digest, layers and config as JSON
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
pub struct PruneArgs {
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    #[arg(required = true, value_name = "REF")]
    images: Vec<String>,
}

pub fn execute(args: Args) -> CliResult {
    let images = {
        let (_, store, _shared) = super::pull::open_store(&args.root, false)?;
        store.images()?
    };
    if args.quiet {
        images.iter().for_each(|i| println!("{}", short(&i.id)));
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => {
            let rows: Vec<serde_json::Value> = images
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "Id": i.id, "Names": i.names, "Digest": i.manifest_digest,
                        "Size": i.size, "Created": i.created, "Added": i.added, "Layers": i.layers.len(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        "table" => {
            println!("{:<40} {:<16} {:<14} {:<22} {:>10}", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
            for i in &images {
                let names = if i.names.is_empty() { vec!["<none>:<none>".to_string()] } else { i.names.clone() };
                for n in names {
                    let (repo, tag) = split_name(&n);
                    let created =
                        i.created.as_deref().map(|c| c.chars().take(19).collect::<String>()).unwrap_or_default();
                    println!("{repo:<40} {tag:<16} {:<14} {created:<22} {:>10}", short(&i.id), human(i.size));
                }
            }
        }
        other => return Err(format!("unknown format {other:?}: table or json").into()),
    }
    Ok(0)
}

/// `repo:tag` / `repo@digest` → (repo, tag).
fn split_name(name: &str) -> (String, String) {
    if let Some((r, d)) = name.split_once('@') {
        return (r.to_string(), format!("@{}", short(d)));
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (name[..slash + i].to_string(), name[slash + i + 1..].to_string()),
        None => (name.to_string(), "<none>".to_string()),
    }
}

pub fn execute_image(args: ImageArgs) -> CliResult {
    match args.command {
        ImageCommand::Ls(a) => execute(a),
        ImageCommand::Prune(a) => prune(a),
        ImageCommand::Inspect(a) => inspect(a),
    }
}

fn prune(args: PruneArgs) -> CliResult {
    let (dir, store, lock) = super::pull::open_store(&args.root, true)?;
    for i in store.images()? {
        if i.names.is_empty() && image::in_use(&dir, &i.id)?.is_empty() {
            store.remove_image(&i)?;
            println!("Deleted: {}", i.id);
        }
    }
    for layer in store.gc(&lock)? {
        println!("Deleted layer: {layer}");
    }
    Ok(0)
}

fn inspect(args: InspectArgs) -> CliResult {
    let (_, store, _shared) = super::pull::open_store(&args.root, false)?;
    let mut out = Vec::new();
    for q in &args.images {
        let rec = store.find(q)?;
        let config = image::ImageConfig::from_oci(&store.image_config(&rec)?);
        let layers: Vec<serde_json::Value> =
            rec.layers.iter().map(|l| serde_json::json!({ "DiffID": l, "Dir": store.layer_dir(l).ok() })).collect();
        out.push(serde_json::json!({
            "Id": rec.id, "Digest": rec.manifest_digest, "Names": rec.names, "Created": rec.created,
            "Added": rec.added, "Size": rec.size, "Os": config.os, "Architecture": config.architecture,
            "Layers": layers, "Config": config,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

//! `engine export [-o FILE] NAME`: the container's root as it sees it (its own upper dir over the
//! image's layers or its rootfs directory), as a tar on stdout, like `docker export`. Running or
//! ended, until `rm`. Read from the supervisor's root directly (the supervisor says where it is),
//! as the image verbs read the store; needs root like them.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Write to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let root = match client.call(Request::Info)? {
        Response::Info { info } => info.root,
        other => return Err(unexpected(other)),
    };
    let record = match client.call(Request::Inspect { name: args.name.clone() })? {
        Response::Record { container } => container,
        other => return Err(unexpected(other)),
    };
    let mut layers = vec![root.join("overlay").join(&args.name).join("upper")];
    match &record.image {
        Some(image) => layers.extend(image.layers.iter().cloned()),
        None => layers.push(record.spec.rootfs.clone()),
    }
    match args.output {
        Some(path) => {
            let file = std::fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
            let mut out = crate::image::export::export(&layers, std::io::BufWriter::new(file))?;
            out.flush().map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err("refusing to write a tar to a terminal: redirect stdout or use -o FILE".into());
            }
            let mut out = crate::image::export::export(&layers, std::io::BufWriter::new(stdout.lock()))?;
            out.flush().map_err(|e| format!("writing the archive: {e}"))?;
        }
    }
    Ok(0)
}

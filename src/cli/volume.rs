//! `engine volume create|ls|rm|inspect NAME`: named volumes, directories under the supervisor's
//! root (`ROOT/volumes/NAME/_data`). Like the image verbs, these work on the root directly.
use std::path::PathBuf;

use super::{CliError, CliResult, EXIT_ENGINE_ERROR};
use crate::supervisor::volumes;
use crate::supervisor::DEFAULT_ROOT;

#[derive(clap::Args)]
pub struct Args {
    /// The supervisor's root; volumes live in ROOT/volumes
    #[arg(long, global = true, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    #[command(subcommand)]
    command: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Create a volume (no error if it exists)
    Create { name: String },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only the names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove volumes no container uses
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print a volume's details as JSON
    Inspect { name: String },
}

pub fn execute(args: Args) -> CliResult {
    let root = &args.root;
    match args.command {
        Verb::Create { name } => {
            volumes::create(root, &name)?;
            println!("{name}");
        }
        Verb::Ls { quiet } => {
            if !quiet {
                println!("DRIVER    VOLUME NAME");
            }
            for name in volumes::list(root)? {
                if quiet {
                    println!("{name}");
                } else {
                    println!("local     {name}");
                }
            }
        }
        Verb::Rm { names } => {
            let mut failures = Vec::new();
            for name in &names {
                match volumes::remove(root, name) {
                    Ok(()) => println!("{name}"),
                    Err(e) => failures.push(e),
                }
            }
            if !failures.is_empty() {
                let exit_code = if failures.len() == 1 { EXIT_ENGINE_ERROR } else { 2 };
                return Err(CliError { message: failures.join("; "), exit_code });
            }
        }
        Verb::Inspect { name } => {
            volumes::validate_volume_name(&name)?;
            let data = volumes::data_dir(root, &name);
            if !data.is_dir() {
                return Err(format!("no such volume: {name}").into());
            }
            let info = serde_json::json!({
                "Name": name,
                "Driver": "local",
                "Mountpoint": data,
                "Scope": "local",
                "UsedBy": volumes::users(root, &name)?,
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
    }
    Ok(0)
}

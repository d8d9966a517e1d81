//! `engine completions SHELL` and `engine man DIR` (both hidden): shell completions and man pages
//! generated from the clap definitions by the engine binary itself, as `docker completion` and
//! `podman completion` do. `make install` and `make deb` run the binary they just built, so the
//! pages and completions always match its verbs; no second generator binary to build or keep in
//! step.
use std::path::PathBuf;

use super::CliResult;

#[derive(clap::Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Directory for engine.1 and one engine-VERB.1 per verb (created if missing)
    dir: PathBuf,
}

pub fn completions(args: CompletionArgs, mut cmd: clap::Command) -> CliResult {
    clap_complete::generate(args.shell, &mut cmd, "engine", &mut std::io::stdout());
    Ok(0)
}

pub fn man(args: ManArgs, cmd: clap::Command) -> CliResult {
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("creating {}: {e}", args.dir.display()))?;
    // Hidden verbs (these two) get no page: generate_to skips them.
    clap_mangen::generate_to(cmd, &args.dir)
        .map_err(|e| format!("writing man pages to {}: {e}", args.dir.display()))?;
    Ok(0)
}

//! engine as an OCI runtime: runc's command line, for podman (`--runtime`), containerd (`ctr run
//! --runc-binary`, a CRI runtime handler's `BinaryName`) and the runtime-tools conformance suite.
//!
//! It is a second binary (`engine-oci`), not an argv[0] mode of `engine`: those callers exec it
//! once per verb (create, start, state, kill, delete, often several per container), so what it
//! costs to load counts on every call, and this one leaves out the supervisor, the Docker-style
//! CLI, the network and the log machinery. It shares the container core (`crate::container`)
//! with the supervisor; re-exec'd as `engine-init` it is the container's init.
//!
//! One file per verb; `state.rs` keeps the state directory, `config.rs` reads the bundle,
//! `hooks.rs`, `console.rs`, `log.rs` and `cgroups.rs` serve several verbs. engine-oci stays
//! single-threaded: `exec` joins a mount namespace, which setns refuses to a threaded process.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod cgroups;
pub mod config;
pub mod console;
pub mod error;
pub mod hooks;
pub mod log;
pub mod state;

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod monitor;
mod pause;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod status;
mod update;

pub use error::OciError;

/// The runtime-spec version `--version` and `features` claim.
pub const SPEC_VERSION: &str = state::OCI_VERSION;

#[derive(Debug, Parser)]
#[command(name = "engine-oci", about = "engine as an OCI runtime (runc's command line)", disable_version_flag = true)]
pub struct Cli {
    /// Directory of the containers' state.
    #[arg(long, global = true, default_value = state::DEFAULT_ROOT)]
    root: PathBuf,
    /// Write the runtime's log (and a failing verb's error) to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: log::Format,
    #[arg(long, global = true)]
    debug: bool,
    /// Refused: cgroups through systemd (this runtime manages cgroupfs itself).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// runc's; meaningless here, accepted and ignored (as crun does). Before the verb only:
    /// `spec --rootless` is the spec verb's own flag.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[arg(long, hide = true)]
    criu: Option<PathBuf>,
    #[arg(short = 'v', long, global = true)]
    version: bool,
    #[command(subcommand)]
    verb: Option<Verb>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::Args),
    /// Start the process of a created container.
    Start(start::Args),
    /// Print the container's state (runtime-spec JSON).
    State(status::Args),
    /// Send a signal to the container's process (or every process with --all).
    Kill(kill::Args),
    /// Delete a stopped container (--force: any).
    Delete(delete::Args),
    /// Create and start a container.
    Run(run::Args),
    /// Run a new process in a running container.
    Exec(exec::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// List the containers.
    List(list::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(resume::Args),
    /// Print what this runtime supports (runtime-spec features JSON).
    Features,
    /// Write a default config.json.
    Spec(spec::Args),
    /// Change a container's resource limits.
    Update(update::Args),
    /// Print a container's resource usage (once with --stats, else every --interval).
    Events(events::Args),
}

/// What every verb needs.
pub struct Ctx {
    pub root: state::Root,
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if cli.version {
        println!("engine-oci version {}\nspec: {SPEC_VERSION}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    if let Err(e) = log::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        log::report_error(&e.to_string());
        return 1;
    }
    if let Some(r) = &cli.rootless {
        log::debug(&format!("--rootless={r}: ignored"));
    }
    if let Some(c) = &cli.criu {
        log::debug(&format!("--criu={}: ignored (no checkpoint/restore)", c.display()));
    }
    if cli.systemd_cgroup {
        let why = if std::path::Path::new("/run/systemd/system").exists() {
            "engine-oci manages cgroupfs itself and does not ask systemd for scopes"
        } else {
            "this host runs no systemd (no /run/systemd/system)"
        };
        log::report_error(&format!("--systemd-cgroup is not supported: {why}; use cgroupfs"));
        return 1;
    }
    let Some(verb) = cli.verb else {
        log::report_error("no verb given (try --help)");
        return 1;
    };
    let ctx = Ctx { root: state::Root::new(cli.root) };
    let result = match verb {
        Verb::Create(a) => create::run(&ctx, a),
        Verb::Start(a) => start::run(&ctx, a),
        Verb::State(a) => status::run(&ctx, a),
        Verb::Kill(a) => kill::run(&ctx, a),
        Verb::Delete(a) => delete::run(&ctx, a),
        Verb::Run(a) => run::run(&ctx, a),
        Verb::Exec(a) => exec::run(&ctx, a),
        Verb::Ps(a) => ps::run(&ctx, a),
        Verb::List(a) => list::run(&ctx, a),
        Verb::Pause(a) => pause::run(&ctx, a),
        Verb::Resume(a) => resume::run(&ctx, a),
        Verb::Features => features::run(),
        Verb::Spec(a) => spec::run(a),
        Verb::Update(a) => update::run(&ctx, a),
        Verb::Events(a) => events::run(&ctx, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::report_error(&e.to_string());
            e.exit_code()
        }
    }
}

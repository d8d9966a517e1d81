//! The `engine` command line: one file per verb, each with its arguments and what it asks the
//! supervisor. Errors are one line on stderr and a non-zero exit (125 for engine errors, as Docker).
mod attach;
mod client;
mod completions;
mod create;
mod events;
mod exec;
mod export;
mod images;
mod import;
mod info;
mod inspect;
mod login;
mod logs;
mod port;
mod ps;
mod pull;
mod rm;
mod rmi;
mod run;
mod start;
mod stats;
mod stop;
mod supervisor;
mod table;
mod terminal;
mod top;
mod version;
mod volume;
mod wait;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

pub use client::Client;

pub use crate::container::exit::ENGINE_ERROR as EXIT_ENGINE_ERROR;

#[derive(Parser)]
#[command(name = "engine", version, about = "A small, fast, Docker-like container runtime")]
struct Cli {
    /// Supervisor socket (default: $ENGINE_SOCKET, else /run/engine/engine.sock)
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon that owns every container
    Supervisor(supervisor::Args),
    /// Start a container in the background
    Start(start::StartArgs),
    /// Run a container in the foreground and return its exit code
    Run(run::Args),
    /// Run a command in a running container
    Exec(exec::Args),
    /// Attach to a running container's output and input (Ctrl-P Ctrl-Q detaches)
    Attach(attach::Args),
    /// List the processes of a running container
    Top(top::Args),
    /// Stop a container: SIGTERM, then SIGKILL after the timeout
    Stop(stop::Args),
    /// List containers
    Ps(ps::Args),
    /// Print a container's output
    Logs(logs::Args),
    /// Print everything engine knows about a container, as JSON
    Inspect(inspect::Args),
    /// List a container's published ports
    Port(port::Args),
    /// Remove a finished container and its log
    Rm(rm::Args),
    /// Write a container's root filesystem as a tar archive
    Export(export::Args),
    /// Block until a container ends and print its exit code
    Wait(wait::Args),
    /// Show what this host supports and what the supervisor holds
    Info(info::Args),
    /// Show the client's and the supervisor's versions and wire protocols
    Version(version::Args),
    /// Fetch an image from a registry into the image store
    Pull(pull::Args),
    /// List images
    Images(images::Args),
    /// Remove images
    Rmi(rmi::Args),
    /// Manage images (ls, prune, inspect)
    Image(images::ImageArgs),
    /// Load a docker-archive or oci-archive tarball into the image store
    Import(import::Args),
    /// Keep credentials for a registry
    Login(login::Args),
    /// Manage named volumes (create, ls, rm, inspect)
    Volume(volume::Args),
    /// Live CPU, memory, network, block I/O and pids of containers
    Stats(stats::Args),
    /// Stream container lifecycle events (create, start, die, restart, ...)
    Events(events::Args),
    /// Print a shell completion script (used by make install)
    #[command(hide = true)]
    Completions(completions::CompletionArgs),
    /// Write one man page per verb into a directory (used by make install)
    #[command(hide = true)]
    Man(completions::ManArgs),
}

/// A command's failure: the line for stderr and the exit code.
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> CliError {
        CliError { message: e.to_string(), exit_code: EXIT_ENGINE_ERROR }
    }
}

pub type CliResult = Result<i32, CliError>;

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(create::hoist_trailing_options(&argv)) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return 0;
        }
        Err(e) => {
            // clap's first line says what is wrong; its usage block would bury it.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("engine: {first} (see `engine --help`)");
            return EXIT_ENGINE_ERROR;
        }
    };
    let socket = cli
        .socket
        .or_else(|| std::env::var_os("ENGINE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::supervisor::DEFAULT_SOCKET));
    let client = Client::new(socket);
    let result = match cli.command {
        Command::Supervisor(a) => supervisor::execute(a, client.socket()),
        Command::Start(a) => start::execute(a, &client),
        Command::Run(a) => run::execute(a, &client),
        Command::Exec(a) => exec::execute(a, &client),
        Command::Attach(a) => attach::execute(a, &client),
        Command::Top(a) => top::execute(a, &client),
        Command::Stop(a) => stop::execute(a, &client),
        Command::Ps(a) => ps::execute(a, &client),
        Command::Logs(a) => logs::execute(a, &client),
        Command::Inspect(a) => inspect::execute(a, &client),
        Command::Port(a) => port::execute(a, &client),
        Command::Rm(a) => rm::execute(a, &client),
        Command::Export(a) => export::execute(a, &client),
        Command::Wait(a) => wait::execute(a, &client),
        Command::Info(a) => info::execute(a, &client),
        Command::Version(a) => version::execute(a, &client),
        Command::Pull(a) => pull::execute(a),
        Command::Images(a) => images::execute(a),
        Command::Rmi(a) => rmi::execute(a),
        Command::Image(a) => images::execute_image(a),
        Command::Import(a) => import::execute(a),
        Command::Login(a) => login::execute(a),
        Command::Volume(a) => volume::execute(a),
        Command::Stats(a) => stats::execute(a, &client),
        Command::Events(a) => events::execute(a, &client),
        Command::Completions(a) => completions::completions(a, Cli::command()),
        Command::Man(a) => completions::man(a, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("engine: {}", e.message);
            e.exit_code
        }
    }
}

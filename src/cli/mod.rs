//! The `engine` command line: one file per verb, each with its arguments and what it asks the
//! supervisor. Errors are one line on stderr and a non-zero exit (125 for engine errors, as Docker).
mod attach;
mod client;
mod completions;
mod create;
mod events;
mod exec;
mod export;
pub mod front;
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
pub mod shared;
mod start;
mod stats;
mod stop;
mod supervisor;
mod table;
mod terminal;
pub mod thin;
mod top;
mod version;
mod volume;
mod wait;

use std::path::PathBuf;

use clap::{Args as _, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use client::Client;

pub use crate::container::exit::ENGINE_ERROR as EXIT_ENGINE_ERROR;

#[derive(Parser)]
#[command(name = "engine", version, about = "A small, fast, Docker-like container runtime")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The options every verb takes; a struct of their own so that [`parse`] can build them alone.
#[derive(clap::Args)]
struct Global {
    /// Supervisor socket (default: $ENGINE_SOCKET, else /run/engine/engine.sock)
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
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

/// Each verb of [`Command`] (its clap name) and what adds its arguments to a clap command.
type Augment = fn(clap::Command) -> clap::Command;
const VERBS: &[(&str, Augment)] = &[
    ("supervisor", supervisor::Args::augment_args),
    ("start", start::StartArgs::augment_args),
    ("run", run::Args::augment_args),
    ("exec", exec::Args::augment_args),
    ("attach", attach::Args::augment_args),
    ("top", top::Args::augment_args),
    ("stop", stop::Args::augment_args),
    ("ps", ps::Args::augment_args),
    ("logs", logs::Args::augment_args),
    ("inspect", inspect::Args::augment_args),
    ("port", port::Args::augment_args),
    ("rm", rm::Args::augment_args),
    ("export", export::Args::augment_args),
    ("wait", wait::Args::augment_args),
    ("info", info::Args::augment_args),
    ("version", version::Args::augment_args),
    ("pull", pull::Args::augment_args),
    ("images", images::Args::augment_args),
    ("rmi", rmi::Args::augment_args),
    ("image", images::ImageArgs::augment_args),
    ("import", import::Args::augment_args),
    ("login", login::Args::augment_args),
    ("volume", volume::Args::augment_args),
    ("stats", stats::Args::augment_args),
    ("events", events::Args::augment_args),
    ("completions", completions::CompletionArgs::augment_args),
    ("man", completions::ManArgs::augment_args),
];

/// Parses the command line. clap's derive builds every verb's arguments (some 300, a third of the
/// client's start-up CPU and 50 pages of heap) to parse one: the verb named is parsed first by a
/// command that holds only its own arguments and the global ones. Whatever that one does not
/// take (help, --version, any error) is parsed again by the whole command, so every message,
/// help text and exit code is clap's own, as before.
fn parse(argv: &[String]) -> Result<Cli, clap::Error> {
    parse_with(VERBS, argv)
}

/// [`parse`] with the fast path knowing only the verbs of `verbs`: any other verb (or a table
/// that lost one) goes to the whole command, never to a panic.
fn parse_with(verbs: &[(&'static str, Augment)], argv: &[String]) -> Result<Cli, clap::Error> {
    if let Some(Ok(cli)) = one_verb_matches_in(verbs, argv).map(|m| m.and_then(|m| Cli::from_arg_matches(&m))) {
        return Ok(cli);
    }
    Cli::try_parse_from(argv)
}

/// The matches of the command that knows only the verb named in `argv` (None: no known verb).
#[cfg(test)]
fn one_verb_matches(argv: &[String]) -> Option<Result<clap::ArgMatches, clap::Error>> {
    one_verb_matches_in(VERBS, argv)
}

fn one_verb_matches_in(
    verbs: &[(&'static str, Augment)],
    argv: &[String],
) -> Option<Result<clap::ArgMatches, clap::Error>> {
    let verb = create::subcommand_index(argv)?;
    let (name, augment) = verbs.iter().find(|(name, _)| Some(*name) == argv.get(verb).map(String::as_str))?;
    let small = Global::augment_args(clap::Command::new("engine")).subcommand(augment(clap::Command::new(*name)));
    Some(small.try_get_matches_from(argv))
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
    let cli = match parse(&create::hoist_trailing_options(&argv)) {
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
    let client = client_for(cli.global).on_missing_image(start::pull_missing);
    let result = match run_socket_verb(cli.command, &client).map_err(|other| *other) {
        Ok(result) => result,
        Err(Command::Supervisor(a)) => supervisor::execute(a, client.socket()),
        Err(Command::Export(a)) => export::execute(a, &client),
        Err(Command::Info(a)) => info::execute(a, &client),
        Err(Command::Version(a)) => version::execute(a, &client),
        Err(Command::Pull(a)) => pull::execute(a),
        Err(Command::Images(a)) => images::execute(a),
        Err(Command::Rmi(a)) => rmi::execute(a),
        Err(Command::Image(a)) => images::execute_image(a),
        Err(Command::Import(a)) => import::execute(a),
        Err(Command::Login(a)) => login::execute(a),
        Err(Command::Volume(a)) => volume::execute(a),
        Err(Command::Completions(a)) => completions::completions(a, Cli::command()),
        Err(Command::Man(a)) => completions::man(a, Cli::command()),
        Err(_) => Err("a verb was not dispatched (a bug)".into()),
    };
    exit_code(result)
}

/// Runs `command` if it is one of the verbs that only talk to the supervisor (those the front
/// runs, see `front`); any other comes back.
fn run_socket_verb(command: Command, client: &Client) -> Result<CliResult, Box<Command>> {
    Ok(match command {
        Command::Start(a) => start::execute(a, client),
        Command::Run(a) => run::execute(a, client),
        Command::Exec(a) => exec::execute(a, client),
        Command::Attach(a) => attach::execute(a, client),
        Command::Top(a) => top::execute(a, client),
        Command::Stop(a) => stop::execute(a, client),
        Command::Ps(a) => ps::execute(a, client),
        Command::Logs(a) => logs::execute(a, client),
        Command::Inspect(a) => inspect::execute(a, client),
        Command::Port(a) => port::execute(a, client),
        Command::Rm(a) => rm::execute(a, client),
        Command::Wait(a) => wait::execute(a, client),
        Command::Stats(a) => stats::execute(a, client),
        Command::Events(a) => events::execute(a, client),
        other => return Err(Box::new(other)),
    })
}

/// The client of the supervisor named by --socket, else $ENGINE_SOCKET, else the default.
fn client_for(global: Global) -> Client {
    let socket = global
        .socket
        .or_else(|| std::env::var_os("ENGINE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(shared::DEFAULT_SOCKET));
    Client::new(socket)
}

/// The process's exit code for a command's result; a failure's line goes to stderr.
fn exit_code(result: CliResult) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("engine: {}", e.message);
            e.exit_code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cmd: &clap::Command) -> Vec<String> {
        let mut all: Vec<String> = cmd.get_arguments().map(|a| a.get_id().to_string()).collect();
        all.extend(
            cmd.get_subcommands().flat_map(|s| ids(s).into_iter().map(move |id| format!("{}.{id}", s.get_name()))),
        );
        all
    }

    #[test]
    fn every_verb_is_in_the_table_with_its_own_arguments() {
        let full = Cli::command();
        let names: Vec<&str> = full.get_subcommands().map(|s| s.get_name()).collect();
        assert_eq!(names, VERBS.iter().map(|(name, _)| *name).collect::<Vec<_>>());
        for sub in full.get_subcommands() {
            let Some((name, augment)) = VERBS.iter().find(|(name, _)| *name == sub.get_name()) else {
                panic!("verb {} is missing from VERBS", sub.get_name());
            };
            assert_eq!(ids(&augment(clap::Command::new(*name))), ids(sub), "{name}");
        }
    }

    #[test]
    fn a_verb_the_table_lacks_is_parsed_by_the_whole_command() {
        let without_ps: Vec<(&'static str, Augment)> =
            VERBS.iter().copied().filter(|(name, _)| *name != "ps").collect();
        for args in ["engine ps -a", "engine --socket /s ps --stats", "engine ps --bogus", "engine run --rm t1 img"] {
            let argv: Vec<String> = args.split(' ').map(String::from).collect();
            let full = Cli::command().try_get_matches_from(&argv);
            let cli = parse_with(&without_ps, &argv);
            assert_eq!(cli.is_ok(), full.is_ok(), "{args}");
            if let (Ok(cli), Ok(full)) = (cli, full) {
                let name = full.subcommand_name().map(str::to_string);
                assert_eq!(Some(command_name(&cli.command)), name.as_deref(), "{args}");
                assert_eq!(cli.global.socket, full.get_one::<PathBuf>("socket").cloned(), "{args}");
            }
        }
        assert!(parse_with(&[], &["engine".into(), "ps".into()]).is_ok());
    }

    fn command_name(c: &Command) -> &'static str {
        match c {
            Command::Ps(_) => "ps",
            Command::Run(_) => "run",
            _ => "other",
        }
    }

    #[test]
    fn one_verb_parses_as_the_whole_command_line() {
        let mut compared = 0;
        for args in [
            "engine run --rm --net none t1 /rootfs /bin/true",
            "engine --socket /s run --rm -e A=1 -e B=2 --memory 10m --cpus 0.5 -p 8080:80 t1 busybox sh -c x",
            "engine run --socket=/s -it --restart on-failure:3 --security-opt no-new-privileges t1 img",
            "engine start --pull never -a -v /a:/b:ro --tmpfs /t:size=1m t1 img -- /bin/prog --rm",
            "engine run t1",
            "engine run --nice -5 --bogus t1 img",
            "engine run --help",
            "engine ps -a",
            "engine volume create v1",
            "engine image ls",
            "engine exec -it t1 sh",
            "engine supervisor --root /r --cgroup-parent p --bridge b0 --subnet 10.1.0.0/16",
            "engine stop t1 --socket /s",
            "engine help run",
            "engine --version",
            "engine",
        ] {
            let argv: Vec<String> = args.split(' ').map(String::from).collect();
            let full = Cli::command().try_get_matches_from(&argv);
            assert_eq!(parse(&argv).is_ok(), full.is_ok(), "{args}");
            // Otherwise (an error, help, no verb) the whole command parses it again and answers.
            if let Some(Ok(small)) = one_verb_matches(&argv) {
                let full = full.unwrap_or_else(|e| panic!("{args}: the whole command refused it: {e}"));
                assert_eq!(small.subcommand(), full.subcommand(), "{args}");
                assert_eq!(small.get_one::<PathBuf>("socket"), full.get_one::<PathBuf>("socket"), "{args}");
                compared += 1;
            }
        }
        assert_eq!(compared, 10);
    }
}

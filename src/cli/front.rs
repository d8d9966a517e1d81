//! `engine`, the front: the verbs that talk only to the supervisor (run, start, exec, stop, ps, ...)
//! are parsed and sent from a small binary, and every other command line (supervisor, images,
//! volumes, help, a usage error) is handed to `engine-core`, the whole engine beside it, by execve
//! with the same arguments. Why two binaries: `engine run` is on the user's latency path, and a
//! static PIE's start-up is mostly the relocation of its pointer-bearing data (the whole engine's
//! 460 KiB of .data.rel.ro, copied page by page on every start) plus glibc's own; the front
//! carries only what its verbs reach (issue 14, `benches/results/client-startup.md`).
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::{Args as _, FromArgMatches};

use super::{attach, create, events, exec, inspect, logs, port, ps, rm, run, start, stats, stop, top, wait};
use super::{client_for, exit_code, one_verb_matches_in, Augment, Cli, CliError, Command, EXIT_ENGINE_ERROR};

/// The file name of the whole engine, looked for beside the front's own binary.
pub const CORE: &str = "engine-core";

/// The verbs the front runs itself; each is also in [`super::VERBS`], whose whole command parses
/// anything these refuse.
const FRONT_VERBS: &[(&str, Augment)] = &[
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
    ("wait", wait::Args::augment_args),
    ("stats", stats::Args::augment_args),
    ("events", events::Args::augment_args),
];

/// Runs the command line, or hands it to engine-core; returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().collect();
    let parsed = one_verb_matches_in(FRONT_VERBS, &create::hoist_trailing_options(&argv))
        .and_then(Result::ok)
        .and_then(|m| Cli::from_arg_matches(&m).ok());
    let Some(cli) = parsed else { return hand_over() };
    let client = client_for(cli.global).on_missing_image(|_, _| Err(hand_over_error()));
    let result = match cli.command {
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
        Command::Wait(a) => wait::execute(a, &client),
        Command::Stats(a) => stats::execute(a, &client),
        Command::Events(a) => events::execute(a, &client),
        _ => return hand_over(),
    };
    exit_code(result)
}

/// Replaces this process with engine-core, same arguments, same fds; returns only if that fails.
fn hand_over() -> i32 {
    exit_code(Err(hand_over_error()))
}

/// The exec of engine-core, and the error if it failed. A start or run whose image is missing
/// comes here before anything was made: engine-core asks again and pulls.
fn hand_over_error() -> CliError {
    let core = match core_path() {
        Ok(path) => path,
        Err(e) => return CliError { message: format!("cannot find {CORE}: {e}"), exit_code: EXIT_ENGINE_ERROR },
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "engine".into());
    let e = std::process::Command::new(&core).arg0(arg0).args(args).exec();
    CliError { message: format!("cannot run {}: {e}", core.display()), exit_code: EXIT_ENGINE_ERROR }
}

/// engine-core beside the front's own binary (symlinks to the front resolved, as the kernel does
/// for /proc/self/exe).
fn core_path() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(CORE))
}

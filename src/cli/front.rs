//! `engine-front`: the verbs that talk only to the supervisor (run, start, exec, stop, ps, ...)
//! are parsed and sent from a small binary, and every other command line (supervisor, images,
//! volumes, help, a usage error) is handed to `engine-core`, the whole engine beside it, by execve
//! with the same arguments. The `engine` client (src/bin/engine) execs it for these verbs, and for
//! the forms of `run` and `start` the supervisor hands back. Why a binary of its own: the verbs
//! are on the user's latency path, and a
//! static PIE's start-up is mostly the relocation of its pointer-bearing data (the whole engine's
//! 460 KiB of .data.rel.ro, copied page by page on every start) plus glibc's own; the front
//! carries only what its verbs reach (issue 14, `benches/results/client-startup.md`).
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::FromArgMatches;

pub use super::shared::CORE;
use super::shared::FRONT_VERBS;
use super::{client_for, create, exit_code, one_verb_matches_in, run_socket_verb, Augment, Cli, CliError};
use super::{EXIT_ENGINE_ERROR, VERBS};

/// Runs the command line, or hands it to engine-core; returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().collect();
    let verbs: Vec<(&str, Augment)> = VERBS.iter().copied().filter(|(name, _)| FRONT_VERBS.contains(name)).collect();
    let parsed = one_verb_matches_in(&verbs, &create::hoist_trailing_options(&argv))
        .and_then(Result::ok)
        .and_then(|m| Cli::from_arg_matches(&m).ok());
    let Some(cli) = parsed else { return hand_over() };
    let client = client_for(cli.global).on_missing_image(|_, _| Err(hand_over_error()));
    match run_socket_verb(cli.command, &client) {
        Ok(result) => exit_code(result),
        Err(_) => hand_over(),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_front_verb_is_a_verb_of_the_whole_command() {
        for verb in super::FRONT_VERBS {
            assert!(super::VERBS.iter().any(|(name, _)| name == verb), "{verb} is not in VERBS");
        }
    }
}

//! The supervisor's reading of a command line the `engine` client sent as it is
//! (`Request::Cli`): the same clap commands and conversions as `engine-front`'s, for the forms
//! that need nothing of the client but its output and exit code. The rest is handed back.
use std::path::Path;
use std::sync::OnceLock;

use clap::{Args as _, FromArgMatches};
use parking_lot::Mutex;

use super::shared::SENT_VERBS;
use super::{create, Cli, CliError, Command, Global, VERBS};
use crate::supervisor::spec::ContainerSpec;

/// What a sent command line asks for.
pub enum Sent {
    /// Left to `engine-front` (a terminal or stdin to attach, `start -a`, a usage error, help):
    /// nothing was done.
    HandOver,
    /// A failure to report as the front would: its line (after "engine: ") and exit code.
    Failed(CliError),
    Run {
        spec: ContainerSpec,
        remove: bool,
    },
    Start {
        spec: ContainerSpec,
    },
}

/// The clap commands, built once (building them took ~150 of the ~200 µs a fresh parse cost).
struct Parsers {
    /// `engine` with the global options and the sent verbs only (as the front's one-verb command).
    verbs: clap::Command,
    /// The options `create::hoist_trailing_options` moves.
    trailing: clap::Command,
}

fn parsers() -> &'static Mutex<Parsers> {
    static PARSERS: OnceLock<Mutex<Parsers>> = OnceLock::new();
    PARSERS.get_or_init(|| {
        let verbs = VERBS
            .iter()
            .filter(|(name, _)| SENT_VERBS.contains(name))
            .fold(Global::augment_args(clap::Command::new("engine")), |cmd, (name, augment)| {
                cmd.subcommand(augment(clap::Command::new(*name)))
            });
        Mutex::new(Parsers { verbs, trailing: create::trailing_options_command() })
    })
}

/// Reads `argv` (the whole command line, `engine` first); relative paths are read from `cwd`.
pub fn read(argv: &[String], cwd: &Path) -> Sent {
    if !cwd.is_absolute() {
        return Sent::HandOver;
    }
    let matches = {
        let mut p = parsers().lock();
        let Parsers { verbs, trailing } = &mut *p;
        let argv = create::hoist_trailing_options_with(
            argv,
            &mut |tail| trailing.try_get_matches_from_mut(tail).ok().and_then(|m| create::trailing_options_rm(&m)),
            &mut |head| verbs.try_get_matches_from_mut(head).is_ok(),
        );
        verbs.try_get_matches_from_mut(&argv)
    };
    let Ok(cli) = matches.and_then(|m| Cli::from_arg_matches(&m)) else { return Sent::HandOver };
    match cli.command {
        Command::Run(args) => super::run::sent(args, cwd),
        Command::Start(args) => super::start::sent(args, cwd),
        _ => Sent::HandOver,
    }
}

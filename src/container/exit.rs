//! The one table of exit codes engine gives for a container (Docker's and runc's convention), and
//! how a process ended.
use serde::{Deserialize, Serialize};

/// The engine itself failed: bad input, a failed setup step, a lost supervisor.
pub const ENGINE_ERROR: i32 = 125;
/// The command exists but cannot be executed (EACCES, ENOEXEC, ...).
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;
/// A command killed by signal N ends with 128 + N, as a shell reports it.
pub const SIGNAL_BASE: i32 = 128;

/// How a container's command ended, as its init reported it (or as waitpid saw the init).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    Code(i32),
    Signal(i32),
}

impl Termination {
    /// The exit code a shell would report: the code, or 128+N for signal N.
    pub fn exit_code(self) -> i32 {
        match self {
            Termination::Code(c) => c,
            Termination::Signal(s) => SIGNAL_BASE + s,
        }
    }
}

/// The exit code for an exec that failed with `errno`: 127 when the program is missing.
pub fn for_exec_errno(errno: i32) -> i32 {
    match errno {
        libc::ENOENT | libc::ENOTDIR => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    }
}

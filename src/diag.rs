//! The supervisor's own diagnostics. `eprintln!` panics when stderr cannot be written (a detached
//! supervisor's log on a full disk), and a panic kills the thread that hit it: the reaper, the log
//! writer. [`warn!`](crate::warn) writes one line and drops the error, since a message that
//! cannot be written is no reason to stop serving containers.
use std::io::Write;

/// Writes `engine: <message>` to stderr in one write, ignoring failure.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let line = format!("engine: {args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `warn!("...", args)`: a diagnostic line on stderr that never panics.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::diag::write_line(format_args!($($arg)*))
    };
}

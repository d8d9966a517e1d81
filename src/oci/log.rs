//! The runtime's log: `--log FILE` (stderr without it), `--log-format text|json`, `--debug`.
//!
//! JSON lines are logrus' as runc writes them, `{"level":"error","msg":"...","time":"RFC3339"}`:
//! the containerd shim and conmon read the last `error` line of the file to tell the user why a
//! verb failed. Logging never fails a verb: a line that cannot be written is dropped.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    /// None: stderr.
    file: Option<File>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the log up once, at start. A `--log` file that cannot be opened is the verb's failure (runc
/// does the same): its caller would otherwise look for an error in a file that never gets one.
/// std opens it O_CLOEXEC: the log never reaches a container or a hook as an open fd.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("opening the log file {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger { file, format, debug });
    Ok(())
}

/// Whether `--debug` was given.
pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// Writes one record; debug records only with `--debug`.
pub fn write(level: Level, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        // Before init (argument errors): stderr, text.
        if level >= Level::Warn {
            let _ = std::io::stderr().write_all(format!("engine-oci: {msg}\n").as_bytes());
        }
        return;
    };
    if level == Level::Debug && !logger.debug {
        return;
    }
    let line = format_line(logger.format, level, msg, &now_rfc3339());
    let _ = match &logger.file {
        Some(f) => (&*f).write_all(line.as_bytes()),
        // Errors reach stderr anyway (see `report_error`); only the rest goes there from here.
        None if level == Level::Error => Ok(()),
        None => std::io::stderr().write_all(line.as_bytes()),
    };
}

pub fn format_line(format: Format, level: Level, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "level": level.name(), "msg": msg, "time": time });
            format!("{v}\n")
        }
        Format::Text => format!("time=\"{time}\" level={} msg={:?}\n", level.name(), msg),
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub fn debug(msg: &str) {
    write(Level::Debug, msg);
}

pub fn warn(msg: &str) {
    write(Level::Warn, msg);
}

/// A verb's failure: one line on stderr (what a person and podman read) and an error record in the
/// log (what the containerd shim reads), as runc does.
pub fn report_error(msg: &str) {
    let _ = std::io::stderr().write_all(format!("engine-oci: {msg}\n").as_bytes());
    if LOGGER.get().is_some_and(|l| l.file.is_some()) {
        write(Level::Error, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_logrus_shaped() {
        let line = format_line(Format::Json, Level::Error, "container \"x\" does not exist", "2026-01-01T00:00:00Z");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    }

    #[test]
    fn text_lines_quote_the_message() {
        let line = format_line(Format::Text, Level::Warn, "a \"b\"", "T");
        assert_eq!(line, "time=\"T\" level=warning msg=\"a \\\"b\\\"\"\n");
    }
}

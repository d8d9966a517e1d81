//! Opt-in per-step timeline of container starts (issue 14's breakdown): with
//! `ENGINE_STEP_TRACE=PATH` in the supervisor's environment, each step of a start and of its end
//! appends one line to PATH: `NAME +MICROSECONDS STEP [PID]`, the time since the request for NAME
//! arrived (CLOCK_MONOTONIC, which the init shares). The init gets the origin in its Plan and the
//! file after it (the spawner blanks its environment) and appends its own steps to it. Off (the
//! variable unset): one load of a cached `None` per step.
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// When the request arrived (ns of CLOCK_MONOTONIC); the file the init writes its steps to
/// follows the Setup on the channel ([`file`]): an init with a kit reaches no host path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Origin {
    pub t0_ns: u64,
}

struct Sink {
    file: std::fs::File,
    /// Container name → when its request arrived.
    origins: Mutex<HashMap<String, u64>>,
}

static SINK: OnceLock<Option<Sink>> = OnceLock::new();

fn sink() -> Option<&'static Sink> {
    SINK.get_or_init(|| {
        let path = PathBuf::from(std::env::var_os("ENGINE_STEP_TRACE")?);
        match open(&path) {
            Ok(file) => Some(Sink { file, origins: Mutex::new(HashMap::new()) }),
            Err(e) => {
                crate::warn!("ENGINE_STEP_TRACE: opening {}: {e}; no step trace", path.display());
                None
            }
        }
    })
    .as_ref()
}

fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(path)
}

/// CLOCK_MONOTONIC in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn line(mut file: &std::fs::File, id: &str, t0: u64, what: &str) {
    let us = now_ns().saturating_sub(t0) / 1000;
    // One write per line: O_APPEND keeps the lines of the supervisor's threads and the init whole.
    let _ = file.write_all(format!("{id} +{us} {what} [{}]\n", std::process::id()).as_bytes());
}

/// The request for `id` arrived now: its steps are timed from here.
pub fn begin(id: &str) {
    if let Some(s) = sink() {
        s.origins.lock().insert(id.to_string(), now_ns());
        line(&s.file, id, now_ns(), "request parsed");
    }
}

/// One step of `id`'s start or end (nothing unless tracing and `begin` was called for it).
pub fn step(id: &str, what: &str) {
    if let Some(s) = sink() {
        let t0 = s.origins.lock().get(id).copied();
        if let Some(t0) = t0 {
            line(&s.file, id, t0, what);
        }
    }
}

/// The last step of `id`: its origin is forgotten.
pub fn end(id: &str, what: &str) {
    step(id, what);
    if let Some(s) = sink() {
        s.origins.lock().remove(id);
    }
}

/// What the init needs to trace its own steps (None: not tracing `id`).
pub fn origin(id: &str) -> Option<Origin> {
    let s = sink()?;
    let t0 = s.origins.lock().get(id).copied()?;
    Some(Origin { t0_ns: t0 })
}

/// The file the steps go to, to send to an init with its [`Origin`].
pub fn file() -> Option<std::os::fd::BorrowedFd<'static>> {
    use std::os::fd::AsFd;
    sink().map(|s| s.file.as_fd())
}

/// The init's side: its own file handle (what the spawner had open is closed in the init).
pub struct InitTrace {
    file: Option<(std::fs::File, u64)>,
}

impl InitTrace {
    pub fn open(origin: Option<&Origin>, file: Option<std::os::fd::OwnedFd>) -> InitTrace {
        InitTrace { file: origin.zip(file).map(|(o, f)| (std::fs::File::from(f), o.t0_ns)) }
    }

    pub fn step(&self, id: &str, what: &str) {
        if let Some((file, t0)) = &self.file {
            line(file, id, *t0, what);
        }
    }
}

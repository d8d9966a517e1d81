//! The one error type of the cgroup module: each variant names the step that failed,
//! the path or value involved, and keeps the cause.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A limit was asked for that this host cannot enforce. Never silently ignored.
    #[error("{flag}: {reason}")]
    Unsupported { flag: &'static str, reason: String },

    /// A flag's value is malformed or out of range.
    #[error("{flag}: invalid value {value:?}: {reason}")]
    InvalidValue { flag: &'static str, value: String, reason: String },

    /// The kernel refused a limit value (e.g. a CPU outside the parent's cpuset).
    #[error("{flag}: the kernel refused {value:?} in {}: {source}", path.display())]
    Rejected {
        flag: &'static str,
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid cgroup name {0:?}: expected [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,63}}")]
    InvalidName(String),

    #[error("no usable cgroup hierarchy: {0}")]
    NoHierarchy(String),

    /// Refused rather than adopted: its limits and processes are not ours to reuse.
    #[error("cgroup already exists: {}", path.display())]
    AlreadyExists { path: PathBuf },

    #[error("statfs {}: {source}", path.display())]
    Statfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("unexpected content in {}: {content:?}", path.display())]
    Parse { path: PathBuf, content: String },

    #[error("renaming {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("writing {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    #[error("creating {}: {source}", path.display())]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("removing {}: {source}", path.display())]
    Rmdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("killing pid {pid} of {}: {source}", path.display())]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} still has processes {pids:?} after SIGKILL", path.display())]
    StillPopulated { path: PathBuf, pids: Vec<i32> },

    /// The v2 device program was refused; `log` is the verifier's explanation, if any.
    #[error("{step} the cgroup v2 device program{}: {source}{}",
        path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default(),
        if log.is_empty() { String::new() } else { format!("; verifier log: {log}") })]
    DeviceProgram {
        step: &'static str,
        path: Option<PathBuf>,
        log: String,
        #[source]
        source: io::Error,
    },

    /// An OCI container's group is not there (deleted, or never made).
    #[error("no cgroup at {}", path.display())]
    NotFound { path: PathBuf },

    /// pause: the tasks did not all stop in time (a task in uninterruptible sleep, e.g. on NFS).
    #[error("{} did not reach the frozen state within {waited:?}; the group was thawed again", path.display())]
    Freeze { path: PathBuf, waited: std::time::Duration },

    /// Teardown keeps going past a failure; this carries every error it met.
    #[error("removing cgroup {name}: {}", join(errors))]
    Teardown { name: String, errors: Vec<CgroupError> },
}

fn join(errors: &[CgroupError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

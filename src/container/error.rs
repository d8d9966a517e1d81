//! The core's errors: one variant per step, each keeping its cause, and one `exit_code()`.
use std::io;
use std::path::PathBuf;

use super::channel::{ChannelError, InitFailure, WaitError};
use super::exit;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    InvalidId(#[from] super::name::InvalidName),
    /// A field of the Spec the core cannot honour (named), with why.
    #[error("config: {field}: {reason}")]
    Spec { field: String, reason: String },
    #[error("creating the {what} for the container: {source}")]
    Resource { what: &'static str, source: io::Error },
    #[error("clone() into the container's namespaces: {0}")]
    Clone(io::Error),
    /// A createContainer or startContainer hook run by the init.
    #[error("{kind} hook {source}")]
    Hook { kind: &'static str, source: super::hooks::HookError },
    #[error("joining the {kind} namespace {path}: {source}")]
    Namespace { kind: String, path: PathBuf, source: io::Error },
    #[error("writing the {what} of the container's user namespace: {source}")]
    IdMap { what: &'static str, source: io::Error },
    #[error("cgroup {path}: {source}")]
    Cgroup { path: String, source: crate::cgroup::CgroupError },
    #[error("container init: {0}")]
    Channel(#[from] ChannelError),
    /// A step of the root (overlay, a mount, a device, the /etc files, pivot_root), named.
    #[error("{step}: {source}")]
    Root { step: String, source: io::Error },
    /// A setting of the process (cwd, user, capabilities, rlimits, seccomp, ...), named.
    #[error("{step}: {source}")]
    Process { step: String, source: io::Error },
    #[error(transparent)]
    Seccomp(#[from] super::seccomp::SeccompError),
    #[error("exec {program}: {}", nix::errno::Errno::from_raw(*errno).desc())]
    Exec { program: String, errno: i32 },
    /// The init reported this failed step.
    #[error(transparent)]
    Init(InitFailure),
    #[error("start fifo {}: {source}", path.display())]
    Fifo { path: PathBuf, source: io::Error },
    /// The caller's own step between clone and Setup (`CreateOptions::before_setup`).
    #[error("{0}")]
    Caller(super::lifecycle::BoxError),
    #[error("signalling the container's init: {0}")]
    Signal(io::Error),
    #[error("waiting for the container's init: {0}")]
    Wait(io::Error),
}

impl From<WaitError> for CoreError {
    fn from(e: WaitError) -> CoreError {
        match e {
            WaitError::Channel(c) => CoreError::Channel(c),
            WaitError::Failed(f) => CoreError::Init(f),
        }
    }
}

impl CoreError {
    pub fn root(step: impl Into<String>) -> impl FnOnce(io::Error) -> CoreError {
        let step = step.into();
        move |source| CoreError::Root { step, source }
    }

    pub fn root_nix(step: impl Into<String>) -> impl FnOnce(nix::Error) -> CoreError {
        let step = step.into();
        move |e| CoreError::Root { step, source: e.into() }
    }

    pub fn process(step: impl Into<String>) -> impl FnOnce(io::Error) -> CoreError {
        let step = step.into();
        move |source| CoreError::Process { step, source }
    }

    pub fn spec(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
        CoreError::Spec { field: field.into(), reason: reason.into() }
    }

    /// The exit code the user gets: 127 for a missing program, 126 for one that cannot run, the
    /// init's own code for what it reported, 125 for every failure of engine's.
    pub fn exit_code(&self) -> i32 {
        match self {
            CoreError::Exec { errno, .. } => exit::for_exec_errno(*errno),
            CoreError::Init(f) => f.exit_code,
            _ => exit::ENGINE_ERROR,
        }
    }

    /// The step, as one word, for logs and the init's report.
    pub fn step(&self) -> &str {
        match self {
            CoreError::InvalidId(_) => "id",
            CoreError::Spec { .. } => "config",
            CoreError::Resource { .. } => "resources",
            CoreError::Clone(_) => "clone",
            CoreError::Namespace { .. } => "namespace",
            CoreError::Hook { .. } => "hook",
            CoreError::IdMap { .. } => "idmap",
            CoreError::Cgroup { .. } => "cgroup",
            CoreError::Channel(_) => "channel",
            CoreError::Root { .. } => "root",
            CoreError::Process { .. } => "process",
            CoreError::Seccomp(_) => "seccomp",
            CoreError::Exec { .. } => "exec",
            CoreError::Init(f) => &f.step,
            CoreError::Fifo { .. } => "fifo",
            CoreError::Caller(_) => "caller",
            CoreError::Signal(_) => "signal",
            CoreError::Wait(_) => "wait",
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            CoreError::Resource { source, .. }
            | CoreError::Clone(source)
            | CoreError::Namespace { source, .. }
            | CoreError::IdMap { source, .. }
            | CoreError::Root { source, .. }
            | CoreError::Process { source, .. }
            | CoreError::Fifo { source, .. }
            | CoreError::Signal(source)
            | CoreError::Wait(source) => source.raw_os_error(),
            CoreError::Exec { errno, .. } => Some(*errno),
            CoreError::Seccomp(super::seccomp::SeccompError::Install(source)) => source.raw_os_error(),
            CoreError::Channel(c) => c.errno(),
            CoreError::Init(f) => f.errno,
            _ => None,
        }
    }

    /// What the init sends on the channel for this error.
    pub fn to_failure(&self) -> InitFailure {
        InitFailure {
            step: self.step().to_string(),
            message: self.to_string(),
            errno: self.errno(),
            exit_code: self.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(CoreError::Exec { program: "/x".into(), errno: libc::ENOENT }.exit_code(), 127);
        assert_eq!(CoreError::Exec { program: "/x".into(), errno: libc::EACCES }.exit_code(), 126);
        let e = CoreError::Exec { program: "/x".into(), errno: libc::ENOENT };
        assert_eq!(e.to_string(), "exec /x: No such file or directory");
        let f = e.to_failure();
        assert_eq!((f.step.as_str(), f.errno, f.exit_code), ("exec", Some(libc::ENOENT), 127));
        assert_eq!(CoreError::Init(f).exit_code(), 127);
        assert_eq!(CoreError::root("mounting /proc")(io::Error::from_raw_os_error(libc::EPERM)).exit_code(), 125);
    }
}

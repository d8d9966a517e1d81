//! What can go wrong in a verb: each variant names the step and keeps its cause. `main` prints
//! the one line (and logs it) and exits 1, as runc does.
use std::path::PathBuf;

use super::console::ConsoleError;
use super::hooks::HookError;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid container ID {0:?}: only letters, digits, '_', '+', '-', ',' and '.' are allowed")]
    InvalidId(String),
    #[error("container ID already exists: {0}")]
    Exists(String),
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("{step}: {source}")]
    Io { step: String, source: std::io::Error },
    #[error("bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
    /// config.json: the field (JSON path) and what is wrong with it.
    #[error("config.json: {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("container \"{id}\" is {status}: {verb} needs it {wanted}")]
    Status { id: String, status: &'static str, verb: &'static str, wanted: &'static str },
    #[error("invalid signal {0:?}")]
    Signal(String),
    #[error("{step}: {source}")]
    Cgroup { step: String, source: crate::cgroup::CgroupError },
    #[error("{kind} hook: {source}")]
    Hook { kind: &'static str, source: HookError },
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// A verb, option or value engine cannot honour: said in one line, never ignored.
    #[error("{0}")]
    Unsupported(String),
    /// The process of `exec`/`run` could not be exec'd: 127 not found, 126 not executable.
    #[error("{msg}")]
    Exec { code: i32, msg: String },
    #[error("{0}")]
    Other(String),
}

impl OciError {
    /// An I/O error with the step that met it.
    pub fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciError {
        let step = step.into();
        move |source| OciError::Io { step, source }
    }

    pub fn nix(step: impl Into<String>) -> impl FnOnce(nix::Error) -> OciError {
        let step = step.into();
        move |e| OciError::Io { step, source: std::io::Error::from(e) }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> OciError {
        OciError::Config { field: field.into(), reason: reason.into() }
    }
}

impl OciError {
    /// The exit code of a failed verb: runc's 1, or the shell's 126/127 for a program that could not be exec'd.
    pub fn exit_code(&self) -> i32 {
        match self {
            OciError::Exec { code, .. } => *code,
            _ => 1,
        }
    }
}

pub type Result<T, E = OciError> = std::result::Result<T, E>;

//! The supervisor's record of a container (on disk and on the wire) and its lifecycle state.
//!
//! created → running → exited(code) | stopped (by `stop`) | killed(signal or limit, not asked for);
//! `lost` is a container whose supervisor died while it ran. The supervisor's registry is the only
//! place that moves a container between states; [`State::after_exit`] is the rule it applies.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::spec::ContainerSpec;
pub use crate::container::exit::Termination;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// A signal nobody asked engine for (`kill -9` from the host, a crash, ...).
    Signal,
    /// The kernel monitor or the cgroup hard limit for `--hard-mib`.
    HardLimit,
    /// The cgroup OOM killer for `--memory`.
    Oom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum State {
    Created,
    Running,
    Exited { code: i32 },
    Stopped { code: Option<i32>, signal: Option<i32> },
    Killed { signal: i32, reason: KillReason },
    Lost,
}

impl State {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, State::Created | State::Running)
    }

    /// The state a running container moves to when it ends.
    pub fn after_exit(how: Termination, stop_requested: bool, kill_reason: Option<KillReason>) -> State {
        match (how, stop_requested) {
            (_, _) if kill_reason.is_some_and(|r| r != KillReason::Signal) => State::Killed {
                signal: match how {
                    Termination::Signal(s) => s,
                    Termination::Code(_) => libc::SIGKILL,
                },
                reason: kill_reason.unwrap(),
            },
            (Termination::Code(c), true) => State::Stopped { code: Some(c), signal: None },
            (Termination::Signal(s), true) => State::Stopped { code: None, signal: Some(s) },
            (Termination::Code(c), false) => State::Exited { code: c },
            (Termination::Signal(s), false) => State::Killed { signal: s, reason: KillReason::Signal },
        }
    }

    /// The exit code a shell would report: the code, or 128+N for signal N.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            State::Exited { code } => Some(*code),
            State::Stopped { code: Some(c), .. } => Some(*c),
            State::Stopped { signal: Some(s), .. } => Some(Termination::Signal(*s).exit_code()),
            State::Stopped { .. } => None,
            State::Killed { signal, .. } => Some(Termination::Signal(*signal).exit_code()),
            State::Created | State::Running | State::Lost => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Created => write!(f, "created"),
            State::Running => write!(f, "running"),
            State::Exited { code } => write!(f, "exited ({code})"),
            State::Stopped { .. } => write!(f, "stopped"),
            State::Killed { reason: KillReason::HardLimit, .. } => write!(f, "killed (hard limit)"),
            State::Killed { reason: KillReason::Oom, .. } => write!(f, "killed (oom)"),
            State::Killed { signal, .. } => write!(f, "killed ({})", signal_name(*signal)),
            State::Lost => write!(f, "lost (supervisor died while it ran)"),
        }
    }
}

pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("signal {sig}"))
}

/// The image a container's root is made of, as resolved when it started: the record keeps it so
/// `rmi` knows the image is in use, a restarted supervisor still knows what the overlay's lower
/// layers are, and `inspect` shows the image's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageUse {
    /// The image ID (config digest, `sha256:...`).
    pub id: String,
    /// The name it was found by, normalised (`docker.io/library/busybox:latest`), or the ID.
    pub reference: String,
    /// The overlay's lower dirs, top layer first.
    pub layers: Vec<std::path::PathBuf>,
    pub config: crate::image::ImageConfig,
}

/// Everything engine knows about one container; one JSON file per container on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub spec: ContainerSpec,
    pub state: State,
    /// Host PID of the container's init (PID 1 inside), while it runs.
    pub pid: Option<i32>,
    /// The init's start time in clock ticks since boot (/proc/PID/stat field 22): tells a live
    /// container from an unrelated process that reused its PID after a supervisor crash.
    pub pid_start_ticks: Option<u64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub log_path: std::path::PathBuf,
    /// The image its root is made of (None: a directory root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageUse>,
    /// What enforces `--soft-mib/--hard-mib` ("kernel monitor", "cgroup v1", ...), if asked for.
    #[serde(default)]
    pub memory_enforcement: Option<String>,
    /// Peak RSS seen by the enforcing mechanism, in bytes.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// Limit events seen for this container (soft warnings, hard kills), newest last.
    #[serde(default)]
    pub events: Vec<String>,
    /// How many times the `--soft-signal` was sent (by the kernel monitor or the cgroup fallback).
    #[serde(default)]
    pub soft_signals_sent: u32,
    /// Its cgroup directories (every container has its own), while it runs.
    #[serde(default)]
    pub cgroup: Vec<std::path::PathBuf>,
    /// Memory, CPU and pids from its cgroup: live while it runs, the last reading after.
    #[serde(default)]
    pub stats: Option<crate::cgroup::Stats>,
    #[serde(default)]
    pub network: Option<crate::net::Attachment>,
    /// `Some(false)` in `inspect` while the supervisor could not save this record (a full disk):
    /// the state shown is true, the file on disk is behind and being retried. Never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_saved: Option<bool>,
    /// How many times its restart policy started it again (Docker's RestartCount).
    #[serde(default)]
    pub restart_count: u32,
    /// Ended, and its restart policy will start it again after the back-off.
    #[serde(default)]
    pub restarting: bool,
    /// `stop` (or `kill`, `rm -f`) ended it: `unless-stopped` leaves it stopped, also after a
    /// supervisor restart. Cleared when it is started again.
    #[serde(default)]
    pub user_stopped: bool,
}

impl ContainerRecord {
    /// A container just reserved: created, nothing spawned yet.
    pub fn new(spec: ContainerSpec, log_path: std::path::PathBuf, created_at: String) -> ContainerRecord {
        ContainerRecord {
            spec,
            state: State::Created,
            pid: None,
            pid_start_ticks: None,
            created_at,
            started_at: None,
            finished_at: None,
            exit_code: None,
            log_path,
            image: None,
            memory_enforcement: None,
            peak_rss_bytes: None,
            events: Vec::new(),
            soft_signals_sent: 0,
            cgroup: Vec::new(),
            stats: None,
            network: None,
            record_saved: None,
            restart_count: 0,
            restarting: false,
            user_stopped: false,
        }
    }
}

impl ContainerRecord {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The state as `ps` shows it: an exit after the soft-limit signal says so (the application
    /// left on its own, after being asked to).
    pub fn state_text(&self) -> String {
        match self.state {
            _ if self.restarting => format!("restarting (after {})", self.state),
            State::Exited { .. } if self.soft_signals_sent > 0 => format!("{} after soft-limit signal", self.state),
            _ => self.state.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_rules() {
        assert_eq!(State::after_exit(Termination::Code(3), false, None), State::Exited { code: 3 });
        assert_eq!(
            State::after_exit(Termination::Signal(9), false, None),
            State::Killed { signal: 9, reason: KillReason::Signal }
        );
        assert_eq!(
            State::after_exit(Termination::Signal(15), true, None),
            State::Stopped { code: None, signal: Some(15) }
        );
        let hard = State::after_exit(Termination::Signal(9), false, Some(KillReason::HardLimit));
        assert_eq!(hard.to_string(), "killed (hard limit)");
        assert_eq!(hard.exit_code(), Some(137));
        assert_eq!(State::Exited { code: 0 }.to_string(), "exited (0)");
        assert_eq!(State::Killed { signal: 9, reason: KillReason::Signal }.to_string(), "killed (SIGKILL)");
    }
}

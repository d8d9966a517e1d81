//! `--restart no|on-failure[:N]|always|unless-stopped`, with Docker's rules (moby's
//! `restartmanager`): the decision is taken when the container ends (in the registry, so `ps`
//! shows "restarting" at once), the start again waits a back-off that starts at 100 ms, doubles
//! on each restart up to a minute, and falls back to 100 ms once a run lasted 10 s.
//!
//! What survives a supervisor restart is on disk, in the record: the policy (in the spec), the
//! restart count, whether a restart is pending, and whether the user stopped the container. A
//! supervisor starting up resumes the policy for every container that ended while none ran:
//! `always` restarts it even if the user had stopped it, `unless-stopped` does not (Docker's one
//! difference between the two). The back-off itself is in memory, as Docker's.
//!
//! A restart reuses the container: its record, its copy-on-write layer, its log (appended to),
//! and its address on the bridge when that is still free.
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::record::{ContainerRecord, State};
use super::Supervisor;

/// Docker's first back-off, its multiplier's ceiling and the run time that resets it.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
pub const RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit (a kill counts), at most `maximum_retry_count` times (0: no
    /// limit, as Docker).
    OnFailure {
        #[serde(default)]
        maximum_retry_count: u32,
    },
    Always,
    UnlessStopped,
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { maximum_retry_count: 0 } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { maximum_retry_count: n } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;

    /// Docker's spellings; a retry count only with on-failure.
    fn from_str(s: &str) -> Result<RestartPolicy, String> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let policy = match name {
            "no" | "" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let maximum_retry_count = match count {
                    None => 0,
                    Some(c) => c
                        .parse::<u32>()
                        .map_err(|_| format!("--restart {s}: the maximum retry count must be a number 0 or above"))?,
                };
                return Ok(RestartPolicy::OnFailure { maximum_retry_count });
            }
            _ => return Err(format!("--restart {s}: unknown policy (no, on-failure[:N], always, unless-stopped)")),
        };
        match count {
            Some(_) => Err(format!("--restart {s}: a maximum retry count goes only with on-failure")),
            None => Ok(policy),
        }
    }
}

/// clap's value parser for `--restart`.
pub fn parse_flag(s: &str) -> Result<RestartPolicy, String> {
    s.parse()
}

/// Whether a run ended in failure: anything but exit code 0 (a kill, a lost container).
fn failed(state: &State) -> bool {
    state.exit_code() != Some(0)
}

/// When a container ends while the supervisor runs. A stop asked for (`stop`, `kill`, `rm -f`,
/// or the supervisor shutting down) never restarts it, whatever the policy.
pub fn after_exit(record: &ContainerRecord, stop_requested: bool) -> bool {
    if stop_requested || record.user_stopped {
        return false;
    }
    match record.spec.restart {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { maximum_retry_count: max } => {
            failed(&record.state) && (max == 0 || record.restart_count < max)
        }
    }
}

/// When a supervisor starts and finds the container ended (or lost with its predecessor):
/// `always` starts it again even if the user had stopped it; `unless-stopped` and `on-failure`
/// leave a container the user stopped alone. (Docker's `on-failure` would restart a stopped
/// container whose stop gave a non-zero code; engine treats a stop as the user's last word.)
pub fn at_supervisor_start(record: &ContainerRecord) -> bool {
    if !record.state.is_terminal() {
        return false;
    }
    match record.spec.restart {
        RestartPolicy::No => false,
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !record.user_stopped,
        RestartPolicy::OnFailure { maximum_retry_count: max } => {
            !record.user_stopped && failed(&record.state) && (max == 0 || record.restart_count < max)
        }
    }
}

/// Docker's back-off: reset after a run of [`RESET_AFTER`], then 100 ms, doubled each time, at
/// most [`MAX_BACKOFF`].
pub fn next_backoff(previous: Option<Duration>, ran: Option<Duration>) -> Duration {
    let previous = if ran.is_some_and(|r| r >= RESET_AFTER) { None } else { previous };
    match previous {
        None => FIRST_BACKOFF,
        Some(p) => (p * 2).min(MAX_BACKOFF),
    }
}

/// How long the last run lasted, from the record's times.
fn ran_for(record: &ContainerRecord) -> Option<Duration> {
    let parse = |t: &Option<String>| chrono::DateTime::parse_from_rfc3339(t.as_deref()?).ok();
    let (start, end) = (parse(&record.started_at)?, parse(&record.finished_at)?);
    (end - start).to_std().ok()
}

/// The in-memory half: each container's current back-off.
#[derive(Default)]
pub struct Restarter {
    backoff: Mutex<HashMap<String, Duration>>,
    /// The supervisor, for the threads that wait out a back-off (set by [`resume`]).
    supervisor: std::sync::OnceLock<std::sync::Weak<Supervisor>>,
}

impl Restarter {
    /// A container removed: its back-off goes with it.
    pub fn forget(&self, name: &str) {
        self.backoff.lock().remove(name);
    }
}

/// Called once an ended container has given back what it held: if the registry decided to
/// restart it, waits out the back-off on a thread of its own, then starts it again.
pub fn schedule(sup: &Supervisor, name: &str) {
    let Some(sup) = sup.restarts.supervisor.get().and_then(|w| w.upgrade()) else { return };
    let sup = &sup;
    let Ok(record) = sup.registry.get(name) else { return };
    if !record.restarting {
        return;
    }
    let delay = {
        let mut backoff = sup.restarts.backoff.lock();
        let next = next_backoff(backoff.get(name).copied(), ran_for(&record));
        backoff.insert(name.to_string(), next);
        next
    };
    spawn_relaunch(sup, name, record.restart_count, delay);
}

fn spawn_relaunch(sup: &std::sync::Arc<Supervisor>, name: &str, count: u32, delay: Duration) {
    let (sup2, name2) = (sup.clone(), name.to_string());
    let spawned = std::thread::Builder::new().name("restart".into()).spawn(move || {
        std::thread::sleep(delay);
        relaunch(&sup2, &name2, count);
    });
    if let Err(e) = spawned {
        // The record keeps `restarting`: the next supervisor resumes it.
        crate::warn!("{name}: cannot start a thread to restart it ({e}); it stays exited");
    }
}

/// At supervisor start-up (the registry is loaded, stale cgroups and veths are swept): starts
/// again every container its policy says should run.
pub fn resume(sup: &std::sync::Arc<Supervisor>) {
    let _ = sup.restarts.supervisor.set(std::sync::Arc::downgrade(sup));
    for record in sup.registry.list() {
        if record.restarting || at_supervisor_start(&record) {
            if let Some(count) = sup.registry.mark_restarting(record.name()) {
                spawn_relaunch(sup, record.name(), count, Duration::ZERO);
            }
        }
    }
}

/// Starts the ended container `name` again, if its restart `count` is still the pending one
/// (a `stop` or `rm` meanwhile cancels it).
fn relaunch(sup: &std::sync::Arc<Supervisor>, name: &str, count: u32) {
    let Some(record) = sup.registry.prepare_restart(name, count, &sup.shutting_down) else { return };
    sup.registry.events.emit(name, "restart", &[("restartCount", count.to_string())]);
    let mut spec = record.spec.clone();
    // The address it had, if nobody took it meanwhile; else the next free one.
    let previous = record.network.as_ref().map(|a| a.ip).filter(|_| spec.ip.is_none());
    spec.ip = spec.ip.or(previous);
    let mut result = launch_again(sup, spec.clone(), &record);
    if result.is_err() && previous.is_some() {
        undo(sup, name, true);
        if sup.registry.prepare_restart(name, count, &sup.shutting_down).is_none() {
            return;
        }
        spec.ip = None;
        result = launch_again(sup, spec, &record);
    }
    if let Err(e) = result {
        crate::warn!("restarting {name}: {}", e.message);
        sup.registry.events.emit(name, "restart-failed", &[("error", e.message.clone())]);
        undo(sup, name, false);
        return;
    }
    // A `stop` that came while it was being started found nothing running: apply it now.
    if sup.registry.get(name).is_ok_and(|r| r.user_stopped) {
        if let Err(e) = super::launch::stop(sup, name, super::SHUTDOWN_GRACE) {
            crate::warn!("stopping {name} after its restart: {}", e.message);
        }
    }
}

/// One attempt at starting `record`'s container again with `spec`. Its host ports were given
/// back with the rest of what the last run held (a back-off can be a minute, and a supervisor
/// restart forgets every claim): they are claimed again first, as `start` claims them, so no
/// other container can publish them while this one runs (its DNAT rules would shadow or be
/// shadowed by this one's). A port taken meanwhile fails the restart, as in Docker.
fn launch_again(sup: &Supervisor, spec: super::spec::ContainerSpec, record: &ContainerRecord) -> Result<i32, Failure> {
    sup.ports
        .claim(&spec.name, &spec.ports)
        .map_err(|e| Failure::engine(format!("publishing the ports of {} again: {e}", spec.name)))?;
    super::launch::relaunch(sup, spec, record.image.as_ref(), &record.log_path)
}

/// A start again that failed: the init is killed, what it acquired given back, and the record
/// ends as an engine error (`retry`: pending again, for a second try).
fn undo(sup: &Supervisor, name: &str, retry: bool) {
    sup.registry.kill_init(name);
    if let Some(ended) = sup.registry.restart_failed(name, retry) {
        // Its console too: the failure may come after the pty master was received.
        super::launch::give_back(sup, ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::record::KillReason;

    #[test]
    fn policies_parse_as_docker_spells_them() {
        assert_eq!("no".parse(), Ok(RestartPolicy::No));
        assert_eq!("always".parse(), Ok(RestartPolicy::Always));
        assert_eq!("unless-stopped".parse(), Ok(RestartPolicy::UnlessStopped));
        assert_eq!("on-failure".parse(), Ok(RestartPolicy::OnFailure { maximum_retry_count: 0 }));
        assert_eq!("on-failure:3".parse(), Ok(RestartPolicy::OnFailure { maximum_retry_count: 3 }));
        for bad in ["always:3", "on-failure:-1", "on-failure:x", "sometimes"] {
            assert!(bad.parse::<RestartPolicy>().is_err(), "{bad}");
        }
        assert_eq!(RestartPolicy::OnFailure { maximum_retry_count: 2 }.to_string(), "on-failure:2");
        let json = serde_json::to_string(&RestartPolicy::OnFailure { maximum_retry_count: 2 }).unwrap();
        assert_eq!(json, r#"{"name":"on-failure","maximum_retry_count":2}"#);
    }

    #[test]
    fn backoff_doubles_from_100ms_to_a_minute_and_resets_after_10s() {
        let mut b = None;
        let mut seen = Vec::new();
        for _ in 0..12 {
            let next = next_backoff(b, Some(Duration::from_millis(5)));
            seen.push(next.as_millis());
            b = Some(next);
        }
        assert_eq!(&seen[..5], &[100, 200, 400, 800, 1600]);
        assert_eq!(*seen.last().unwrap(), 60_000);
        assert_eq!(next_backoff(b, Some(Duration::from_secs(10))), FIRST_BACKOFF);
        assert_eq!(next_backoff(b, None), MAX_BACKOFF);
    }

    fn record(policy: RestartPolicy, state: State, count: u32, user_stopped: bool) -> ContainerRecord {
        let spec = crate::supervisor::spec::ContainerSpec { restart: policy, ..Default::default() };
        let mut r: ContainerRecord = serde_json::from_value(serde_json::json!({
            "spec": spec, "state": {"status": "created"}, "pid": null, "pid_start_ticks": null,
            "created_at": "", "started_at": null, "finished_at": null, "exit_code": null, "log_path": "x"
        }))
        .unwrap();
        r.state = state;
        r.restart_count = count;
        r.user_stopped = user_stopped;
        r
    }

    #[test]
    fn decisions_follow_docker() {
        let ok = State::Exited { code: 0 };
        let bad = State::Exited { code: 1 };
        let killed = State::Killed { signal: 9, reason: KillReason::Signal };
        let on2 = RestartPolicy::OnFailure { maximum_retry_count: 2 };
        assert!(!after_exit(&record(RestartPolicy::No, bad.clone(), 0, false), false));
        assert!(after_exit(&record(RestartPolicy::Always, ok.clone(), 0, false), false));
        assert!(!after_exit(&record(RestartPolicy::Always, ok.clone(), 0, false), true), "a stop wins");
        assert!(!after_exit(&record(on2, ok.clone(), 0, false), false));
        assert!(after_exit(&record(on2, bad.clone(), 1, false), false));
        assert!(after_exit(&record(on2, killed, 0, false), false));
        assert!(!after_exit(&record(on2, bad.clone(), 2, false), false), "retries used up");
        assert!(after_exit(&record(RestartPolicy::OnFailure { maximum_retry_count: 0 }, bad, 99, false), false));
        let stopped = State::Stopped { code: None, signal: Some(15) };
        assert!(at_supervisor_start(&record(RestartPolicy::Always, stopped.clone(), 0, true)));
        assert!(!at_supervisor_start(&record(RestartPolicy::UnlessStopped, stopped.clone(), 0, true)));
        assert!(at_supervisor_start(&record(RestartPolicy::UnlessStopped, stopped.clone(), 0, false)));
        assert!(at_supervisor_start(&record(on2, State::Lost, 0, false)));
        assert!(!at_supervisor_start(&record(on2, State::Lost, 2, false)));
        assert!(!at_supervisor_start(&record(RestartPolicy::Always, State::Running, 0, false)));
    }
}

//! Starting and stopping one container: the supervisor's half of the parent/child handshake.
use std::time::Duration;

use super::logs::LogFile;
use super::resources::{self, Resources};
use super::Supervisor;
use crate::container::channel::{FromInit, ToInit};
use crate::container::init::EXIT_ENGINE_ERROR;
use crate::container::spawn::spawn_init;
use crate::container::spec::ContainerSpec;

/// How long an init may take from go-ahead to running its command before we give up on it.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `engine stop --time` honoured (a year).
const MAX_GRACE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A failed request: the sentence for the user and the exit code for the CLI.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: i32,
}

impl Failure {
    pub fn engine(message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), exit_code: EXIT_ENGINE_ERROR }
    }
}

impl From<super::registry::RegistryError> for Failure {
    fn from(e: super::registry::RegistryError) -> Failure {
        Failure::engine(e)
    }
}

/// Creates the container and returns once its command runs (its host PID), or fails leaving
/// nothing behind: no record, no log file, no process.
pub fn start(sup: &Supervisor, spec: ContainerSpec) -> Result<i32, Failure> {
    spec.validate().map_err(Failure::engine)?;
    let name = spec.name.clone();
    let log_path = sup.logs_dir().join(format!("{name}.log"));
    sup.registry.reserve(&spec, log_path.clone())?;
    let started = launch(sup, spec, &log_path);
    if started.is_err() {
        sup.registry.kill_init(&name);
        if let Some(ended) = sup.registry.abandon(&name) {
            release(sup, ended);
        }
        let _ = std::fs::remove_file(&log_path);
        let _ = std::fs::remove_dir_all(sup.etc_dir(&name));
    }
    started
}

/// Gives back what an ended container held, reporting (not stopping at) each failure.
pub fn release(sup: &Supervisor, ended: super::registry::Ended) {
    for e in super::resources::release(sup, &ended.name, ended.pid, ended.resources) {
        crate::warn!("{e}");
    }
    sup.registry.released(&ended.name);
}

fn launch(sup: &Supervisor, spec: ContainerSpec, log_path: &std::path::Path) -> Result<i32, Failure> {
    let name = spec.name.clone();
    let child = spawn_init().map_err(Failure::engine)?;
    let pid = child.pid.as_raw();
    let pidfd = super::registry::pidfd_open(pid).map_err(|e| Failure::engine(format!("pidfd_open: {e}")))?;
    let log = LogFile::new(log_path.to_path_buf());
    sup.logs
        .attach(&log, child.stdout, child.stderr)
        .map_err(|e| Failure::engine(format!("creating log {}: {e}", log_path.display())))?;
    // From here the registry holds the init's pidfd, so a failure can kill it.
    sup.registry.set_spawned(&name, pid, pidfd, log);

    // Limits, monitor and network before the workload runs.
    let mut resources = Resources::default();
    let acquired = resources::acquire(sup, &spec, pid, &mut resources);
    let files = resources::etc_files(sup, &spec, &resources);
    sup.registry.set_resources(&name, resources, acquired.as_ref().ok().cloned().flatten());
    acquired?;
    let files = files.map_err(|e| Failure::engine(format!("writing /etc files for {name}: {e}")))?;

    let channel = child.channel;
    let reply = (|| {
        channel.send(&ToInit::Go { spec: Box::new(spec), files })?;
        channel.set_timeout(Some(START_TIMEOUT))?;
        let reply = channel.recv::<FromInit>();
        channel.set_timeout(None)?;
        reply
    })();
    match reply {
        Ok(Some(FromInit::Started { .. })) => {
            if let Some(ended) = sup.registry.mark_running(&name, channel)? {
                release(sup, ended);
            }
            Ok(pid)
        }
        Ok(Some(FromInit::Failed { message, exit_code })) => {
            Err(Failure { message: format!("cannot start {name}: {message}"), exit_code })
        }
        Ok(Some(other)) => Err(Failure::engine(format!("unexpected message from container init: {other:?}"))),
        Ok(None) => Err(Failure::engine(format!("container init of {name} exited before starting the command"))),
        Err(e) => Err(Failure::engine(format!("waiting for container init of {name}: {e}"))),
    }
}

/// Blocks until the container has ended, given back what it held, and its output is all on
/// disk (after `engine wait` or `engine stop`, `engine logs` is complete); its exit code.
/// A log that cannot be written (full disk) does not hold this up for more than
/// [`STUCK_GRACE`](super::logs::STUCK_GRACE): the container has ended, its unwritten tail stays
/// queued and is written if space returns.
pub fn wait_settled(sup: &Supervisor, name: &str) -> Result<i32, Failure> {
    let record = sup
        .registry
        .wait_terminal(name, None)?
        .ok_or_else(|| Failure::engine(format!("waiting for {name} to end returned without a result")))?;
    if let (_, Some(log)) = sup.registry.log_of(name)? {
        if let Err(e) = log.wait_done() {
            crate::warn!("{name} has ended but its output is not all on disk: {e}");
        }
    }
    // Only a `lost` container has none: engine could not see how it ended.
    Ok(record.exit_code.unwrap_or(EXIT_ENGINE_ERROR))
}

/// SIGTERM (forwarded by the init to the command), then SIGKILL to the whole container after
/// `grace`. Returns once the container is reaped.
pub fn stop(sup: &Supervisor, name: &str, grace: Duration) -> Result<(), Failure> {
    // The grace comes from the client; a deadline past what Instant can hold would panic.
    let grace = grace.min(MAX_GRACE);
    let first = if grace.is_zero() { libc::SIGKILL } else { libc::SIGTERM };
    if !sup.registry.signal(name, first, |live| live.stop_requested = true)? {
        return Ok(());
    }
    if sup.registry.wait_terminal(name, Some(grace))?.is_none() {
        sup.registry.signal(name, libc::SIGKILL, |_| {})?;
    }
    wait_settled(sup, name).map(drop)
}

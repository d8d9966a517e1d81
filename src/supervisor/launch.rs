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
/// nothing behind: no record, no log file, no process. Crash-consistent: the record is on disk
/// before the init may run the command (see `registry`), and a supervisor killed earlier leaves
/// only files and cgroups the next one removes as orphans.
pub fn start(sup: &Supervisor, spec: ContainerSpec) -> Result<i32, Failure> {
    spec.validate().map_err(Failure::engine)?;
    let name = spec.name.clone();
    let log_path = sup.logs_dir().join(format!("{name}.log"));
    sup.registry.reserve(&spec, log_path.clone())?;
    // Checked after the reservation: a shutdown sets the flag before it lists the containers to
    // stop, so a start either is on that list or sees the flag here.
    if sup.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
        sup.registry.abandon(&name);
        return Err(Failure::engine("the supervisor is shutting down"));
    }
    let started = launch(sup, spec, &log_path);
    if started.is_err() {
        sup.registry.kill_init(&name);
        if let Some(ended) = sup.registry.abandon(&name) {
            release(sup, ended);
        }
        let _ = std::fs::remove_file(&log_path);
        remove_overlay(sup, &name);
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
    let files = resources::etc_files(&spec, &resources);
    let cgroup_dirs = resources.cgroup.as_ref().map(|c| c.paths()).unwrap_or_default();
    sup.registry.set_resources(&name, resources, acquired.as_ref().ok().cloned().flatten());
    acquired?;
    let overlay = make_overlay(sup, &spec)?;

    // The init builds the container's root while the two slow steps of a start run here: the
    // move into its cgroups (v1: one RCU grace period) and the record's one synced write, which
    // must come before Start (a container whose record cannot be saved does not run).
    let channel = child.channel;
    let gone = |e: std::io::Error| Failure::engine(format!("container init of {name}: {e}"));
    channel.send(&ToInit::Prepare { spec: Box::new(spec), files, overlay }).map_err(gone)?;
    let ready = crate::cgroup::add_pid_to(&cgroup_dirs, pid)
        .map_err(Failure::engine)
        .and_then(|()| Ok(sup.registry.persist_created(&name)?))
        .and_then(|()| channel.send(&ToInit::Start).map_err(gone));
    if let Err(failure) = ready {
        // An init that failed while preparing says why; that is the cause to report.
        return Err(match channel.try_recv::<FromInit>() {
            Ok(Some(FromInit::Failed { message, exit_code })) => {
                Failure { message: format!("cannot start {name}: {message}"), exit_code }
            }
            _ => failure,
        });
    }
    let reply = (|| {
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

/// The container's own `upper`, `work` and `merged` directories under `<root>/overlay/<name>`
/// (0700: host users must not reach what the container writes, such as setuid copies).
fn make_overlay(sup: &Supervisor, spec: &ContainerSpec) -> Result<std::path::PathBuf, Failure> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let fail = |what: &str, e: std::io::Error| Failure::engine(format!("{what} for {}: {e}", spec.name));
    let rootfs = spec.rootfs.canonicalize().map_err(|e| fail("resolving the rootfs", e))?;
    // overlayfs refuses layers inside one another; say so before the init fails obscurely.
    if rootfs.starts_with(&sup.root) || sup.root.starts_with(&rootfs) {
        return Err(Failure::engine(format!(
            "rootfs {} overlaps the supervisor's root {}: it cannot be an overlay lower layer",
            rootfs.display(),
            sup.root.display()
        )));
    }
    let lower = std::fs::metadata(&rootfs).map_err(|e| fail("reading the rootfs", e))?;
    let mkdir = |path: &std::path::Path, mode: u32| {
        std::fs::DirBuilder::new().mode(mode).create(path)?;
        // Exactly `mode`, whatever the umask.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    };
    let dir = sup.overlay_dir(&spec.name);
    // The name is free in the registry, so anything here is a leftover of a crash.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| fail("removing a stale overlay directory", e))?;
    }
    mkdir(&dir, 0o700).map_err(|e| fail("creating the overlay directory", e))?;
    // The merged root takes the upper directory's owner and mode: those of the rootfs's root.
    let upper = dir.join("upper");
    mkdir(&upper, lower.mode() & 0o7777).map_err(|e| fail("creating the upper directory", e))?;
    std::os::unix::fs::chown(&upper, Some(lower.uid()), Some(lower.gid()))
        .map_err(|e| fail("creating the upper directory", e))?;
    mkdir(&dir.join("work"), 0o700).map_err(|e| fail("creating the overlay work directory", e))?;
    mkdir(&dir.join("merged"), 0o755).map_err(|e| fail("creating the overlay mount point", e))?;
    Ok(dir)
}

/// Removes a container's copy-on-write layer, reporting (not failing on) what stays.
pub fn remove_overlay(sup: &Supervisor, name: &str) {
    match std::fs::remove_dir_all(sup.overlay_dir(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            crate::warn!("removing the overlay directory of {name}: {e}")
        }
        _ => {}
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
    let first = if grace.is_zero() { libc::SIGKILL } else { libc::SIGTERM };
    if !sup.registry.signal(name, first, |live| live.stop_requested = true)? {
        return Ok(());
    }
    if sup.registry.wait_terminal(name, Some(grace))?.is_none() {
        sup.registry.signal(name, libc::SIGKILL, |_| {})?;
    }
    wait_settled(sup, name).map(drop)
}

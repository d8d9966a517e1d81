//! Every container the supervisor knows, and the only place their state changes.
//!
//! Transitions: `reserve` (created, in memory only) → `persist_created` (created with the init's
//! pid, renamed into place before the init gets its go-ahead, fsync'd by the record syncer soon
//! after: see `store`) → `mark_running` → `on_exit` (exited | stopped | killed); `abandon` drops a container whose start failed, record file included, so a failed start
//! leaves nothing behind. Because the record is on disk before the workload can run, a supervisor
//! killed at any point leaves either no workload (an init that never got Go exits by itself when
//! its channel closes) or a record a restart finds it by.
//!
//! The state in memory is the truth; the file follows it. A save that fails (a full disk) marks
//! the record dirty: it is retried by `flush_dirty` (on every later save and on the supervisor's
//! tick) and `inspect` shows `record_saved: false` until it lands.
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::wait::WaitStatus;
use parking_lot::{Condvar, Mutex};

use super::logs::LogFile;
use super::record::{ContainerRecord, KillReason, State, Termination};
use super::resources::Resources;
use super::spec::ContainerSpec;
use super::store::{Durability, Store};
use crate::container::channel::{FromInit, InitChannel};
use crate::container::pidfd::{pidfd_send_signal, process_start_ticks};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container name {0:?} is already in use")]
    Exists(String),
    #[error("container {0} is running: stop it first or use rm -f")]
    Running(String),
    #[error("container name {0:?} is still held by a removed container being given back; try again")]
    StillReleasing(String),
    #[error("saving the record of {name}: {source}")]
    Store { name: String, source: std::io::Error },
}

/// What exists only while the container's processes do.
pub struct Live {
    /// A pidfd of the container's init: signals go to this process even if its PID is reused.
    pub pidfd: OwnedFd,
    /// Handed over by `mark_running`; the init's last message (how the command ended) is read
    /// from it when the init is reaped.
    channel: Option<InitChannel>,
    pub stop_requested: bool,
    pub kill_reason: Option<KillReason>,
    /// The init was reaped before the start finished; applied by `mark_running`.
    early_exit: Option<WaitStatus>,
    /// Cgroup, monitor entry, network: given back by the reaper when the container ends.
    pub resources: Resources,
}

/// A container that just ended, with what it held, for the caller to release outside the lock.
pub struct Ended {
    pub name: String,
    pub pid: Option<i32>,
    pub resources: Resources,
}

struct Entry {
    record: ContainerRecord,
    live: Option<Live>,
    /// Its output while the supervisor runs: followers wait on it until the output ends.
    log: Option<Arc<LogFile>>,
    /// Ended, but its cgroup, monitor entry or veth are still being given back: waiters wait, so
    /// a `stop` or `rm` returns only once the container holds nothing.
    releasing: bool,
    /// The record on disk is behind `record`: its last save failed (or is about to be tried).
    dirty: bool,
    /// A save of it failed and that was warned about; a success is then reported too.
    save_failing: bool,
    /// `run --rm`: removed when it ends, so its record is never fsync'd (see `set_throwaway`).
    throwaway: bool,
}

impl Entry {
    /// How its `created` and exit saves are made durable.
    fn durability(&self) -> Durability {
        if self.throwaway {
            Durability::Renamed
        } else {
            Durability::Soon
        }
    }
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Entry>,
    by_pid: HashMap<i32, String>,
    /// Removed by `remove_ended` while what they held (cgroups named after them, a lease, ports,
    /// the mount namespace over their layer) was still being given back: their names are taken
    /// again only once `released`, which hands back the work left until then (`after_release`).
    removed_releasing: HashMap<String, Vec<AfterRelease>>,
    /// Ended by its init's report (`finish_reported`) before the init was reaped: what it holds,
    /// given back once the reaper sees the pid go (`on_exit`).
    awaiting_reap: HashMap<i32, Ended>,
}

/// What `finish_reported` found.
pub enum Reported {
    /// Ended (now, by its init's report, or earlier by its reap).
    Ended(Box<ContainerRecord>),
    /// No report yet: the init's channel, to wait on for one.
    Pending(OwnedFd),
    /// The init can report nothing more (its channel is gone): its reap decides.
    Closed,
}

/// Work that must wait until a removed container's release is over (its layer's deletion: the
/// overlay is unmounted with the mount namespace the release lets go of).
pub type AfterRelease = Box<dyn FnOnce() + Send>;

/// How long a start of a name waits for the release of the removed container that had it.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// What [`Registry::inspect`] says to read of a running container outside the lock.
#[derive(Clone, Copy, Debug)]
pub struct LiveProbe {
    pub pid: i32,
    /// It has a cgroup of its own (`<cgroup parent>/<name>`).
    pub cgroup: bool,
    /// The kernel monitor watches it.
    pub monitored: bool,
}

pub struct Registry {
    inner: Mutex<Inner>,
    changed: Condvar,
    store: Store,
    /// Every transition below, as `engine events` streams it.
    pub events: super::events::EventLog,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Registry {
    /// Loads the records of earlier supervisors. A container that was running when its supervisor
    /// died cannot be re-adopted (its pipes died with that supervisor): if it is still alive it
    /// is killed, and it is recorded as lost.
    ///
    /// A `created` record is treated the same way: the record is written before the go-ahead, so
    /// its command may have run; it is kept as `lost` rather than dropped, so no container that may
    /// have run disappears without a trace. (The init's cgroup is killed by the caller's stale
    /// cgroup sweep, which also catches what the init forked.)
    pub fn load(store: Store) -> std::io::Result<Registry> {
        let mut inner = Inner::default();
        for mut record in store.load_all()? {
            let mut dirty = false;
            if !record.state.is_terminal() {
                if let (Some(pid), Some(ticks)) = (record.pid, record.pid_start_ticks) {
                    if process_start_ticks(pid) == Some(ticks) {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                        crate::warn!("killed {} (pid {pid}): its supervisor died while it ran", record.name());
                    }
                }
                record.state = State::Lost;
                record.finished_at = Some(now());
                record.pid = None;
                record.cgroup.clear();
                if let Err(e) = store.save(&record, Durability::Synced) {
                    crate::warn!("saving the record of {} (lost): {e}; retrying", record.name());
                    dirty = true;
                }
            }
            inner.containers.insert(
                record.name().to_string(),
                Entry { record, live: None, log: None, releasing: false, dirty, save_failing: dirty, throwaway: false },
            );
        }
        Ok(Registry { inner: Mutex::new(inner), changed: Condvar::new(), store, events: Default::default() })
    }

    /// Whether a container of this name is known (its files are not orphans).
    pub fn contains(&self, name: &str) -> bool {
        self.inner.lock().containers.contains_key(name)
    }

    /// Where the records live.
    pub fn records_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    pub fn reserve(&self, spec: &ContainerSpec, log_path: std::path::PathBuf) -> Result<(), RegistryError> {
        let mut inner = self.inner.lock();
        let deadline = Instant::now() + RELEASE_WAIT;
        while inner.removed_releasing.contains_key(&spec.name) && !inner.containers.contains_key(&spec.name) {
            if self.changed.wait_until(&mut inner, deadline).timed_out() {
                return Err(RegistryError::StillReleasing(spec.name.clone()));
            }
        }
        if inner.containers.contains_key(&spec.name) {
            return Err(RegistryError::Exists(spec.name.clone()));
        }
        let record = ContainerRecord::new(spec.clone(), log_path, now());
        inner.containers.insert(
            spec.name.clone(),
            Entry {
                record,
                live: None,
                log: None,
                releasing: false,
                dirty: false,
                save_failing: false,
                throwaway: false,
            },
        );
        self.events.emit(&spec.name, "create", &[]);
        Ok(())
    }

    /// The image a reserved container is made of: in the record before it reaches the disk.
    pub fn set_image(&self, name: &str, image: super::record::ImageUse) {
        if let Some(e) = self.inner.lock().containers.get_mut(name) {
            e.record.image = Some(image);
        }
    }

    /// The container's init exists (still waiting for its go-ahead).
    pub fn set_spawned(&self, name: &str, pid: i32, pidfd: OwnedFd, log: Arc<LogFile>) {
        let mut inner = self.inner.lock();
        inner.by_pid.insert(pid, name.to_string());
        if let Some(e) = inner.containers.get_mut(name) {
            e.record.pid = Some(pid);
            e.record.pid_start_ticks = process_start_ticks(pid);
            e.log = Some(log);
            e.live = Some(Live {
                pidfd,
                channel: None,
                stop_requested: false,
                kill_reason: None,
                early_exit: None,
                resources: Resources::default(),
            });
        }
    }

    /// Hands the container's acquired resources to the registry (released when it ends).
    pub fn set_resources(&self, name: &str, resources: Resources, memory_enforcement: Option<String>) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner.containers.get_mut(name) {
            e.record.memory_enforcement = memory_enforcement;
            e.record.network = resources.network.clone();
            e.record.cgroup = resources.cgroup.as_ref().map(|c| c.paths()).unwrap_or_default();
            if let Some(live) = e.live.as_mut() {
                live.resources = resources;
            }
        }
    }

    /// A kernel monitor event for the container whose init is `pid`.
    pub fn monitor_event(&self, pid: i32, event: &crate::monitor::Event) {
        let name = self.inner.lock().by_pid.get(&pid).cloned();
        if let Some(name) = name {
            self.limit_event(&name, event.kind, event.rss_bytes, event.limit_bytes);
        }
    }

    /// A soft crossing, a soft-limit signal sent or a hard kill, from the kernel monitor or the
    /// cgroup fallback (`softlimit`): an event with time and RSS in the record.
    pub fn limit_event(&self, name: &str, kind: crate::monitor::EventKind, rss_bytes: u64, limit_bytes: u64) {
        use crate::monitor::EventKind;
        let mut inner = self.inner.lock();
        let Some(e) = inner.containers.get_mut(name) else { return };
        let mut attributes =
            vec![("rssKiB", (rss_bytes >> 10).to_string()), ("limitKiB", (limit_bytes >> 10).to_string())];
        let (what, action) = match kind {
            EventKind::SoftLimit => ("soft limit exceeded".to_string(), "soft-limit"),
            EventKind::SoftSignal => {
                e.record.soft_signals_sent += 1;
                let sig = e.record.spec.soft_signal.map_or_else(|| "signal".into(), super::record::signal_name);
                attributes.push(("signal", sig.clone()));
                (format!("soft-limit signal {sig} sent"), "soft-signal")
            }
            EventKind::HardKill => ("hard limit exceeded, killed".to_string(), "hard-limit-kill"),
            EventKind::Gone => return,
        };
        self.events.emit(name, action, &attributes);
        e.record.events.push(format!("{} {what}: rss {} KiB, limit {} KiB", now(), rss_bytes >> 10, limit_bytes >> 10));
        e.record.peak_rss_bytes = e.record.peak_rss_bytes.max(Some(rss_bytes));
        if kind == EventKind::HardKill {
            if let Some(live) = e.live.as_mut() {
                live.kill_reason = Some(KillReason::HardLimit);
            }
        }
    }

    /// The record as it is now and, for a running container, what to read of it live: the
    /// caller reads that after the lock is dropped (see `stats::inspect`), so a slow cgroup file
    /// or monitor query never holds up every other request.
    pub fn inspect(&self, name: &str) -> Result<(ContainerRecord, Option<LiveProbe>), RegistryError> {
        let inner = self.inner.lock();
        let e = inner.containers.get(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        let mut record = e.record.clone();
        if e.dirty {
            record.record_saved = Some(false);
        }
        let probe = match (&e.live, record.pid) {
            (Some(live), Some(pid)) => {
                Some(LiveProbe { pid, cgroup: live.resources.cgroup.is_some(), monitored: live.resources.monitored })
            }
            _ => None,
        };
        Ok((record, probe))
    }

    /// The init exists, holds its resources and waits for its go-ahead: the record (with the
    /// init's pid and start time) is renamed into place before the workload may run (a killed
    /// supervisor's successor finds it) and fsync'd soon after with others (a power loss ends
    /// the workload too). A failure fails the start: no container runs that a restart could not
    /// find.
    pub fn persist_created(&self, name: &str) -> Result<(), RegistryError> {
        // Saved outside the lock: the write must not hold up every other request. Nothing else
        // saves this record before `mark_running`, which runs after this returns.
        let (record, durability) = {
            let inner = self.inner.lock();
            let e = inner.containers.get(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
            (e.record.clone(), e.durability())
        };
        self.store.save(&record, durability).map_err(|source| RegistryError::Store { name: name.into(), source })
    }

    /// `run --rm`: the container is removed when it ends, so its record is renamed into place
    /// (a supervisor killed meanwhile finds it: the page cache outlives the process) but never
    /// fsync'd. What an fsync adds is surviving a power loss, after which a `--rm` container has
    /// ended and would be removed anyway: with no record its layer is an orphan the next
    /// supervisor removes. And an fsync on ext4 commits the journal, which stalls the unlinks
    /// and rmdirs of the removal (measured: the removal took 20 ms instead of 1 under load).
    pub fn set_throwaway(&self, name: &str) {
        if let Some(e) = self.inner.lock().containers.get_mut(name) {
            e.throwaway = true;
        }
    }

    /// The command runs: persist, and apply an exit that raced ahead of us. The save need not be
    /// synced: after a crash the synced `created` record leads a restart to the same outcome.
    pub fn mark_running(&self, name: &str, channel: InitChannel) -> Result<Option<Ended>, RegistryError> {
        let mut inner = self.inner.lock();
        let entry = inner.containers.get_mut(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        entry.record.state = State::Running;
        entry.record.started_at = Some(now());
        self.events.emit(name, "start", &[]);
        let early = entry.live.as_mut().and_then(|l| {
            l.channel = Some(channel);
            l.early_exit.take()
        });
        match early {
            Some(status) => Ok(self.finish(&mut inner, name, status, None)),
            None => {
                self.persist(&mut inner, name, Durability::Renamed);
                Ok(None)
            }
        }
    }

    /// Everything the ended container held is given back: it is settled now.
    /// Returns the work `after_release` left for this moment.
    #[must_use]
    pub fn released(&self, name: &str) -> Vec<AfterRelease> {
        let mut inner = self.inner.lock();
        let after = match inner.removed_releasing.remove(name) {
            Some(after) => after,
            None => {
                if let Some(e) = inner.containers.get_mut(name) {
                    e.releasing = false;
                }
                Vec::new()
            }
        };
        self.changed.notify_all();
        after
    }

    /// Runs `job` now, or (returned to the caller's `released`) once the release of the removed
    /// container `name` is over. Some(job): nothing is being released under that name, run it.
    pub fn after_release(&self, name: &str, job: AfterRelease) -> Option<AfterRelease> {
        match self.inner.lock().removed_releasing.get_mut(name) {
            Some(after) => {
                after.push(job);
                None
            }
            None => Some(job),
        }
    }

    /// A start failed: forget the container entirely, its record file too; what it held is the
    /// caller's to release.
    pub fn abandon(&self, name: &str) -> Option<Ended> {
        let mut inner = self.inner.lock();
        let e = inner.containers.remove(name)?;
        // Unlinking needs no free space; if it fails anyway, a restart finds a `lost` record.
        if let Err(e) = self.store.remove(name) {
            crate::warn!("removing the record of {name} after its failed start: {e}");
        }
        if let Some(pid) = e.record.pid {
            inner.by_pid.remove(&pid);
        }
        self.events.emit(name, "destroy", &[]);
        self.changed.notify_all();
        Some(Ended { name: name.into(), pid: e.record.pid, resources: e.live.map(|l| l.resources).unwrap_or_default() })
    }

    /// The reaper saw `pid` end; what the container held, if it ended now.
    pub fn on_exit(&self, pid: i32, status: WaitStatus) -> Option<Ended> {
        let mut inner = self.inner.lock();
        if let Some(ended) = inner.awaiting_reap.remove(&pid) {
            inner.by_pid.remove(&pid);
            return Some(ended);
        }
        let name = inner.by_pid.get(&pid).cloned()?;
        let entry = inner.containers.get_mut(&name)?;
        if entry.record.state == State::Created {
            if let Some(live) = entry.live.as_mut() {
                live.early_exit = Some(status);
            }
            inner.by_pid.remove(&pid);
            self.changed.notify_all();
            return None;
        }
        self.finish(&mut inner, &name, status, None)
    }

    /// `run --rm`'s end: once its init has reported how the command ended (and its output has
    /// ended), the container is ended without waiting for the init's own exit and reap (its
    /// namespaces' teardown, SIGCHLD, the reaper's wakeup: ~0.9 ms of the answer's path). What it
    /// holds is given back when the reaper sees the init go.
    pub fn finish_reported(&self, name: &str) -> Result<Reported, RegistryError> {
        let mut inner = self.inner.lock();
        let entry = inner.containers.get_mut(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        if entry.record.state.is_terminal() {
            return Ok(Reported::Ended(Box::new(entry.record.clone())));
        }
        // Without a pid the reaper could never hand over what it holds: its reap decides.
        let (Some(pid), Some(channel)) = (entry.record.pid, entry.live.as_ref().and_then(|l| l.channel.as_ref()))
        else {
            return Ok(Reported::Closed);
        };
        let how = loop {
            match channel.try_recv::<FromInit>() {
                Ok(Some(FromInit::Exited(how))) => break how,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Ok(match channel.as_fd().try_clone_to_owned() {
                        Ok(fd) => Reported::Pending(fd),
                        Err(_) => Reported::Closed,
                    })
                }
                Err(_) => return Ok(Reported::Closed),
            }
        };
        if let Some(ended) = self.finish(&mut inner, name, WaitStatus::StillAlive, Some(how)) {
            inner.by_pid.insert(pid, name.to_string());
            inner.awaiting_reap.insert(pid, ended);
        }
        let record = inner.containers.get(name).map(|e| Box::new(e.record.clone()));
        record.map(Reported::Ended).ok_or_else(|| RegistryError::NotFound(name.into()))
    }

    /// `None` only for a name the registry no longer holds (nothing is left to give back then).
    /// `reported`: how the command ended, from the init's report read by `finish_reported`.
    fn finish(
        &self,
        inner: &mut Inner,
        name: &str,
        status: WaitStatus,
        reported: Option<Termination>,
    ) -> Option<Ended> {
        let entry = inner.containers.get_mut(name)?;
        let pid = entry.record.pid.take();
        let live = entry.live.take();
        // The init reports how the command ended; if it was killed itself, waitpid tells.
        let mut how = match status {
            WaitStatus::Signaled(_, s, _) => Termination::Signal(s as i32),
            WaitStatus::Exited(_, c) => Termination::Code(c),
            _ => Termination::Code(crate::container::exit::ENGINE_ERROR),
        };
        let (stop_requested, kill_reason) = match &live {
            Some(l) => {
                while let Some(Ok(Some(msg))) = l.channel.as_ref().map(|c| c.try_recv::<FromInit>()) {
                    if let FromInit::Exited(t) = msg {
                        how = t;
                    }
                }
                if let Some(t) = reported {
                    how = t;
                }
                let cgroup_kill = l.resources.kill_reason();
                // A `run --rm` record is deleted as soon as this returns: its usage figures would
                // be read (five cgroup files, ~0.2 ms under the registry's lock, on the path of the
                // run's answer) for nobody, unless a kill's event needs the peak.
                let stats_wanted = !entry.throwaway || cgroup_kill.is_some();
                if let Some(cg) = l.resources.cgroup.as_ref().filter(|_| stats_wanted) {
                    entry.record.stats = cg.stats().ok();
                    let peak = entry.record.stats.as_ref().and_then(|s| s.memory_peak);
                    entry.record.peak_rss_bytes = entry.record.peak_rss_bytes.max(peak);
                }
                if l.kill_reason.is_none() && cgroup_kill == Some(KillReason::HardLimit) {
                    // The cgroup fallback's kill has no event of its own: the record gets one here.
                    let peak = entry.record.peak_rss_bytes.unwrap_or(0);
                    let limit = entry.record.spec.hard_bytes().unwrap_or(0);
                    entry.record.events.push(format!(
                        "{} hard limit exceeded, killed by the cgroup: rss {} KiB (peak), limit {} KiB",
                        now(),
                        peak >> 10,
                        limit >> 10
                    ));
                    let attributes = [("rssKiB", (peak >> 10).to_string()), ("limitKiB", (limit >> 10).to_string())];
                    self.events.emit(name, "hard-limit-kill", &attributes);
                }
                (l.stop_requested, l.kill_reason.or(cgroup_kill))
            }
            None => (false, None),
        };
        entry.record.state = State::after_exit(how, stop_requested, kill_reason);
        entry.record.exit_code = entry.record.state.exit_code();
        entry.record.finished_at = Some(now());
        if kill_reason == Some(KillReason::Oom) {
            self.events.emit(name, "oom", &[]);
        }
        let code = entry.record.exit_code.map_or_else(|| "none".into(), |c| c.to_string());
        self.events.emit(name, "die", &[("exitCode", code)]);
        // Decided here, with the state, so `ps` shows "restarting" from the moment it ended.
        if super::restart::after_exit(&entry.record, stop_requested) {
            entry.record.restart_count += 1;
            entry.record.restarting = true;
        }
        entry.record.cgroup.clear();
        let resources = live.map(|l| l.resources).unwrap_or_default();
        entry.releasing = true;
        if let Some(pid) = pid {
            inner.by_pid.remove(&pid);
        }
        // A record that cannot be saved must not keep the container's resources from being freed:
        // it stays dirty and is retried. Its fsync is the record syncer's, off the path of a
        // `wait` or `run` (which waits for this).
        let durability = entry.durability();
        self.persist(inner, name, durability);
        self.changed.notify_all();
        Some(Ended { name: name.into(), pid, resources })
    }

    /// Saves the record of `name`, and every other record still behind; a failure leaves it
    /// dirty (warned once) for the next attempt.
    fn persist(&self, inner: &mut Inner, name: &str, durability: Durability) {
        if let Some(e) = inner.containers.get_mut(name) {
            e.dirty = true;
        }
        self.flush_locked(inner, name, durability);
    }

    /// Saves every dirty record (`name` with `durability`, the others synced); how many failed.
    fn flush_locked(&self, inner: &mut Inner, name: &str, durability: Durability) -> usize {
        let mut behind = 0;
        for (n, e) in inner.containers.iter_mut().filter(|(_, e)| e.dirty) {
            let durability = if n == name { durability } else { Durability::Synced };
            match self.store.save(&e.record, durability) {
                Ok(()) => {
                    if e.save_failing {
                        crate::warn!("the record of {n} is saved again");
                    }
                    e.dirty = false;
                    e.save_failing = false;
                }
                Err(err) => {
                    if !e.save_failing {
                        crate::warn!("saving the record of {n}: {err}; the supervisor keeps retrying");
                    }
                    e.save_failing = true;
                    behind += 1;
                }
            }
        }
        behind
    }

    /// Blocks until a record's fsync is owed (or `timeout` passes); whether one is.
    pub fn wait_sync_owed(&self, timeout: Duration) -> bool {
        self.store.wait_owed(timeout)
    }

    /// fsyncs the records renamed into place without one (see `store`).
    pub fn sync_owed(&self) -> std::io::Result<()> {
        self.store.sync_owed()
    }

    /// Retries every record whose save failed; how many are still behind.
    pub fn flush_dirty(&self) -> usize {
        let mut inner = self.inner.lock();
        if inner.containers.values().all(|e| !e.dirty) {
            return 0;
        }
        self.flush_locked(&mut inner, "", Durability::Synced)
    }

    pub fn get(&self, name: &str) -> Result<ContainerRecord, RegistryError> {
        let inner = self.inner.lock();
        inner.containers.get(name).map(|e| e.record.clone()).ok_or_else(|| RegistryError::NotFound(name.into()))
    }

    pub fn list(&self) -> Vec<ContainerRecord> {
        self.inner.lock().containers.values().map(|e| e.record.clone()).collect()
    }

    /// The log of a container, and its live progress while output may still arrive.
    pub fn log_of(&self, name: &str) -> Result<(std::path::PathBuf, Option<Arc<LogFile>>), RegistryError> {
        let inner = self.inner.lock();
        let e = inner.containers.get(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        Ok((e.record.log_path.clone(), e.log.clone()))
    }

    /// Sends `signal` to the container's init; `Ok(false)` if it is not running.
    pub fn signal(&self, name: &str, signal: i32, mark: impl FnOnce(&mut Live)) -> Result<bool, RegistryError> {
        let mut inner = self.inner.lock();
        let e = inner.containers.get_mut(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        match (&e.record.state, e.live.as_mut()) {
            (State::Running, Some(live)) => {
                mark(live);
                // ESRCH: it has ended and is about to be reaped; the reaper records that.
                let _ = pidfd_send_signal(&live.pidfd, signal);
                if signal != 0 {
                    self.events.emit(name, "kill", &[("signal", super::record::signal_name(signal))]);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// SIGKILL to the init of a container in any live state (used to undo a failed start).
    pub fn kill_init(&self, name: &str) {
        if let Some(live) = self.inner.lock().containers.get(name).and_then(|e| e.live.as_ref()) {
            let _ = pidfd_send_signal(&live.pidfd, libc::SIGKILL);
        }
    }

    /// Blocks until the container is in a final state, or until `timeout`; `None` on timeout.
    pub fn wait_terminal(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<ContainerRecord>, RegistryError> {
        self.wait_end(name, timeout, true)
    }

    /// Ended, its resources given back or not yet (`run --rm`, which then `remove_ended`s it).
    pub fn wait_ended(&self, name: &str) -> Result<Option<ContainerRecord>, RegistryError> {
        self.wait_end(name, None, false)
    }

    fn wait_end(
        &self,
        name: &str,
        timeout: Option<Duration>,
        released: bool,
    ) -> Result<Option<ContainerRecord>, RegistryError> {
        // A timeout too large for the clock (`stop -t 18446744073709551615`) is no deadline at all.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut inner = self.inner.lock();
        loop {
            let e = inner.containers.get(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
            if e.record.state.is_terminal() && !(released && e.releasing) {
                return Ok(Some(e.record.clone()));
            }
            match deadline {
                Some(d) => {
                    if self.changed.wait_until(&mut inner, d).timed_out() {
                        return Ok(None);
                    }
                }
                None => self.changed.wait(&mut inner),
            }
        }
    }

    /// Deletes a finished container's record; its log file is the caller's to delete.
    pub fn remove(&self, name: &str) -> Result<ContainerRecord, RegistryError> {
        self.remove_when(name, false)
    }

    /// `run --rm`: deleted once ended, without waiting for what it held to be given back (a
    /// cgroup's rmdir, a veth, the release's thread hop: 0.3-0.5 ms of the answer's path). Its
    /// name stays taken until then (see `reserve`).
    pub fn remove_ended(&self, name: &str) -> Result<ContainerRecord, RegistryError> {
        self.remove_when(name, true)
    }

    fn remove_when(&self, name: &str, releasing_too: bool) -> Result<ContainerRecord, RegistryError> {
        let mut inner = self.inner.lock();
        let e = inner.containers.get(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        if !e.record.state.is_terminal() || (e.releasing && !releasing_too) {
            return Err(RegistryError::Running(name.into()));
        }
        let releasing = e.releasing;
        self.store.remove(name).map_err(|source| RegistryError::Store { name: name.into(), source })?;
        if releasing {
            inner.removed_releasing.insert(name.to_string(), Vec::new());
        }
        self.events.emit(name, "destroy", &[]);
        inner.containers.remove(name).map(|e| e.record).ok_or_else(|| RegistryError::NotFound(name.into()))
    }

    /// `stop`, `kill` or `rm -f` by the user: no restart now (a pending one is cancelled), and
    /// none after a supervisor restart under `unless-stopped`. Whether a restart was pending.
    pub fn mark_user_stopped(&self, name: &str) -> Result<bool, RegistryError> {
        let mut inner = self.inner.lock();
        let e = inner.containers.get_mut(name).ok_or_else(|| RegistryError::NotFound(name.into()))?;
        let pending = std::mem::take(&mut e.record.restarting);
        e.record.user_stopped = true;
        self.persist(&mut inner, name, Durability::Renamed);
        self.changed.notify_all();
        Ok(pending)
    }

    /// At supervisor start: the ended container `name` is to be started again (counted as a
    /// restart unless one was already pending); the restart count to start it under.
    pub fn mark_restarting(&self, name: &str) -> Option<u32> {
        let mut inner = self.inner.lock();
        let e = inner.containers.get_mut(name)?;
        if !e.record.state.is_terminal() {
            return None;
        }
        if !e.record.restarting {
            e.record.restarting = true;
            e.record.restart_count += 1;
        }
        let count = e.record.restart_count;
        self.persist(&mut inner, name, Durability::Renamed);
        Some(count)
    }

    /// The pending restart `count` of `name` begins: the ended, settled container becomes
    /// `created` again (its record kept, its user stop forgotten). None if the restart was
    /// cancelled or superseded, or the supervisor is shutting down (checked under the lock a
    /// shutdown lists containers under, so either it sees this one or this sees the flag).
    pub fn prepare_restart(
        &self,
        name: &str,
        count: u32,
        shutting_down: &std::sync::atomic::AtomicBool,
    ) -> Option<ContainerRecord> {
        let mut inner = self.inner.lock();
        if shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let e = inner.containers.get_mut(name)?;
        if !e.record.restarting || e.record.restart_count != count || !e.record.state.is_terminal() || e.releasing {
            return None;
        }
        e.record.restarting = false;
        e.record.user_stopped = false;
        e.record.state = State::Created;
        e.record.pid = None;
        e.record.stats = None;
        // `ps` shows no exit code while it runs again (the back-off already used the times).
        e.record.exit_code = None;
        e.record.finished_at = None;
        Some(e.record.clone())
    }

    /// A start again failed before the command ran: what it acquired, for the caller to give
    /// back. It ends as an engine error, or (`retry`) pending again under the same count.
    pub fn restart_failed(&self, name: &str, retry: bool) -> Option<Ended> {
        let mut inner = self.inner.lock();
        let e = inner.containers.get_mut(name)?;
        if e.record.state != State::Created {
            return None;
        }
        let pid = e.record.pid.take();
        let live = e.live.take();
        e.record.state = State::Exited { code: crate::container::exit::ENGINE_ERROR };
        e.record.exit_code = Some(crate::container::exit::ENGINE_ERROR);
        e.record.finished_at = Some(now());
        e.record.cgroup.clear();
        e.record.restarting = retry;
        e.releasing = true;
        if let Some(pid) = pid {
            inner.by_pid.remove(&pid);
        }
        self.persist(&mut inner, name, Durability::Synced);
        self.changed.notify_all();
        Some(Ended { name: name.into(), pid, resources: live.map(|l| l.resources).unwrap_or_default() })
    }

    /// Whether a container removed from the registry (`run --rm`, `rm -f`) is still giving back
    /// what it held (its cgroup, its veth).
    pub fn removed_releasing(&self) -> bool {
        !self.inner.lock().removed_releasing.is_empty()
    }

    /// Names of containers not settled yet: being started, running, or ended with their cgroup,
    /// monitor entry or veth still being given back (a shutdown must wait for those too).
    pub fn unsettled(&self) -> Vec<String> {
        let inner = self.inner.lock();
        inner
            .containers
            .values()
            .filter(|e| !e.record.state.is_terminal() || e.releasing)
            .map(|e| e.record.name().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::channel::FromInit;
    use crate::container::exit::Termination;
    use nix::unistd::Pid;

    struct Fixture {
        dir: tempfile::TempDir,
        registry: Registry,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::load(Store::open(dir.path()).unwrap()).unwrap();
        Fixture { dir, registry }
    }

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec { name: name.into(), rootfs: "/".into(), command: vec!["/bin/true".into()], ..Default::default() }
    }

    /// Reserved and spawned under a fake pid (the test's own pidfd stands for the init's).
    fn spawned(f: &Fixture, name: &str, pid: i32) {
        f.registry.reserve(&spec(name), f.dir.path().join(format!("{name}.log"))).unwrap();
        let pidfd = crate::container::pidfd::pidfd_open(std::process::id() as i32).unwrap();
        f.registry.set_spawned(name, pid, pidfd, LogFile::new(f.dir.path().join(format!("{name}.log"))));
    }

    fn on_disk(f: &Fixture, name: &str) -> Option<ContainerRecord> {
        let text = std::fs::read_to_string(f.registry.records_dir().join(format!("{name}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    #[test]
    fn a_start_goes_created_persisted_running_exited() {
        let f = fixture();
        spawned(&f, "a", 4_000_001);
        assert_eq!(f.registry.get("a").unwrap().state, State::Created);
        assert!(on_disk(&f, "a").is_none(), "a reservation is in memory only");
        assert!(matches!(f.registry.reserve(&spec("a"), "x".into()), Err(RegistryError::Exists(_))));
        f.registry.persist_created("a").unwrap();
        let saved = on_disk(&f, "a").unwrap();
        assert_eq!((saved.state, saved.pid), (State::Created, Some(4_000_001)));
        let (parent, init) = InitChannel::pair().unwrap();
        assert!(f.registry.mark_running("a", parent).unwrap().is_none());
        assert_eq!(f.registry.get("a").unwrap().state, State::Running);
        assert!(f.registry.get("a").unwrap().started_at.is_some());
        assert!(matches!(f.registry.remove("a"), Err(RegistryError::Running(_))));
        // The init's report of the command wins over its own exit status.
        init.send(&FromInit::Exited(Termination::Code(7))).unwrap();
        let ended = f.registry.on_exit(4_000_001, WaitStatus::Exited(Pid::from_raw(4_000_001), 0)).unwrap();
        assert_eq!((ended.name.as_str(), ended.pid), ("a", Some(4_000_001)));
        let record = f.registry.get("a").unwrap();
        assert_eq!((record.state.clone(), record.exit_code, record.pid), (State::Exited { code: 7 }, Some(7), None));
        assert_eq!(on_disk(&f, "a").unwrap().state, State::Exited { code: 7 });
        // Settled only once released; then it can be removed.
        assert!(f.registry.wait_terminal("a", Some(Duration::from_millis(10))).unwrap().is_none());
        assert!(f.registry.released("a").is_empty());
        assert!(f.registry.wait_terminal("a", Some(Duration::from_millis(10))).unwrap().is_some());
        f.registry.remove("a").unwrap();
        assert!(on_disk(&f, "a").is_none() && !f.registry.contains("a"));
        // The pid is forgotten: a later exit of it is nobody's.
        assert!(f.registry.on_exit(4_000_001, WaitStatus::Exited(Pid::from_raw(4_000_001), 0)).is_none());
    }

    #[test]
    fn a_run_rm_is_removed_before_its_release_and_its_name_waits_for_that_release() {
        let f = std::sync::Arc::new(fixture());
        spawned(&f, "rm", 4_000_005);
        f.registry.set_throwaway("rm");
        f.registry.persist_created("rm").unwrap();
        let (parent, init) = InitChannel::pair().unwrap();
        f.registry.mark_running("rm", parent).unwrap();
        init.send(&FromInit::Exited(Termination::Code(3))).unwrap();
        f.registry.on_exit(4_000_005, WaitStatus::Exited(Pid::from_raw(4_000_005), 0)).unwrap();
        // Ended, not released: `wait_ended` answers, `remove` refuses, `remove_ended` takes it.
        assert_eq!(f.registry.wait_ended("rm").unwrap().unwrap().exit_code, Some(3));
        assert!(matches!(f.registry.remove("rm"), Err(RegistryError::Running(_))));
        f.registry.remove_ended("rm").unwrap();
        assert!(!f.registry.contains("rm") && on_disk(&f, "rm").is_none());
        // Work on what it held waits for the release; other names' runs at once.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d = done.clone();
        let job: AfterRelease = Box::new(move || {
            d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(f.registry.after_release("rm", job).is_none(), "deferred");
        assert!(f.registry.after_release("other", Box::new(|| {})).is_some(), "nothing to wait for");
        // A start of the same name waits until the release is over.
        let f2 = f.clone();
        let start = std::thread::spawn(move || f2.registry.reserve(&spec("rm"), "rm2.log".into()));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!start.is_finished(), "the name was taken again before its release");
        let after = f.registry.released("rm");
        assert_eq!(after.len(), 1);
        after.into_iter().for_each(|job| job());
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 1);
        start.join().unwrap().unwrap();
        assert_eq!(f.registry.get("rm").unwrap().state, State::Created);
    }

    #[test]
    fn an_init_report_ends_a_run_rm_before_its_reap_which_then_gives_back_what_it_held() {
        let f = fixture();
        spawned(&f, "early", 4_000_006);
        f.registry.set_throwaway("early");
        f.registry.persist_created("early").unwrap();
        let (parent, init) = InitChannel::pair().unwrap();
        f.registry.mark_running("early", parent).unwrap();
        // No report yet: the channel to wait on.
        assert!(matches!(f.registry.finish_reported("early").unwrap(), Reported::Pending(_)));
        init.send(&FromInit::Exited(Termination::Code(5))).unwrap();
        let Reported::Ended(record) = f.registry.finish_reported("early").unwrap() else { panic!("not ended") };
        assert_eq!((record.state, record.exit_code), (State::Exited { code: 5 }, Some(5)));
        f.registry.remove_ended("early").unwrap();
        // The init's reap, later, hands over what it held; its name is free once that is back.
        let ended = f.registry.on_exit(4_000_006, WaitStatus::Exited(Pid::from_raw(4_000_006), 0)).unwrap();
        assert_eq!((ended.name.as_str(), ended.pid), ("early", Some(4_000_006)));
        assert!(f.registry.on_exit(4_000_006, WaitStatus::Exited(Pid::from_raw(4_000_006), 0)).is_none());
        assert!(f.registry.released("early").is_empty());
        f.registry.reserve(&spec("early"), "e.log".into()).unwrap();
        // A channel gone without a report leaves it to the reap.
        drop(init);
        spawned(&f, "silent", 4_000_007);
        let (parent, init) = InitChannel::pair().unwrap();
        f.registry.mark_running("silent", parent).unwrap();
        drop(init);
        assert!(!matches!(f.registry.finish_reported("silent").unwrap(), Reported::Ended(_)));
    }

    #[test]
    fn abandon_forgets_the_container_and_its_record() {
        let f = fixture();
        spawned(&f, "b", 4_000_002);
        f.registry.persist_created("b").unwrap();
        assert!(on_disk(&f, "b").is_some());
        let ended = f.registry.abandon("b").unwrap();
        assert_eq!((ended.name.as_str(), ended.pid), ("b", Some(4_000_002)));
        assert!(!f.registry.contains("b") && on_disk(&f, "b").is_none());
        assert!(f.registry.on_exit(4_000_002, WaitStatus::Exited(Pid::from_raw(4_000_002), 0)).is_none());
        assert!(f.registry.abandon("b").is_none());
        // The name is free again.
        f.registry.reserve(&spec("b"), "x".into()).unwrap();
    }

    #[test]
    fn an_exit_before_running_is_applied_by_mark_running() {
        let f = fixture();
        spawned(&f, "c", 4_000_003);
        let killed = WaitStatus::Signaled(Pid::from_raw(4_000_003), nix::sys::signal::Signal::SIGKILL, false);
        // Still `created`: kept aside, nothing ends yet.
        assert!(f.registry.on_exit(4_000_003, killed).is_none());
        assert_eq!(f.registry.get("c").unwrap().state, State::Created);
        let (parent, _init) = InitChannel::pair().unwrap();
        let ended = f.registry.mark_running("c", parent).unwrap().expect("the early exit ends it");
        assert_eq!(ended.name, "c");
        let record = f.registry.get("c").unwrap();
        assert_eq!(record.state, State::Killed { signal: libc::SIGKILL, reason: KillReason::Signal });
        assert_eq!(record.exit_code, Some(137));
    }

    #[test]
    fn a_stop_request_makes_the_end_stopped() {
        let f = fixture();
        spawned(&f, "d", 4_000_004);
        let (parent, _init) = InitChannel::pair().unwrap();
        f.registry.mark_running("d", parent).unwrap();
        // Signal 0 probes; the mark is what matters here.
        assert!(f.registry.signal("d", 0, |live| live.stop_requested = true).unwrap());
        let term = WaitStatus::Signaled(Pid::from_raw(4_000_004), nix::sys::signal::Signal::SIGTERM, false);
        f.registry.on_exit(4_000_004, term).unwrap();
        assert_eq!(f.registry.get("d").unwrap().state, State::Stopped { code: None, signal: Some(libc::SIGTERM) });
        assert!(!f.registry.signal("d", 0, |_| {}).unwrap(), "an ended container takes no signal");
    }
}

//! `--soft-mib` (and `--soft-signal`) where the kernel monitor is absent: the cgroup tells us when
//! the container crosses its soft limit, and the supervisor sends the signal to the container's
//! init, which forwards it to the command's process group (as for `stop`).
//!
//! - cgroup v1: memory thresholds. An eventfd is registered through `cgroup.event_control` on
//!   `memory.usage_in_bytes` at soft, another at the re-arm point (90 % of soft); the kernel
//!   signals one when usage crosses its threshold, in either direction. The soft one's count
//!   (crossings alternate up and down) tells a crossing even if usage is back under soft (or the
//!   container was killed at its hard limit) by the time this thread reads it.
//! - cgroup v2: `memory.events`, whose `high` counter grows each time the group goes above
//!   `memory.high` (= soft); a change of the file wakes poll() with POLLPRI (the kernel's
//!   cgroup-v2 documentation: "a value change in this file generates a file modified event").
//!   v2 has no notification for going back down, so while a container is signalled and not yet
//!   re-armed its `memory.current` is read every RE_ARM_TICK. With `--soft-signal`, memory.high
//!   is there only to produce the event: once the signal is sent it is lifted (`max`), so an
//!   application that ignores the signal runs on to the hard limit instead of being throttled
//!   at soft for ever, and it is set to soft again when the watch re-arms.
//!
//! Same rules as the module: one "soft limit exceeded" event per crossing, the signal once per
//! crossing, re-armed when usage falls below 90 % of soft. One thread polls every container.
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::Supervisor;
use crate::monitor::abi::CM_SOFT_REARM_PERCENT;
use crate::monitor::EventKind;

/// How often a signalled v2 container's usage is read to see whether it has let go.
const RE_ARM_TICK: Duration = Duration::from_millis(200);

pub struct Watcher {
    watches: Mutex<Vec<Arc<Watch>>>,
    /// An eventfd: written when the list changes, so the poll loop picks up the new set.
    wake: OwnedFd,
}

struct Watch {
    name: String,
    soft: u64,
    signal: Option<i32>,
    source: Source,
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// Above soft since the last "soft limit exceeded" event.
    over: bool,
    /// The signal was sent and is not re-armed yet.
    signalled: bool,
    /// v2: the `high` count last seen.
    high: u64,
}

enum Source {
    V1 {
        usage: File,
        /// Signalled when usage crosses soft (either way).
        soft_efd: OwnedFd,
        /// Signalled when usage crosses the re-arm point (either way).
        rearm_efd: OwnedFd,
    },
    /// `high` (memory.high) is opened for writing when a signal is asked for.
    V2 { events: File, current: File, high: Option<File> },
}

/// What a wake-up found for one container, acted on outside every lock.
struct Action {
    name: String,
    usage: u64,
    soft: u64,
    event: bool,
    signal: Option<i32>,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned from here on.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads (and so resets) the eventfd's count: how many times it was signalled since the last read.
fn drain_eventfd(fd: &OwnedFd) -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a buffer of 8.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n == 8 {
        u64::from_ne_bytes(buf)
    } else {
        0
    }
}

fn read_file(f: &File) -> io::Result<String> {
    // cgroup files are small; reading from offset 0 each time also resets kernfs' poll state.
    let mut buf = vec![0u8; 4096];
    let n = f.read_at(&mut buf, 0)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn read_u64(f: &File) -> io::Result<u64> {
    let text = read_file(f)?;
    text.trim().parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}: {e}")))
}

fn high_count(events: &File) -> io::Result<u64> {
    let text = read_file(events)?;
    Ok(text.lines().find_map(|l| l.strip_prefix("high ").and_then(|v| v.trim().parse().ok())).unwrap_or(0))
}

fn rearm_point(soft: u64) -> u64 {
    soft / 100 * CM_SOFT_REARM_PERCENT as u64
}

impl Watch {
    /// Watches the memory group `dir` (v1: the memory controller's directory; v2: the group).
    fn open(dir: &Path, name: &str, soft: u64, signal: Option<i32>) -> io::Result<Watch> {
        let source = if dir.join("memory.events").exists() {
            let events = File::open(dir.join("memory.events"))?;
            let current = File::open(dir.join("memory.current"))?;
            let high = match signal {
                Some(_) => Some(std::fs::OpenOptions::new().write(true).open(dir.join("memory.high"))?),
                None => None,
            };
            Source::V2 { events, current, high }
        } else {
            let usage = File::open(dir.join("memory.usage_in_bytes"))?;
            let (soft_efd, rearm_efd) = (eventfd()?, eventfd()?);
            let control = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.event_control"))?;
            for (efd, threshold) in [(&soft_efd, soft), (&rearm_efd, rearm_point(soft))] {
                let line = format!("{} {} {threshold}", efd.as_raw_fd(), usage.as_raw_fd());
                control.write_at(line.as_bytes(), 0)?;
            }
            Source::V1 { usage, soft_efd, rearm_efd }
        };
        let watch = Watch { name: name.into(), soft, signal, source, state: Mutex::new(WatchState::default()) };
        match &watch.source {
            Source::V2 { events, .. } => watch.state.lock().high = high_count(events)?,
            // Where the kernel placed usage when the thresholds were registered (the init is
            // still held before the command, so it cannot move in between).
            Source::V1 { usage, .. } => watch.state.lock().over = read_u64(usage)? > soft,
        }
        Ok(watch)
    }

    fn poll_fds(&self) -> Vec<libc::pollfd> {
        let pollfd = |fd: i32, events| libc::pollfd { fd, events, revents: 0 };
        match &self.source {
            Source::V1 { soft_efd, rearm_efd, .. } => {
                vec![pollfd(soft_efd.as_raw_fd(), libc::POLLIN), pollfd(rearm_efd.as_raw_fd(), libc::POLLIN)]
            }
            Source::V2 { events, .. } => vec![pollfd(events.as_raw_fd(), libc::POLLPRI)],
        }
    }

    /// Reads the group's usage and applies the rules; what to record and send, if anything.
    fn check(&self) -> io::Result<Option<Action>> {
        let mut st = self.state.lock();
        // `crossed`: it went above soft since the last check (one event); `above`: it is now.
        let (usage, crossed, above) = match &self.source {
            Source::V1 { usage, soft_efd, rearm_efd } => {
                // The kernel signals each crossing of soft, up and down in turn: the count says
                // where usage went, however far it has moved on by the time it is read here.
                let n = drain_eventfd(soft_efd);
                drain_eventfd(rearm_efd);
                let ups = if st.over { n / 2 } else { n.div_ceil(2) };
                (read_u64(usage)?, ups > 0, st.over ^ (n % 2 == 1))
            }
            Source::V2 { events, current, .. } => {
                // memory.high holds usage near soft: a new `high` count is the crossing itself.
                let high = high_count(events)?;
                let u = read_u64(current)?;
                let over = high > st.high || u > self.soft;
                st.high = high;
                (u, over && !st.over, over)
            }
        };
        st.over = above;
        let mut action = Action { name: self.name.clone(), usage, soft: self.soft, event: crossed, signal: None };
        if crossed || above {
            if !st.signalled {
                action.signal = self.signal;
                st.signalled = self.signal.is_some();
                self.set_high("max")?;
            }
        } else if st.signalled && usage < rearm_point(self.soft) {
            st.signalled = false;
            self.set_high(&self.soft.to_string())?;
        }
        Ok((action.event || action.signal.is_some()).then_some(action))
    }

    /// v2 with a signal: lifts (`max`) or restores (soft) the throttle that raised the event.
    fn set_high(&self, value: &str) -> io::Result<()> {
        match &self.source {
            Source::V2 { high: Some(f), .. } => f.write_at(value.as_bytes(), 0).map(drop),
            _ => Ok(()),
        }
    }

    fn signalled(&self) -> bool {
        self.state.lock().signalled
    }
}

impl Watcher {
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher { watches: Mutex::new(Vec::new()), wake: eventfd()? })
    }

    /// Starts watching container `name` whose memory group is one of `dirs`.
    pub fn add(&self, dirs: &[std::path::PathBuf], name: &str, soft: u64, signal: Option<i32>) -> io::Result<()> {
        let dir = dirs
            .iter()
            .find(|d| d.join("memory.events").exists() || d.join("memory.usage_in_bytes").exists())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the container has no memory cgroup"))?;
        let watch = Watch::open(dir, name, soft, signal)?;
        self.watches.lock().push(Arc::new(watch));
        self.poke();
        Ok(())
    }

    /// Stops watching (the container ended); its fds close once the poll loop lets go of them.
    /// A crossing the poll loop has not read yet (a container killed at its hard limit right
    /// after it passed soft) is recorded here, so it is not lost with the watch.
    pub fn remove(sup: &Supervisor, name: &str) {
        let removed: Vec<Arc<Watch>> = {
            let mut watches = sup.softlimits.watches.lock();
            let (gone, kept) = std::mem::take(&mut *watches).into_iter().partition(|w| w.name == name);
            *watches = kept;
            gone
        };
        sup.softlimits.poke();
        for w in removed {
            if let Ok(Some(action)) = w.check() {
                act(sup, Action { signal: None, ..action });
            }
        }
    }

    fn poke(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a buffer of 8 to our own eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// The poll loop: one thread for every watched container.
pub fn spawn(sup: &Arc<Supervisor>) -> io::Result<()> {
    let weak: Weak<Supervisor> = Arc::downgrade(sup);
    std::thread::Builder::new().name("soft-limits".into()).spawn(move || {
        let mut warned = false;
        loop {
            let Some(sup) = weak.upgrade() else { return };
            let watches: Vec<Arc<Watch>> = sup.softlimits.watches.lock().clone();
            let mut fds = vec![libc::pollfd { fd: sup.softlimits.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            let mut owners = Vec::new();
            for (i, w) in watches.iter().enumerate() {
                let polled = w.poll_fds();
                owners.extend(std::iter::repeat_n(i, polled.len()));
                fds.extend(polled);
            }
            let timeout = if watches.iter().any(|w| w.signalled()) { RE_ARM_TICK.as_millis() as i32 } else { 1000 };
            drop(sup);
            // SAFETY: fds is a valid array of fds.len() pollfds; every fd in it is kept open by
            // `watches` (or the Watcher) until after the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            let Some(sup) = weak.upgrade() else { return };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted && !std::mem::replace(&mut warned, true) {
                    crate::warn!("polling the memory cgroups for soft limits: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
                continue;
            }
            if fds[0].revents != 0 {
                drain_eventfd(&sup.softlimits.wake);
            }
            for (i, w) in watches.iter().enumerate() {
                // A signalled v2 container is re-checked on every tick, to see it let go.
                let woken = owners.iter().zip(&fds[1..]).any(|(&o, fd)| o == i && fd.revents != 0);
                if !woken && !w.signalled() {
                    continue;
                }
                match w.check() {
                    Ok(Some(action)) => act(&sup, action),
                    Ok(None) => {}
                    Err(e) => crate::warn!("{}: reading its memory cgroup: {e}", w.name),
                }
            }
        }
    })?;
    Ok(())
}

fn act(sup: &Supervisor, a: Action) {
    if a.event {
        sup.registry.limit_event(&a.name, EventKind::SoftLimit, a.usage, a.soft);
    }
    if let Some(sig) = a.signal {
        if let Ok(true) = sup.registry.signal(&a.name, sig, |_| {}) {
            sup.registry.limit_event(&a.name, EventKind::SoftSignal, a.usage, a.soft);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// A memory cgroup of its own (v1's memory controller, else a v2 group with memory.high at
    /// `soft`, as the supervisor sets it), removed on drop.
    struct Group(PathBuf);

    impl Group {
        fn new(soft: u64) -> Group {
            let name = format!("engine-test-softlimit-{}", std::process::id());
            let v1 = Path::new("/sys/fs/cgroup/memory");
            let dir = if v1.join("memory.usage_in_bytes").exists() {
                v1.join(name)
            } else {
                let root = Path::new("/sys/fs/cgroup");
                let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                assert!(controllers.split_whitespace().any(|c| c == "memory"), "no memory cgroup on this host");
                root.join(name)
            };
            std::fs::create_dir(&dir).unwrap();
            if dir.join("memory.high").exists() {
                std::fs::write(dir.join("memory.high"), soft.to_string()).unwrap();
            }
            Group(dir)
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// The CI failure this guards against: a container that passes soft and is back under it
    /// (killed at its hard limit) before this thread reads its usage still gets its one event.
    #[test]
    fn a_crossing_is_counted_even_if_usage_is_back_under_soft_when_read() {
        let soft = 4 << 20;
        let group = Group::new(soft);
        let watch = Watch::open(&group.0, "t", soft, None).unwrap();
        let file = std::env::temp_dir().join(format!("engine-test-softlimit-{}", std::process::id()));
        // Goes 8 MiB above soft (page cache charged to the group), then gives it all back.
        let script = format!(
            "echo $$ > {}/cgroup.procs && dd if=/dev/zero of={f} bs=1M count=8 status=none && rm {f}",
            group.0.display(),
            f = file.display()
        );
        for round in 0..2 {
            assert!(Command::new("sh").args(["-c", &script]).status().unwrap().success());
            let action = watch.check().unwrap().unwrap_or_else(|| panic!("crossing {round} was lost"));
            assert!(action.event && action.signal.is_none());
            assert!(action.usage <= soft, "usage {} is still above soft", action.usage);
            // One event per crossing: the way back down is none.
            assert!(watch.check().unwrap().is_none(), "a second event for crossing {round}");
        }
    }
}

//! The next container's copy-on-write root, made ahead of its request.
//!
//! Mounting a container's overlay is the largest single step of its init's root (about 1 ms on
//! this host's ext4: the mount makes and deletes test files and directories in `work/`, and each
//! new inode is slow after much churn). After a start over some lower layers, a thread of ours
//! makes a spare set of `upper`, `work` and `merged` directories under `<root>/ahead/` and mounts
//! the overlay over the same layers *detached* (fsopen/fsmount: in no mount namespace, seen by no
//! process). The next start over those layers renames the spare to its own `overlay/<name>`,
//! and its init moves the mount onto `merged` (`Plan::root_mount`). A start that finds no spare
//! does what it always did.
//!
//! A spare is one container's alone: it is taken once, and its directories become that
//! container's. It is dropped, not used, if a layer's directory is no longer the one it was
//! made over (replaced or deleted since), so a container never sees a stale root.
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// Below the supervisor's root: spare layers; emptied at every supervisor start.
pub const AHEAD_DIR: &str = "ahead";
/// Spares kept at most (of the most recently used sets of layers).
const KEPT: usize = 4;
/// Spares kept per set of layers: with one, a start that follows the last at once (`make bench`'s
/// back-to-back runs) found none ready half the time, and its own mount raced the thread's.
const PER_KEY: usize = 2;
/// How long after the start that asked for a spare it is made.
pub(super) const MAKE_AFTER: std::time::Duration = std::time::Duration::from_millis(1);
/// Sets of layers whose overlay could not be made detached are not tried again; at most this many.
const REFUSED_KEPT: usize = 16;

/// What a spare fits: the same layers, and whether the layer is thrown away at the end
/// (`volatile`, see `rootfs::mount_overlay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub lowers: Vec<PathBuf>,
    pub throwaway: bool,
}

struct Spare {
    key: Key,
    dir: PathBuf,
    mount: OwnedFd,
    /// (device, inode) of each lower directory when the spare was made.
    layers: Vec<(u64, u64)>,
}

#[derive(Default)]
struct Spares {
    kept: Vec<Spare>,
    refused: Vec<Key>,
    next: u64,
}

impl Spares {
    fn count(&self, key: &Key) -> usize {
        self.kept.iter().filter(|s| &s.key == key).count()
    }
}

pub struct Ahead {
    dir: PathBuf,
    spares: Mutex<Spares>,
    /// Held while a spare is being made; true once the supervisor stops (none is made after).
    work: Mutex<bool>,
    /// To the thread that makes spares (a send fails if it could not be started: starts go on
    /// without spares).
    wanted: Mutex<std::sync::mpsc::Sender<Key>>,
}

impl Ahead {
    /// Empties `<root>/ahead/` (a dead supervisor's spares) and starts the thread.
    pub fn start(root: &Path) -> std::sync::Arc<Ahead> {
        let dir = root.join(AHEAD_DIR);
        remove_leftovers(&dir);
        let (tx, rx) = std::sync::mpsc::channel::<Key>();
        let ahead = std::sync::Arc::new(Ahead {
            dir,
            spares: Mutex::new(Spares::default()),
            work: Mutex::new(false),
            wanted: Mutex::new(tx),
        });
        let weak = std::sync::Arc::downgrade(&ahead);
        let spawned = std::thread::Builder::new().name("overlay-ahead".into()).spawn(move || {
            // Its work is never awaited: it runs on a CPU no start needs (measured: at the normal
            // priority it ran beside the command's exit and slowed that by more than it saved).
            run_when_idle();
            for key in rx {
                // Not at once: the start that asked is still ending (its command's exit, the
                // answer), which the mount slowed even on an idle CPU. Alternating A/B of
                // `run --rm` medians: at once 8.00 ms, 1 ms later 7.45, 2 ms later 8.10 (fewer
                // spares ready for a start that follows at once).
                std::thread::sleep(MAKE_AFTER);
                // Up to PER_KEY (`make` stops at that many).
                for _ in 0..PER_KEY {
                    match weak.upgrade() {
                        Some(ahead) => ahead.make(key.clone()),
                        None => return,
                    }
                }
            }
        });
        if let Err(e) = spawned {
            crate::warn!("no overlay-ahead thread ({e}): every start mounts its own overlay");
        }
        ahead
    }

    /// Asks for a spare over `key`'s layers, unless one is kept (made on the thread).
    pub fn want(&self, key: Key) {
        {
            let spares = self.spares.lock();
            if spares.count(&key) >= PER_KEY || spares.refused.contains(&key) {
                return;
            }
        }
        let _ = self.wanted.lock().send(key);
    }

    /// The spare over `key`'s layers, renamed to `dir` (which must not exist), and its mount;
    /// None if there is none or it no longer fits (then dropped).
    pub fn take(&self, key: &Key, dir: &Path) -> Option<OwnedFd> {
        let spare = {
            let mut spares = self.spares.lock();
            let at = spares.kept.iter().position(|s| &s.key == key)?;
            spares.kept.remove(at)
        };
        let fits = identities(&key.lowers).is_ok_and(|now| now == spare.layers);
        if fits && super::fresh_files::rename_noreplace(&spare.dir, dir).is_ok() {
            return Some(spare.mount);
        }
        discard(spare);
        None
    }

    /// Drops every spare (the supervisor is stopping).
    pub fn clear(&self) {
        // After the spare being made, if any: it is kept, then dropped here with the others.
        let mut stopped = self.work.lock();
        *stopped = true;
        let kept = std::mem::take(&mut self.spares.lock().kept);
        kept.into_iter().for_each(discard);
    }

    /// Makes a spare over `key`'s layers (the thread's work).
    fn make(&self, key: Key) {
        let stopped = self.work.lock();
        if *stopped {
            return;
        }
        let seq = {
            let mut spares = self.spares.lock();
            if spares.count(&key) >= PER_KEY || spares.refused.contains(&key) {
                return;
            }
            spares.next += 1;
            spares.next
        };
        let dir = self.dir.join(seq.to_string());
        let made = make_spare(&self.dir, &dir, &key);
        if let Err(e) = &made {
            crate::warn!("no overlay made ahead over {:?} (each start mounts its own): {e}", key.lowers);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut spares = self.spares.lock();
        match made {
            Ok((mount, layers)) => {
                if spares.kept.len() >= KEPT {
                    let oldest = spares.kept.remove(0);
                    drop(spares);
                    discard(oldest);
                    spares = self.spares.lock();
                }
                spares.kept.push(Spare { key, dir, mount, layers });
            }
            Err(_) => {
                if spares.refused.len() >= REFUSED_KEPT {
                    spares.refused.remove(0);
                }
                spares.refused.push(key);
            }
        }
    }
}

/// Deletes `dir`, which a supervisor that died left (its spares, its fresh files).
pub(super) fn remove_leftovers(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => crate::warn!("emptying {}: {e}", dir.display()),
        _ => {}
    }
}

/// The calling thread runs only when a CPU has nothing else to (SCHED_IDLE): for work no
/// request waits for, by a thread that holds no lock another waits on while it works.
pub(super) fn run_when_idle() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets the calling thread's own policy; a failure leaves it as it was.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
}

/// Its mount goes (detached: unmounted when the fd closes), then its directories.
fn discard(spare: Spare) {
    drop(spare.mount);
    if let Err(e) = std::fs::remove_dir_all(&spare.dir) {
        crate::warn!("removing the spare layer {}: {e}", spare.dir.display());
    }
}

/// (device, inode) of each directory.
fn identities(dirs: &[PathBuf]) -> std::io::Result<Vec<(u64, u64)>> {
    dirs.iter().map(|d| std::fs::metadata(d).map(|m| (m.dev(), m.ino()))).collect()
}

fn make_spare(parent: &Path, dir: &Path, key: &Key) -> std::io::Result<(OwnedFd, Vec<(u64, u64)>)> {
    use std::os::unix::fs::DirBuilderExt;
    let top = key.lowers.first().ok_or_else(|| std::io::Error::other("no layers"))?;
    match std::fs::DirBuilder::new().mode(0o700).create(parent) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let layers = identities(&key.lowers)?;
    super::launch::make_layer_dirs(dir, top).map_err(|(what, e)| std::io::Error::other(format!("{what}: {e}")))?;
    let mount = mount_detached(&key.lowers, dir, key.throwaway)?;
    Ok((mount, layers))
}

/// The overlay over `lowers` with `dir`'s upper and work, mounted nowhere (fsmount): the same
/// options as `rootfs::mount_overlay`.
pub(super) fn mount_detached(lowers: &[PathBuf], dir: &Path, throwaway: bool) -> std::io::Result<OwnedFd> {
    let mut paths = Vec::new();
    for p in lowers.iter().map(PathBuf::as_path).chain([dir]) {
        let s = p.to_str().ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // Options are split at ',' and layers at ':' (as for rootfs::mount_overlay).
        if s.contains([',', ':', '\\']) {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        paths.push(s);
    }
    let dir = paths.pop().unwrap_or_default();
    let (lowerdir, upperdir, workdir) = (paths.join(":"), format!("{dir}/upper"), format!("{dir}/work"));
    let mut options = vec![
        ("lowerdir", Some(lowerdir.as_str())),
        ("upperdir", Some(upperdir.as_str())),
        ("workdir", Some(workdir.as_str())),
        ("index", Some("off")),
    ];
    if throwaway {
        options.push(("volatile", None));
    }
    crate::sys::mount_detached(c"overlay", &options)
}

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
//!
//! The directories of an ended `run --rm` container whose upper stayed empty are made the next
//! spare's (`recycle`), instead of being deleted while new ones are made: on this host's ext4,
//! mounted with `discard` and no journal, each directory freed is a discard sent to the disk at
//! once, and the 7 of each start were ~0.3-0.4 ms of every back-to-back start. Only the work
//! directory's inner tree (which overlayfs makes at each mount) is deleted; the upper's owner,
//! mode, times and extended attributes are set anew, and any doubt deletes it instead.
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
/// Ended layers kept for reuse at most (more are deleted).
const RECYCLED_KEPT: usize = 4;

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
    /// Directories of ended layers (in `<root>/trash/`), mounted by no one, for the next spares.
    recycled: Mutex<std::collections::VecDeque<PathBuf>>,
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
            recycled: Mutex::new(std::collections::VecDeque::new()),
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

    /// Keeps `dir`, an ended container's layer that nothing has mounted any more, for the next
    /// spare (checked and reset then, on the thread); gives it back if none is wanted.
    pub fn recycle(&self, dir: PathBuf) -> Result<(), PathBuf> {
        // One the container wrote to is deleted at once, not kept to be found out later.
        let unwritten = is_empty_dir(&dir.join("upper")).unwrap_or(false);
        let mut recycled = self.recycled.lock();
        if !unwritten || recycled.len() >= RECYCLED_KEPT {
            return Err(dir);
        }
        recycled.push_back(dir);
        Ok(())
    }

    /// Drops every spare and every layer kept for reuse (the supervisor is stopping).
    pub fn clear(&self) {
        // After the spare being made, if any: it is kept, then dropped here with the others.
        let mut stopped = self.work.lock();
        *stopped = true;
        let kept = std::mem::take(&mut self.spares.lock().kept);
        kept.into_iter().for_each(discard);
        for dir in std::mem::take(&mut *self.recycled.lock()) {
            let _ = std::fs::remove_dir_all(dir);
        }
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
        // The longest ended first.
        let recycled = self.recycled.lock().pop_front();
        let made = make_spare(&self.dir, &dir, &key, recycled);
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

fn make_spare(
    parent: &Path,
    dir: &Path,
    key: &Key,
    recycled: Option<PathBuf>,
) -> std::io::Result<(OwnedFd, Vec<(u64, u64)>)> {
    use std::os::unix::fs::DirBuilderExt;
    let top = key.lowers.first().ok_or_else(|| std::io::Error::other("no layers"))?;
    match std::fs::DirBuilder::new().mode(0o700).create(parent) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        // Each spare is a tree of its own: spread over the filesystem (see sys::spread_subdirs).
        Ok(()) => drop(crate::sys::spread_subdirs(parent)),
        Err(_) => {}
    }
    let layers = identities(&key.lowers)?;
    let reused = recycled.is_some_and(|old| match reuse_layer(&old, dir, top) {
        Ok(()) => true,
        Err(_) => {
            super::trash::delete_later(old);
            false
        }
    });
    if !reused {
        super::launch::make_layer_dirs(dir, top).map_err(|(what, e)| std::io::Error::other(format!("{what}: {e}")))?;
    }
    let mount = mount_detached(&key.lowers, dir, key.throwaway)?;
    Ok((mount, layers))
}

/// Whether the directory `dir` has no entry (one getdents: no list is made).
fn is_empty_dir(dir: &Path) -> std::io::Result<bool> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

/// Makes `old`, an ended container's layer directory, the fresh one at `dir` over `top`, or
/// fails (the caller deletes it): its upper must be empty, and comes back with `top`'s owner and
/// mode, the time now, no extended attribute and the inode flags of a new directory (those of
/// `work`, which no container reaches); `merged` must be empty; of `work`, what overlayfs made in
/// it goes (the next mount refuses a volatile one's).
fn reuse_layer(old: &Path, dir: &Path, top: &Path) -> std::io::Result<()> {
    let refuse = |what: &str| Err(std::io::Error::other(format!("{}: {what}", old.display())));
    for sub in ["upper", "work", "merged"] {
        if !std::fs::symlink_metadata(old.join(sub))?.is_dir() {
            return refuse("not a directory");
        }
    }
    let upper = old.join("upper");
    if !is_empty_dir(&upper)? || !is_empty_dir(&old.join("merged"))? {
        return refuse("written to");
    }
    let work: Vec<std::ffi::OsString> =
        std::fs::read_dir(old.join("work"))?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    match work.as_slice() {
        [] => {}
        [only] if only == "work" => std::fs::remove_dir_all(old.join("work/work"))?,
        _ => return refuse("unexpected entries in work"),
    }
    if crate::sys::inode_flags(&upper).ok() != crate::sys::inode_flags(&old.join("work")).ok() {
        return refuse("inode flags changed");
    }
    crate::sys::remove_xattrs(&upper)?;
    super::launch::set_upper_owner(&upper, top).map_err(|(what, e)| std::io::Error::other(format!("{what}: {e}")))?;
    // The time now, as a new directory's (the last container's last change is not the next's).
    let now =
        std::fs::FileTimes::new().set_accessed(std::time::SystemTime::now()).set_modified(std::time::SystemTime::now());
    std::fs::File::open(&upper)?.set_times(now)?;
    // Last: a failure before it leaves `old` where it was, for the caller to delete.
    super::fresh_files::rename_noreplace(old, dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// An ended layer as a volatile mount leaves it, in a fresh directory; and a "rootfs" to reuse it over.
    fn ended_layer() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
        let top = tmp.path().join("rootfs");
        std::fs::create_dir(&top).unwrap();
        let old = tmp.path().join("old");
        super::super::launch::make_layer_dirs(&old, &top).unwrap();
        std::fs::create_dir_all(old.join("work/work/incompat/volatile")).unwrap();
        std::fs::write(old.join("work/work/incompat/volatile/dirty"), "").unwrap();
        (tmp, old, top)
    }

    fn xattrs(path: &Path) -> usize {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a C string; a null buffer asks for the size only.
        unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) as usize }
    }

    #[test]
    fn a_reused_layer_has_its_upper_as_new_and_overlayfs_work_gone() {
        let (tmp, old, top) = ended_layer();
        let upper = old.join("upper");
        std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o700)).unwrap();
        let c = std::ffi::CString::new(upper.to_str().unwrap()).unwrap();
        for name in [c"user.left", c"trusted.overlay.opaque"] {
            // SAFETY: C strings and a buffer that outlive the call.
            assert_eq!(unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), c"y".as_ptr().cast(), 1, 0) }, 0);
        }
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(&upper).unwrap().set_times(std::fs::FileTimes::new().set_modified(long_ago)).unwrap();
        let dir = tmp.path().join("new");
        reuse_layer(&old, &dir, &top).unwrap();
        assert!(!old.exists());
        let (upper, want) = (std::fs::metadata(dir.join("upper")).unwrap(), std::fs::metadata(&top).unwrap());
        assert_eq!((upper.mode(), upper.uid(), upper.gid()), (want.mode(), want.uid(), want.gid()));
        assert!(upper.modified().unwrap() > long_ago + std::time::Duration::from_secs(86400 * 365));
        assert_eq!(xattrs(&dir.join("upper")), 0);
        assert_eq!(std::fs::read_dir(dir.join("work")).unwrap().count(), 0, "overlayfs's work tree was left");
        assert!(dir.join("merged").is_dir());
    }

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_layer_written_to_or_changed_oddly_is_not_reused() {
        type Spoil = fn(&Path);
        let spoils: [(&str, Spoil); 5] = [
            ("a file in upper", |old| std::fs::write(old.join("upper/f"), "x").unwrap()),
            ("a file in merged", |old| std::fs::write(old.join("merged/f"), "x").unwrap()),
            ("upper a symlink", |old| {
                std::fs::remove_dir(old.join("upper")).unwrap();
                std::os::unix::fs::symlink("/etc", old.join("upper")).unwrap();
            }),
            ("an unknown entry in work", |old| std::fs::create_dir(old.join("work/index")).unwrap()),
            ("upper's inode flags", |old| crate::sys::spread_subdirs(&old.join("upper")).unwrap()),
        ];
        for (what, spoil) in spoils {
            let (tmp, old, top) = ended_layer();
            spoil(&old);
            let dir = tmp.path().join("new");
            assert!(reuse_layer(&old, &dir, &top).is_err(), "reused with {what}");
            assert!(old.exists() && !dir.exists(), "{what}: moved though refused");
        }
    }

    /// A reset that fails (here: the rootfs is gone) leaves the layer where it was, for the
    /// caller to delete, and the spare's name free for new directories.
    #[test]
    fn a_failed_reset_leaves_the_layer_in_place() {
        let (tmp, old, top) = ended_layer();
        std::fs::remove_dir(&top).unwrap();
        let dir = tmp.path().join("new");
        assert!(reuse_layer(&old, &dir, &top).is_err());
        assert!(old.exists() && !dir.exists());
    }
}

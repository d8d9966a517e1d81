//! Empty files made ahead, for the files a start creates: its record, the record's spare, its log.
//!
//! On this host's ext4 (mounted without a journal), making an inode scans past every inode of
//! its group freed in the last 30 s (5 min while their table block is dirty), reading each one's
//! table block: after much churn that was 27 % of the request thread's CPU at 200 bridged
//! starts (`perf record`: `__ext4_new_inode → find_inode_bit → recently_deleted`). A thread at
//! SCHED_IDLE keeps a few empty files (0600) in `<root>/fresh/`; a start renames one to the name
//! it needs (RENAME_NOREPLACE: never over an existing file), which makes no inode. When none is
//! left, the caller creates its file as before.
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Below the supervisor's root; emptied at every supervisor start.
pub const FRESH_DIR: &str = "fresh";
/// Files kept ready: a start takes three.
const KEPT: usize = 12;

pub struct FreshFiles {
    dir: PathBuf,
    ready: Mutex<Vec<PathBuf>>,
    /// Held while files are being made; true once the supervisor stops (none is made after).
    work: Mutex<bool>,
    next: AtomicU64,
    /// Wakes the thread that makes more (a send fails if it could not start: callers create).
    wanted: Mutex<std::sync::mpsc::Sender<()>>,
}

impl FreshFiles {
    /// Empties `<root>/fresh/` (a dead supervisor's files) and starts the thread that fills it.
    pub fn start(root: &Path) -> std::sync::Arc<FreshFiles> {
        let dir = root.join(FRESH_DIR);
        super::overlay_ahead::remove_leftovers(&dir);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let fresh = std::sync::Arc::new(FreshFiles {
            dir,
            ready: Mutex::new(Vec::new()),
            work: Mutex::new(false),
            next: AtomicU64::new(0),
            wanted: Mutex::new(tx),
        });
        let weak = std::sync::Arc::downgrade(&fresh);
        let spawned = std::thread::Builder::new().name("fresh-files".into()).spawn(move || {
            super::overlay_ahead::run_when_idle();
            while rx.recv().is_ok() {
                // As for a spare overlay: not while the start that took files is still ending.
                std::thread::sleep(super::overlay_ahead::MAKE_AFTER);
                match weak.upgrade() {
                    Some(fresh) => fresh.fill(),
                    None => return,
                }
            }
        });
        match spawned {
            Ok(_) => {
                let _ = fresh.wanted.lock().send(());
            }
            Err(e) => crate::warn!("no fresh-files thread ({e}): starts create their files"),
        }
        fresh
    }

    /// Puts an empty file (0600) at `target`, which must not exist, without making an inode;
    /// false if none was ready or `target` exists (the caller then opens it as it would have).
    pub fn place(&self, target: &Path) -> bool {
        let Some(file) = self.ready.lock().pop() else {
            let _ = self.wanted.lock().send(());
            return false;
        };
        match rename_noreplace(&file, target) {
            Ok(()) => {
                let _ = self.wanted.lock().send(());
                true
            }
            Err(_) => {
                self.ready.lock().push(file);
                false
            }
        }
    }

    /// Deletes the files still ready (the supervisor is stopping).
    pub fn clear(&self) {
        // After the files being made, if any: they are ready, then deleted here with the others.
        let mut stopped = self.work.lock();
        *stopped = true;
        for file in std::mem::take(&mut *self.ready.lock()) {
            let _ = std::fs::remove_file(file);
        }
    }

    /// Makes files until KEPT are ready (the thread's work).
    fn fill(&self) {
        use std::os::unix::fs::DirBuilderExt;
        let stopped = self.work.lock();
        if *stopped {
            return;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return,
            _ => {}
        }
        while self.ready.lock().len() < KEPT {
            let path = self.dir.join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
            let made = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
            match made {
                Ok(_) => self.ready.lock().push(path),
                Err(_) => return,
            }
        }
    }
}

/// rename(2) that fails with EEXIST instead of replacing `to`.
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two C strings that outlive the call.
    let r =
        unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE) };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

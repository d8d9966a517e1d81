//! Empty files made ahead, for the files a start creates: its record, the record's spare, its log,
//! a bridged container's lease.
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
use std::sync::Arc;

use super::made_ahead::MadeAhead;

/// Below the supervisor's root; emptied at every supervisor start.
pub const FRESH_DIR: &str = "fresh";
/// Files kept ready: a start takes three (four with a bridge).
const KEPT: usize = 12;

pub struct FreshFiles {
    files: Arc<MadeAhead<PathBuf>>,
}

impl FreshFiles {
    /// Empties `<root>/fresh/` (a dead supervisor's files) and starts the thread that fills it.
    pub fn start(root: &Path) -> Arc<FreshFiles> {
        let dir = root.join(FRESH_DIR);
        super::overlay_ahead::remove_leftovers(&dir);
        let mut next = 0u64;
        let files = MadeAhead::start("fresh-files", KEPT, move || {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return None,
                _ => {}
            }
            next += 1;
            let path = dir.join(next.to_string());
            let made = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
            made.ok().map(|_| path)
        });
        Arc::new(FreshFiles { files })
    }

    /// Puts an empty file (0600) at `target`, which must not exist, without making an inode;
    /// false if none was ready or `target` exists (the caller then opens it as it would have).
    pub fn place(&self, target: &Path) -> bool {
        let Some(file) = self.files.take() else { return false };
        match rename_noreplace(&file, target) {
            Ok(()) => true,
            Err(_) => {
                self.files.put_back(file);
                false
            }
        }
    }

    /// Deletes the files still ready (the supervisor is stopping).
    pub fn clear(&self) {
        for file in self.files.clear() {
            let _ = std::fs::remove_file(file);
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

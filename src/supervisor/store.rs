//! Container records on disk: `<root>/containers/<name>.json`, one per container, each replaced
//! atomically so a crash leaves either the old record or the new one, never a torn file: the new
//! one is written over the container's spare (`.<name>.json.spare`, the record before last) and
//! exchanged with the old (RENAME_EXCHANGE), which becomes the next spare. No save after a
//! container's second makes or frees an inode: on this host's ext4 (no journal), every inode
//! made scans past the inodes freed in the last minutes, so a temp file per save (and the old
//! record freed per save) made each start slower than the one before (issue 14). Records hold the container's whole environment (passwords included), so
//! every file is created 0600 in a 0700 directory.
//!
//! A rename is on disk for every later reader as soon as it returns, a killed supervisor
//! included (the page cache outlives it); an fsync only adds survival of a power loss or a
//! kernel crash, which also ends every container. So the start and exit of a container do not
//! wait for one ([`Durability::Soon`]): the record syncer fsyncs the records of the last moments
//! together a few milliseconds later (a group commit), off the path a user waits on.
//!
//! The records a removal unlinks are held open across the unlink and closed by the record syncer:
//! the inodes are freed at that close. Freeing one waits for its page's writeback and, on a
//! filesystem mounted with `discard` (this host's root), for a synchronous discard of its block:
//! 0.8 ms of a container's exit when each save freed the record it replaced (issue 14).
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::record::ContainerRecord;

/// How far a save goes before it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and the directory: the record survives a power loss.
    Synced,
    /// Renamed into place now; fsync'd by [`Store::sync_owed`] (the record syncer) shortly after,
    /// together with the others saved meanwhile.
    Soon,
    /// Renamed into place only: survives a crash of the supervisor (the page cache does), which is
    /// all a transition needs whose predecessor on disk already leads a restart to the truth.
    Renamed,
}

pub struct Store {
    dir: PathBuf,
    /// Where new records' files come from, when the supervisor keeps some (see `fresh_files`).
    fresh: Option<std::sync::Arc<super::fresh_files::FreshFiles>>,
    /// Names of records saved with [`Durability::Soon`] whose fsync is still owed.
    owed: Mutex<BTreeSet<String>>,
    /// Records replaced or unlinked, held open so that their inodes are freed by the syncer.
    replaced: Mutex<Vec<File>>,
    owed_added: Condvar,
}

impl Store {
    pub fn open(root: &Path) -> io::Result<Store> {
        let dir = root.join("containers");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(Store {
            dir,
            fresh: None,
            owed: Mutex::new(BTreeSet::new()),
            replaced: Mutex::new(Vec::new()),
            owed_added: Condvar::new(),
        })
    }

    /// New records and spares take their files from `fresh` (no inode made on the path).
    pub fn with_fresh_files(mut self, fresh: std::sync::Arc<super::fresh_files::FreshFiles>) -> Store {
        self.fresh = Some(fresh);
        self
    }

    /// Blocks until some record's fsync (or a replaced record's close) is owed, or `timeout`
    /// passes; whether one is.
    pub fn wait_owed(&self, timeout: Duration) -> bool {
        let mut owed = self.owed.lock();
        if owed.is_empty() && self.replaced.lock().is_empty() {
            self.owed_added.wait_for(&mut owed, timeout);
        }
        !owed.is_empty() || !self.replaced.lock().is_empty()
    }

    /// fsyncs every record saved with [`Durability::Soon`] since the last call, then the
    /// directory once (their renames, and the unlinks of removed records). A record removed
    /// meanwhile needs nothing; one that fails stays owed for the next call, and the first
    /// error is returned.
    pub fn sync_owed(&self) -> io::Result<()> {
        // Frees the inodes of the records replaced meanwhile (see the module's comment).
        drop(std::mem::take(&mut *self.replaced.lock()));
        let names = std::mem::take(&mut *self.owed.lock());
        if names.is_empty() {
            return Ok(());
        }
        let mut failed = BTreeSet::new();
        let mut first_error = None;
        for name in &names {
            match File::open(self.path(name)).and_then(|f| f.sync_all()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_error.get_or_insert(e);
                    failed.insert(name.clone());
                }
                _ => {}
            }
        }
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            // The renames are not known to be durable: every one is owed again.
            first_error.get_or_insert(e);
            failed = names;
        }
        self.owed.lock().extend(failed);
        first_error.map_or(Ok(()), Err)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The record before last, rewritten by the next save ([`Store::write_spare`]).
    fn spare_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.json.spare"))
    }

    pub fn save(&self, record: &ContainerRecord, durability: Durability) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        let (path, spare) = (self.path(record.name()), self.spare_path(record.name()));
        self.write_spare(&spare, &bytes, durability).and_then(|()| swap_in(&spare, &path)).inspect_err(|_| {
            // A half-written spare holds disk space the retry will need.
            let _ = fs::remove_file(&spare);
        })?;
        match durability {
            Durability::Synced => File::open(&self.dir)?.sync_all(),
            Durability::Soon => {
                self.owed.lock().insert(record.name().to_string());
                self.owed_added.notify_one();
                Ok(())
            }
            Durability::Renamed => Ok(()),
        }
    }

    /// Writes `bytes` over the spare (the record before last, kept by [`swap_in`]; made if there
    /// is none): no new inode and no freed one once a container has two (see the module's
    /// comment). The spare is never read, so a torn write there harms nothing.
    fn write_spare(&self, spare: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Some(fresh) = self.fresh.as_ref().filter(|_| !spare.exists()) {
            fresh.place(spare);
        }
        let f = OpenOptions::new().write(true).create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(spare)?;
        f.write_all_at(bytes, 0)?;
        // Shorter than the old record: cut the rest (within the same block, nothing is freed).
        f.set_len(bytes.len() as u64)?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        Ok(())
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        for path in [self.spare_path(name), self.path(name)] {
            let removed = File::open(&path).ok();
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => self.close_later(removed),
            }
        }
        Ok(())
    }

    /// Hands a record that has just lost its last link to the syncer, which closes it.
    fn close_later(&self, file: Option<File>) {
        if let Some(file) = file {
            // Under the lock the syncer waits with, so the notification cannot fall between its
            // check and its wait.
            let _owed = self.owed.lock();
            self.replaced.lock().push(file);
            self.owed_added.notify_one();
        }
    }

    /// Every readable record; leftovers of interrupted writes are deleted, unreadable files are
    /// reported and skipped rather than stopping the supervisor.
    pub fn load_all(&self) -> io::Result<Vec<ContainerRecord>> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Spares hold only older records; the next save makes one again.
            if name.starts_with('.') && (name.ends_with(".tmp") || name.ends_with(".spare")) {
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => records.push(r),
                Err(e) => crate::warn!("skipping unreadable record {}: {e}", path.display()),
            }
        }
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(records)
    }
}

/// Puts the new record (`spare`) in place of the old one at `path`, atomically: a reader (or a
/// supervisor after a crash) finds one or the other, whole. An exchange keeps the old record
/// as the next spare; the first save, or a filesystem without RENAME_EXCHANGE, renames.
fn swap_in(spare: &Path, path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (from, to) = (c(spare)?, c(path)?);
    // SAFETY: two NUL-terminated paths that outlive the call.
    let exchanged =
        unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_EXCHANGE) };
    if exchanged == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        // No record yet (ENOENT), or no exchange on this filesystem.
        e if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS)) => fs::rename(spare, path),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records of `dir` this process still holds open after their last link went.
    fn unlinked_but_open(dir: &Path) -> usize {
        let gone = format!("{}/", dir.display());
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .filter(|link| link.to_string_lossy().starts_with(&gone) && link.to_string_lossy().ends_with(" (deleted)"))
            .count()
    }

    fn inode(path: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap())
    }

    #[test]
    fn saves_reuse_two_inodes_and_a_removed_record_is_freed_by_the_syncer_not_on_the_path() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let spec = crate::supervisor::spec::ContainerSpec { name: "r1".into(), ..Default::default() };
        let mut record = ContainerRecord::new(spec, root.path().join("r1.log"), String::new());
        let mut seen = BTreeSet::new();
        for round in 0..6u32 {
            record.restart_count = round;
            store.save(&record, Durability::Renamed).unwrap();
            let on_disk: ContainerRecord = serde_json::from_slice(&fs::read(store.path("r1")).unwrap()).unwrap();
            assert_eq!(on_disk.restart_count, round, "the newest record is not the one in place");
            seen.insert(inode(&store.path("r1")));
            assert_eq!(unlinked_but_open(store.dir()), 0, "save {round} freed a record");
        }
        assert_eq!(seen.len(), 2, "six saves made {} inodes", seen.len());
        assert!(!store.wait_owed(Duration::ZERO));

        store.remove("r1").unwrap();
        assert!(!store.path("r1").exists() && !store.spare_path("r1").exists());
        assert_eq!(unlinked_but_open(store.dir()), 2, "the removal freed the record or its spare");
        assert!(store.wait_owed(Duration::ZERO), "the syncer is not told of the removed record");
        store.sync_owed().unwrap();
        assert_eq!(unlinked_but_open(store.dir()), 0, "the syncer did not free them");
        assert!(!store.wait_owed(Duration::ZERO));
    }

    #[test]
    fn a_spare_left_by_a_crash_is_not_loaded_as_a_record_and_is_deleted() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let spec = crate::supervisor::spec::ContainerSpec { name: "r2".into(), ..Default::default() };
        let record = ContainerRecord::new(spec, root.path().join("r2.log"), String::new());
        store.save(&record, Durability::Renamed).unwrap();
        store.save(&record, Durability::Renamed).unwrap();
        assert!(store.spare_path("r2").exists());
        fs::write(store.spare_path("r2"), b"{torn").unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.iter().map(|r| r.name().to_string()).collect::<Vec<_>>(), ["r2"]);
        assert!(!store.spare_path("r2").exists());
    }
}

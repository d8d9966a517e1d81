//! Container records on disk: `<root>/containers/<name>.json`, one per container, each replaced
//! atomically (write a temp file, rename) so a crash leaves either the old record or the new one,
//! never a torn file. Records hold the container's whole environment (passwords included), so
//! every file is created 0600 in a 0700 directory.
//!
//! A rename is on disk for every later reader as soon as it returns, a killed supervisor
//! included (the page cache outlives it); an fsync only adds survival of a power loss or a
//! kernel crash, which also ends every container. So the start and exit of a container do not
//! wait for one ([`Durability::Soon`]): the record syncer fsyncs the records of the last moments
//! together a few milliseconds later (a group commit), off the path a user waits on.
//!
//! The record a save replaces (or a removal unlinks) is held open across the rename and closed
//! by the record syncer: the inode is freed at that close, not in the rename. Freeing it waits
//! for its page's writeback and, on a filesystem mounted with `discard` (this host's root), for
//! a synchronous discard of its block: 0.8 ms of a container's exit, measured (issue 14).
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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
            owed: Mutex::new(BTreeSet::new()),
            replaced: Mutex::new(Vec::new()),
            owed_added: Condvar::new(),
        })
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

    pub fn save(&self, record: &ContainerRecord, durability: Durability) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{}.json.tmp", record.name()));
        let path = self.path(record.name());
        let replaced = File::open(&path).ok();
        let written = self.write_tmp(&tmp, record, durability).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            // A half-written temp file holds disk space the retry will need.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.close_later(replaced);
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

    fn write_tmp(&self, tmp: &Path, record: &ContainerRecord, durability: Durability) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(tmp)?;
        f.write_all(&bytes)?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        Ok(())
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        let path = self.path(name);
        let removed = File::open(&path).ok();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => {
                self.close_later(removed);
                Ok(())
            }
        }
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
            if name.starts_with('.') && name.ends_with(".tmp") {
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

    #[test]
    fn a_replaced_or_removed_record_is_freed_by_the_syncer_not_on_the_path() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let spec = crate::supervisor::spec::ContainerSpec { name: "r1".into(), ..Default::default() };
        let record = ContainerRecord::new(spec, root.path().join("r1.log"), String::new());
        store.save(&record, Durability::Renamed).unwrap();
        assert_eq!(unlinked_but_open(store.dir()), 0, "a first save replaced nothing");
        store.save(&record, Durability::Renamed).unwrap();
        assert_eq!(unlinked_but_open(store.dir()), 1, "the save freed the record it replaced");
        assert!(store.wait_owed(Duration::ZERO), "the syncer is not told of the replaced record");
        store.sync_owed().unwrap();
        assert_eq!(unlinked_but_open(store.dir()), 0, "the syncer did not free it");

        store.remove("r1").unwrap();
        assert!(!store.path("r1").exists());
        assert_eq!(unlinked_but_open(store.dir()), 1, "the removal freed the record");
        store.sync_owed().unwrap();
        assert_eq!(unlinked_but_open(store.dir()), 0);
        assert!(!store.wait_owed(Duration::ZERO));
    }
}

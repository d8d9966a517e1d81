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
    owed_added: Condvar,
}

impl Store {
    pub fn open(root: &Path) -> io::Result<Store> {
        let dir = root.join("containers");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(Store { dir, owed: Mutex::new(BTreeSet::new()), owed_added: Condvar::new() })
    }

    /// Blocks until some record's fsync is owed, or `timeout` passes; whether one is.
    pub fn wait_owed(&self, timeout: Duration) -> bool {
        let mut owed = self.owed.lock();
        if owed.is_empty() {
            self.owed_added.wait_for(&mut owed, timeout);
        }
        !owed.is_empty()
    }

    /// fsyncs every record saved with [`Durability::Soon`] since the last call, then the
    /// directory once (their renames, and the unlinks of removed records). A record removed
    /// meanwhile needs nothing; one that fails stays owed for the next call, and the first
    /// error is returned.
    pub fn sync_owed(&self) -> io::Result<()> {
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
        let written =
            self.write_tmp(&tmp, record, durability).and_then(|()| fs::rename(&tmp, self.path(record.name())));
        if let Err(e) = written {
            // A half-written temp file holds disk space the retry will need.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
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
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
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

//! Container records on disk: `<root>/containers/<name>.json`, one per container, each replaced
//! atomically (write a temp file, fsync, rename, fsync the directory) so a crash leaves either the
//! old record or the new one, never a torn file.
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::container::state::ContainerRecord;

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> io::Result<Store> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir)?;
        Ok(Store { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn save(&self, record: &ContainerRecord) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{}.json.tmp", record.name()));
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, self.path(record.name()))?;
        File::open(&self.dir)?.sync_all()
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

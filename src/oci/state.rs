//! The state directory: `<root>/<id>/` (0711, as runc's: an init that is root of a user namespace
//! must reach exec.fifo through it; its files are 0600 or the fifo's 0622) per container, holding
//! - `state.json`: what later verbs need (pid and its start time, bundle, cgroup, annotations),
//!   written atomically (temp file, rename), so no reader ever sees a torn record. Not fsync'd
//!   (nor are runc's and crun's): the record describes processes that cannot outlive the machine,
//!   and the fsync was 0.4 ms of an 8 ms `run` on an idle disk, 14 ms on a busy one. A power loss
//!   can leave an empty state.json (the rename reached the disk, the data did not); such a
//!   container reads as stopped, and `delete` removes it;
//! - `exec.fifo` (0622) while the container is created and not yet started: the init blocks
//!   opening it for writing until `start` opens it for reading (runc's create/start split).
//!
//! Verbs on one id serialise on an flock of the container's directory itself: a verb holds it
//! from open to exit, so `delete` cannot pull the directory from under a `start`. One that waited
//! while the directory was removed finds no state.json and answers "does not exist".
//!
//! The status is derived, never stored (as runc): stopped when the pid is gone, a zombie, or a
//! different process (its start time in /proc/PID/stat differs: pids are reused); created while
//! exec.fifo exists; paused when the cgroup is frozen; else running.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{OciError, Result};

/// runc's default is /run/runc; ours is our own, so the two never read each other's records.
pub const DEFAULT_ROOT: &str = "/run/engine-oci";
const STATE_FILE: &str = "state.json";
pub const FIFO_NAME: &str = "exec.fifo";
/// The runtime-spec version engine implements (runc 1.1 says 1.0.2-dev).
pub const OCI_VERSION: &str = "1.0.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `create` leaves for the other verbs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    /// Host pid of the container's process (the init, which execs spec.process).
    pub pid: i32,
    /// Its start time (clock ticks after boot, /proc/PID/stat field 22): tells it from a later
    /// process that got the same pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339.
    pub created: String,
    /// The container's cgroup directories (one on v2, one per hierarchy on v1).
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// Its cgroupsPath, absolute (what `Cgroup::open_oci` takes).
    #[serde(default)]
    pub cgroup_path: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Registered with /dev/container_monitor under `pid` (unregistered at delete).
    #[serde(default)]
    pub monitored: bool,
    /// The config's hooks, kept for the verbs after create (poststart, poststop): the bundle may
    /// have changed or gone by then, as runc keeps its copy of the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// No mount namespace of its own: the id of the root's bind in engine-oci's namespace (the
    /// Spec's mounts below it), which delete detaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_root_mount: Option<u64>,
}

/// The spec's state (runtime-spec "state"), as `state` prints it and hooks read it on stdin;
/// runc's extra fields (rootfs, created, owner) too, which podman reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Record {
    pub fn spec_state(&self, status: Status) -> SpecState {
        SpecState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            // runc reports 0 once stopped: the number may belong to someone else by now.
            pid: if status == Status::Stopped { 0 } else { self.pid },
            bundle: self.bundle.clone(),
            rootfs: Some(self.rootfs.clone()),
            created: Some(self.created.clone()),
            owner: Some(String::new()),
            annotations: self.annotations.clone(),
        }
    }
}

/// runc's rule (`^[\w+-\.]+$`, the class holding '+', ',', '-' and '.'), and never "." or "..":
/// the id names a directory under the root.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.bytes().all(|c| c.is_ascii_alphanumeric() || b"_+,-.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(OciError::InvalidId(id.to_string()))
    }
}

/// The root directory (`--root`).
#[derive(Debug, Clone)]
pub struct Root {
    pub dir: PathBuf,
}

/// A container's directory, flock'd for as long as this lives.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    /// The directory, open: holds the flock (released when closed).
    _lock: File,
    pub record: Option<Record>,
    /// state.json is there but empty: written just before a power loss (see the module header).
    lost: bool,
}

impl Root {
    pub fn new(dir: PathBuf) -> Root {
        Root { dir }
    }

    /// Makes `<root>/<id>/` for a new container and locks it. Exists when it is there already:
    /// mkdir is the atomic test, so two creates of one id cannot both win.
    pub fn create(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.dir)
            .map_err(OciError::io(format!("creating the state root {}", self.dir.display())))?;
        // A root made 0700 by an earlier version: a user namespace's root could not reach the fifo.
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o711))
            .map_err(OciError::io(format!("setting the mode of the state root {}", self.dir.display())))?;
        let dir = self.dir.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(OciError::Exists(id.to_string())),
            Err(e) => return Err(OciError::io(format!("creating the state directory {}", dir.display()))(e)),
        }
        match lock(&dir) {
            Ok(f) => Ok(Container { id: id.to_string(), dir, _lock: f, record: None, lost: false }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Opens and locks an existing container, with its record.
    pub fn open(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = self.dir.join(id);
        let f = match lock(&dir) {
            Ok(f) => f,
            Err(OciError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Err(OciError::NotExist(id.to_string()))
            }
            Err(e) => return Err(e),
        };
        let record = match fs::read(dir.join(STATE_FILE)) {
            Ok(bytes) if bytes.is_empty() => {
                return Ok(Container { id: id.to_string(), dir, _lock: f, record: None, lost: true })
            }
            Ok(bytes) => serde_json::from_slice::<Record>(&bytes).map_err(|e| {
                OciError::Other(format!("reading the state of container \"{id}\": {}: {e}", dir.display()))
            })?,
            // Removed while we waited for the lock, or a create still in progress failed.
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(OciError::NotExist(id.to_string())),
            Err(e) => return Err(OciError::io(format!("reading {}", dir.join(STATE_FILE).display()))(e)),
        };
        Ok(Container { id: id.to_string(), dir, _lock: f, record: Some(record), lost: false })
    }

    /// The ids with a directory under the root, sorted; an absent root holds none.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(OciError::io(format!("listing {}", self.dir.display()))(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock(dir: &Path) -> Result<File> {
    let f = File::open(dir).map_err(OciError::io(format!("opening the state directory {}", dir.display())))?;
    // SAFETY: flock on an fd we own; blocks until the other verb on this id is done.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(OciError::io(format!("locking {}", dir.display()))(std::io::Error::last_os_error()));
    }
    Ok(f)
}

impl Container {
    pub fn fifo(&self) -> PathBuf {
        self.dir.join(FIFO_NAME)
    }

    /// The record; a Container from `create` has none until `save`.
    pub fn record(&self) -> Result<&Record> {
        if self.lost {
            return Err(OciError::Other(format!(
                "the state of container \"{}\" was lost in a crash (empty {}): `delete` removes it",
                self.id,
                self.dir.join(STATE_FILE).display()
            )));
        }
        self.record.as_ref().ok_or_else(|| OciError::NotExist(self.id.clone()))
    }

    /// Makes exec.fifo, mode 0622 whatever the umask (runc's mode: anyone may open it for
    /// writing, only root for reading, which is what `start` does).
    pub fn make_fifo(&self) -> Result<PathBuf> {
        let path = self.fifo();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(OciError::nix(format!("creating {}", path.display())))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o622))
            .map_err(OciError::io(format!("setting the mode of {}", path.display())))?;
        Ok(path)
    }

    /// Writes state.json atomically: temp file in the same directory, rename (no fsync: see the
    /// module header).
    pub fn save(&mut self, record: Record) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let step = || format!("writing {}", path.display());
        let bytes = serde_json::to_vec(&record).map_err(|e| OciError::Other(format!("{}: {e}", step())))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(OciError::io(step()))?;
        f.write_all(&bytes).map_err(OciError::io(step()))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(OciError::io(step()))?;
        self.record = Some(record);
        Ok(())
    }

    pub fn status(&self) -> Status {
        match &self.record {
            None if self.lost => Status::Stopped,
            None => Status::Creating,
            Some(r) => derive_status(r, &self.fifo()),
        }
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(OciError::io(format!("removing the state directory {}", self.dir.display()))(e)),
        }
    }
}

pub fn derive_status(r: &Record, fifo: &Path) -> Status {
    if !process_is(r.pid, r.pid_start) {
        return Status::Stopped;
    }
    if fifo.exists() {
        return Status::Created;
    }
    if super::cgroups::is_frozen(r) {
        return Status::Paused;
    }
    Status::Running
}

/// Whether `pid` is alive (not a zombie) and started at `start` ticks.
pub fn process_is(pid: i32, start: u64) -> bool {
    pid > 0 && crate::container::pidfd::live_start_ticks(pid) == Some(start)
}

/// The start time of a live `pid`, for a new record.
pub fn start_ticks(pid: i32) -> Result<u64> {
    crate::container::pidfd::process_start_ticks(pid)
        .ok_or_else(|| OciError::Other(format!("reading /proc/{pid}/stat: no such process")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_runc() {
        for ok in ["a", "abc-1.2_3", "x+y", "a,b", "0123456789abcdef", "..a"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a\n", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_process_is_alive_and_others_start_time_is_not_ours() {
        let me = std::process::id() as i32;
        let t = start_ticks(me).unwrap();
        assert!(process_is(me, t));
        assert!(!process_is(me, t + 1));
        assert!(!process_is(0, 0));
    }

    #[test]
    fn create_open_save_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path().join("root"));
        let mut c = root.create("c1").unwrap();
        assert!(matches!(root.create("c1"), Err(OciError::Exists(_))));
        assert_eq!(c.status(), Status::Creating);
        let me = std::process::id() as i32;
        let rec = Record {
            id: "c1".into(),
            pid: me,
            pid_start: start_ticks(me).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            cgroup_paths: vec![],
            cgroup_path: String::new(),
            annotations: BTreeMap::new(),
            monitored: false,
            hooks: None,
            host_root_mount: None,
        };
        c.save(rec.clone()).unwrap();
        let fifo = c.make_fifo().unwrap();
        use std::os::unix::fs::FileTypeExt;
        let meta = fs::metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o777, 0o622);
        assert_eq!(fs::metadata(&c.dir).unwrap().permissions().mode() & 0o777, 0o711);
        assert_eq!(c.status(), Status::Created);
        drop(c);
        let c = root.open("c1").unwrap();
        assert_eq!(c.record.as_ref(), Some(&rec));
        assert_eq!(root.ids().unwrap(), vec!["c1".to_string()]);
        c.remove().unwrap();
        assert!(matches!(root.open("c1"), Err(OciError::NotExist(_))));
        assert!(root.ids().unwrap().is_empty());
    }

    #[test]
    fn an_empty_record_left_by_a_power_loss_reads_as_stopped_and_is_removable() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path().join("root"));
        drop(root.create("c1").unwrap());
        fs::write(tmp.path().join("root/c1").join(STATE_FILE), b"").unwrap();
        let c = root.open("c1").expect("an empty state.json opens");
        assert_eq!(c.status(), Status::Stopped);
        let msg = c.record().unwrap_err().to_string();
        assert!(msg.contains("lost in a crash"), "{msg}");
        c.remove().unwrap();
        assert!(matches!(root.open("c1"), Err(OciError::NotExist(_))));
    }
}

//! Small file operations on cgroup directories, each turning io::Error into a CgroupError
//! that names the path; plus the kill-and-remove sequence shared by v1 and v2.

use super::CgroupError;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read { path: path.into(), source })
}

pub fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = read(path)?;
    s.trim().parse().map_err(|_| CgroupError::Parse { path: path.into(), content: s })
}

/// Reads a number if the file exists (it depends on the kernel and on enabled controllers).
pub fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    if path.exists() {
        read_u64(path).map(Some)
    } else {
        Ok(None)
    }
}

/// One value from a flat-keyed file such as memory.events or cpu.stat ("key value" lines).
pub fn read_key(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let s = read(path)?;
    for line in s.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            return it
                .next()
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| CgroupError::Parse { path: path.into(), content: line.into() });
        }
    }
    Ok(None)
}

/// Writes with one write(2) and no O_CREAT or O_TRUNC: cgroup files exist or the
/// controller is absent, and the kernel parses each write as one value.
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    Writer::first(path, value).map(drop)
}

/// A cgroup file kept open for several writes, each of which the kernel takes as one value.
pub struct Writer {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl Writer {
    /// `path` opened, and `value` written to it.
    pub fn first(path: &Path, value: &str) -> Result<Writer, CgroupError> {
        let failed = |source| CgroupError::Write { path: path.into(), value: value.into(), source };
        let file = std::fs::OpenOptions::new().write(true).open(path).map_err(failed)?;
        let mut writer = Writer { path: path.into(), file };
        writer.write(value)?;
        Ok(writer)
    }

    pub fn write(&mut self, value: &str) -> Result<(), CgroupError> {
        self.file.write_all(value.as_bytes()).map_err(|source| CgroupError::Write {
            path: self.path.clone(),
            value: value.into(),
            source,
        })
    }
}

pub fn mkdir(path: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => CgroupError::AlreadyExists { path: path.into() },
        _ => CgroupError::Mkdir { path: path.into(), source },
    })
}

/// Creates every missing directory from `root` (which must exist) down to `dir`, calling
/// `init` on each new one (v1 cpuset needs its cpus/mems filled before it can be used).
pub fn mkdir_parents(
    root: &Path,
    dir: &Path,
    mut init: impl FnMut(&Path) -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => init(&cur)?,
            // Someone (maybe a parallel create) made it: it may still need initialising.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => init(&cur)?,
            Err(source) => return Err(CgroupError::Mkdir { path: cur, source }),
        }
    }
    Ok(())
}

pub fn procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let s = read(&path)?;
    s.lines()
        .map(|l| l.trim().parse().map_err(|_| CgroupError::Parse { path: path.clone(), content: l.into() }))
        .collect()
}

/// Lines in a file: the task count when no pids controller keeps one for us.
pub fn count_lines(path: &Path) -> Result<u64, CgroupError> {
    Ok(read(path)?.lines().filter(|l| !l.trim().is_empty()).count() as u64)
}

/// How long remove() waits for killed processes to leave their group.
const KILL_WAIT: Duration = Duration::from_secs(3);

/// Sends SIGKILL to every process in `dirs` until they are all empty: a process may fork
/// between reading cgroup.procs and the kill, so repeat until nothing is left. Pids are
/// only ever read from the group itself, never remembered across rounds.
/// `kill_file` is v2's cgroup.kill, which kills the whole group atomically.
pub fn kill_all(dirs: &[PathBuf], kill_file: Option<&Path>, errors: &mut Vec<CgroupError>) {
    if let Some(f) = kill_file {
        if let Err(e) = write(f, "1") {
            errors.push(e);
        }
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let mut left = BTreeSet::new();
        for d in dirs.iter().filter(|d| d.exists()) {
            match procs(d) {
                Ok(p) => left.extend(p),
                Err(e) => {
                    errors.push(e);
                    return;
                }
            }
        }
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            errors.push(CgroupError::StillPopulated { path: dirs[0].clone(), pids: left.into_iter().collect() });
            return;
        }
        for &pid in &left {
            // SAFETY: kill(2) has no memory effects; ESRCH just means it already went.
            if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    errors.push(CgroupError::Kill { pid, path: dirs[0].clone(), source: err });
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// rmdir with a few retries: the kernel may still be finishing the exit of a killed task.
pub fn rmdir(dir: &Path) -> Result<(), CgroupError> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => return Err(CgroupError::Rmdir { path: dir.into(), source }),
        }
    }
}

/// Names of the subdirectories of `dir` (no error if `dir` does not exist).
pub fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

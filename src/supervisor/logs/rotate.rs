//! `--log-opt max-size=SIZE --log-opt max-file=N`, as Docker's json-file driver: when the next
//! record would take `NAME.log` past max-size, it becomes `NAME.log.1` (older ones shift up, the one
//! beyond max-file is removed) and a new `NAME.log` starts. Records are never split across files.
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Without options a log keeps at most 5 files of 100 MiB: a runaway container cannot fill the
/// disk, yet `engine logs` of any ordinary container is complete (Docker's json-file default is
/// unlimited; its `local` driver's 20 MiB × 5 would cut `logs` short at 100 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 100 << 20;
pub const DEFAULT_MAX_FILE: u32 = 5;

/// The options as given; absent ones take the defaults. `max_size` 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file: Option<u32>,
}

/// What the writer applies: `max_size` u64::MAX when unlimited; `max_file` ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_file: u32,
}

impl Rotation {
    pub const UNLIMITED: Rotation = Rotation { max_size: u64::MAX, max_file: 1 };
}

impl LogConfig {
    pub fn rotation(&self) -> Rotation {
        match self.max_size.unwrap_or(DEFAULT_MAX_SIZE) {
            0 => Rotation::UNLIMITED,
            max_size => Rotation { max_size, max_file: self.max_file.unwrap_or(DEFAULT_MAX_FILE).max(1) },
        }
    }

    /// Applies one `--log-opt KEY=VALUE`; the last one of a key wins, as in Docker.
    pub fn apply(&mut self, opt: &str) -> Result<(), String> {
        let Some((key, value)) = opt.split_once('=') else {
            return Err(format!("invalid --log-opt {opt:?}: expected KEY=VALUE (max-size=10m, max-file=3)"));
        };
        match key {
            // -1 is the way out of the default limit (Docker's own default is unlimited).
            "max-size" if value == "-1" => self.max_size = Some(0),
            "max-size" => match crate::cgroup::parse_size(value) {
                Ok(0) => return Err(format!("invalid --log-opt {opt:?}: max-size must be positive (-1: unlimited)")),
                Ok(n) => self.max_size = Some(n),
                Err(_) => {
                    return Err(format!(
                        "invalid --log-opt {opt:?}: expected a size such as 10m, 512k, 1g, or -1 for unlimited"
                    ))
                }
            },
            "max-file" => match value.parse::<u32>() {
                Ok(n) if n >= 1 => self.max_file = Some(n),
                _ => return Err(format!("invalid --log-opt {opt:?}: max-file must be a whole number of at least 1")),
            },
            _ => return Err(format!("unknown --log-opt {key:?} (engine knows max-size and max-file)")),
        }
        Ok(())
    }
}

/// `NAME.log.K`, the K-th newest rotated file (K ≥ 1); K = 0 is `NAME.log` itself.
pub fn rotated_path(path: &Path, k: u64) -> PathBuf {
    if k == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

/// Where the writer makes the next file before the shift, so a failure leaves the set as it was.
pub fn next_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
}

/// The rotated files that exist, oldest first (`NAME.log.K` ... `NAME.log.1`), without `NAME.log`.
pub fn existing_rotated(path: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for k in 1.. {
        let p = rotated_path(path, k);
        if std::fs::symlink_metadata(&p).is_err() {
            break;
        }
        found.push(p);
    }
    found.reverse();
    found
}

/// Removes `NAME.log` and every rotated or half-made file of it; reports the first failure.
pub fn remove_all(path: &Path) -> io::Result<()> {
    let mut first_error = None;
    let dir = path.parent().unwrap_or(Path::new("."));
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else { return Ok(()) };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if container_of(file) == Some(base.strip_suffix(".log").unwrap_or(base)) {
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_error.get_or_insert(e);
                }
                _ => {}
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The container a file of the logs directory belongs to: `NAME.log`, `NAME.log.K`, `NAME.log.next`.
pub fn container_of(file: &str) -> Option<&str> {
    if let Some(name) = file.strip_suffix(".log") {
        return Some(name);
    }
    let (base, tail) = file.rsplit_once('.')?;
    let rotated = tail == "next" || (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()));
    base.strip_suffix(".log").filter(|_| rotated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_docker_spells_them() {
        let mut c = LogConfig::default();
        assert_eq!(c.rotation(), Rotation { max_size: DEFAULT_MAX_SIZE, max_file: DEFAULT_MAX_FILE });
        c.apply("max-size=10m").unwrap();
        c.apply("max-file=3").unwrap();
        assert_eq!(c.rotation(), Rotation { max_size: 10 << 20, max_file: 3 });
        c.apply("max-size=-1").unwrap();
        assert_eq!(c.rotation(), Rotation::UNLIMITED);
        for bad in ["max-size=abc", "max-size=0", "max-file=0", "max-file=x", "mode=non-blocking", "max-size"] {
            assert!(LogConfig::default().apply(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_are_told_apart_by_container() {
        assert_eq!(container_of("web.log"), Some("web"));
        assert_eq!(container_of("web.log.3"), Some("web"));
        assert_eq!(container_of("web.log.next"), Some("web"));
        assert_eq!(container_of("a.log.log.1"), Some("a.log"));
        assert_eq!(container_of("web.log.x"), None);
        assert_eq!(container_of("web.json"), None);
        assert_eq!(rotated_path(Path::new("/l/w.log"), 2), PathBuf::from("/l/w.log.2"));
    }
}

//! Resource limits through cgroups: v2 and v1 behind one small trait.
//!
//! A container's group is `<parent>/<name>` (parent "engine" by default) in the v2
//! hierarchy, or in each v1 controller hierarchy it needs. The caller creates the group,
//! adds the child's pid before releasing it, reads stats, and removes the group when the
//! container ends; `cleanup_stale_in` removes groups left by a crashed supervisor.
//!
//! ```text
//! let cg = Cgroup::create_in("engine", name, &Limits { memory_max: Some(parse_size("10m")?), ..Default::default() })?;
//! cg.add_pid(child_pid)?;            // before the child is released
//! // ... the container runs; cg.stats() for `engine stats` ...
//! let oom = cg.oom_killed();         // after it exited: "killed (oom)"
//! cg.remove()?;
//! ```

pub mod ahead;
mod devices;
mod error;
mod fs;
mod layout;
mod limits;
mod oci;
mod parse;
mod v1;
mod v2;

pub use error::CgroupError;
pub use limits::{Limits, Stats, DEFAULT_PIDS_MAX};
pub use oci::{FreezerState, OciStats, IGNORED_V1, IGNORED_V2};
pub use parse::{format_cpuset, parse_cpus, parse_cpuset, parse_size};

use layout::Layout;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Parent of the containers' groups in each hierarchy.
pub const DEFAULT_PARENT: &str = "engine";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    V1,
    V2,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        })
    }
}

/// What differs between v1 and v2 once a group exists.
trait Backend: Send + Sync {
    fn version(&self) -> Version;
    fn paths(&self) -> Vec<PathBuf>;
    fn add_pid(&self, pid: i32) -> Result<(), CgroupError>;
    fn stats(&self) -> Result<Stats, CgroupError>;
    fn oom_killed(&self) -> bool;
    /// Kills what is left, removes the directories; every error met, not just the first.
    fn remove(self: Box<Self>) -> Vec<CgroupError>;
    fn dirs(&self) -> Dirs<'_>;
}

/// The group's directories, for the OCI operations that differ by version.
enum Dirs<'a> {
    /// Controller → directory.
    V1(&'a BTreeMap<String, PathBuf>),
    V2(&'a Path),
}

/// One container's group (one directory on v2, one per controller on v1).
/// Dropping it leaves the group in place; `remove` takes it away.
pub struct Cgroup {
    name: String,
    backend: Box<dyn Backend>,
    /// Made or opened from an OCI cgroupsPath: removal takes the groups below it too.
    oci: bool,
    /// Made ahead (v1): its `tasks` files, opened then, in the order of `paths()`.
    tasks: Vec<std::os::fd::OwnedFd>,
}

impl std::fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cgroup")
            .field("name", &self.name)
            .field("version", &self.version())
            .field("paths", &self.paths())
            .finish()
    }
}

impl Cgroup {
    pub fn detect() -> Result<Version, CgroupError> {
        Ok(match layout::detect()? {
            Layout::V1 { .. } => Version::V1,
            Layout::V2 { .. } => Version::V2,
        })
    }

    /// The group `<parent>/<name>` (the supervisor's parent is "engine" by default; tests use
    /// their own, to run side by side). Limits are checked before anything is made; on a failure, what was made is removed.
    /// An existing group of that name is refused, not adopted.
    pub fn create_in(parent: &str, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        check_parent(parent)?;
        check_name(name)?;
        let checked = limits::check(limits)?;
        let create = |layout: Layout| -> Result<Box<dyn Backend>, CgroupError> {
            Ok(match layout {
                Layout::V2 { mount } => Box::new(v2::V2::create(&mount, parent, name, &checked)?),
                Layout::V1 { mounts } => Box::new(v1::V1::create(&mounts, parent, name, &checked)?),
            })
        };
        let cached = layout::detect()?;
        let backend = match create(cached.clone()) {
            Ok(b) => b,
            // The cached layout may be stale (a hierarchy mounted or unmounted since).
            Err(e) => match layout::detect_fresh()? {
                fresh if fresh != cached => create(fresh)?,
                _ => return Err(e),
            },
        };
        Ok(Cgroup { name: name.to_string(), backend, oci: false, tasks: Vec::new() })
    }

    /// The flags among `limits` whose controller this host lacks; `create` refuses them.
    /// A caller with another way to enforce one (sched_setaffinity for --cpuset-cpus) can
    /// drop it from the limits first and say which mechanism enforces it.
    pub fn unsupported(limits: &Limits) -> Result<Vec<&'static str>, CgroupError> {
        let checked = limits::check(limits)?;
        let layout = layout::detect()?;
        let mut flags: Vec<&'static str> = checked
            .controllers()
            .into_iter()
            .filter(|(ctrl, _)| match &layout {
                Layout::V2 { mount } => !layout::has_controller(mount, ctrl),
                Layout::V1 { mounts } => !mounts.contains_key(*ctrl),
            })
            .map(|(_, flag)| flag)
            .collect();
        flags.dedup();
        Ok(flags)
    }

    /// The existing group `<parent>/<name>` (after a supervisor restart), if any.
    pub fn open_in(parent: &str, name: &str) -> Option<Cgroup> {
        check_parent(parent).ok()?;
        check_name(name).ok()?;
        let backend: Box<dyn Backend> = match layout::detect().ok()? {
            Layout::V2 { mount } => Box::new(v2::V2::open(&mount, parent, name)?),
            Layout::V1 { mounts } => Box::new(v1::V1::open(&mounts, parent, name)?),
        };
        Some(Cgroup { name: name.to_string(), backend, oci: false, tasks: Vec::new() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Version {
        self.backend.version()
    }

    /// The group's directories (one on v2, one per mounted hierarchy joined on v1).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.backend.paths()
    }

    /// The `tasks` file of each of `paths()`, opened when the group was made ahead (empty
    /// otherwise): an init writes "0" to them to join, without opening a file on its path.
    pub fn take_tasks_files(&mut self) -> Vec<std::os::fd::OwnedFd> {
        std::mem::take(&mut self.tasks)
    }

    /// Moves a process (with its threads) into the group in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.backend.add_pid(pid)
    }

    pub fn stats(&self) -> Result<Stats, CgroupError> {
        self.backend.stats()
    }

    /// Whether the kernel's OOM killer killed a process of this group.
    pub fn oom_killed(&self) -> bool {
        self.backend.oom_killed()
    }

    /// SIGKILLs any process still inside, waits for them to leave, removes the directories.
    /// Keeps going past a failure and returns every error together.
    pub fn remove(self) -> Result<(), CgroupError> {
        let errors = if self.oci { oci::remove(self.backend.paths()) } else { self.backend.remove() };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CgroupError::Teardown { name: self.name, errors })
        }
    }

    /// Removes every group under `parent` for which `keep(name)` is false (left by a crash).
    /// Returns the names removed; failures are reported through `warn!`, since the supervisor
    /// starts anyway and the next start tries again.
    pub fn cleanup_stale_in(parent: &str, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        if check_parent(parent).is_err() {
            return Vec::new();
        }
        let mut names: Vec<String> = match layout::detect() {
            Ok(Layout::V2 { mount }) => fs::subdirs(&mount.join(parent)),
            Ok(Layout::V1 { mounts }) => mounts.values().flat_map(|m| fs::subdirs(&m.join(parent))).collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names.dedup();
        let mut removed = Vec::new();
        for name in names.into_iter().filter(|n| check_name(n).is_ok() && !keep(n)) {
            if let Some(cg) = Self::open_in(parent, &name) {
                match cg.remove() {
                    Ok(()) => removed.push(name),
                    Err(e) => crate::warn!("stale cgroup not removed: {e}"),
                }
            }
        }
        removed
    }
}

/// The directories of `parent` (and of its missing ancestors) that do not exist yet in any of
/// this host's hierarchies, deepest last: what a supervisor about to use `parent` will make, and
/// so may remove when it stops. A parent it found stays, with whatever limits its owner set.
pub fn missing_parent_dirs(parent: &str) -> Vec<PathBuf> {
    if check_parent(parent).is_err() {
        return Vec::new();
    }
    let mounts: std::collections::BTreeSet<PathBuf> = match layout::detect() {
        Ok(Layout::V2 { mount }) => [mount].into(),
        Ok(Layout::V1 { mounts }) => mounts.into_values().collect(),
        Err(_) => return Vec::new(),
    };
    let mut missing = Vec::new();
    for mount in mounts {
        let mut dir = mount;
        for part in parent.split('/') {
            dir.push(part);
            if !dir.exists() {
                missing.push(dir.clone());
            }
        }
    }
    missing
}

/// Removes the directories of `dirs` that are empty, deepest first: `rmdir` refuses a group
/// that still holds a group or a process, and that one stays.
pub fn remove_if_empty(dirs: &[PathBuf]) {
    for dir in dirs.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Moves `pid` into the groups at `paths` (what [`Cgroup::paths`] gave), for a caller that has
/// handed the `Cgroup` on: the move can take a while (v1: one RCU grace period, ~20 ms here), and
/// the supervisor overlaps it with the init's own setup.
pub fn add_pid_to(paths: &[PathBuf], pid: i32) -> Result<(), CgroupError> {
    paths.iter().try_for_each(|dir| fs::write(&dir.join("cgroup.procs"), &pid.to_string()))
}

/// Container names as the caller validates them: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}.
/// Checked here too, because the name becomes a path.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidName(name.to_string()))
    }
}

/// A parent is one or more valid names joined by '/'.
fn check_parent(parent: &str) -> Result<(), CgroupError> {
    parent.split('/').try_for_each(check_name).map_err(|_| CgroupError::InvalidName(parent.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "web-1", "A.b_c", &"x".repeat(64)] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "-a", "_a", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_parent("engine").unwrap();
        check_parent("engine-test/x").unwrap();
        for bad in ["", "/engine", "engine/", "engine/../x", "a//b"] {
            assert!(check_parent(bad).is_err(), "{bad:?}");
        }
    }
}

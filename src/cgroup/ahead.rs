//! Groups made ahead (cgroup v1): a container's directory in each hierarchy, its cpuset filled
//! and the default device rules written, made before any start asks for it; a start renames it
//! to the container's name and writes its limits. Making one is six mkdirs and ~15 writes
//! (0.57 ms of a start's path measured here, the longest part of the clone's step); a rename
//! is one call per hierarchy.
//!
//! Only v1: cgroupfs v1 implements rename (within the same parent); v2 has no rename, so there
//! every start makes its own group. A group made ahead never held a task: taken, it is what
//! `Cgroup::create_in` would have made.

use super::layout::Layout;
use super::limits::{self, Limits};
use super::v1::V1;
use super::{check_name, check_parent, fs, Backend, Cgroup, CgroupError};

/// `<parent>/.ahead-N`: a container's name starts with a letter or digit, so none is taken
/// by a container, and `cleanup_stale_in` (which lists container names only) leaves them.
const PREFIX: &str = ".ahead-";

/// A group made ahead under a parent, not yet any container's; dropped, it is removed.
pub struct AheadGroup {
    parent: String,
    /// None once adopted or removed.
    v1: Option<V1>,
    /// Each directory's `tasks`, opened here, off any start's path (see `Cgroup::take_tasks_files`).
    tasks: Vec<std::os::fd::OwnedFd>,
}

impl std::fmt::Debug for AheadGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths = self.v1.as_ref().map(|v| v.paths()).unwrap_or_default();
        f.debug_struct("AheadGroup").field("parent", &self.parent).field("paths", &paths).finish()
    }
}

/// Makes `<parent>/.ahead-<n>` in every hierarchy; None on cgroup v2 (nothing is made).
pub fn make(parent: &str, n: u64) -> Result<Option<AheadGroup>, CgroupError> {
    check_parent(parent)?;
    let Layout::V1 { mounts } = super::layout::detect()? else { return Ok(None) };
    let v1 = V1::create(&mounts, parent, &format!("{PREFIX}{n}"), &limits::check(&Limits::default())?)?;
    // Opened for writing by the supervisor (root): a write of "0" through them by the init moves
    // the writer, and the check of the write is made against the opener's credentials.
    let tasks = v1
        .paths()
        .iter()
        .map(|d| std::fs::OpenOptions::new().write(true).open(d.join("tasks")).map(std::os::fd::OwnedFd::from))
        .collect::<std::io::Result<Vec<_>>>()
        .unwrap_or_default();
    Ok(Some(AheadGroup { parent: parent.to_string(), v1: Some(v1), tasks }))
}

impl AheadGroup {
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// Renamed to `name` in every hierarchy, then `limits` written: the container's group. On
    /// a failure nothing of it is left (renamed back and removed, or removed under `name`).
    pub fn adopt(mut self, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let Some(mut v1) = self.v1.take() else {
            return Err(CgroupError::NoHierarchy("a group made ahead, used twice".into()));
        };
        let adopted = check_name(name).and_then(|()| limits::check(limits)).and_then(|checked| {
            v1.require(&checked)?;
            v1.rename(name)?;
            v1.apply(&checked)
        });
        match adopted {
            Ok(()) => {
                let tasks = std::mem::take(&mut self.tasks);
                Ok(Cgroup { name: name.to_string(), backend: Box::new(v1), oci: false, tasks })
            }
            Err(e) => {
                Box::new(v1).remove();
                Err(e)
            }
        }
    }
}

impl Drop for AheadGroup {
    fn drop(&mut self) {
        if let Some(v1) = self.v1.take() {
            for e in Box::new(v1).remove() {
                crate::warn!("removing a cgroup made ahead: {e}");
            }
        }
    }
}

/// Removes the groups made ahead under `parent` in every hierarchy (a dead supervisor's).
pub fn remove_leftovers(parent: &str) {
    if check_parent(parent).is_err() {
        return;
    }
    let Ok(Layout::V1 { mounts }) = super::layout::detect() else { return };
    for mount in mounts.values() {
        for name in fs::subdirs(&mount.join(parent)).into_iter().filter(|n| n.starts_with(PREFIX)) {
            let _ = fs::rmdir(&mount.join(parent).join(name));
        }
    }
}

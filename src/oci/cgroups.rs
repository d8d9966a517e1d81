//! What the OCI verbs read and write in a container's cgroups beyond what the core manages: the
//! freezer (`pause`, `resume`, the `paused` status), the member pids (`ps`, `kill --all`) and
//! limits changed after create (`update`).
//!
//! All of it goes through the cgroup module's OCI API (`Cgroup::open_oci` by the recorded
//! absolute cgroupsPath); what is left here is finding that path from the group's directories.
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{OciError, Result};
use crate::cgroup::{Cgroup, CgroupError, FreezerState};

/// A cgroup mount: where, which version, and (v1) its controllers.
#[derive(Debug, Clone, PartialEq)]
struct Mount {
    point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

fn mounts() -> Vec<Mount> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&info)
}

fn parse_mountinfo(info: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(point) = left.split(' ').nth(4) else { continue };
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        let opts = r.nth(1).unwrap_or("");
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            opts.split(',').filter(|o| !["rw", "ro"].contains(o) && !o.contains('=')).map(str::to_string).collect()
        };
        out.push(Mount { point: PathBuf::from(unescape(point)), v2, controllers });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v as char);
            i += 4;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The mount holding `path` (longest prefix) and the path relative to it.
fn split_path<'a>(ms: &'a [Mount], path: &Path) -> Option<(&'a Mount, PathBuf)> {
    ms.iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .and_then(|m| path.strip_prefix(&m.point).ok().map(|rel| (m, rel.to_path_buf())))
}

/// The group's path from the root of its hierarchy ("/a/b"), from its directories: the v2 one, or
/// the v1 devices one (every OCI group has it). What `Cgroup::open_oci` takes as absolute.
pub fn absolute_path(cgroup_paths: &[PathBuf]) -> Option<String> {
    let ms = mounts();
    let split: Vec<(&Mount, PathBuf)> = cgroup_paths.iter().filter_map(|p| split_path(&ms, p)).collect();
    let (_, rel) = split
        .iter()
        .find(|(m, _)| m.v2)
        .or_else(|| split.iter().find(|(m, _)| m.controllers.iter().any(|c| c == "devices")))
        .or_else(|| split.first())?;
    Some(format!("/{}", rel.display()))
}

/// The container's group as the cgroup module opens it (by its recorded cgroupsPath), for every
/// verb after create: `update`, `events`, `pause`/`resume`, `ps`, `kill --all`, `delete`.
pub fn open(rec: &super::state::Record) -> Result<Cgroup> {
    if rec.cgroup_path.is_empty() {
        return Err(OciError::Unsupported(format!("container \"{}\" has no cgroup on record", rec.id)));
    }
    Cgroup::open_oci(&rec.cgroup_path).map_err(cgroup_error(rec, "opening"))
}

fn cgroup_error<'a>(rec: &'a super::state::Record, step: &'a str) -> impl FnOnce(CgroupError) -> OciError + 'a {
    move |source| OciError::Cgroup { step: format!("{step} the cgroup {} of \"{}\"", rec.cgroup_path, rec.id), source }
}

/// Whether the container's group is frozen or freezing (the `paused` status); no group, no freezer.
pub fn is_frozen(rec: &super::state::Record) -> bool {
    open(rec)
        .and_then(|cg| cg.state().map_err(cgroup_error(rec, "reading the freezer of")))
        .is_ok_and(|s| s != FreezerState::Thawed)
}

/// Freezes (`true`) or thaws the container's processes and waits until the kernel says it is done.
pub fn set_frozen(rec: &super::state::Record, frozen: bool) -> Result<()> {
    let cg = open(rec)?;
    if frozen {
        cg.freeze().map_err(cgroup_error(rec, "pause: freezing"))
    } else {
        cg.thaw().map_err(cgroup_error(rec, "resume: thawing"))
    }
}

/// The pids in the container's group and the groups below it, sorted.
pub fn procs(rec: &super::state::Record) -> Result<Vec<i32>> {
    open(rec)?.pids().map_err(cgroup_error(rec, "listing the processes of"))
}

/// `kill --all`: `signal` to every process of the group, frozen meanwhile so none forks past it.
pub fn kill_all(rec: &super::state::Record, signal: i32) -> Result<()> {
    open(rec)?.kill_all(signal).map_err(cgroup_error(rec, "signalling the processes of"))
}

/// Removes the container's group (sub-groups first): what is still inside is SIGKILLed and
/// waited for. A group already gone (or never made) is no error.
pub fn remove(rec: &super::state::Record) -> Result<()> {
    match open(rec) {
        Ok(cg) => cg.remove().map_err(cgroup_error(rec, "removing")),
        Err(OciError::Unsupported(_)) | Err(OciError::Cgroup { source: CgroupError::NotFound { .. }, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
25 1 0:23 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
26 1 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
27 1 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
28 1 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
29 1 0:27 / /proc rw - proc proc rw
30 1 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd";

    #[test]
    fn mountinfo_cgroups() {
        let ms = parse_mountinfo(INFO);
        assert_eq!(ms.len(), 5);
        assert_eq!(ms[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(ms[2].v2);
        let (m, rel) = split_path(&ms, Path::new("/sys/fs/cgroup/memory/engine-oci/x")).unwrap();
        assert_eq!(m.point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(rel, Path::new("engine-oci/x"));
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}

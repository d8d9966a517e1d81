//! What the OCI verbs read and write in a container's cgroups beyond what the core manages: the
//! freezer (`pause`, `resume`, the `paused` status), the member pids (`ps`, `kill --all`) and
//! limits changed after create (`update`).
//!
//! The core groups a container in the hierarchies it limits; on a v1 host without a freezer
//! group for it, `pause` makes one at the same relative path and moves the container's
//! processes in (children forked later follow their parent), and `delete` removes it.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{OciError, Result};

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

/// The v1 freezer mount, if any.
fn freezer_mount(ms: &[Mount]) -> Option<&Mount> {
    ms.iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == "freezer"))
}

/// The mount holding `path` (longest prefix) and the path relative to it.
fn split_path<'a>(ms: &'a [Mount], path: &Path) -> Option<(&'a Mount, PathBuf)> {
    ms.iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .and_then(|m| path.strip_prefix(&m.point).ok().map(|rel| (m, rel.to_path_buf())))
}

/// The container's freezer directory: v2 its group (cgroup.freeze), v1 the group under the freezer
/// hierarchy at the same relative path as its other groups.
pub fn freezer_dir(cgroup_paths: &[PathBuf]) -> Option<(PathBuf, bool)> {
    let ms = mounts();
    if let Some(p) = cgroup_paths.iter().find(|p| p.join("cgroup.freeze").exists()) {
        return Some((p.clone(), true));
    }
    let fm = freezer_mount(&ms)?;
    if let Some(p) = cgroup_paths.iter().find(|p| p.starts_with(&fm.point)) {
        return Some((p.clone(), false));
    }
    let (_, rel) = cgroup_paths.iter().find_map(|p| split_path(&ms, p))?;
    (!rel.as_os_str().is_empty()).then(|| (fm.point.join(rel), false))
}

/// Whether `pid`'s cgroup is frozen (v1 freezer.state FROZEN or FREEZING, v2 cgroup.freeze 1).
pub fn is_frozen(pid: i32) -> bool {
    let Ok(own) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return false };
    let ms = mounts();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(rel)) = (f.next(), f.next(), f.next()) else { continue };
        let rel = rel.trim_start_matches('/');
        if ctrls.is_empty() {
            if let Some(m) = ms.iter().find(|m| m.v2) {
                let v = fs::read_to_string(m.point.join(rel).join("cgroup.freeze")).unwrap_or_default();
                if v.trim() == "1" {
                    return true;
                }
            }
        } else if ctrls.split(',').any(|c| c == "freezer") {
            if let Some(m) = freezer_mount(&ms) {
                let v = fs::read_to_string(m.point.join(rel).join("freezer.state")).unwrap_or_default();
                if matches!(v.trim(), "FROZEN" | "FREEZING") {
                    return true;
                }
            }
        }
    }
    false
}

/// The pids in the container's cgroup (the first of its groups that can be read).
pub fn procs(cgroup_paths: &[PathBuf]) -> Result<Vec<i32>> {
    let mut last = None;
    for p in cgroup_paths {
        match fs::read_to_string(p.join("cgroup.procs")) {
            Ok(s) => return Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) => last = Some((p, e)),
        }
    }
    match last {
        Some((p, e)) => Err(OciError::io(format!("reading {}", p.join("cgroup.procs").display()))(e)),
        None => Err(OciError::Unsupported("the container has no cgroup to list processes from".into())),
    }
}

const FREEZE_WAIT: Duration = Duration::from_secs(10);

/// Freezes (`true`) or thaws the container's processes and waits until the kernel says it is done.
pub fn set_frozen(cgroup_paths: &[PathBuf], frozen: bool) -> Result<()> {
    let verb = if frozen { "pause" } else { "resume" };
    let (dir, v2) = freezer_dir(cgroup_paths)
        .ok_or_else(|| OciError::Unsupported(format!("{verb}: no freezer cgroup on this host for the container")))?;
    let write = |file: &str, value: &str| {
        fs::write(dir.join(file), value).map_err(OciError::io(format!("{verb}: writing {}", dir.join(file).display())))
    };
    if v2 {
        write("cgroup.freeze", if frozen { "1" } else { "0" })?;
        return wait_for(&dir.join("cgroup.events"), verb, |s| {
            s.lines().any(|l| l == if frozen { "frozen 1" } else { "frozen 0" })
        });
    }
    if frozen {
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(OciError::io(format!("{verb}: creating {}", dir.display())))?;
        }
        // Every process of the container, moved in before the freeze; one that forks meanwhile
        // brings its child along.
        for pid in procs(cgroup_paths)? {
            match fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                Ok(()) => {}
                // Exited since the listing.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(OciError::io(format!("{verb}: moving {pid} into {}", dir.display()))(e)),
            }
        }
    }
    write("freezer.state", if frozen { "FROZEN" } else { "THAWED" })?;
    wait_for(&dir.join("freezer.state"), verb, |s| s.trim() == if frozen { "FROZEN" } else { "THAWED" })
}

fn wait_for(file: &Path, verb: &str, done: impl Fn(&str) -> bool) -> Result<()> {
    let deadline = Instant::now() + FREEZE_WAIT;
    loop {
        let s = fs::read_to_string(file).map_err(OciError::io(format!("{verb}: reading {}", file.display())))?;
        if done(&s) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(OciError::Other(format!("{verb}: {} did not settle within {FREEZE_WAIT:?}", file.display())));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Removes a v1 freezer group that `pause` made (the core removes the groups it made itself).
pub fn remove_own_freezer(cgroup_paths: &[PathBuf]) -> Result<()> {
    let Some((dir, false)) = freezer_dir(cgroup_paths) else { return Ok(()) };
    if cgroup_paths.contains(&dir) || !dir.exists() {
        return Ok(());
    }
    // A frozen group cannot be emptied: thaw first (delete --force of a paused container).
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    fs::remove_dir(&dir).map_err(OciError::io(format!("removing the freezer cgroup {}", dir.display())))
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

/// The container's group as the cgroup module opens it (by its recorded cgroupsPath), for
/// `update` and `events`.
pub fn open(rec: &super::state::Record) -> Result<crate::cgroup::Cgroup> {
    if rec.cgroup_path.is_empty() {
        return Err(OciError::Unsupported(format!("container \"{}\" has no cgroup on record", rec.id)));
    }
    crate::cgroup::Cgroup::open_oci(&rec.cgroup_path)
        .map_err(|e| OciError::Other(format!("opening the cgroup {} of \"{}\": {e}", rec.cgroup_path, rec.id)))
}

/// Removes the container's groups (sub-groups it made first): what is still inside is SIGKILLed
/// and waited for. Every directory is tried; the first error is returned.
pub fn remove(cgroup_paths: &[PathBuf]) -> Result<()> {
    let mut first = None;
    for dir in cgroup_paths {
        if let Err(e) = remove_tree(dir) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(OciError::io(format!("removing the cgroup {}", dir.display()))(e)),
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        for &pid in &pids {
            // SAFETY: kill(2) with integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while the killed processes are still leaving.
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(OciError::io(format!("removing the cgroup {}", dir.display()))(e)),
        }
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
        assert_eq!(freezer_mount(&ms).unwrap().point, Path::new("/sys/fs/cgroup/freezer"));
        assert_eq!(ms[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(ms[2].v2);
        let (m, rel) = split_path(&ms, Path::new("/sys/fs/cgroup/memory/engine-oci/x")).unwrap();
        assert_eq!(m.point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(rel, Path::new("engine-oci/x"));
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn own_process_is_not_frozen() {
        assert!(!is_frozen(std::process::id() as i32));
        assert!(!is_frozen(-1));
    }
}

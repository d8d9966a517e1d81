//! Where this host's cgroup hierarchies are, and whether to use v2 or v1.

use super::CgroupError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers the supervisor's containers use; others (blkio, freezer, ...) are left
/// alone. Every such container joins each of them that is mounted, limits or not.
pub const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "pids", "devices"];

/// The v1 hierarchies an OCI container joins: every one runc joins (its fs manager's list), so
/// `pause`, blkio, hugetlb and network limits have a directory to act on.
pub const V1_OCI_CONTROLLERS: &[&str] = &[
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "misc",
    "name=systemd",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// The cgroup2 mount: /sys/fs/cgroup on a pure v2 host, or the hybrid's unified mount.
    V2 { mount: PathBuf },
    /// Controller name → its v1 mount point (co-mounted controllers share one).
    V1 { mounts: BTreeMap<String, PathBuf> },
}

/// The layout found last: hierarchies are mounted at boot and stay, so a start does not read
/// mountinfo and cgroup.controllers again (it did twice per start). A caller whose use of it
/// fails asks [`detect_fresh`] and retries if the layout changed.
static CACHED: parking_lot::Mutex<Option<Layout>> = parking_lot::Mutex::new(None);

/// [`detect_fresh`]'s last answer, or a fresh one.
pub fn detect() -> Result<Layout, CgroupError> {
    if let Some(layout) = CACHED.lock().clone() {
        return Ok(layout);
    }
    detect_fresh()
}

/// Looks again (and caches what it finds).
pub fn detect_fresh() -> Result<Layout, CgroupError> {
    let layout = detect_uncached()?;
    *CACHED.lock() = Some(layout.clone());
    Ok(layout)
}

/// v2 when /sys/fs/cgroup is cgroup2, or when a cgroup2 mount (hybrid hosts' "unified")
/// has the memory controller; otherwise v1. A hybrid host whose unified mount has no
/// controllers (this build host) is v1: the limits live in the v1 hierarchies.
fn detect_uncached() -> Result<Layout, CgroupError> {
    let root = Path::new(CGROUP_ROOT);
    if is_cgroup2(root)? {
        return Ok(Layout::V2 { mount: root.into() });
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|source| CgroupError::Read { path: "/proc/self/mountinfo".into(), source })?;
    let (v1, v2) = parse_mountinfo(&info);
    if let Some(m) = v2.iter().find(|m| has_controller(m, "memory")) {
        return Ok(Layout::V2 { mount: m.clone() });
    }
    if !v1.is_empty() {
        return Ok(Layout::V1 { mounts: v1 });
    }
    // Only a controller-less cgroup2: groups work, and each limit is refused by name.
    if let Some(m) = v2.into_iter().next() {
        return Ok(Layout::V2 { mount: m });
    }
    Err(CgroupError::NoHierarchy("no cgroup or cgroup2 filesystem is mounted".into()))
}

fn is_cgroup2(path: &Path) -> Result<bool, CgroupError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path has no NUL");
    // SAFETY: statfs writes only into `buf`, which is large enough.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        let source = std::io::Error::last_os_error();
        if source.kind() == std::io::ErrorKind::NotFound {
            return Ok(false);
        }
        return Err(CgroupError::Statfs { path: path.into(), source });
    }
    // f_type's integer type differs between libcs and architectures.
    #[allow(clippy::unnecessary_cast)]
    Ok(buf.f_type as i64 == libc::CGROUP2_SUPER_MAGIC as i64)
}

/// Whether a v2 directory may use a controller (listed in its cgroup.controllers).
pub fn has_controller(dir: &Path, ctrl: &str) -> bool {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().any(|c| c == ctrl))
        .unwrap_or(false)
}

/// From /proc/self/mountinfo: v1 controller → mount point, and the cgroup2 mount points.
/// Only mounts of a hierarchy's root ("/" in field 4) are usable: inside a container the
/// host's groups may be bind-mounted from somewhere below.
pub fn parse_mountinfo(info: &str) -> (BTreeMap<String, PathBuf>, Vec<PathBuf>) {
    let mut v1 = BTreeMap::new();
    let mut v2 = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || pre[3] != "/" {
            continue;
        }
        let mount = PathBuf::from(pre[4]);
        match post[0] {
            "cgroup2" => v2.push(mount),
            "cgroup" => {
                for opt in post[2].split(',') {
                    if V1_OCI_CONTROLLERS.contains(&opt) {
                        v1.entry(opt.to_string()).or_insert_with(|| mount.clone());
                    }
                }
            }
            _ => {}
        }
    }
    (v1, v2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_hybrid_and_comounted() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
36 30 0:32 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";
        let (v1, v2) = parse_mountinfo(info);
        assert_eq!(v2, vec![PathBuf::from("/sys/fs/cgroup/unified")]);
        assert_eq!(v1.get("cpu"), Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(v1.get("cpuacct"), Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(v1.get("memory"), Some(&PathBuf::from("/sys/fs/cgroup/memory")));
        assert!(!v1.contains_key("pids"), "non-root bind mount must be skipped");
        assert_eq!(v1.get("name=systemd"), Some(&PathBuf::from("/sys/fs/cgroup/systemd")));
        assert_eq!(v1.len(), 4);
    }

    #[test]
    fn detect_finds_something_here() {
        // Any Linux host running these tests has some cgroup mount.
        let l = detect().expect("detect");
        if let Layout::V1 { mounts } = &l {
            assert!(!mounts.is_empty());
        }
    }
}

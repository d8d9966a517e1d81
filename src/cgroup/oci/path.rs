//! `linux.cgroupsPath` as runc's cgroupfs driver reads it.
//!
//! runc (libcontainer/cgroups/fs/paths.go `subsysPath`, fs2/defaultpath.go): an absolute path is
//! taken from each hierarchy's root; a relative one is joined to the caller's own cgroup (v1:
//! its group in that hierarchy; v2: the PARENT of its group, since its own group has processes
//! and could not enable controllers for a child). runc cleans the path lexically first, so ".."
//! never climbs above the root; here a ".." is refused outright: no cgroupsPath has a reason to
//! carry one, and a refusal names the field where a silent rewrite would not.

use super::super::CgroupError;
use std::path::{Path, PathBuf};

const FIELD: &str = "linux.cgroupsPath";

/// A checked cgroupsPath: its components, and whether it starts at the hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciPath {
    pub absolute: bool,
    pub components: Vec<String>,
}

fn invalid(path: &str, reason: &str) -> CgroupError {
    CgroupError::InvalidValue { flag: FIELD, value: path.into(), reason: reason.into() }
}

/// Splits and checks a cgroupsPath. Empty and "." components are dropped (as runc's cleaning
/// does); "..", NUL, over-long names and systemd's "slice:prefix:name" form are refused, and so
/// is a path naming the root itself: removing or killing "the container's group" must never
/// reach every process of the host.
pub fn parse(path: &str) -> Result<OciPath, CgroupError> {
    if path.contains(':') && !path.starts_with('/') {
        return Err(invalid(
            path,
            "looks like a systemd slice:prefix:name path; only the cgroupfs driver is available",
        ));
    }
    let mut components = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid(path, "\"..\" is not allowed: the group must stay inside the hierarchy")),
            c if c.contains('\0') => return Err(invalid(path, "contains a NUL byte")),
            c if c.len() > 255 => return Err(invalid(path, "a component is longer than 255 bytes")),
            c => components.push(c.to_string()),
        }
    }
    if components.is_empty() {
        return Err(invalid(path, "names the root of the hierarchy, not a group of its own"));
    }
    Ok(OciPath { absolute: path.starts_with('/'), components })
}

impl OciPath {
    /// The group's directory under a hierarchy mounted at `mount`, where the caller's own group
    /// is `own` (from /proc/self/cgroup, relative to that root). Only used for relative paths.
    pub fn dir(&self, mount: &Path, own: &[String]) -> PathBuf {
        let mut d = mount.to_path_buf();
        if !self.absolute {
            d.extend(own);
        }
        d.extend(&self.components);
        d
    }

    /// The path from the hierarchy's root ("/a/b") where the caller's own group is `own`.
    pub fn absolute_from(&self, own: &[String]) -> String {
        let own = if self.absolute { &[][..] } else { own };
        own.iter().chain(&self.components).fold(String::new(), |acc, c| acc + "/" + c)
    }
}

/// The caller's own groups: (v1 controller or "" for v2) → components, as [`own_cgroups`] reads them.
pub type OwnGroups = Vec<(String, Vec<String>)>;

/// The caller's own groups from /proc/self/cgroup: (v1 controller or "" for v2) → components.
/// A path outside the caller's cgroup namespace ("/../x") is refused: it cannot be reached.
pub fn own_cgroups(content: &str) -> Result<OwnGroups, CgroupError> {
    let mut out = Vec::new();
    for line in content.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
        let comps: Vec<String> = path.split('/').filter(|c| !c.is_empty() && *c != ".").map(String::from).collect();
        if comps.iter().any(|c| c == "..") {
            return Err(invalid(
                path,
                "the caller's own cgroup is outside its cgroup namespace; use an absolute cgroupsPath",
            ));
        }
        if ctrls.is_empty() {
            out.push((String::new(), comps));
        } else {
            for c in ctrls.split(',') {
                out.push((c.to_string(), comps.clone()));
            }
        }
    }
    Ok(out)
}

/// The base a relative path is joined to in the v1 hierarchy of `ctrl`.
pub fn own_v1(own: &[(String, Vec<String>)], ctrl: &str) -> Vec<String> {
    own.iter().find(|(c, _)| c == ctrl).map(|(_, p)| p.clone()).unwrap_or_default()
}

/// The base a relative path is joined to on v2: the parent of the caller's own group.
pub fn own_v2(own: &[(String, Vec<String>)]) -> Vec<String> {
    let mut p = own.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p.clone()).unwrap_or_default();
    p.pop();
    p
}

pub fn read_own() -> Result<OwnGroups, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let s = std::fs::read_to_string(path).map_err(|source| CgroupError::Read { path: path.into(), source })?;
    own_cgroups(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str) -> Vec<String> {
        parse(p).unwrap().components
    }

    #[test]
    fn paths_runtimes_send() {
        // CRI (containerd cgroupfs), podman, ctr, the conformance suite.
        assert_eq!(
            comps("/kubepods/burstable/pod1234-ab/0123abcd"),
            ["kubepods", "burstable", "pod1234-ab", "0123abcd"]
        );
        assert_eq!(comps("/libpod_parent/libpod-0123"), ["libpod_parent", "libpod-0123"]);
        assert_eq!(comps("/default/redis"), ["default", "redis"]);
        assert!(parse("/default/redis").unwrap().absolute);
        let rel = parse("a/b").unwrap();
        assert!(!rel.absolute);
        assert_eq!(rel.components, ["a", "b"]);
        // Cleaned as runc cleans: doubled slashes, "." and a trailing slash go.
        assert_eq!(comps("//a/./b//"), ["a", "b"]);
    }

    #[test]
    fn refused_paths_name_the_field() {
        for bad in ["", "/", "//", "/.", "..", "/a/../b", "/a/..", "../x", "a/\0b", "system.slice:engine:x"] {
            let e = parse(bad).expect_err(bad).to_string();
            assert!(e.starts_with("linux.cgroupsPath: invalid value"), "{bad:?}: {e}");
        }
        assert!(parse(&format!("/{}", "x".repeat(256))).is_err());
        parse(&format!("/{}", "x".repeat(255))).unwrap();
    }

    #[test]
    fn relative_paths_join_the_callers_group_as_runc_does() {
        let own = own_cgroups(
            "12:cpu,cpuacct:/user/1000\n5:memory:/\n1:name=systemd:/init.scope\n0::/user.slice/session-1.scope\n",
        )
        .unwrap();
        let rel = parse("ctr/abc").unwrap();
        let m = Path::new("/sys/fs/cgroup/cpu");
        assert_eq!(rel.dir(m, &own_v1(&own, "cpu")), Path::new("/sys/fs/cgroup/cpu/user/1000/ctr/abc"));
        assert_eq!(rel.dir(m, &own_v1(&own, "cpuacct")), Path::new("/sys/fs/cgroup/cpu/user/1000/ctr/abc"));
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(rel.dir(m, &own_v1(&own, "memory")), Path::new("/sys/fs/cgroup/memory/ctr/abc"));
        // v2: the parent of the caller's group.
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(rel.dir(m, &own_v2(&own)), Path::new("/sys/fs/cgroup/user.slice/ctr/abc"));
        // Absolute ignores the caller's group.
        let abs = parse("/ctr/abc").unwrap();
        assert_eq!(abs.dir(m, &own_v2(&own)), Path::new("/sys/fs/cgroup/ctr/abc"));
        // What create records for other processes to open: the same groups from the root.
        assert_eq!(rel.absolute_from(&own_v1(&own, "cpu")), "/user/1000/ctr/abc");
        assert_eq!(rel.absolute_from(&own_v2(&own)), "/user.slice/ctr/abc");
        assert_eq!(abs.absolute_from(&own_v1(&own, "cpu")), "/ctr/abc");
        assert!(own_cgroups("0::/../../outside\n").is_err());
    }
}

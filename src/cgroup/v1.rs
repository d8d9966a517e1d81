//! cgroup v1: one directory per container in each controller's own hierarchy
//! (`<mount>/<parent>/<name>`), in every mounted hierarchy we use whether or not it carries a
//! limit, the process added to every one of them. A container left in the supervisor's
//! groups would share its pids and devices.

use super::devices::{self, DEFAULT_RULES};
use super::layout::V1_CONTROLLERS;
use super::limits::{self, write_limit, Checked, Stats, CPU_PERIOD_US};
use super::{fs, Backend, CgroupError, Version};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct V1 {
    /// Controller → the container's directory in that controller's hierarchy.
    pub(super) dirs: BTreeMap<String, PathBuf>,
}

/// A new v1 cpuset group starts with empty cpus and mems and refuses tasks until both are set:
/// copy them from the parent. `only_if_empty`: a group that may be older (the parents) keeps
/// values it has; one this call just made is empty for sure (or holds the parent's values, with
/// `cgroup.clone_children`), so its own are not read first.
fn copy_cpuset(dir: &Path, only_if_empty: bool) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "a cpuset group without a parent");
        return Err(CgroupError::Read { path: dir.to_path_buf(), source });
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if only_if_empty && !fs::read(&dir.join(file))?.trim().is_empty() {
            continue;
        }
        let theirs = fs::read(&parent.join(file))?;
        fs::write(&dir.join(file), theirs.trim())?;
    }
    Ok(())
}

/// Each controller a limit of `c` needs must be among `have` (controller → anything).
fn require<T>(have: &BTreeMap<String, T>, c: &Checked) -> Result<(), CgroupError> {
    for (ctrl, flag) in c.controllers() {
        if !have.contains_key(ctrl) {
            let have: Vec<&str> = have.keys().map(|k| k.as_str()).collect();
            return Err(CgroupError::Unsupported {
                flag,
                reason: format!("no {ctrl} controller on this host (cgroup v1 controllers mounted: {have:?})"),
            });
        }
    }
    Ok(())
}

impl V1 {
    pub fn create(
        mounts: &BTreeMap<String, PathBuf>,
        parent: &str,
        name: &str,
        c: &Checked,
    ) -> Result<V1, CgroupError> {
        require(mounts, c)?;
        // Without the devices controller a container could open any node it makes.
        if !mounts.contains_key("devices") {
            let have: Vec<&str> = mounts.keys().map(|k| k.as_str()).collect();
            return Err(CgroupError::NoHierarchy(format!(
                "no devices controller mounted (cgroup v1 controllers mounted: {have:?}): device rules cannot be enforced"
            )));
        }
        // Join every mounted one of the controllers the supervisor uses.
        let ctrls: Vec<&str> = mounts.keys().map(|k| k.as_str()).filter(|k| V1_CONTROLLERS.contains(k)).collect();

        let mut cg = V1 { dirs: BTreeMap::new() };
        let mut made: Vec<PathBuf> = Vec::new();
        let result = (|| {
            for ctrl in &ctrls {
                let mount = &mounts[*ctrl];
                let dir = mount.join(parent).join(name);
                // Co-mounted controllers (cpu,cpuacct) share one directory.
                if !made.contains(&dir) {
                    let cpuset = mounts.get("cpuset") == Some(mount);
                    let init = |d: &Path| if cpuset { copy_cpuset(d, true) } else { Ok(()) };
                    fs::mkdir_parents(mount, dir.parent().unwrap(), init)?;
                    fs::mkdir(&dir)?;
                    made.push(dir.clone());
                    if cpuset {
                        copy_cpuset(&dir, false)?;
                    }
                }
                cg.dirs.insert(ctrl.to_string(), dir);
            }
            cg.apply(c)?;
            devices::apply_v1(&cg.dirs["devices"], DEFAULT_RULES)
        })();
        match result {
            Ok(()) => Ok(cg),
            Err(e) => {
                // Only what this call made, never a group that already existed.
                for d in made.iter().rev() {
                    let _ = fs::rmdir(d);
                }
                Err(e)
            }
        }
    }

    /// The controllers `c`'s limits need are among this group's.
    pub(super) fn require(&self, c: &Checked) -> Result<(), CgroupError> {
        require(&self.dirs, c)
    }

    /// Renames the group to `name` under the same parent in every hierarchy (cgroupfs v1
    /// refuses a name that exists: never over another group). On a failure the directories
    /// renamed so far are renamed back.
    pub(super) fn rename(&mut self, name: &str) -> Result<(), CgroupError> {
        let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
        for dir in self.unique_dirs() {
            let to = dir.with_file_name(name);
            if let Err(source) = std::fs::rename(&dir, &to) {
                for (from, to) in done.iter().rev() {
                    let _ = std::fs::rename(to, from);
                }
                return Err(match source.kind() {
                    std::io::ErrorKind::AlreadyExists => CgroupError::AlreadyExists { path: to },
                    _ => CgroupError::Rename { from: dir, to, source },
                });
            }
            done.push((dir, to));
        }
        for dir in self.dirs.values_mut() {
            *dir = dir.with_file_name(name);
        }
        Ok(())
    }

    pub(super) fn apply(&self, c: &Checked) -> Result<(), CgroupError> {
        if let Some(max) = c.memory_max {
            let d = &self.dirs["memory"];
            write_limit(d, "memory.limit_in_bytes", &max.to_string(), limits::FLAG_MEMORY)?;
            // memory+swap capped at the same value: no swapping past the limit. The file
            // exists only with swap accounting; it must be written after limit_in_bytes,
            // which the kernel keeps <= memsw.
            if d.join("memory.memsw.limit_in_bytes").exists() {
                write_limit(d, "memory.memsw.limit_in_bytes", &max.to_string(), limits::FLAG_MEMORY)?;
            }
        }
        if let Some(high) = c.memory_high {
            let d = &self.dirs["memory"];
            write_limit(d, "memory.soft_limit_in_bytes", &high.to_string(), limits::FLAG_MEMORY_HIGH)?;
        }
        if let Some(q) = c.cpu_quota_us {
            let d = &self.dirs["cpu"];
            write_limit(d, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string(), limits::FLAG_CPUS)?;
            write_limit(d, "cpu.cfs_quota_us", &q.to_string(), limits::FLAG_CPUS)?;
        }
        if let Some(p) = c.pids_max {
            write_limit(&self.dirs["pids"], "pids.max", &p.to_string(), limits::FLAG_PIDS)?;
        }
        if let Some(cpus) = &c.cpuset {
            write_limit(&self.dirs["cpuset"], "cpuset.cpus", cpus, limits::FLAG_CPUSET)?;
        }
        Ok(())
    }

    pub fn open(mounts: &BTreeMap<String, PathBuf>, parent: &str, name: &str) -> Option<V1> {
        let dirs: BTreeMap<String, PathBuf> = mounts
            .iter()
            .filter(|(ctrl, _)| V1_CONTROLLERS.contains(&ctrl.as_str()))
            .map(|(ctrl, m)| (ctrl.clone(), m.join(parent).join(name)))
            .filter(|(_, d)| d.is_dir())
            .collect();
        (!dirs.is_empty()).then_some(V1 { dirs })
    }

    /// Each directory once, although co-mounted controllers share one.
    fn unique_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }
}

impl Backend for V1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.unique_dirs()
    }

    fn dirs(&self) -> super::Dirs<'_> {
        super::Dirs::V1(&self.dirs)
    }

    fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for d in self.unique_dirs() {
            fs::write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        if let Some(d) = self.dirs.get("memory") {
            s.memory_current = fs::read_u64(&d.join("memory.usage_in_bytes"))?;
            s.memory_peak = fs::read_u64_opt(&d.join("memory.max_usage_in_bytes"))?;
        }
        if let Some(d) = self.dirs.get("cpuacct") {
            s.cpu_usage_ns = fs::read_u64(&d.join("cpuacct.usage"))?;
        }
        s.pids_current = match self.dirs.get("pids") {
            Some(d) => fs::read_u64(&d.join("pids.current"))?,
            None => match self.unique_dirs().first() {
                Some(d) => fs::count_lines(&d.join("tasks"))?,
                None => 0,
            },
        };
        Ok(s)
    }

    fn oom_killed(&self) -> bool {
        // The oom_kill counter exists since Linux 4.13.
        let Some(d) = self.dirs.get("memory") else { return false };
        matches!(fs::read_key(&d.join("memory.oom_control"), "oom_kill"), Ok(Some(n)) if n > 0)
    }

    fn remove(self: Box<Self>) -> Vec<CgroupError> {
        let mut errors = Vec::new();
        // An ended container's groups are empty: one rmdir each is all it takes (the kernel
        // refuses a populated group with EBUSY). What is left is emptied and removed below.
        let dirs: Vec<PathBuf> = self
            .unique_dirs()
            .into_iter()
            .filter(|d| match std::fs::remove_dir(d) {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            })
            .collect();
        if dirs.is_empty() {
            return errors;
        }
        fs::kill_all(&dirs, None, &mut errors);
        for d in &dirs {
            if let Err(e) = fs::rmdir(d) {
                errors.push(e);
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_mounts(ctrls: &[&str]) -> (tempfile::TempDir, BTreeMap<String, PathBuf>) {
        let t = tempfile::tempdir().unwrap();
        let mut m = BTreeMap::new();
        for c in ctrls {
            let d = t.path().join(c);
            std::fs::create_dir(&d).unwrap();
            m.insert(c.to_string(), d);
        }
        (t, m)
    }

    #[test]
    fn a_missing_controller_is_refused_by_flag_before_anything_is_made() {
        let (t, m) = fake_mounts(&["memory"]);
        let c = Checked { cpu_quota_us: Some(20_000), ..Default::default() };
        let msg = V1::create(&m, "engine", "x", &c).err().expect("must refuse").to_string();
        assert!(msg.starts_with("--cpus: no cpu controller on this host"), "{msg}");
        assert!(!t.path().join("memory/engine").exists());
    }

    #[test]
    fn without_the_devices_controller_nothing_is_made() {
        let (t, m) = fake_mounts(&["memory", "pids"]);
        let msg = V1::create(&m, "engine", "x", &Checked::default()).err().expect("must refuse").to_string();
        assert!(msg.contains("no devices controller"), "{msg}");
        assert!(!t.path().join("memory/engine").exists());
    }

    #[test]
    fn a_failure_removes_the_groups_made_in_every_hierarchy() {
        // Plain directories: pids.max is absent, as when the kernel lacks the feature.
        let (t, m) = fake_mounts(&["memory", "pids", "devices"]);
        let c = Checked { pids_max: Some(5), ..Default::default() };
        let msg = V1::create(&m, "engine", "x", &c).err().expect("must refuse").to_string();
        assert!(msg.starts_with("--pids-limit:") && msg.contains("pids.max does not exist"), "{msg}");
        assert!(t.path().join("memory/engine").is_dir());
        assert!(!t.path().join("memory/engine/x").exists());
        assert!(!t.path().join("pids/engine/x").exists());
    }
}

//! cgroup v2: one directory per container under the unified mount, controllers enabled
//! through cgroup.subtree_control on every level above it, and the device rules attached to it
//! as a BPF program (v2 has no devices files).

use super::devices::{self, DEFAULT_RULES};
use super::layout::has_controller;
use super::limits::{self, write_limit, Checked, Stats, CPU_PERIOD_US};
use super::{fs, Backend, CgroupError, Version};
use std::path::{Path, PathBuf};

pub struct V2 {
    pub(super) dir: PathBuf,
}

impl V2 {
    pub fn create(mount: &Path, parent: &str, name: &str, c: &Checked) -> Result<V2, CgroupError> {
        // Refuse before creating anything.
        for (ctrl, flag) in c.controllers() {
            if !has_controller(mount, ctrl) {
                let have = fs::read(&mount.join("cgroup.controllers")).unwrap_or_default();
                return Err(CgroupError::Unsupported {
                    flag,
                    reason: format!(
                        "no {ctrl} controller in the cgroup v2 hierarchy at {} (available: {:?})",
                        mount.display(),
                        have.trim()
                    ),
                });
            }
        }
        // memory and pids are also enabled without a limit when available: they give stats.
        let mut ctrls: Vec<&str> = c.controllers().into_iter().map(|(ctrl, _)| ctrl).collect();
        ctrls.extend(["memory", "pids"].into_iter().filter(|ctrl| has_controller(mount, ctrl)));
        ctrls.sort_unstable();
        ctrls.dedup();

        let parent_dir = mount.join(parent);
        fs::mkdir_parents(mount, &parent_dir, |_| Ok(()))?;
        // Each level must pass the controllers down to the next (the root included).
        let mut level = mount.to_path_buf();
        let mut levels = vec![level.clone()];
        for comp in Path::new(parent).components() {
            level.push(comp);
            levels.push(level.clone());
        }
        for dir in &levels {
            for ctrl in &ctrls {
                fs::write(&dir.join("cgroup.subtree_control"), &format!("+{ctrl}"))?;
            }
        }

        let dir = parent_dir.join(name);
        fs::mkdir(&dir)?;
        let cg = V2 { dir };
        if let Err(e) = cg.apply(c).and_then(|()| devices::apply_v2(&cg.dir, DEFAULT_RULES)) {
            // The group is empty and ours: take it away again.
            let _ = fs::rmdir(&cg.dir);
            return Err(e);
        }
        Ok(cg)
    }

    fn apply(&self, c: &Checked) -> Result<(), CgroupError> {
        let d = &self.dir;
        if let Some(max) = c.memory_max {
            write_limit(d, "memory.max", &max.to_string(), limits::FLAG_MEMORY)?;
            // Hard means hard: no swapping past the limit. The file exists only with swap
            // accounting; without it there is nothing to include.
            if d.join("memory.swap.max").exists() {
                write_limit(d, "memory.swap.max", "0", limits::FLAG_MEMORY)?;
            }
        }
        if let Some(high) = c.memory_high {
            write_limit(d, "memory.high", &high.to_string(), limits::FLAG_MEMORY_HIGH)?;
        }
        if let Some(q) = c.cpu_quota_us {
            write_limit(d, "cpu.max", &format!("{q} {CPU_PERIOD_US}"), limits::FLAG_CPUS)?;
        }
        if let Some(p) = c.pids_max {
            write_limit(d, "pids.max", &p.to_string(), limits::FLAG_PIDS)?;
        }
        if let Some(cpus) = &c.cpuset {
            write_limit(d, "cpuset.cpus", cpus, limits::FLAG_CPUSET)?;
        }
        Ok(())
    }

    pub fn open(mount: &Path, parent: &str, name: &str) -> Option<V2> {
        let dir = mount.join(parent).join(name);
        dir.is_dir().then_some(V2 { dir })
    }
}

impl Backend for V2 {
    fn version(&self) -> Version {
        Version::V2
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn dirs(&self) -> super::Dirs<'_> {
        super::Dirs::V2(&self.dir)
    }

    fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        fs::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let d = &self.dir;
        // cpu.stat is always there; memory.* and pids.* only with their controller enabled.
        let usage_usec = fs::read_key(&d.join("cpu.stat"), "usage_usec")?.unwrap_or(0);
        let pids_current = match fs::read_u64_opt(&d.join("pids.current"))? {
            Some(n) => n,
            None => fs::count_lines(&d.join("cgroup.threads"))?,
        };
        Ok(Stats {
            memory_current: fs::read_u64_opt(&d.join("memory.current"))?.unwrap_or(0),
            memory_peak: fs::read_u64_opt(&d.join("memory.peak"))?,
            cpu_usage_ns: usage_usec.saturating_mul(1000),
            pids_current,
        })
    }

    fn oom_killed(&self) -> bool {
        let events = self.dir.join("memory.events");
        matches!(fs::read_key(&events, "oom_kill"), Ok(Some(n)) if n > 0)
    }

    fn remove(self: Box<Self>) -> Vec<CgroupError> {
        let mut errors = Vec::new();
        // cgroup.kill (5.14+) kills the group atomically, forks in flight included.
        let kill = self.dir.join("cgroup.kill");
        let kill = kill.exists().then_some(kill.as_path());
        fs::kill_all(std::slice::from_ref(&self.dir), kill, &mut errors);
        if let Err(e) = fs::rmdir(&self.dir) {
            errors.push(e);
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::{has_controller, parse_mountinfo};
    use super::*;

    /// A directory that looks like a cgroup2 root with the given controllers.
    fn fake_mount(ctrls: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), ctrls).unwrap();
        std::fs::write(t.path().join("cgroup.subtree_control"), "").unwrap();
        t
    }

    #[test]
    fn a_missing_controller_is_refused_by_flag_before_anything_is_made() {
        let t = fake_mount("memory cpu\n");
        let c = Checked { pids_max: Some(5), ..Default::default() };
        let e = V2::create(t.path(), "engine", "x", &c).err().expect("must refuse");
        let msg = e.to_string();
        assert!(msg.starts_with("--pids-limit: no pids controller"), "{msg}");
        assert!(!t.path().join("engine").exists());
    }

    #[test]
    fn a_missing_limit_file_is_refused_and_the_group_removed() {
        // A plain directory tree: mkdir makes no interface files, so memory.max is absent,
        // as on a kernel that lacks the feature.
        let t = fake_mount("memory pids\n");
        std::fs::create_dir(t.path().join("engine")).unwrap();
        std::fs::write(t.path().join("engine/cgroup.subtree_control"), "").unwrap();
        let c = Checked { memory_max: Some(1 << 20), ..Default::default() };
        let msg = V2::create(t.path(), "engine", "x", &c).err().expect("must refuse").to_string();
        assert!(msg.starts_with("--memory/--hard-mib:") && msg.contains("memory.max does not exist"), "{msg}");
        assert!(!t.path().join("engine/x").exists(), "the half-made group must be removed");
        assert!(!std::fs::read_to_string(t.path().join("engine/cgroup.subtree_control")).unwrap().is_empty());
    }

    /// The build host is hybrid: v1 controllers plus a cgroup2 mount with none of ours
    /// (memory, cpu, pids, cpuset) to delegate. That still
    /// exercises v2 group creation, cgroup.procs, cpu.stat, cgroup.kill and rmdir for real.
    /// Skipped where the cgroup2 mount has controllers (there the integration tests run v2).
    #[test]
    fn controller_less_cgroup2_mount_on_this_host() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root");
            return;
        }
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(mount) = parse_mountinfo(&info).1.into_iter().next() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        if has_controller(&mount, "memory") {
            eprintln!("skipped: {} has controllers; the integration tests cover v2", mount.display());
            return;
        }
        let parent = format!("engine-unit-{}", std::process::id());
        let limited = Checked { memory_max: Some(1 << 20), ..Default::default() };
        let msg = V2::create(&mount, &parent, "g", &limited).err().expect("no memory controller").to_string();
        assert!(msg.contains("no memory controller"), "{msg}");

        let cg = Box::new(V2::create(&mount, &parent, "g", &Checked::default()).unwrap());
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        cg.add_pid(child.id() as i32).unwrap();
        let s = cg.stats().unwrap();
        assert_eq!(s.pids_current, 1, "{s:?}");
        assert_eq!(s.memory_current, 0);
        assert!(!cg.oom_killed());
        let dir = cg.paths()[0].clone();
        let errors = cg.remove();
        let status = child.wait().unwrap();
        let _ = std::fs::remove_dir(mount.join(&parent));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!dir.exists());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}

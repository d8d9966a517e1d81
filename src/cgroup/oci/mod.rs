//! The group of an OCI container: `linux.cgroupsPath` + `linux.resources`, as runc's cgroupfs
//! driver makes it, and what runc's verbs do to it afterwards (update, pause/resume, ps,
//! kill --all, events --stats, delete).
//!
//! ```text
//! let cg = Cgroup::create_oci("/kubepods/pod1/ctr1", spec.linux.resources.as_ref())?;
//! cg.add_pid(init_pid)?;                      // before the init is released
//! // another process, later:
//! let cg = Cgroup::open_oci("/kubepods/pod1/ctr1")?;
//! cg.freeze()?; cg.thaw()?; cg.kill_all(libc::SIGKILL)?; cg.remove()?;   // the leaf only
//! ```

mod path;
mod resources;
mod stats;

pub use resources::{IGNORED_V1, IGNORED_V2};
pub use stats::OciStats;

use super::devices::{self, DEFAULT_RULES};
use super::layout::{self, Layout};
use super::{fs, v1::V1, v2::V2, Backend, Cgroup, CgroupError, Dirs};
use oci_spec::runtime::LinuxResources;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `state()` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze, not every task stopped yet.
    Freezing,
    Frozen,
}

/// How long freeze() waits for every task to stop (runc gives up after about as long).
const FREEZE_WAIT: Duration = Duration::from_secs(5);

/// The device rules of an OCI container: the spec's, in order, then engine's defaults, as runc
/// appends its AllowedDevices: the few nodes every program expects stay usable whatever the
/// list says. A caller adding `linux.devices` nodes puts an allow rule for each into
/// `resources.devices` first (runc's specconv does the same).
fn rules_for(r: &LinuxResources) -> Result<Vec<devices::Rule>, CgroupError> {
    let mut rules = devices::from_oci(r.devices().as_deref().unwrap_or_default())?;
    rules.extend_from_slice(DEFAULT_RULES);
    Ok(rules)
}

/// Creates each missing directory from `mount` down to `dir`, recording it in `made`.
/// v1 cpuset groups get their parent's cpus and mems (they refuse tasks while empty).
fn make_dirs(mount: &Path, dir: &Path, cpuset: bool, made: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => made.push(cur.clone()),
            // An existing group (a CRI pod's, or the container's own) is joined, as runc does.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && cur.is_dir() => {}
            Err(source) => return Err(CgroupError::Mkdir { path: cur, source }),
        }
        if cpuset {
            v1_init_cpuset(&cur)?;
        }
    }
    Ok(())
}

/// Refuses a field whose v1 controller is not among `dirs` (mounted, or joined by the group).
fn check_v1(dirs: &BTreeMap<String, PathBuf>, r: &LinuxResources, where_: &str) -> Result<(), CgroupError> {
    let have: Vec<&str> = dirs.keys().map(|k| k.as_str()).collect();
    resources::check_controllers(&resources::needs_v1(r), &have, where_)
}

fn v1_init_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read(&dir.join(file))?.trim().is_empty() {
            fs::write(&dir.join(file), fs::read(&parent.join(file))?.trim())?;
        }
    }
    Ok(())
}

fn undo(made: &[PathBuf]) {
    // Only what this call made, deepest first; a group that existed before stays.
    for d in made.iter().rev() {
        let _ = fs::rmdir(d);
    }
}

fn create_v1(
    mounts: &BTreeMap<String, PathBuf>,
    p: &path::OciPath,
    own: &path::OwnGroups,
    r: &LinuxResources,
) -> Result<V1, CgroupError> {
    check_v1(mounts, r, "in this host's cgroup v1 hierarchies")?;
    // Without the devices controller a container could open any node it makes.
    if !mounts.contains_key("devices") {
        let have: Vec<&str> = mounts.keys().map(|k| k.as_str()).collect();
        return Err(CgroupError::NoHierarchy(format!(
            "no devices controller mounted (cgroup v1 controllers mounted: {have:?}): device rules cannot be enforced"
        )));
    }
    let rules = rules_for(r)?;
    let mut made = Vec::new();
    let mut dirs = BTreeMap::new();
    let result = (|| {
        for (ctrl, mount) in mounts {
            let dir = p.dir(mount, &path::own_v1(own, ctrl));
            // Co-mounted controllers (cpu,cpuacct) share one directory.
            if !dirs.values().any(|d| d == &dir) {
                make_dirs(mount, &dir, ctrl == "cpuset" || mounts.get("cpuset") == Some(mount), &mut made)?;
            }
            dirs.insert(ctrl.clone(), dir);
        }
        resources::apply_v1(&dirs, r)?;
        devices::apply_v1(&dirs["devices"], &rules)
    })();
    match result {
        Ok(()) => Ok(V1 { dirs }),
        Err(e) => {
            undo(&made);
            Err(e)
        }
    }
}

fn create_v2(mount: &Path, p: &path::OciPath, own: &path::OwnGroups, r: &LinuxResources) -> Result<V2, CgroupError> {
    let needs = resources::needs_v2(r)?;
    let avail = fs::read(&mount.join("cgroup.controllers")).unwrap_or_default();
    let avail: Vec<&str> = avail.split_whitespace().collect();
    resources::check_controllers(&needs, &avail, &format!("in the cgroup v2 hierarchy at {}", mount.display()))?;
    let rules = rules_for(r)?;
    let dir = p.dir(mount, &path::own_v2(own));
    let mut made = Vec::new();
    let result = (|| {
        let parent = dir.parent().unwrap_or(mount);
        make_dirs(mount, parent, false, &mut made)?;
        // Every level above the group passes the controllers down, as runc enables all of them.
        // One at a time: a controller the host cannot delegate fails alone, and only a needed
        // one is an error.
        let mut level = mount.to_path_buf();
        let rel: Vec<PathBuf> = parent
            .strip_prefix(mount)
            .unwrap_or(Path::new(""))
            .components()
            .map(|c| PathBuf::from(c.as_os_str()))
            .collect();
        let mut levels = vec![level.clone()];
        for c in rel {
            level.push(c);
            levels.push(level.clone());
        }
        for l in &levels {
            for ctrl in fs::read(&l.join("cgroup.controllers")).unwrap_or_default().split_whitespace() {
                if let Err(e) = fs::write(&l.join("cgroup.subtree_control"), &format!("+{ctrl}")) {
                    if needs.iter().any(|(c, _)| *c == ctrl) {
                        return Err(e);
                    }
                }
            }
        }
        make_dirs(mount, &dir, false, &mut made)?;
        resources::apply_v2(&dir, r)?;
        devices::apply_v2(&dir, &rules)
    })();
    match result {
        Ok(()) => Ok(V2 { dir }),
        Err(e) => {
            undo(&made);
            Err(e)
        }
    }
}

impl Cgroup {
    /// The group at `linux.cgroupsPath` (see oci/path.rs for how it is read), made with its
    /// missing parents or joined if it exists, with `resources` and the device rules written
    /// before any process joins. Everything asked for is enforced or refused by field name,
    /// except the fields runc ignores (IGNORED_V1 / IGNORED_V2). On a failure the directories
    /// this call made are removed again.
    ///
    /// The group's name ([`Cgroup::name`]) is its path from the hierarchy's root ("/a/b": a
    /// relative cgroupsPath joined to the caller's own group, on v1 the devices hierarchy's),
    /// which any other process can give [`Cgroup::open_oci`] to reach the same group.
    pub fn create_oci(path: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, CgroupError> {
        let p = path::parse(path)?;
        let default = LinuxResources::default();
        let r = resources.unwrap_or(&default);
        let own = if p.absolute { Vec::new() } else { path::read_own()? };
        let (backend, base): (Box<dyn Backend>, _) = match layout::detect()? {
            Layout::V2 { mount } => (Box::new(create_v2(&mount, &p, &own, r)?), path::own_v2(&own)),
            Layout::V1 { mounts } => (Box::new(create_v1(&mounts, &p, &own, r)?), path::own_v1(&own, "devices")),
        };
        Ok(Cgroup { name: p.absolute_from(&base), backend, oci: true, tasks: Vec::new() })
    }

    /// The existing group at a cgroupsPath, for `update`, `pause`, `ps`, `kill --all`, `delete`
    /// run by another process than the one that made it.
    pub fn open_oci(path: &str) -> Result<Cgroup, CgroupError> {
        let p = path::parse(path)?;
        let own = if p.absolute { Vec::new() } else { path::read_own()? };
        let backend: Box<dyn Backend> = match layout::detect()? {
            Layout::V2 { mount } => {
                let dir = p.dir(&mount, &path::own_v2(&own));
                if !dir.is_dir() {
                    return Err(CgroupError::NotFound { path: dir });
                }
                Box::new(V2 { dir })
            }
            Layout::V1 { mounts } => {
                let dirs: BTreeMap<String, PathBuf> = mounts
                    .iter()
                    .map(|(c, m)| (c.clone(), p.dir(m, &path::own_v1(&own, c))))
                    .filter(|(_, d)| d.is_dir())
                    .collect();
                if !dirs.contains_key("devices") {
                    let dir = mounts.get("devices").map(|m| p.dir(m, &path::own_v1(&own, "devices")));
                    return Err(CgroupError::NotFound { path: dir.unwrap_or_else(|| PathBuf::from(path)) });
                }
                Box::new(V1 { dirs })
            }
        };
        Ok(Cgroup { name: path.to_string(), backend, oci: true, tasks: Vec::new() })
    }

    /// `runc update`: writes the resources given (devices are left as they are, as runc does).
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match self.backend.dirs() {
            Dirs::V1(dirs) => {
                check_v1(dirs, r, "joined by this group")?;
                resources::apply_v1(dirs, r)
            }
            Dirs::V2(dir) => resources::apply_v2(dir, r),
        }
    }

    /// `pause`: stops every task of the group (and its descendants) and waits until they are.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.backend.dirs() {
            Dirs::V1(dirs) => {
                let d = v1_freezer(dirs)?;
                let file = d.join("freezer.state");
                let deadline = Instant::now() + FREEZE_WAIT;
                loop {
                    // Written again each round: a task forked meanwhile may have kept the
                    // group in FREEZING.
                    fs::write(&file, "FROZEN")?;
                    if fs::read(&file)?.trim() == "FROZEN" {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        let _ = fs::write(&file, "THAWED");
                        return Err(CgroupError::Freeze { path: file, waited: FREEZE_WAIT });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Dirs::V2(dir) => {
                let file = v2_freeze_file(dir)?;
                fs::write(&file, "1")?;
                wait_v2_frozen(dir, true).inspect_err(|_| {
                    let _ = fs::write(&file, "0");
                })
            }
        }
    }

    /// `resume`.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.backend.dirs() {
            Dirs::V1(dirs) => fs::write(&v1_freezer(dirs)?.join("freezer.state"), "THAWED"),
            Dirs::V2(dir) => {
                fs::write(&v2_freeze_file(dir)?, "0")?;
                wait_v2_frozen(dir, false)
            }
        }
    }

    /// Frozen or not; a host without a freezer has no frozen groups.
    pub fn state(&self) -> Result<FreezerState, CgroupError> {
        match self.backend.dirs() {
            Dirs::V1(dirs) => match dirs.get("freezer") {
                None => Ok(FreezerState::Thawed),
                Some(d) => {
                    let path = d.join("freezer.state");
                    let s = fs::read(&path)?;
                    match s.trim() {
                        "THAWED" => Ok(FreezerState::Thawed),
                        "FREEZING" => Ok(FreezerState::Freezing),
                        "FROZEN" => Ok(FreezerState::Frozen),
                        _ => Err(CgroupError::Parse { path, content: s }),
                    }
                }
            },
            Dirs::V2(dir) => {
                if !dir.join("cgroup.freeze").exists() {
                    return Ok(FreezerState::Thawed);
                }
                let asked = fs::read(&dir.join("cgroup.freeze"))?.trim() == "1";
                let frozen = fs::read_key(&dir.join("cgroup.events"), "frozen")? == Some(1);
                Ok(match (asked, frozen) {
                    (_, true) => FreezerState::Frozen,
                    (true, false) => FreezerState::Freezing,
                    (false, false) => FreezerState::Thawed,
                })
            }
        }
    }

    /// Every process of the group and of the groups below it (`ps`, `kill --all`), sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let top = match self.backend.dirs() {
            // Every process joins every hierarchy: one is enough.
            Dirs::V1(dirs) => dirs.get("devices").or_else(|| dirs.values().next()).cloned(),
            Dirs::V2(dir) => Some(dir.to_path_buf()),
        };
        let mut pids = Vec::new();
        for d in top.map(|t| subtree(&t)).unwrap_or_default() {
            pids.extend(fs::procs(&d)?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// `kill --all`: sends `signal` to every process of the group. The group is frozen around
    /// the sending (as runc does), so a process forking meanwhile cannot slip a child past it;
    /// SIGKILL on v2 goes through cgroup.kill, which the kernel applies to forks in flight.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if let Dirs::V2(dir) = self.backend.dirs() {
            if signal == libc::SIGKILL && dir.join("cgroup.kill").exists() {
                return fs::write(&dir.join("cgroup.kill"), "1");
            }
        }
        let froze = self.state()? == FreezerState::Thawed && self.freeze().is_ok();
        let result = self.pids().and_then(|pids| {
            pids.into_iter().try_for_each(|pid| {
                // SAFETY: kill(2) has no memory effects; ESRCH means it already went.
                if unsafe { libc::kill(pid, signal) } != 0 {
                    let source = std::io::Error::last_os_error();
                    if source.raw_os_error() != Some(libc::ESRCH) {
                        return Err(CgroupError::Kill { pid, path: self.paths()[0].clone(), source });
                    }
                }
                Ok(())
            })
        });
        if froze {
            self.thaw()?;
        }
        result
    }

    /// `events --stats`, in runc's JSON shape.
    pub fn stats_oci(&self) -> Result<OciStats, CgroupError> {
        match self.backend.dirs() {
            Dirs::V1(dirs) => stats::v1(dirs),
            Dirs::V2(dir) => stats::v2(dir),
        }
    }
}

fn v1_freezer(dirs: &BTreeMap<String, PathBuf>) -> Result<&PathBuf, CgroupError> {
    dirs.get("freezer").ok_or(CgroupError::Unsupported {
        flag: "pause",
        reason: "no freezer controller in this host's cgroup v1 hierarchies".into(),
    })
}

fn v2_freeze_file(dir: &Path) -> Result<PathBuf, CgroupError> {
    let f = dir.join("cgroup.freeze");
    if f.exists() {
        Ok(f)
    } else {
        Err(CgroupError::Unsupported { flag: "pause", reason: "cgroup.freeze needs Linux 5.2 or later".into() })
    }
}

fn wait_v2_frozen(dir: &Path, want: bool) -> Result<(), CgroupError> {
    let events = dir.join("cgroup.events");
    let deadline = Instant::now() + FREEZE_WAIT;
    while (fs::read_key(&events, "frozen")? == Some(1)) != want {
        if Instant::now() >= deadline {
            return Err(CgroupError::Freeze { path: events, waited: FREEZE_WAIT });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// `dir` and every group below it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let d = out[i].clone();
        let mut kids: Vec<PathBuf> = fs::subdirs(&d).into_iter().map(|n| d.join(n)).collect();
        kids.sort();
        out.extend(kids);
        i += 1;
    }
    out
}

/// delete: kills what is left in the container's groups and below, then removes them, children
/// first. Only the leaf goes: its parents may be a CRI pod's or another container's, and runc
/// leaves them too.
pub(super) fn remove(dirs: Vec<PathBuf>) -> Vec<CgroupError> {
    let mut errors = Vec::new();
    let all: Vec<PathBuf> = dirs.iter().flat_map(|d| subtree(d)).collect();
    let kill = dirs.iter().map(|d| d.join("cgroup.kill")).find(|k| k.exists());
    fs::kill_all(&all, kill.as_deref(), &mut errors);
    for d in all.iter().rev() {
        if let Err(e) = fs::rmdir(d) {
            errors.push(e);
        }
    }
    errors
}

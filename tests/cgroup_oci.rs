//! OCI cgroups on the real kernel (root required): `Cgroup::create_oci` at nested absolute and
//! relative cgroupsPaths with linux.resources, a real process moved in, the files' values,
//! update, freeze/thaw, pids, kill_all, stats and leaf-only removal. Written for this build
//! host's cgroup v1 hierarchies; on a v2 host the v1 file checks are replaced by their v2 names.
//!
//! Each test has its own top group, "engine-oci-test-<pid>-<test>", which a Drop guard kills
//! and removes in every hierarchy even when the test fails.

use engine::cgroup::{Cgroup, CgroupError, FreezerState, Version};
use oci_spec::runtime::LinuxResources;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const MIB: i64 = 1 << 20;

/// Every cgroup and cgroup2 mount point (root mounts only).
fn mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            (pre[3] == "/" && (fstype == "cgroup" || fstype == "cgroup2")).then(|| PathBuf::from(pre[4]))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The mount of a v1 controller (e.g. "memory"), if mounted.
fn v1_mount(ctrl: &str) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let post: Vec<&str> = post.split(' ').collect();
        let pre: Vec<&str> = pre.split(' ').collect();
        (post[0] == "cgroup" && pre[3] == "/" && post[2].split(',').any(|o| o == ctrl)).then(|| PathBuf::from(pre[4]))
    })
}

/// Kills and removes the test's top group in every hierarchy, children first, and the
/// processes the test started.
struct Guard {
    top: String,
    children: Vec<Child>,
}

impl Guard {
    fn new(test: &str) -> Guard {
        assert_eq!(unsafe { libc::geteuid() }, 0, "cgroup tests must run as root");
        Guard { top: format!("engine-oci-test-{}-{test}", std::process::id()), children: Vec::new() }
    }

    fn path(&self, rest: &str) -> String {
        format!("/{}/{rest}", self.top)
    }

    /// Directories of the top group still present, in any hierarchy.
    fn leftovers(&self) -> Vec<PathBuf> {
        mounts().into_iter().map(|m| m.join(&self.top)).filter(|d| d.exists()).collect()
    }

    fn sleeper(&mut self) -> i32 {
        let c = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = c.id() as i32;
        self.children.push(c);
        pid
    }
}

fn tree(d: &Path, out: &mut Vec<PathBuf>) {
    out.push(d.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                tree(&e.path(), out);
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in mounts() {
            let mut dirs = Vec::new();
            let top = m.join(&self.top);
            if !top.exists() {
                continue;
            }
            tree(&top, &mut dirs);
            for d in &dirs {
                let _ = std::fs::write(d.join("freezer.state"), "THAWED");
                let _ = std::fs::write(d.join("cgroup.freeze"), "0");
                for pid in std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            for d in dirs.iter().rev() {
                for _ in 0..100 {
                    if std::fs::remove_dir(d).is_ok() || !d.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display())).trim().into()
}

/// The group's directory in the hierarchy holding `file` (v1), or its only one (v2).
fn dir_with(cg: &Cgroup, file: &str) -> PathBuf {
    cg.paths().into_iter().find(|d| d.join(file).exists()).unwrap_or_else(|| panic!("no {file} in {:?}", cg.paths()))
}

/// The process's state letter from /proc/PID/stat ("S" sleeping, "D"/"T" when frozen).
fn proc_state(pid: i32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s[s.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn nested_absolute_group_limits_update_freeze_kill_remove() {
    let mut g = Guard::new("life");
    let path = g.path("kubepods/pod-1/ctr");
    let disk = std::fs::read_to_string("/sys/block/vda/dev").unwrap_or_else(|_| "254:0".into());
    let (major, minor) = disk.trim().split_once(':').unwrap();
    let r = res(&format!(
        r#"{{"memory":{{"limit":{},"reservation":{}}},
            "cpu":{{"shares":512,"quota":20000,"period":100000,"cpus":"0","mems":"0"}},
            "pids":{{"limit":16}},
            "blockIO":{{"weight":500,"throttleReadBpsDevice":[{{"major":{major},"minor":{minor},"rate":1048576}}]}},
            "devices":[{{"allow":false,"access":"rwm"}},{{"allow":true,"type":"c","major":10,"minor":200,"access":"rw"}}]}}"#,
        64 * MIB,
        32 * MIB
    ));
    let cg = Cgroup::create_oci(&path, Some(&r)).unwrap();
    let v2 = cg.version() == Version::V2;
    let pid = g.sleeper();
    cg.add_pid(pid).unwrap();

    // The files hold what was asked.
    if v2 {
        let d = &cg.paths()[0];
        assert_eq!(read(d, "memory.max"), (64 * MIB).to_string());
        assert_eq!(read(d, "memory.low"), (32 * MIB).to_string());
        assert_eq!(read(d, "cpu.max"), "20000 100000");
        assert_eq!(read(d, "pids.max"), "16");
        assert_eq!(read(d, "cpuset.cpus"), "0");
    } else {
        assert_eq!(read(&dir_with(&cg, "memory.limit_in_bytes"), "memory.limit_in_bytes"), (64 * MIB).to_string());
        assert_eq!(read(&dir_with(&cg, "memory.limit_in_bytes"), "memory.soft_limit_in_bytes"), (32 * MIB).to_string());
        let cpu = dir_with(&cg, "cpu.shares");
        assert_eq!(read(&cpu, "cpu.shares"), "512");
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
        assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(&dir_with(&cg, "pids.max"), "pids.max"), "16");
        assert_eq!(read(&dir_with(&cg, "cpuset.cpus"), "cpuset.cpus"), "0");
        let blk = read(&dir_with(&cg, "blkio.throttle.read_bps_device"), "blkio.throttle.read_bps_device");
        assert_eq!(blk, format!("{} 1048576", disk.trim()));
        // BFQ's file where the kernel has BFQ (this host), as runc writes it.
        let blkio = dir_with(&cg, "blkio.throttle.read_bps_device");
        let weight = ["blkio.bfq.weight", "blkio.weight"].into_iter().find(|f| blkio.join(f).exists()).unwrap();
        assert_eq!(read(&blkio, weight), "500");
        let devs = read(&dir_with(&cg, "devices.list"), "devices.list");
        assert!(devs.lines().any(|l| l == "c 10:200 rw"), "{devs}");
        assert!(devs.lines().any(|l| l == "c 136:* rwm"), "the defaults follow the spec's rules: {devs}");
        assert!(!devs.contains("a *:*"), "{devs}");
        // Every hierarchy has the group, at the path from its root, and holds the process.
        for d in cg.paths() {
            assert!(d.ends_with(format!("{}/kubepods/pod-1/ctr", g.top)), "{}", d.display());
            assert_eq!(read(&d, "cgroup.procs"), pid.to_string(), "{}", d.display());
        }
        assert!(cg.paths().iter().any(|d| d.join("freezer.state").exists()), "the freezer is joined");
    }
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    let s = cg.stats_oci().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 16);
    assert_eq!(s.memory.usage.limit, 64 * MIB as u64);
    let j = serde_json::to_value(&s).unwrap();
    assert!(j["cpu"]["usage"].is_object() && j["memory"]["usage"]["limit"].is_u64(), "{j}");

    // update
    cg.update(&res(&format!(
        r#"{{"memory":{{"limit":{}}},"pids":{{"limit":32}},"cpu":{{"quota":50000}}}}"#,
        128 * MIB
    )))
    .unwrap();
    if v2 {
        let d = &cg.paths()[0];
        assert_eq!(read(d, "memory.max"), (128 * MIB).to_string());
        assert_eq!(read(d, "pids.max"), "32");
        assert_eq!(read(d, "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read(&dir_with(&cg, "memory.limit_in_bytes"), "memory.limit_in_bytes"), (128 * MIB).to_string());
        assert_eq!(read(&dir_with(&cg, "pids.max"), "pids.max"), "32");
        assert_eq!(read(&dir_with(&cg, "cpu.cfs_quota_us"), "cpu.cfs_quota_us"), "50000");
    }

    // freeze / thaw
    assert_eq!(cg.state().unwrap(), FreezerState::Thawed);
    cg.freeze().unwrap();
    assert_eq!(cg.state().unwrap(), FreezerState::Frozen);
    if !v2 {
        assert_eq!(read(&dir_with(&cg, "freezer.state"), "freezer.state"), "FROZEN");
    }
    let st = proc_state(pid);
    assert!(st == 'D' || st == 'T', "a frozen process is D or T, not {st}");
    cg.thaw().unwrap();
    assert_eq!(cg.state().unwrap(), FreezerState::Thawed);
    wait_for("the process to sleep again", || proc_state(pid) == 'S');

    // kill --all
    cg.kill_all(libc::SIGKILL).unwrap();
    let status = g.children.pop().unwrap().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    wait_for("the group to empty", || cg.pids().unwrap().is_empty());
    assert_eq!(cg.state().unwrap(), FreezerState::Thawed, "kill_all thaws what it froze");

    // remove: the leaf only; the pod's parents stay for their owner.
    let leaves = cg.paths();
    cg.remove().unwrap();
    for d in &leaves {
        assert!(!d.exists(), "{} left", d.display());
        assert!(d.parent().unwrap().is_dir(), "parent {} removed", d.parent().unwrap().display());
    }
}

#[test]
fn existing_group_is_joined_and_other_handles_open_it() {
    let mut g = Guard::new("join");
    let path = g.path("default/redis");
    let first = Cgroup::create_oci(&path, None).unwrap();
    let pid = g.sleeper();
    first.add_pid(pid).unwrap();
    // runc joins an existing group instead of refusing it.
    let second = Cgroup::create_oci(&path, Some(&res(r#"{"pids":{"limit":8}}"#))).unwrap();
    assert_eq!(second.paths(), first.paths());
    assert_eq!(second.pids().unwrap(), vec![pid]);
    drop((first, second));

    // A later `delete` from another process.
    let opened = Cgroup::open_oci(&path).unwrap();
    assert_eq!(opened.pids().unwrap(), vec![pid]);
    assert_eq!(opened.stats_oci().unwrap().pids.limit, 8);
    let leaves = opened.paths();
    opened.remove().unwrap();
    let status = g.children.pop().unwrap().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "remove kills what is left");
    assert!(leaves.iter().all(|d| !d.exists()));
    match Cgroup::open_oci(&path) {
        Err(CgroupError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn groups_below_the_leaf_are_killed_and_removed_with_it() {
    let mut g = Guard::new("nested");
    let cg = Cgroup::create_oci(&g.path("c"), None).unwrap();
    // A container running its own cgroup manager makes groups below its own.
    let pid = g.sleeper();
    for d in cg.paths() {
        std::fs::create_dir(d.join("inner")).unwrap();
        if d.join("cpuset.cpus").exists() {
            std::fs::write(d.join("inner/cpuset.cpus"), read(&d, "cpuset.cpus")).unwrap();
            std::fs::write(d.join("inner/cpuset.mems"), read(&d, "cpuset.mems")).unwrap();
        }
        std::fs::write(d.join("inner/cgroup.procs"), pid.to_string()).unwrap();
    }
    assert_eq!(cg.pids().unwrap(), vec![pid], "ps sees the processes below the leaf");
    cg.remove().unwrap();
    assert_eq!(g.children.pop().unwrap().wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(g
        .leftovers()
        .iter()
        .all(|top| std::fs::read_dir(top).unwrap().flatten().all(|e| !e.path().join("c").exists())));
    for top in g.leftovers() {
        assert!(!top.join("c").exists(), "{} left", top.join("c").display());
    }
}

#[test]
fn relative_path_joins_the_callers_own_group() {
    let g = Guard::new("rel");
    let rel = format!("{}/x", g.top);
    let cg = Cgroup::create_oci(&rel, None).unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if cg.version() == Version::V1 {
        let mem = v1_mount("memory").unwrap();
        let base = own
            .lines()
            .find_map(|l| {
                l.split(':')
                    .nth(1)
                    .filter(|c| c.split(',').any(|c| c == "memory"))
                    .map(|_| l.splitn(3, ':').nth(2).unwrap().to_string())
            })
            .unwrap();
        let want = mem.join(base.trim_start_matches('/')).join(&rel);
        assert!(cg.paths().contains(&want), "{want:?} not in {:?}", cg.paths());
    }
    cg.remove().unwrap();
}

#[test]
fn refused_resources_name_the_field_and_leave_nothing() {
    let g = Guard::new("refuse");
    let path = g.path("p/c");
    let mut cases: Vec<(&str, String)> = vec![
        (r#"{"memory":{"swappiness":101}}"#, "linux.resources.memory.swappiness".into()),
        (r#"{"devices":[{"allow":true,"type":"p"}]}"#, "linux.resources.devices".into()),
        (r#"{"memory":{"limit":1048576,"swap":1024}}"#, "linux.resources.memory.swap".into()),
    ];
    // What this host's v1 hierarchies lack (ECOSYSTEM.md: crun and runc fail these here too).
    if Cgroup::detect().unwrap() == Version::V1 {
        cases.push((r#"{"unified":{"memory.high":"1"}}"#, "linux.resources.unified".into()));
        if v1_mount("hugetlb").is_none() {
            cases.push((
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":2097152}]}"#,
                "linux.resources.hugepageLimits".into(),
            ));
        }
        if v1_mount("net_cls").is_none() {
            cases.push((r#"{"network":{"classID":1048577}}"#, "linux.resources.network.classID".into()));
        }
        let kmem = v1_mount("memory").unwrap().join("memory.kmem.tcp.limit_in_bytes");
        if !kmem.exists() {
            cases.push((r#"{"memory":{"kernelTCP":1048576}}"#, "linux.resources.memory.kernelTCP".into()));
        }
    }
    for (json, field) in &cases {
        let e = Cgroup::create_oci(&path, Some(&res(json))).expect_err(json).to_string();
        assert!(e.starts_with(field.as_str()), "{json}: {e}");
        assert!(g.leftovers().is_empty(), "{json} left {:?}", g.leftovers());
    }
    for bad in ["/", "/a/../../etc", "../x"] {
        let e = Cgroup::create_oci(bad, None).expect_err(bad).to_string();
        assert!(e.starts_with("linux.cgroupsPath"), "{bad}: {e}");
    }
    // kernel memory is ignored, as runc ignores it: the group is made.
    let cg = Cgroup::create_oci(&path, Some(&res(r#"{"memory":{"kernel":1048576}}"#))).unwrap();
    cg.remove().unwrap();
}

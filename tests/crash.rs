//! Issue 8 items 9, 10, 11 and the record part of 5: a supervisor SIGKILLed mid-start leaves
//! nothing a restart does not find; supervisors on different roots do not sweep each other's
//! containers; the root and everything in it are private; a record save that fails is retried.
//! Real supervisors, real containers; run as root with the rootfs from `make rootfs`.
mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pids_matching, rootfs, top_cgroups, wait_until, Supervisor, ENGINE};

/// A `sleep` argument no other test uses, so its processes can be counted.
fn unique_secs(salt: u32) -> String {
    (100_000 + (std::process::id() * 7 + salt) % 800_000).to_string()
}

fn records(root: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("containers")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with('.') {
            out.push(serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap());
        }
    }
    out
}

fn record_names(root: &Path) -> BTreeSet<String> {
    records(root).iter().map(|r| r["spec"]["name"].as_str().unwrap().to_string()).collect()
}

/// (pid, start time) of every live, non-zombie child of `parent`.
fn children_of(parent: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Some((ppid, ticks)) = stat_of(pid) {
            if ppid == parent {
                out.push((pid, ticks));
            }
        }
    }
    out
}

/// (ppid, start ticks) of a live process that is not a zombie.
fn stat_of(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    if rest[0] == "Z" || rest[0] == "X" {
        return None;
    }
    Some((rest[1].parse().ok()?, rest[19].to_string()))
}

fn alive(pid: i32, ticks: &str) -> bool {
    stat_of(pid).is_some_and(|(_, t)| t == ticks)
}

/// The groups of containers under `parent`: not the running supervisor's groups made ahead
/// (`.ahead-N`, no container's yet; a dead supervisor's are removed at the next start, which
/// tests/startup.rs checks).
fn cgroup_children(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ctrl in ["", "memory", "cpu", "cpuacct", "pids", "cpuset", "blkio", "devices", "freezer", "unified"] {
        if let Ok(rd) = std::fs::read_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(parent)) {
            let ahead = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().starts_with(".ahead-");
            out.extend(rd.flatten().filter(|e| e.path().is_dir() && !ahead(e)).map(|e| e.path()));
        }
    }
    out
}

/// Files engine made for containers that no record names.
fn orphan_files(root: &Path) -> Vec<String> {
    let known = record_names(root);
    let mut orphans = Vec::new();
    let scan = |dir: PathBuf, suffix: &str, orphans: &mut Vec<String>| {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if file.ends_with(".tmp") {
                orphans.push(e.path().display().to_string());
            } else if let Some(name) = file.strip_suffix(suffix) {
                if !known.contains(name) {
                    orphans.push(e.path().display().to_string());
                }
            }
        }
    };
    scan(root.join("logs"), ".log", &mut orphans);
    scan(root.join("containers"), ".etc", &mut orphans);
    scan(root.join("overlay"), "", &mut orphans);
    orphans
}

/// A tiny xorshift: random delays without a dependency, reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// (a) Item 9: SIGKILL the supervisor at random moments while containers are being started, 20
/// times, restarting it each time. After the last restart no process of any of those containers
/// lives, every record is terminal (nothing claims `running` without a process), every start that
/// was acknowledged has a record, and no log, /etc, overlay or temp file is left without one.
#[test]
fn sigkill_during_starts_leaves_nothing_unknown() {
    let mut sup = Supervisor::start();
    let secs = unique_secs(1);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let rootfs = rootfs();
    let mut acknowledged = Vec::new();
    let mut inits = Vec::new();
    for round in 0..20 {
        let starts: Vec<(String, Child)> = (0..4)
            .map(|k| {
                let name = format!("c{round}-{k}");
                let child = sup
                    .cmd(&["start", &name, rootfs.to_str().unwrap(), "sleep", &secs])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                (name, child)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        // Frozen, its children (the inits) can be listed without one slipping past.
        let pid = sup.pid();
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        inits.extend(children_of(pid));
        sup.signal_and_wait(libc::SIGKILL);
        for (name, mut child) in starts {
            if child.wait().unwrap().success() {
                acknowledged.push(name);
            }
        }
        sup.spawn();
    }
    eprintln!("{} starts acknowledged, {} inits seen", acknowledged.len(), inits.len());
    // Without both, every check below would pass on a supervisor that never starts anything.
    assert!(!acknowledged.is_empty() && !inits.is_empty(), "no start got far enough to test the crash windows");
    // An init that never got its go-ahead exits by itself once its channel closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && (inits.iter().any(|(p, t)| alive(*p, t)) || !pids_matching(&format!("sleep {secs}")).is_empty())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors: Vec<_> = inits.iter().filter(|(p, t)| alive(*p, t)).collect();
    assert!(survivors.is_empty(), "container inits of killed supervisors still run: {survivors:?}");
    let sleeps = pids_matching(&format!("sleep {secs}"));
    assert!(sleeps.is_empty(), "container commands outlived their supervisors unknown: {sleeps:?}");
    let groups = cgroup_children(&sup.cgroup_parent);
    assert!(groups.is_empty(), "cgroups left: {groups:?}");
    for r in records(&sup.root) {
        let status = r["state"]["status"].as_str().unwrap();
        assert!(status != "running" && status != "created", "record claims {status} after restart: {r}");
    }
    let names = record_names(&sup.root);
    for name in &acknowledged {
        assert!(names.contains(name), "start of {name} was acknowledged but it has no record");
    }
    let orphans = orphan_files(&sup.root);
    assert!(orphans.is_empty(), "files without a record: {orphans:?}");
    // `ps -a` agrees with the files.
    let listed = sup.ok(&["ps", "-a"]);
    for name in &names {
        assert!(listed.contains(name.as_str()), "{name} missing from ps -a: {listed}");
    }
}

/// A supervisor given only --root and --socket, so the cgroup parent, bridge and subnet are the
/// defaults. Stopped (SIGTERM) when dropped.
struct Bare {
    root: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Bare {
    fn new(extra: &[&str]) -> (Bare, Result<(), String>) {
        let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
        let mut b =
            Bare { root: dir.path().join("root"), socket: dir.path().join("engine.sock"), child: None, _dir: dir };
        let started = b.spawn(extra);
        (b, started)
    }

    fn spawn(&mut self, extra: &[&str]) -> Result<(), String> {
        let mut child = Command::new(ENGINE)
            .args(["supervisor", "--root"])
            .arg(&self.root)
            .arg("--socket")
            .arg(&self.socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                // Its diagnostics still reach the test's output.
                let err = child.stderr.take().unwrap();
                std::thread::spawn(move || std::io::copy(&mut { err }, &mut std::io::stderr()));
                self.child = Some(child);
                return Ok(());
            }
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            assert!(Instant::now() < deadline, "supervisor on {} neither ready nor failed", self.root.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn engine(&self, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["--kill-after=5", "60", ENGINE])
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.engine(args);
        assert!(out.status.success(), "engine {args:?} failed: {}", common::describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", name])).unwrap()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

fn bridges() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("bridge").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Removes the bridges and cgroup parents that default-named supervisors made during a test
/// (their names derive from temporary roots; the test's own `eb*`/`engine-test-*` are not touched).
struct DefaultNamesCleanup {
    bridges: BTreeSet<String>,
    cgroups: BTreeSet<PathBuf>,
}

impl DefaultNamesCleanup {
    fn new() -> Self {
        DefaultNamesCleanup { bridges: bridges(), cgroups: top_cgroups() }
    }
}

impl Drop for DefaultNamesCleanup {
    fn drop(&mut self) {
        for b in bridges().difference(&self.bridges) {
            if b.starts_with("en") {
                let _ = engine::net::remove_bridge(b);
            }
        }
        for c in top_cgroups().difference(&self.cgroups) {
            let _ = std::fs::remove_dir(c);
        }
    }
}

/// (b) Item 10: two supervisors on different roots, both without --bridge/--cgroup-parent, run
/// containers (with a cgroup and on the bridge); a crash and restart of one leaves the other's
/// container running. A third supervisor given the first one's bridge or cgroup parent explicitly
/// is refused in one line, before it touches anything.
#[test]
fn supervisors_on_different_roots_keep_their_containers() {
    let cleanup = DefaultNamesCleanup::new();
    let secs = unique_secs(2);
    let rootfs = rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let (mut a, started) = Bare::new(&[]);
    started.unwrap();
    let (b, started) = Bare::new(&[]);
    started.unwrap();
    a.ok(&["start", "--pids-limit", "64", "a1", rootfs, "sleep", &secs]);
    b.ok(&["start", "--pids-limit", "64", "b1", rootfs, "sleep", &secs]);
    let b1 = b.inspect("b1");
    let b1_pid = b1["pid"].as_i64().unwrap() as i32;
    let a1 = a.inspect("a1");
    assert_ne!(a1["network"]["bridge"], b1["network"]["bridge"], "both supervisors on one bridge");

    a.kill9();
    a.spawn(&[]).unwrap();
    assert_eq!(a.inspect("a1")["state"]["status"], "lost");
    let b1 = b.inspect("b1");
    assert_eq!(b1["state"]["status"], "running", "a restart of another root's supervisor ended b1: {b1}");
    assert!(common::process_exists(b1_pid), "b1's init was killed by the other supervisor's restart");
    let veth = b1["network"]["host_veth"].as_str().unwrap();
    assert!(Path::new("/sys/class/net").join(veth).exists(), "b1's veth {veth} was removed by the other supervisor");

    // The same names given explicitly to a supervisor on a third root: refused, in one line.
    let a_bridge = a1["network"]["bridge"].as_str().unwrap().to_string();
    let b_parent = b1["cgroup"][0]
        .as_str()
        .map(|p| Path::new(p).parent().unwrap().file_name().unwrap().to_string_lossy().into_owned())
        .expect("b1 has a cgroup");
    for (flag, value) in [("--bridge", a_bridge.as_str()), ("--cgroup-parent", b_parent.as_str())] {
        let (mut c, started) = Bare::new(&[flag, value]);
        let err = match started {
            Ok(()) => {
                c.kill9();
                panic!("a supervisor with another root but {flag} {value} was allowed to start");
            }
            Err(e) => e,
        };
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err:?}");
        assert!(err.contains("in use by another supervisor") && err.contains(value), "unclear refusal: {err:?}");
        assert!(!c.socket.exists(), "the refused supervisor bound its socket");
    }
    assert_eq!(b.inspect("b1")["state"]["status"], "running");
    assert!(common::process_exists(b1_pid));
    drop((a, b));
    drop(cleanup);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// (c) Item 11: with --detach, in a directory anyone may enter, the root is 0700, records, logs
/// and supervisor.log 0600, and `nobody` cannot read a record holding a password.
#[test]
fn detached_root_and_records_are_private() {
    let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("root");
    let socket = dir.path().join("engine.sock");
    let tag = std::process::id() % 100_000;
    let (parent, bridge) = (format!("engine-test-perm{tag}"), format!("eb{tag}p"));
    struct Daemon(PathBuf, String, String);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let needle = format!("--root {}", self.0.display());
            for pid in pids_matching(&needle) {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = (0..500).find(|_| {
                std::thread::sleep(Duration::from_millis(20));
                pids_matching(&needle).is_empty()
            });
            let _ = engine::net::remove_bridge(&self.2);
            for ctrl in ["memory", "cpu", "cpuacct", "pids", "cpuset", "blkio", "devices", "unified", ""] {
                let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(&self.1));
            }
        }
    }
    let out = Command::new(ENGINE)
        .args(["supervisor", "--detach", "--root"])
        .arg(&root)
        .arg("--socket")
        .arg(&socket)
        .args(["--cgroup-parent", &parent, "--bridge", &bridge, "--subnet", &format!("10.201.{}.0/24", tag % 250)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _daemon = Daemon(root.clone(), parent, bridge);
    assert!(out.status.success(), "supervisor --detach: {}", common::describe(&out));
    let engine = |args: &[&str]| {
        let out = Command::new(ENGINE).arg("--socket").arg(&socket).args(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "engine {args:?}: {}", common::describe(&out));
    };
    let secs = unique_secs(3);
    engine(&["start", "-e", "DB_PASSWORD=hunter2", "secret", rootfs().to_str().unwrap(), "sleep", &secs]);

    let record = root.join("containers/secret.json");
    assert!(std::fs::read_to_string(&record).unwrap().contains("hunter2"));
    assert_eq!(mode(&root), 0o700, "root");
    assert_eq!(mode(&record), 0o600, "record");
    assert_eq!(mode(&root.join("logs/secret.log")), 0o600, "log");
    assert_eq!(mode(&root.join("supervisor.log")), 0o600, "supervisor.log");
    // setpriv itself must work, or the refusal below would prove nothing.
    let works = Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"]).status();
    assert!(works.is_ok_and(|s| s.success()), "setpriv cannot run a command as nobody here");
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        !as_nobody.status.success()
            && !String::from_utf8_lossy(&as_nobody.stdout).contains("hunter2")
            && String::from_utf8_lossy(&as_nobody.stderr).contains("Permission denied"),
        "nobody read the record: {}",
        common::describe(&as_nobody)
    );
    engine(&["rm", "-f", "secret"]);
}

/// A tmpfs mounted for the test; unmounted (lazily, whatever still holds it) when dropped.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn disk_status(root: &Path, name: &str) -> serde_json::Value {
    let bytes = std::fs::read(root.join(format!("containers/{name}.json"))).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// (d) Item 5 (records): with the root's disk full, a container's end cannot be saved; `inspect`
/// says so, and once space returns the record on disk catches up without any request.
#[test]
fn failed_record_save_is_retried() {
    let mnt = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
    let status =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"]).arg(mnt.path()).status();
    assert!(status.unwrap().success(), "mounting a tmpfs");
    let _tmpfs = Tmpfs(mnt.path().to_path_buf());
    let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
    let tag = format!("{}d", std::process::id() % 100_000);
    let mut sup = Supervisor {
        socket: dir.path().join("engine.sock"),
        dir,
        root: mnt.path().join("root"),
        child: None,
        cgroup_parent: format!("engine-test-{tag}"),
        bridge: format!("eb{tag}"),
        subnet_prefix: format!("10.202.{}", std::process::id() % 250),
    };
    sup.spawn();
    let secs = unique_secs(4);
    sup.ok(&["start", "--net", "none", "full", rootfs().to_str().unwrap(), "sleep", &secs]);
    assert_eq!(disk_status(&sup.root, "full")["state"]["status"], "running");

    // A save rewrites the container's spare record in place (no new block); without one, as
    // after a restart (which deletes spares), it needs a new file, which a full disk refuses.
    std::fs::remove_file(sup.root.join("containers/.full.json.spare")).unwrap();
    // Fill the disk to the last byte.
    let filler = mnt.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    // As `kill -9` from the host would: the reaper must record the end on a full disk.
    let pid = sup.state("full")["pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), || sup.status("full") == "killed");
    let shown = sup.state("full");
    assert_eq!(shown["record_saved"], false, "inspect does not say the record is behind: {shown}");
    assert_eq!(disk_status(&sup.root, "full")["state"]["status"], "running", "the save did not fail: bad setup");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while disk_status(&sup.root, "full")["state"]["status"] != "killed" {
        assert!(Instant::now() < deadline, "the record on disk stayed stale after space returned");
        std::thread::sleep(Duration::from_millis(50));
    }
    let on_disk = disk_status(&sup.root, "full");
    assert!(on_disk.get("record_saved").is_none(), "marker leaked to disk: {on_disk}");
    assert_eq!(on_disk["exit_code"], 137);
    assert!(sup.state("full").get("record_saved").is_none());
    sup.ok(&["rm", "full"]);
    drop(sup);
}

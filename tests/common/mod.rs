//! A private supervisor per test (own --root and socket under /tmp/engine-test-*), and helpers to
//! run the real `engine` binary against it. Requires root and the rootfs from `make rootfs`.
#![allow(dead_code)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ENGINE: &str = env!("CARGO_BIN_EXE_engine");

pub fn rootfs() -> PathBuf {
    let path = std::env::var_os("ENGINE_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs"));
    assert!(path.join("bin/busybox").exists(), "no rootfs at {}: run `make rootfs` first", path.display());
    path
}

pub struct Supervisor {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub socket: PathBuf,
    pub child: Option<Child>,
    /// Its own cgroup parent, bridge and subnet, so tests run side by side.
    pub cgroup_parent: String,
    pub bridge: String,
    pub subnet_prefix: String,
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Supervisor {
    pub fn start() -> Supervisor {
        let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
        let root = dir.path().join("root");
        let socket = dir.path().join("run/engine.sock");
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let mut sup = Supervisor {
            dir,
            root,
            socket,
            child: None,
            cgroup_parent: format!("engine-test-{tag}"),
            bridge: format!("eb{tag}"),
            subnet_prefix: format!("10.200.{}", n % 250),
        };
        sup.spawn();
        sup
    }

    /// (Re)starts the daemon on this supervisor's root and socket and waits until it answers.
    pub fn spawn(&mut self) {
        self.spawn_with(&[], Stdio::inherit());
    }

    /// Like `spawn`, with more supervisor options and its stderr sent to `stderr`.
    pub fn spawn_with(&mut self, extra: &[&str], stderr: Stdio) {
        self.spawn_with_env(extra, &[], stderr);
    }

    /// Like `spawn_with`, with `env` added to the supervisor's environment.
    pub fn spawn_with_env(&mut self, extra: &[&str], env: &[(&str, &std::ffi::OsStr)], stderr: Stdio) {
        let child = Command::new(ENGINE)
            .args(["supervisor", "--root"])
            .arg(&self.root)
            .arg("--socket")
            .arg(&self.socket)
            .args(["--cgroup-parent", &self.cgroup_parent, "--bridge", &self.bridge])
            .args(["--subnet", &format!("{}.0/24", self.subnet_prefix)])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawning the supervisor");
        self.child = Some(child);
        // Served, not just bound: the socket accepts connections before the start-up sweeps end.
        wait_until(Duration::from_secs(10), || {
            UnixStream::connect(&self.socket).is_ok()
                && self
                    .cmd(&["ps", "-a"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `signal` to the daemon and waits for it to exit; its exit status.
    pub fn signal_and_wait(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("supervisor running");
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ENGINE);
        c.arg("--socket").arg(&self.socket).args(args).stdin(Stdio::null());
        c
    }

    /// Runs engine to completion. Under `timeout`: a request that hangs (a serialized server, a
    /// lost wake-up) fails its test with status 124 instead of stalling the whole suite.
    pub fn engine(&self, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.args(["--kill-after=5", "120", ENGINE]).arg("--socket").arg(&self.socket).args(args).stdin(Stdio::null());
        c.output().unwrap()
    }

    /// Runs engine and asserts success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.engine(args);
        assert!(out.status.success(), "engine {args:?} failed: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `engine run NAME rootfs CMD...`; returns (exit code, stdout, stderr).
    pub fn run(&self, name: &str, command: &[&str]) -> (i32, String, String) {
        self.run_with(&[], name, &rootfs(), command)
    }

    /// `engine run OPTIONS... NAME ROOTFS CMD...`; returns (exit code, stdout, stderr).
    pub fn run_with(&self, options: &[&str], name: &str, rootfs: &Path, command: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run"];
        args.extend_from_slice(options);
        args.extend_from_slice(&[name, rootfs.to_str().unwrap()]);
        args.extend_from_slice(command);
        let out = self.engine(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn start_container(&self, name: &str, command: &[&str]) {
        let rootfs = rootfs();
        let mut args = vec!["start", name, rootfs.to_str().unwrap()];
        args.extend_from_slice(command);
        self.ok(&args);
    }

    pub fn state(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        serde_json::from_str(&out).unwrap()
    }

    pub fn status(&self, name: &str) -> String {
        self.state(name)["state"]["status"].as_str().unwrap().to_string()
    }

    pub fn wait_exit(&self, name: &str) -> i32 {
        self.ok(&["wait", name]).trim().parse().unwrap()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        // The supervisor keeps its bridge (like docker0); a test's bridge goes with the test.
        let _ = engine::net::remove_bridge(&self.bridge);
        // A supervisor a test killed leaves its groups made ahead, for the next one to remove
        // (one that stops removes them itself: tests/startup.rs checks).
        engine::cgroup::ahead::remove_leftovers(&self.cgroup_parent);
        for ctrl in ["memory", "cpu", "cpuacct", "pids", "cpuset", "devices", "blkio", "unified", ""] {
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(&self.cgroup_parent));
        }
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Host PIDs of processes whose command line contains `needle`.
pub fn pids_matching(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// `bytes` random bytes in a file under rootfs/tmp (the containers see it as /tmp/NAME), removed
/// when dropped, even by a failing test.
pub struct Payload {
    pub host_path: PathBuf,
    pub name: String,
}

impl Payload {
    pub fn random(tag: &str, bytes: u64) -> Payload {
        let name = format!("{tag}-{}.bin", std::process::id());
        let host_path = rootfs().join("tmp").join(&name);
        let status = Command::new("head")
            .args(["-c", &bytes.to_string(), "/dev/urandom"])
            .stdout(std::fs::File::create(&host_path).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        Payload { host_path, name }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.host_path);
    }
}

/// A helper process (strace, a client) killed and reaped when the test ends, even by a panic.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// xorshift64*: small, seeded, reproducible: the fuzz tests' generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max as u64 + 1) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The ports of `bridge` that containers own: veth host ends with an alias (a start stamps
/// `engine:BRIDGE:NAME`). The pair made ahead for the next bridged start (`net::ahead`) has none
/// until a start takes it: the supervisor's, as its cgroups made ahead are.
pub fn container_ports(bridge: &str) -> Vec<String> {
    bridge_ports(bridge).into_iter().filter(|(_, alias)| !alias.is_empty()).map(|(port, _)| port).collect()
}

/// Every port of `bridge` (its `brif` directory: veth host ends), with its alias (empty for
/// none).
pub fn bridge_ports(bridge: &str) -> std::collections::BTreeMap<String, String> {
    let alias = |port: &str| std::fs::read_to_string(format!("/sys/class/net/{port}/ifalias")).unwrap_or_default();
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|port| {
            let a = alias(&port).trim().to_string();
            (port, a)
        })
        .collect()
}

/// The top-level groups named `engine*` (but not `engine-test-*`) in every hierarchy: those of
/// supervisors started with the default names, which derive from their roots.
pub fn top_cgroups() -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for ctrl in ["", "memory", "cpu", "cpuacct", "pids", "cpuset", "blkio", "devices", "freezer", "unified"] {
        for e in std::fs::read_dir(Path::new("/sys/fs/cgroup").join(ctrl)).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("engine") && !n.starts_with("engine-test-") && e.path().is_dir() {
                out.insert(e.path());
            }
        }
    }
    out
}

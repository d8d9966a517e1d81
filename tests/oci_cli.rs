//! The OCI runtime binary (`engine-oci`) as podman, containerd and the conformance suite call it:
//! real processes, a private `--root` per test under /tmp/engine-test-*, runc's command line.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const OCI: &str = env!("CARGO_BIN_EXE_engine-oci");

struct Env {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("engine-test-oci-").tempdir_in("/tmp").unwrap();
        let root = dir.path().join("state");
        Env { dir, root }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(OCI);
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a verb whose container keeps the stdio it is given (create, run -d): stdout and
    /// stderr go to files, since a pipe's reader would wait for the container to end.
    fn run_detached(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile_in(self.dir.path()).unwrap();
        let err = tempfile::tempfile_in(self.dir.path()).unwrap();
        let status = self.cmd(args).stdout(out.try_clone().unwrap()).stderr(err.try_clone().unwrap()).status().unwrap();
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut v).unwrap();
            v
        };
        Output { status, stdout: read(out), stderr: read(err) }
    }

    /// A `create` of `bundle` that must fail, logging JSON: its one stderr line, the log's last entry.
    fn failed_create_logged(&self, bundle: &Path, id: &str) -> (String, serde_json::Value) {
        let log = self.path("log.json");
        let b = bundle.to_str().unwrap();
        let o = self.run(&["--log", log.to_str().unwrap(), "--log-format", "json", "create", "--bundle", b, id]);
        let e = one_line_failure(&o);
        let text = std::fs::read_to_string(&log).unwrap();
        (e, serde_json::from_str(text.lines().last().unwrap()).unwrap())
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// A failed test leaves nothing either: every container it made is force-deleted, its cgroup
/// parent removed.
impl Drop for Env {
    fn drop(&mut self) {
        for id in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let id = id.file_name().to_string_lossy().into_owned();
            let _ = self.cmd(&["delete", "--force", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        self.remove_cgroup_parent();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure as the issue asks: a non-zero exit and exactly one line on stderr.
fn one_line_failure(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure, got success; stdout {}", stdout(o));
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "not one line: {e:?}");
    e.trim_end().to_string()
}

#[test]
fn version_is_runc_like() {
    let o = Command::new(OCI).arg("--version").output().unwrap();
    assert!(o.status.success());
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(format!("engine-oci version {}", env!("CARGO_PKG_VERSION")).as_str()));
    assert!(lines.next().is_some_and(|l| l.starts_with("spec: 1.")), "{out}");
}

#[test]
fn systemd_cgroup_is_refused_in_one_line() {
    let env = Env::new();
    let o = env.run(&["--systemd-cgroup", "list"]);
    let e = one_line_failure(&o);
    assert!(e.contains("--systemd-cgroup is not supported"), "{e}");
}

#[test]
fn flags_runc_accepts_are_accepted_and_ignored() {
    let env = Env::new();
    let o = env.run(&["--rootless", "false", "--criu", "/usr/sbin/criu", "--debug", "list", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn unknown_container_is_one_line_and_a_json_error_in_the_log() {
    let env = Env::new();
    let log = env.path("log.json");
    let o = env.run(&["--log", log.to_str().unwrap(), "--log-format", "json", "state", "nope"]);
    let e = one_line_failure(&o);
    assert_eq!(e, "engine-oci: container \"nope\" does not exist");
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert_eq!(last["msg"], "container \"nope\" does not exist");
    // RFC 3339 with a zone.
    let t = last["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    for verb in [&["kill", "nope", "KILL"][..], &["delete", "nope"], &["start", "nope"], &["pause", "nope"]] {
        let o = env.run(verb);
        assert_eq!(one_line_failure(&o), "engine-oci: container \"nope\" does not exist", "{verb:?}");
    }
    // delete --force of what is not there is no error (the shim's cleanup relies on it).
    assert!(env.run(&["delete", "--force", "nope"]).status.success());
}

#[test]
fn ids_are_validated_as_runc() {
    let env = Env::new();
    for bad in ["../x", "a/b", "..", "a b"] {
        let e = one_line_failure(&env.run(&["state", bad]));
        assert!(e.contains("invalid container ID"), "{bad}: {e}");
    }
    assert!(!env.root.join("..").join("x").exists());
}

#[test]
fn spec_writes_a_default_config_once_and_features_parse() {
    let env = Env::new();
    let b = env.path("bundle");
    std::fs::create_dir(&b).unwrap();
    let o = env.run(&["spec", "--bundle", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let spec: oci_spec::runtime::Spec =
        serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    assert_eq!(spec.process().as_ref().unwrap().args().as_ref().unwrap(), &vec!["sh".to_string()]);
    let e = one_line_failure(&env.run(&["spec", "--bundle", b.to_str().unwrap()]));
    assert!(e.contains("exists"), "{e}");
    let o = env.run(&["features"]);
    assert!(o.status.success());
    let f: oci_spec::runtime::Features = serde_json::from_slice(&o.stdout).unwrap();
    assert!(f.hooks().as_ref().unwrap().iter().any(|h| h == "poststop"));
}

#[test]
fn list_of_an_empty_root() {
    let env = Env::new();
    let o = env.run(&["list"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim_end(), "ID   PID   STATUS   BUNDLE   CREATED   OWNER");
    let o = env.run(&["list", "--format", "json"]);
    assert_eq!(stdout(&o).trim(), "[]");
}

#[test]
fn bad_signals_are_refused() {
    let env = Env::new();
    let e = one_line_failure(&env.run(&["kill", "x", "SIGFOO"]));
    assert_eq!(e, "engine-oci: invalid signal \"SIGFOO\"");
    let e = one_line_failure(&env.run(&["kill", "x", "99"]));
    assert_eq!(e, "engine-oci: invalid signal \"99\"");
}

/// A state directory as `create` leaves it, for a process that has already ended.
fn fake_stopped(env: &Env, id: &str, poststop_out: &Path) -> PathBuf {
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    let dir = env.root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let rec = serde_json::json!({
        "id": id, "pid": pid, "pid_start": 1, "bundle": env.dir.path(), "rootfs": env.dir.path().join("rootfs"),
        "created": "2026-01-01T00:00:00Z", "cgroup_paths": [], "annotations": {"a": "b"},
        "hooks": { "poststop": [ { "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}", poststop_out.display())] } ] },
    });
    std::fs::write(dir.join("state.json"), rec.to_string()).unwrap();
    dir
}

#[test]
fn a_stopped_container_reports_stopped_and_delete_runs_poststop_and_removes_it() {
    let env = Env::new();
    let out = env.path("poststop.json");
    let dir = fake_stopped(&env, "c1", &out);
    let o = env.run(&["state", "c1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["pid"], 0);
    assert_eq!(st["id"], "c1");
    assert_eq!(st["annotations"]["a"], "b");
    let o = env.run(&["list", "--format", "json"]);
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(l[0]["id"], "c1");
    // A stopped container cannot be signalled, and that leaves it as it was.
    let e = one_line_failure(&env.run(&["kill", "c1", "KILL"]));
    assert!(e.contains("is stopped"), "{e}");
    let o = env.run(&["delete", "c1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.exists());
    let seen: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(seen["status"], "stopped");
    assert_eq!(seen["id"], "c1");
    one_line_failure(&env.run(&["state", "c1"]));
}

#[test]
fn verbs_on_one_id_wait_for_each_other() {
    use std::os::fd::AsRawFd;
    let env = Env::new();
    let dir = fake_stopped(&env, "c2", &env.path("unused"));
    let lock = std::fs::File::open(&dir).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut child = env.cmd(&["delete", "c2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "delete did not wait for the lock");
    assert!(dir.exists());
    drop(lock);
    let t = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(st.success());
    assert!(!dir.exists());
}

/// A bundle with the test rootfs bound in... (no: a copy of nothing) and `config`.
fn bundle_with(env: &Env, config: &str) -> PathBuf {
    let b = env.path("bundle");
    std::fs::create_dir_all(b.join("rootfs")).unwrap();
    std::fs::write(b.join("config.json"), config).unwrap();
    b
}

fn nothing_left(env: &Env, id: &str) {
    assert!(!env.root.join(id).exists(), "state directory of {id} left behind");
}

#[test]
fn bad_bundles_fail_in_one_line_naming_the_field_and_leave_nothing() {
    let env = Env::new();
    let e = one_line_failure(&env.run(&["create", "--bundle", "/nonexistent/bundle", "c"]));
    assert!(e.starts_with("engine-oci: bundle /nonexistent/bundle: "), "{e}");
    nothing_left(&env, "c");
    let cases = [
        (
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": ["sh"], "user": {"uid": "root", "gid": 0}}, "root": {"path": "rootfs"}}"#,
            "config.json: process.user.uid: invalid type: string \"root\"",
        ),
        (
            r#"{"ociVersion": "2.0.0", "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}}"#,
            "config.json: ociVersion: \"2.0.0\" is not a 1.x runtime-spec version",
        ),
        (
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}"#,
            "config.json: ",
        ),
        (
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": [], "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}}"#,
            "config.json: process.args: must hold at least the program",
        ),
        (
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}, "root": {"path": "nope"}}"#,
            "config.json: root.path: ",
        ),
        (
            r#"{"ociVersion": "1.0.2", "process": {"terminal": true, "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}}"#,
            "console: process.terminal is true but no --console-socket was given",
        ),
        (
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}, "hooks": {"prestart": [{"path": "rel/hook"}]}}"#,
            "config.json: hooks.prestart[0].path: must be an absolute path",
        ),
        (
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}, "annotations": {"org.engine.monitor.hard-mib": "x"}}"#,
            "config.json: annotations.org.engine.monitor.hard-mib: \"x\" is not a positive number of MiB",
        ),
    ];
    for (config, want) in cases {
        let b = bundle_with(&env, config);
        let (e, last) = env.failed_create_logged(&b, "c");
        assert!(e.starts_with(&format!("engine-oci: {want}")), "want {want:?}, got {e:?}");
        nothing_left(&env, "c");
        assert!(last["msg"].as_str().unwrap().starts_with(want), "{last}");
    }
}

/// A stand-in for a created container until a test needs the core: a process in new uts, ipc,
/// net, pid and mount namespaces (made with unshare(1), a test tool), recorded as `create` would
/// record it. Killed (with its namespaces) on drop.
struct FakeContainer {
    unshare: std::process::Child,
    pid: i32,
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn start_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn fake_running(env: &Env, id: &str, hostname: &str) -> FakeContainer {
    let unshare = Command::new("unshare")
        .args(["--uts", "--ipc", "--net", "--pid", "--mount", "--fork", "sh", "-c"])
        .arg(format!("hostname {hostname} && exec sleep 1000"))
        .spawn()
        .unwrap();
    let upid = unshare.id();
    // The container's process is unshare's child (the first process of the new pid namespace),
    // once it has exec'd sleep.
    let t = Instant::now();
    let pid = loop {
        let kids = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children")).unwrap_or_default();
        if let Some(p) = kids.split_whitespace().next().and_then(|p| p.parse::<i32>().ok()) {
            if std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep") {
                break p;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(5), "unshare did not start");
        std::thread::sleep(Duration::from_millis(5));
    };
    let dir = env.root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let rec = serde_json::json!({
        "id": id, "pid": pid, "pid_start": start_ticks(pid), "bundle": env.dir.path().join("no-bundle"),
        "rootfs": "/", "created": "2026-01-01T00:00:00Z", "cgroup_paths": [], "annotations": {},
    });
    std::fs::write(dir.join("state.json"), rec.to_string()).unwrap();
    FakeContainer { unshare, pid }
}

fn ns_of(pid: i32, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
}

#[test]
fn exec_joins_the_containers_namespaces_and_returns_its_code() {
    let env = Env::new();
    let fake = fake_running(&env, "x1", "exec-test-host");
    let o = env.run(&["state", "x1"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["status"], "running");
    // uts: the container's hostname; pid: a pid of its namespace (its sleep is 1).
    let o = env.run(&["exec", "x1", "sh", "-c", "hostname; echo $$; readlink /proc/self/ns/net"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-test-host");
    assert!(lines[1].parse::<i32>().unwrap() < 10, "pid {} is not from the container's namespace", lines[1]);
    assert_eq!(Path::new(lines[2]), ns_of(fake.pid, "net"));
    // The process's code is engine-oci's; a missing program is 127 in one line.
    assert_eq!(env.run(&["exec", "x1", "sh", "-c", "exit 7"]).status.code(), Some(7));
    let o = env.run(&["exec", "x1", "/no/such/program"]);
    assert_eq!(o.status.code(), Some(127));
    let e = one_line_failure(&o);
    assert!(e.contains("/no/such/program"), "{e}");
    // --env, --cwd and --user as runc takes them.
    let o = env.run(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "65534:65534",
        "x1",
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(stdout(&o).trim(), "bar /tmp 65534:65534", "{}", stderr(&o));
}

#[test]
fn exec_detach_writes_the_pid_file_of_a_process_inside() {
    let env = Env::new();
    let fake = fake_running(&env, "x2", "h2");
    let pidfile = env.path("exec.pid");
    let t = Instant::now();
    // Not through pipes: the detached process keeps the stdio it was given, and a pipe's reader
    // would wait for it.
    let st = env
        .cmd(&["exec", "--detach", "--pid-file", pidfile.to_str().unwrap(), "x2", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(t.elapsed() < Duration::from_secs(5), "--detach waited for the process");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    for ns in ["pid", "net", "uts", "ipc", "mnt"] {
        assert_eq!(ns_of(pid, ns), ns_of(fake.pid, ns), "{ns}");
    }
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The receiving end of --console-socket, as conmon or the shim has it: one message whose data is
/// the console's name and whose SCM_RIGHTS carry the pty master.
fn receive_console(listener: &std::os::unix::net::UnixListener) -> (String, std::fs::File) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (stream, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut cmsg = [0u8; 64];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
    let c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!c.is_null(), "no control message");
    let (level, typ) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
    assert_eq!((level, typ), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32) };
    (String::from_utf8_lossy(&buf[..n as usize]).into_owned(), unsafe { std::fs::File::from_raw_fd(fd) })
}

/// `exec --process P --console-socket S ID` with `process` as P (its `terminal` asks for the
/// pty, as conmon's and the shim's process files do): its exit code and what it
/// wrote to the pty master it sent (read once it has ended: EIO once drained, no slave left).
fn exec_on_console(env: &Env, id: &str, process: &str) -> (Option<i32>, String) {
    use std::io::Read;
    let sock = env.path("console.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let file = env.path("process.json");
    std::fs::write(&file, process).unwrap();
    let mut child = env
        .cmd(&["exec", "--process", file.to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), id])
        .spawn()
        .unwrap();
    let (name, mut master) = receive_console(&listener);
    assert_eq!(name, "/dev/ptmx");
    let code = child.wait().unwrap().code();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (code, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn exec_tty_sends_the_pty_master_over_the_console_socket() {
    let env = Env::new();
    let _fake = fake_running(&env, "x3", "h3");
    let (code, out) = exec_on_console(
        &env,
        "x3",
        r#"{"terminal": true, "consoleSize": {"height": 30, "width": 111}, "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "stty size; [ -t 0 ] && [ -t 1 ] && echo on-a-tty"], "env": ["PATH=/bin:/usr/bin"], "cwd": "/"}"#,
    );
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("30 111"), "{out:?}");
    assert!(out.contains("on-a-tty"), "{out:?}");
}

/// Puts the fake container's process in a group of the test's own, made as `create` makes one:
/// the same relative path in every v1 hierarchy (or the v2 directory), recorded as its cgroupsPath.
/// Returns the pids group's directory.
fn with_cgroup(env: &Env, id: &str, fake: &FakeContainer) -> PathBuf {
    let rel = format!("{}/{id}", env.tag());
    let mut dirs = Vec::new();
    if Path::new("/sys/fs/cgroup/pids").exists() {
        // Every controller hierarchy (symlinks such as cpu -> cpu,cpuacct once); not the
        // controller-less named ones (systemd) nor the v2 one beside them.
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let name = h.file_name().to_string_lossy().into_owned();
            if h.file_type().unwrap().is_dir() && !matches!(name.as_str(), "unified" | "systemd") {
                dirs.push(h.path().join(&rel));
            }
        }
        dirs.sort_by_key(|d| !d.starts_with("/sys/fs/cgroup/pids"));
    } else {
        dirs.push(Path::new("/sys/fs/cgroup").join(&rel));
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
        if dir.starts_with("/sys/fs/cgroup/cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let parent = std::fs::read_to_string(Path::new("/sys/fs/cgroup/cpuset").join(f)).unwrap();
                std::fs::write(dir.parent().unwrap().join(f), parent.trim()).unwrap();
                std::fs::write(dir.join(f), parent.trim()).unwrap();
            }
        }
        std::fs::write(dir.join("cgroup.procs"), fake.pid.to_string()).unwrap();
    }
    let state = env.root.join(id).join("state.json");
    let mut rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    rec["cgroup_paths"] = serde_json::json!(dirs);
    rec["cgroup_path"] = format!("/{rel}").into();
    std::fs::write(&state, rec.to_string()).unwrap();
    dirs.into_iter().next().unwrap()
}

fn status_of(env: &Env, id: &str) -> String {
    let o = env.run(&["state", id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    st["status"].as_str().unwrap().to_string()
}

#[test]
fn pause_resume_ps_and_delete_force_through_the_cgroup() {
    let env = Env::new();
    let fake = fake_running(&env, "p1", "h");
    let cg = with_cgroup(&env, "p1", &fake);
    let o = env.run(&["ps", "--format", "json", "p1"]);
    let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids, vec![fake.pid]);
    let o = env.run(&["ps", "p1"]);
    assert!(stdout(&o).contains("sleep 1000"), "{}", stdout(&o));
    let o = env.run(&["pause", "p1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status_of(&env, "p1"), "paused");
    let tag = env.dir.path().file_name().unwrap().to_string_lossy().into_owned();
    let freezer = Path::new("/sys/fs/cgroup/freezer").join(&tag).join("p1");
    if freezer.exists() {
        assert_eq!(std::fs::read_to_string(freezer.join("freezer.state")).unwrap().trim(), "FROZEN");
        assert_eq!(std::fs::read_to_string(freezer.join("cgroup.procs")).unwrap().trim(), fake.pid.to_string());
    }
    assert!(env.run(&["resume", "p1"]).status.success());
    assert_eq!(status_of(&env, "p1"), "running");
    // Not stopped: delete refuses and changes nothing; --force kills it and removes every trace.
    let e = one_line_failure(&env.run(&["delete", "p1"]));
    assert!(e.contains("is not stopped"), "{e}");
    assert_eq!(status_of(&env, "p1"), "running");
    assert!(env.run(&["pause", "p1"]).status.success());
    let o = env.run(&["delete", "--force", "p1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!env.root.join("p1").exists());
    assert!(!cg.exists(), "cgroup left");
    assert!(!freezer.exists(), "freezer cgroup left");
    assert!(
        !Path::new(&format!("/proc/{}", fake.pid)).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", fake.pid)).unwrap().contains(") Z")
    );
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

#[test]
fn kill_by_name_and_number_and_all() {
    let env = Env::new();
    let fake = fake_running(&env, "k1", "h");
    let cg = with_cgroup(&env, "k1", &fake);
    // SIGCONT by name without SIG, then by number: the process ignores neither and lives on.
    assert!(env.run(&["kill", "k1", "CONT"]).status.success());
    assert!(env.run(&["kill", "k1", "18"]).status.success());
    assert_eq!(status_of(&env, "k1"), "running");
    assert!(env.run(&["kill", "--all", "k1", "SIGKILL"]).status.success());
    let t = Instant::now();
    while status_of(&env, "k1") != "stopped" {
        assert!(t.elapsed() < Duration::from_secs(5), "kill --all did not stop it");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(env.run(&["delete", "k1"]).status.success());
    assert!(!cg.exists());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

// ---- Real containers: a bundle with a copy of the test rootfs (busybox) ----

fn rootfs() -> PathBuf {
    let path = std::env::var_os("ENGINE_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs"));
    assert!(path.join("bin/busybox").exists(), "no rootfs at {}: run `make rootfs` first", path.display());
    path
}

/// `engine-oci spec`'s default config with `edit` applied, in a bundle whose rootfs is a copy of
/// the test rootfs (the original stays read-only), its cgroup under the test's own parent.
fn real_bundle(env: &Env, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let b = env.path(name);
    std::fs::create_dir_all(&b).unwrap();
    let st = Command::new("cp").arg("-a").arg(rootfs()).arg(b.join("rootfs")).status().unwrap();
    assert!(st.success());
    assert!(env.run(&["spec", "--bundle", b.to_str().unwrap()]).status.success());
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["env"] = serde_json::json!(["PATH=/bin:/sbin:/usr/bin"]);
    cfg["hostname"] = "oci-test".into();
    cfg["linux"]["cgroupsPath"] = format!("/{}/{name}", env.tag()).into();
    // runc's default mounts a cgroup filesystem, which the core does not do yet on a v1 host.
    cfg["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
    edit(&mut cfg);
    std::fs::write(b.join("config.json"), cfg.to_string()).unwrap();
    b
}

impl Env {
    fn tag(&self) -> String {
        self.dir.path().file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The test's cgroup parent in every hierarchy, removed; returns the groups still below it
    /// (there should be none), which are removed too (deepest first), so a failed test leaves
    /// nothing either.
    fn remove_cgroup_parent(&self) -> Vec<PathBuf> {
        fn below(d: &Path, out: &mut Vec<PathBuf>) {
            for sub in std::fs::read_dir(d).into_iter().flatten().flatten().filter(|e| e.path().is_dir()) {
                below(&sub.path(), out);
                out.push(sub.path());
            }
        }
        let mut left = Vec::new();
        let hierarchies = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|h| h.path());
        for d in hierarchies.chain([PathBuf::from("/sys/fs/cgroup")]).map(|h| h.join(self.tag())) {
            let mut subs = Vec::new();
            below(&d, &mut subs);
            for s in &subs {
                let _ = std::fs::remove_dir(s);
            }
            left.extend(subs);
            let _ = std::fs::remove_dir(&d);
        }
        left
    }
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn lifecycle_create_start_state_kill_delete_with_hooks() {
    let env = Env::new();
    let out = env.path("hooks.log");
    let hook = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo \"{name} $s\" >> {}", out.display())]});
    let b = real_bundle(&env, "c1", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sleep", "1000"]);
        cfg["annotations"] = serde_json::json!({"org.test": "yes"});
        cfg["hooks"] = serde_json::json!({
            "createRuntime": [hook("createRuntime")], "prestart": [hook("prestart")],
            "poststart": [hook("poststart")], "poststop": [hook("poststop")],
        });
    });
    let pidfile = env.path("c1.pid");
    let o =
        env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "--pid-file", pidfile.to_str().unwrap(), "c1"]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let st: serde_json::Value = serde_json::from_slice(&env.run(&["state", "c1"]).stdout).unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["bundle"], b.to_str().unwrap());
    assert_eq!(st["annotations"]["org.test"], "yes");
    assert!(env.root.join("c1/exec.fifo").exists());
    // Duplicate ids are refused and change nothing.
    let e = one_line_failure(&env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "c1"]));
    assert_eq!(e, "engine-oci: container ID already exists: c1");
    assert_eq!(status_of(&env, "c1"), "created");
    let o = env.run(&["start", "c1"]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    assert_eq!(status_of(&env, "c1"), "running");
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");
    assert!(!env.root.join("c1/exec.fifo").exists());
    let e = one_line_failure(&env.run(&["start", "c1"]));
    assert!(e.contains("is running"), "{e}");
    // exec sees the container's hostname.
    let o = env.run(&["exec", "c1", "hostname"]);
    assert_eq!(stdout(&o).trim(), "oci-test", "{}", stderr(&o));
    // ... and gets the container's capabilities (runc's default spec: AUDIT_WRITE, KILL,
    // NET_BIND_SERVICE), not engine-oci's full set; as a user, none.
    let o = env.run(&["exec", "c1", "grep", "-E", "^Cap(Eff|Bnd)", "/proc/self/status"]);
    assert_eq!(stdout(&o), "CapEff:\t0000000020000420\nCapBnd:\t0000000020000420\n", "{}", stderr(&o));
    let o = env.run(&["exec", "--user", "1000:1000", "c1", "grep", "-E", "^CapEff", "/proc/self/status"]);
    assert_eq!(stdout(&o), "CapEff:\t0000000000000000\n", "{}", stderr(&o));
    // update and events go through the container's own groups.
    let o = env.run(&["update", "--pids-limit", "42", "c1"]);
    assert!(o.status.success(), "update: {}", stderr(&o));
    let rel = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    if let Some(rel) = rel.lines().find_map(|l| l.split_once(":pids:").map(|(_, r)| r.to_string())) {
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{rel}/pids.max")).unwrap();
        assert_eq!(max.trim(), "42");
    }
    let o = env.run(&["events", "--stats", "c1"]);
    assert!(o.status.success(), "events: {}", stderr(&o));
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], "c1");
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert!(env.run(&["kill", "c1", "KILL"]).status.success());
    let t = Instant::now();
    while status_of(&env, "c1") != "stopped" {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = env.run(&["delete", "c1"]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert!(!env.root.join("c1").exists());
    assert!(!pid_alive(pid));
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
    let log = std::fs::read_to_string(&out).unwrap();
    let kinds: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(kinds, ["createRuntime", "prestart", "poststart", "poststop"], "{log}");
    for line in log.lines() {
        let (kind, json) = line.split_once(' ').unwrap();
        let s: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(s["id"], "c1", "{kind}");
        assert_eq!(s["bundle"], b.to_str().unwrap(), "{kind}");
        let want = match kind {
            "createRuntime" => "creating",
            "prestart" => "created",
            "poststart" => "running",
            _ => "stopped",
        };
        assert_eq!(s["status"], want, "{kind}");
        if kind != "poststop" {
            assert_eq!(s["pid"], pid, "{kind}");
        }
    }
}

#[test]
fn container_hooks_run_in_the_init_with_the_state() {
    let env = Env::new();
    let name = "ch1";
    let log_host = env.path(name).join("rootfs/hooks.log");
    // createContainer runs before pivot_root (host paths), startContainer after (the container's).
    let hook = |kind: &str, log: &str| {
        serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("read s; echo \"{kind} $(readlink /proc/self/ns/mnt) $s\" >> {log}")]})
    };
    let b = real_bundle(&env, name, |cfg| {
        cfg["process"]["args"] = serde_json::json!(["true"]);
        cfg["root"]["readonly"] = false.into();
        cfg["hooks"] = serde_json::json!({
            "createContainer": [hook("createContainer", log_host.to_str().unwrap())],
            "startContainer": [hook("startContainer", "/hooks.log")],
        });
    });
    let o = env.run(&["run", "--bundle", b.to_str().unwrap(), name]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = std::fs::read_to_string(&log_host).unwrap_or_default();
    let lines: Vec<(&str, &str, serde_json::Value)> = log
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let (kind, ns, json) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (kind, ns, serde_json::from_str(json).unwrap())
        })
        .collect();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), ["createContainer", "startContainer"], "{log}");
    let own_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    for (kind, ns, state) in &lines {
        assert_ne!(*ns, own_mnt.to_str().unwrap(), "{kind} ran in the runtime's mount namespace");
        assert_eq!(*ns, lines[0].1, "{kind}");
        assert_eq!(state["id"], name, "{kind}");
        assert_eq!(state["bundle"], b.to_str().unwrap(), "{kind}");
        assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{kind}: {state}");
    }
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

#[test]
fn run_passes_stdio_and_returns_the_process_code() {
    let env = Env::new();
    let b = real_bundle(&env, "r1", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sh", "-c", "echo out-$(hostname); echo err >&2; exit 3"]);
    });
    let o = env.run(&["run", "--bundle", b.to_str().unwrap(), "r1"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out-oci-test\n");
    assert_eq!(stderr(&o), "err\n");
    assert!(!env.root.join("r1").exists(), "run left its state");
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

#[test]
fn failing_or_hanging_runtime_hooks_fail_create_and_leave_nothing() {
    let env = Env::new();
    for (name, hook, want) in [
        ("h1", serde_json::json!({"path": "/bin/false"}), "createRuntime hook: /bin/false: exited with status 1"),
        (
            "h2",
            serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}),
            "createRuntime hook: /bin/sleep: timed out after 1 s",
        ),
    ] {
        let b = real_bundle(&env, name, |cfg| {
            cfg["process"]["args"] = serde_json::json!(["sleep", "1000"]);
            cfg["hooks"] = serde_json::json!({"createRuntime": [hook]});
        });
        let (e, last) = env.failed_create_logged(&b, name);
        assert!(e.contains(want), "{e}");
        nothing_left(&env, name);
        assert!(last["msg"].as_str().unwrap().contains(want), "{last}");
        assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new(), "cgroup left by {name}");
        // No process of it is left: nothing runs from its root.
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(root) = std::fs::read_link(p.path().join("root")) {
                assert!(!root.starts_with(&b), "process {:?} left in {}", p.file_name(), b.display());
            }
        }
    }
}

#[test]
fn terminal_through_the_console_socket() {
    use std::io::Read;
    let env = Env::new();
    let b = real_bundle(&env, "t1", |cfg| {
        cfg["process"]["terminal"] = true.into();
        cfg["process"]["consoleSize"] = serde_json::json!({"height": 25, "width": 90});
        // `tty` prints the name only if the pty is one of the container's own /dev/pts (a pty
        // of the host's devpts instance is "not a tty" there: podman's `run -it` saw that).
        cfg["process"]["args"] = serde_json::json!(["sh", "-c", "tty; stty size; [ -t 1 ] && echo tty-ok"]);
    });
    let sock = env.path("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut create = env
        .cmd(&["create", "--bundle", b.to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), "t1"])
        .spawn()
        .unwrap();
    let (name, mut master) = receive_console(&listener);
    assert_eq!(name, "/dev/ptmx");
    assert!(create.wait().unwrap().success());
    assert!(env.run(&["start", "t1"]).status.success());
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("tty-ok") {
            break;
        }
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("25 90") && out.contains("tty-ok"), "{out:?}");
    assert!(out.contains("/dev/pts/0"), "the container's stdio is not a pty of its own devpts: {out:?}");
    assert!(env.run(&["delete", "--force", "t1"]).status.success());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

#[test]
fn monitor_annotations_fall_back_to_cgroup_memory_without_the_device() {
    if Path::new("/dev/container_monitor").exists() {
        eprintln!("the device exists here: the fallback is not what runs (the QEMU test covers the device)");
        return;
    }
    let env = Env::new();
    let b = real_bundle(&env, "m1", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sleep", "1000"]);
        cfg["annotations"] =
            serde_json::json!({"org.engine.monitor.soft-mib": "32", "org.engine.monitor.hard-mib": "64"});
    });
    let o = env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "m1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&env.run(&["state", "m1"]).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let read = |f: &str| -> u64 {
        if let Some(rel) = cg.lines().find_map(|l| l.split_once(":memory:").map(|(_, r)| r.to_string())) {
            std::fs::read_to_string(format!("/sys/fs/cgroup/memory{rel}/{f}")).unwrap().trim().parse().unwrap()
        } else {
            let rel = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let v2 = match f {
                "memory.limit_in_bytes" => "memory.max",
                _ => "memory.high",
            };
            std::fs::read_to_string(format!("/sys/fs/cgroup{rel}/{v2}")).unwrap().trim().parse().unwrap()
        }
    };
    assert_eq!(read("memory.limit_in_bytes"), 64 << 20);
    assert_eq!(read("memory.soft_limit_in_bytes"), 32 << 20);
    assert!(env.run(&["delete", "--force", "m1"]).status.success());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// runc's cgroupsPath rules: a one-component path is a group of its own, nested parents are made,
/// linux.resources are written, and delete removes the container's leaf only.
#[test]
fn cgroups_path_gets_its_resources_and_delete_removes_the_leaf_only() {
    let env = Env::new();
    let base = |ctrl: &str| {
        let v1 = Path::new("/sys/fs/cgroup").join(ctrl);
        if v1.exists() {
            v1
        } else {
            PathBuf::from("/sys/fs/cgroup")
        }
    };
    for (name, path) in [("one", format!("/{}", env.tag())), ("nested", format!("/{}/pod/nested", env.tag()))] {
        let b = real_bundle(&env, name, |cfg| {
            cfg["process"]["args"] = serde_json::json!(["sleep", "1000"]);
            cfg["linux"]["cgroupsPath"] = path.clone().into();
            cfg["linux"]["resources"]["pids"] = serde_json::json!({"limit": 33});
        });
        let o = env.run_detached(&["create", "--bundle", b.to_str().unwrap(), name]);
        assert!(o.status.success(), "create {name} at {path}: {}", stderr(&o));
        let dir = base("pids").join(path.trim_start_matches('/'));
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap().trim(), "33", "{}", dir.display());
        let o = env.run(&["delete", "--force", name]);
        assert!(o.status.success(), "delete {name}: {}", stderr(&o));
        assert!(!dir.exists(), "{} left", dir.display());
    }
    // The parent made for the nested group stays (it could be a pod's), as with runc.
    let pod = base("pids").join(env.tag()).join("pod");
    assert!(pod.exists());
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(env.tag()).join("pod"));
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(env.tag()).join("pod"));
}

/// A privileged container (ctr run --privileged, a privileged Kubernetes pod) gets every host
/// device in linux.devices, /dev/ptmx among them: create must not fail on it ("linking /dev/ptmx:
/// File exists"), and /dev/ptmx stays the link to the container's own devpts, as with runc.
#[test]
fn a_ptmx_device_in_the_spec_leaves_dev_ptmx_the_devpts_link() {
    let env = Env::new();
    let b = real_bundle(&env, "p1", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sh", "-c", "readlink /dev/ptmx; [ -c /dev/kmsg ] && echo kmsg"]);
        cfg["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 438, "uid": 0, "gid": 0},
            {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 420, "uid": 0, "gid": 0},
        ]);
        cfg["linux"]["resources"]["devices"] = serde_json::json!([{"allow": true, "access": "rwm"}]);
    });
    let o = env.run(&["run", "--bundle", b.to_str().unwrap(), "p1"]);
    assert!(o.status.success(), "run: {}", stderr(&o));
    assert_eq!(stdout(&o), "pts/ptmx\nkmsg\n");
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

fn mount(args: &[&str]) {
    assert!(Command::new("mount").args(args).status().unwrap().success(), "mount {args:?}");
}

/// `vol` below the test's directory, bound onto itself and made shared (as a kubelet's
/// /var/lib/kubelet is on a systemd host), with an empty `vol/sub`; unmounted on drop, with
/// whatever was mounted on `sub`.
struct SharedHostDir {
    vol: PathBuf,
    sub: PathBuf,
}

impl SharedHostDir {
    fn new(env: &Env) -> SharedHostDir {
        let vol = env.path("vol");
        let sub = vol.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        let v = vol.to_str().unwrap();
        mount(&["--bind", v, v]);
        mount(&["--make-shared", v]);
        SharedHostDir { vol, sub }
    }
}

impl Drop for SharedHostDir {
    fn drop(&mut self) {
        for p in [&self.sub, &self.vol] {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

/// rootfsPropagation rslave with an rslave bind of a shared host directory (what containerd's CRI
/// plugin makes of a Kubernetes volume with mountPropagation: HostToContainer): a mount the host
/// makes under the source after create reaches the container, as with runc. The root used to be
/// made rprivate first, which cut the bind's link to the host for good.
#[test]
fn an_rslave_root_keeps_host_mounts_reaching_its_binds() {
    let env = Env::new();
    let shared = SharedHostDir::new(&env);
    let (v, sub) = (shared.vol.to_str().unwrap(), shared.sub.clone());
    let b = real_bundle(&env, "v1", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sh", "-c",
            "for i in $(seq 100); do [ -e /vol/sub/late ] && break; sleep 0.05; done; cat /vol/sub/late || grep /vol /proc/self/mountinfo"]);
        cfg["linux"]["rootfsPropagation"] = "rslave".into();
        cfg["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/vol", "type": "bind", "source": v, "options": ["rbind", "rslave"]}));
    });
    let out = env.path("v1.out");
    let o = env
        .cmd(&["create", "--bundle", b.to_str().unwrap(), "v1"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(env.path("v1.err")).unwrap())
        .status()
        .unwrap();
    assert!(o.success(), "create: {}", std::fs::read_to_string(env.path("v1.err")).unwrap());
    // After create: the container's mount namespace exists; only propagation can bring this in.
    mount(&["-t", "tmpfs", "late", sub.to_str().unwrap()]);
    std::fs::write(sub.join("late"), "late-ok\n").unwrap();
    assert!(env.run(&["start", "v1"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&env, "v1") != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "late-ok\n");
    assert!(env.run(&["delete", "--force", "v1"]).status.success());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// `exec --tty` in a real container (its own devpts, newinstance): the pty is one of the
/// container's, so `tty` names it, as podman's `exec -it` needs. A pty opened in engine-oci's
/// namespaces was a pty to isatty() but "not a tty" to ttyname() inside.
#[test]
fn exec_tty_in_a_real_container_is_a_pty_of_its_own_devpts() {
    let env = Env::new();
    let b = real_bundle(&env, "xt", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    });
    let o = env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "xt"]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    assert!(env.run(&["start", "xt"]).status.success());
    let (code, out) = exec_on_console(
        &env,
        "xt",
        r#"{"terminal": true, "consoleSize": {"height": 33, "width": 99}, "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "tty; stty size; exit 4"], "env": ["PATH=/bin:/usr/bin"], "cwd": "/"}"#,
    );
    assert_eq!(code, Some(4), "{out:?}");
    assert!(out.contains("/dev/pts/0\r\n"), "not a pty of the container's devpts: {out:?}");
    assert!(out.contains("33 99"), "{out:?}");
    assert!(env.run(&["delete", "--force", "xt"]).status.success());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// The container's program starts with every signal at its default action and none blocked, as
/// under runc: not with the SIGPIPE the Rust runtime ignores in engine-oci (an ignored signal
/// survives execve), which would turn `yes | head -1` into an EPIPE error loop.
#[test]
fn the_program_starts_with_default_signal_dispositions() {
    let env = Env::new();
    let show = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"];
    let want = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n";
    let b = real_bundle(&env, "s1", |cfg| cfg["process"]["args"] = serde_json::json!(show));
    let o = env.run(&["run", "--bundle", b.to_str().unwrap(), "s1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want, "run");
    // And a process `exec` adds (podman exec, CRI ExecSync).
    let b = real_bundle(&env, "s2", |cfg| cfg["process"]["args"] = serde_json::json!(["sleep", "1000"]));
    assert!(env.run_detached(&["run", "-d", "--bundle", b.to_str().unwrap(), "s2"]).status.success());
    let mut args = vec!["exec", "s2"];
    args.extend(show);
    let o = env.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want, "exec");
    assert!(env.run(&["delete", "--force", "s2"]).status.success());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// Host mounts whose mount point is at or below `dir` (this test's own mount namespace is the
/// host's: what a container without one leaves there).
fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == dir || m.starts_with(&format!("{dir}/")))
        .collect()
}

/// runc and crun refuse (and the conformance suite's linux_masked_paths / linux_readonly_paths
/// expect an error for) a relative masked or read-only path and one whose link loops on itself;
/// a device node or a fifo at such a path is masked (/dev/null bound over it) or made read-only
/// like a file. engine used to skip a relative path silently and refuse every non-file node.
#[test]
fn masked_and_readonly_paths_refuse_relative_and_looping_ones_and_cover_device_nodes() {
    let env = Env::new();
    for field in ["maskedPaths", "readonlyPaths"] {
        let name = format!("rel-{}", &field[..6]);
        let b = real_bundle(&env, &name, |cfg| {
            cfg["process"]["args"] = serde_json::json!(["true"]);
            cfg["linux"][field].as_array_mut().unwrap().push("a-relpath".into());
        });
        let n = {
            let cfg: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
            cfg["linux"][field].as_array().unwrap().len() - 1
        };
        let e = one_line_failure(&env.run_detached(&["create", "--bundle", b.to_str().unwrap(), &name]));
        assert_eq!(e, format!("engine-oci: config.json: linux.{field}[{n}]: \"a-relpath\" is not an absolute path"));
        nothing_left(&env, &name);

        // /loop -> ../loop resolves to itself inside the root: ELOOP, an error, not a skip.
        let name = format!("loop-{}", &field[..6]);
        let b = real_bundle(&env, &name, |cfg| {
            cfg["process"]["args"] = serde_json::json!(["true"]);
            cfg["linux"][field].as_array_mut().unwrap().push("/loop".into());
        });
        std::os::unix::fs::symlink("../loop", b.join("rootfs/loop")).unwrap();
        let e = one_line_failure(&env.run_detached(&["create", "--bundle", b.to_str().unwrap(), &name]));
        assert!(e.contains("/loop") && e.contains("Too many levels of symbolic links"), "{e}");
        nothing_left(&env, &name);
    }
    let b = real_bundle(&env, "nodes", |cfg| {
        cfg["process"]["args"] = serde_json::json!(["sh", "-c",
            "stat -c '%n %F %t:%T' /m-blk /m-chr /m-fifo; grep -E ' /r-(blk|fifo) ' /proc/self/mountinfo | cut -d' ' -f5,6"]);
        let linux = &mut cfg["linux"];
        for p in ["/m-blk", "/m-chr", "/m-fifo"] {
            linux["maskedPaths"].as_array_mut().unwrap().push(p.into());
        }
        for p in ["/r-blk", "/r-fifo"] {
            linux["readonlyPaths"].as_array_mut().unwrap().push(p.into());
        }
    });
    let r = b.join("rootfs");
    let mknod = |p: &str, mode: libc::mode_t, dev: libc::dev_t| {
        let c = std::ffi::CString::new(r.join(p).to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), mode | 0o666, dev) }, 0, "mknod {p}");
    };
    mknod("m-blk", libc::S_IFBLK, libc::makedev(7, 200));
    mknod("m-chr", libc::S_IFCHR, libc::makedev(1, 7));
    mknod("m-fifo", libc::S_IFIFO, 0);
    mknod("r-blk", libc::S_IFBLK, libc::makedev(7, 200));
    mknod("r-fifo", libc::S_IFIFO, 0);
    let o = env.run(&["run", "--bundle", b.to_str().unwrap(), "nodes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "/m-blk character special file 1:3\n/m-chr character special file 1:3\n/m-fifo character special file 1:3\n\
         /r-blk ro,nosuid,nodev,noexec,relatime\n/r-fifo ro,nosuid,nodev,noexec,relatime\n"
    );
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// A config without a mount namespace (the conformance suite's linux_ns_itype lists none at all):
/// the container's mount namespace is the caller's, as runc and crun make it: its root is a
/// private bind of root.path in the caller's namespace with the Spec's mounts below it, entered
/// by chroot; exec enters that root too; delete (and a failed create) detach the bind and all
/// below it, so nothing stays in the host's mount table. engine used to refuse such a config.
#[test]
fn without_a_mount_namespace_the_container_is_chrooted_in_the_callers_and_delete_detaches_its_mounts() {
    let env = Env::new();
    let no_ns = |cfg: &mut serde_json::Value, args: serde_json::Value| {
        cfg["process"]["args"] = args;
        cfg["linux"]["namespaces"] = serde_json::json!([]);
        for k in ["maskedPaths", "readonlyPaths"] {
            cfg["linux"].as_object_mut().unwrap().remove(k);
        }
        cfg.as_object_mut().unwrap().remove("hostname");
    };
    let b = real_bundle(&env, "nons", |cfg| no_ns(cfg, serde_json::json!(["sleep", "1000"])));
    let rootfs = b.join("rootfs");
    std::fs::write(rootfs.join("marker"), "inside\n").unwrap();
    let o = env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "nons"]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&env.run(&["state", "nons"]).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap() as i32;
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_eq!(ns_of(pid, ns), std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(), "{ns}");
    }
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/root")).unwrap(), rootfs);
    let mounted = mounts_below(&rootfs);
    let proc_dir = format!("{}/proc", rootfs.display());
    assert!(mounted.contains(&proc_dir), "{mounted:?}");
    assert!(env.run(&["start", "nons"]).status.success());
    // exec enters the container's root, not the caller's.
    let o = env.run(&["exec", "nons", "cat", "/marker"]);
    assert_eq!(stdout(&o), "inside\n", "{}", stderr(&o));
    let o = env.run(&["delete", "--force", "nons"]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert_eq!(mounts_below(&rootfs), Vec::<String>::new());
    nothing_left(&env, "nons");
    // A create that fails after the mounts (the program is missing) leaves none either.
    let b = real_bundle(&env, "nons2", |cfg| no_ns(cfg, serde_json::json!(["/no/such/program"])));
    let e = one_line_failure(&env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "nons2"]));
    assert!(e.contains("/no/such/program"), "{e}");
    assert_eq!(mounts_below(&b.join("rootfs")), Vec::<String>::new());
    nothing_left(&env, "nons2");
    // Masks could be undone from inside and would be the host's: refused, as runc does.
    let b = real_bundle(&env, "nons3", |cfg| {
        no_ns(cfg, serde_json::json!(["true"]));
        cfg["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]);
    });
    let e = one_line_failure(&env.run_detached(&["create", "--bundle", b.to_str().unwrap(), "nons3"]));
    assert_eq!(e, "engine-oci: config.json: linux.maskedPaths: needs a mount namespace of the container's own");
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// rootfsPropagation rshared with an rshared bind of a shared host directory (what containerd's
/// CRI plugin makes of a Kubernetes volume with mountPropagation: Bidirectional): a mount the
/// container makes under the bind reaches the host, as with runc. The root used to be made
/// rprivate first, which took the bind out of the host's peer group for good.
#[test]
fn an_rshared_root_lets_container_mounts_under_a_shared_bind_reach_the_host() {
    let env = Env::new();
    let shared = SharedHostDir::new(&env);
    let (v, sub) = (shared.vol.to_str().unwrap(), shared.sub.clone());
    let b = real_bundle(&env, "bi", |cfg| {
        cfg["process"]["args"] =
            serde_json::json!(["sh", "-c", "mount -t tmpfs from-container /vol/sub && echo made > /vol/sub/x"]);
        for set in ["bounding", "effective", "permitted"] {
            cfg["process"]["capabilities"][set].as_array_mut().unwrap().push("CAP_SYS_ADMIN".into());
        }
        cfg["linux"]["rootfsPropagation"] = "rshared".into();
        cfg["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/vol", "type": "bind", "source": v, "options": ["rbind", "rshared"]}));
    });
    let o = env.run(&["run", "--bundle", b.to_str().unwrap(), "bi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(sub.join("x")).unwrap_or_default(),
        "made\n",
        "the container's mount did not reach the host"
    );
    // The container's root and its own mounts did not: nothing of it is left below its bundle.
    assert_eq!(mounts_below(&b), Vec::<String>::new());
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

/// `create --preserve-fds N` (runc's, systemd's socket activation through podman): the caller's
/// fds 3 .. 3+N-1 are the process's 3 .. 3+N-1, and nothing else of engine's reaches it. engine
/// used to refuse the flag.
#[test]
fn preserve_fds_passes_the_callers_fds_3_and_up_to_the_process() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let input = env.path("three");
    std::fs::write(&input, "from-fd-3\n").unwrap();
    let output = env.path("four");
    let b = real_bundle(&env, "pf", |cfg| {
        cfg["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "cat <&3; echo to-fd-4 >&4; for fd in 5 6 7 8 9; do [ -e /proc/self/fd/$fd ] && echo open-$fd; done; true"
        ]);
    });
    let three = std::fs::File::open(&input).unwrap();
    let four = std::fs::File::create(&output).unwrap();
    let (a, b4) = (three.as_raw_fd(), four.as_raw_fd());
    let mut cmd = env.cmd(&["run", "--preserve-fds", "2", "--bundle", b.to_str().unwrap(), "pf"]);
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let t3 = libc::fcntl(a, libc::F_DUPFD, 100);
            let t4 = libc::fcntl(b4, libc::F_DUPFD, 100);
            if t3 < 0 || t4 < 0 || libc::dup2(t3, 3) < 0 || libc::dup2(t4, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(t3);
            libc::close(t4);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from-fd-3\n");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "to-fd-4\n");
    // Fewer fds open than asked for: refused in one line.
    let e = one_line_failure(&env.run(&["create", "--preserve-fds", "40", "--bundle", b.to_str().unwrap(), "pf2"]));
    assert!(e.contains("--preserve-fds 40: fd ") && e.ends_with(" is not open"), "{e}");
    nothing_left(&env, "pf2");
    assert_eq!(env.remove_cgroup_parent(), Vec::<PathBuf>::new());
}

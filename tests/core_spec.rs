//! The container core as a library, driven by an OCI Spec directly (what the OCI binary does):
//! `container::create` with RootSource::Dir on a copy of the test rootfs, the program as PID 1
//! (InitMode::Exec) released through its fifo, or kept under the init (Reaper) released on the
//! channel. Each test checks what the container saw, and that nothing is left.
mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use engine::container::exit::Termination;
use engine::container::{self, CreateOptions, InitMode, RootSource, Spec, StartGate, Stdio};
use serde_json::{json, Value};

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

struct Bundle {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    cgroup_parent: String,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::Builder::new().prefix("engine-core-").tempdir_in("/tmp").unwrap();
        let rootfs = dir.path().join("rootfs");
        assert!(Command::new("cp").arg("-a").arg(common::rootfs()).arg(&rootfs).status().unwrap().success());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Bundle { dir, rootfs, cgroup_parent: format!("engine-core-{}x{n}", std::process::id()) }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for ctrl in ["memory", "cpu", "cpuacct", "pids", "cpuset", "devices", "blkio", "unified", ""] {
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(&self.cgroup_parent));
        }
    }
}

/// A config.json as runc's `spec` writes it, for `args`, with the default capabilities.
fn config(args: &[&str]) -> Value {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "hostname": "core",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds, owned here from now on.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

struct Outcome {
    how: Termination,
    stdout: String,
    stderr: String,
}

fn options(b: &Bundle, spec: Value, stdio: Stdio, mode: InitMode, gate: StartGate) -> CreateOptions<'static> {
    let spec: Spec = serde_json::from_value(spec).expect("a valid config");
    CreateOptions {
        id: format!("c{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)),
        spec,
        root: RootSource::Dir(b.rootfs.clone()),
        stdio,
        mode,
        gate,
        files: Vec::new(),
        cgroup_parent: b.cgroup_parent.clone(),
        cgroup: container::CgroupRules::Engine,
        before_setup: None,
        init_binary: Some(PathBuf::from(common::ENGINE)),
        hook_state: None,
        preserve_fds: Vec::new(),
        root_mount: None,
        cgroup_ahead: None,
        bridged: false,
        rss_limited: false,
    }
}

/// The start fifo as runc makes it: 0622 whatever the umask, so an init that switched to another
/// user (or to a user namespace's root) can still open it for writing.
fn make_fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622)).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o622)).unwrap();
}

/// OCI's way: create (the init waits at its fifo), start through the fifo, wait.
fn run_oci(b: &Bundle, spec: Value) -> Result<Outcome, container::CoreError> {
    let fifo = b.dir.path().join("exec.fifo");
    let _ = std::fs::remove_file(&fifo);
    make_fifo(&fifo);
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let stdin = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let opts = options(b, spec, Stdio::Fds([stdin, out_w, err_w]), InitMode::Exec, StartGate::Fifo(fifo.clone()));
    let mut created = container::create(opts)?.ready()?;
    let pidfd = created.take_pidfd().unwrap();
    let cgroup = created.take_cgroup().unwrap();
    created.detach();
    assert!(fifo.exists(), "the fifo is there until start");
    if let Err(e) = container::start_fifo(&fifo) {
        // Nothing left behind by a failing test: the init blocked at its fifo, its group.
        let _ = container::signal(&pidfd, libc::SIGKILL);
        let _ = container::wait(&pidfd);
        let _ = container::delete(cgroup);
        panic!("start: {e}; the init said: {}", read_all(err_r));
    }
    assert!(!fifo.exists(), "start removes the fifo");
    let how = container::wait(&pidfd).unwrap();
    container::delete(cgroup).unwrap();
    Ok(Outcome { how, stdout: read_all(out_r), stderr: read_all(err_r) })
}

#[test]
fn exec_mode_runs_the_program_as_pid_1_after_the_fifo() {
    let b = Bundle::new();
    let script =
        "echo pid=$$; hostname; cat /proc/1/status | grep -E '^(CapBnd|NoNewPrivs)'; ls /dev/null /dev/pts/ptmx";
    let out = run_oci(&b, config(&["/bin/sh", "-c", script])).unwrap();
    assert_eq!(out.how, Termination::Code(0), "{}", out.stderr);
    assert_eq!(
        out.stdout, "pid=1\ncore\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\n/dev/null\n/dev/pts/ptmx\n",
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_program_fails_create_with_127_and_leaves_nothing() {
    let b = Bundle::new();
    let e = run_oci(&b, config(&["/no/such/program"])).err().expect("create must fail");
    assert_eq!(e.exit_code(), 127, "{e}");
    assert!(e.to_string().contains("/no/such/program") && e.to_string().contains("No such file"), "{e}");
    let e = run_oci(&b, config(&["/etc/passwd"])).err().expect("create must fail");
    assert_eq!(e.exit_code(), 126, "{e}");
    // The group the failed create made is gone again.
    let groups: Vec<_> = std::fs::read_dir(Path::new("/sys/fs/cgroup").join(&b.cgroup_parent))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(groups.is_empty(), "left behind: {groups:?}");
}

#[test]
fn reaper_mode_keeps_the_init_as_pid_1_and_reports_the_exit_on_the_channel() {
    let b = Bundle::new();
    let opts = options(
        &b,
        config(&["/bin/sh", "-c", "echo pid=$$ ppid=$PPID; exit 3"]),
        Stdio::Pipes,
        InitMode::Reaper,
        StartGate::Channel,
    );
    let mut pending = container::create(opts).unwrap();
    let (out, _err) = pending.take_output().unwrap();
    let running = pending.ready().unwrap().start().unwrap();
    let channel = running.channel.as_ref().unwrap();
    assert_eq!(channel.wait_exited().unwrap(), Termination::Code(3));
    assert_eq!(container::wait(running.pidfd.as_ref().unwrap()).unwrap(), Termination::Code(3));
    container::delete(running.cgroup.unwrap()).unwrap();
    assert_eq!(read_all(out), "pid=2 ppid=1\n");
}

/// `config(["/bin/sh", "-c", script])` with `edit` applied to it.
fn script(script: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = config(&["/bin/sh", "-c", script]);
    edit(&mut c);
    c
}

/// Runs through the fifo and returns stdout, asserting a clean exit.
fn stdout_of(b: &Bundle, spec: Value) -> String {
    let out = run_oci(b, spec).unwrap_or_else(|e| panic!("create failed: {e}"));
    assert_eq!(out.how, Termination::Code(0), "stdout {:?} stderr {:?}", out.stdout, out.stderr);
    out.stdout
}

#[test]
fn process_user_groups_and_umask() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script("id -u; id -g; id -G; umask; grep CapEff /proc/self/status", |c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 63});
        }),
    );
    // A non-root command keeps no capability (no ambient set given).
    assert_eq!(out, "1000\n1001\n1001 10 20\n0077\nCapEff:\t0000000000000000\n");
}

#[test]
fn the_five_capability_sets_come_from_the_spec() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status", |c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["process"]["capabilities"] = json!({
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "inheritable": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_NET_BIND_SERVICE"]
            });
        }),
    );
    assert_eq!(
        out,
        "CapInh:\t0000000000000401\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\n\
         CapBnd:\t0000000000000421\nCapAmb:\t0000000000000400\n"
    );
}

/// `crun spec`'s default: ambient capabilities with no inheritable set. The kernel refuses
/// to raise them (EPERM); the container runs without them, as under crun and runc.
#[test]
fn an_ambient_capability_not_inheritable_is_skipped() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script("grep -E '^Cap(Inh|Amb)' /proc/self/status", |c| {
            c["process"]["capabilities"]["ambient"] = json!(["CAP_NET_BIND_SERVICE"]);
        }),
    );
    assert_eq!(out, "CapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n");
}

#[test]
fn rlimits_and_oom_score_adj() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script("ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj", |c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
            // Positive: a negative value is refused on this host (EACCES, see ECOSYSTEM.md).
            c["process"]["oomScoreAdj"] = json!(500);
        }),
    );
    assert_eq!(out, "100\n200\n500\n");
}

#[test]
fn hostname_domainname_and_namespaced_sysctls() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script(
            "hostname; cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
            |c| {
                c["hostname"] = json!("h1");
                c["domainname"] = json!("d1.example");
                c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
            },
        ),
    );
    assert_eq!(out, "h1\nd1.example\n1\n1234\n");
    // A host-wide sysctl is refused, naming the key; nothing runs.
    let e = run_oci(&b, script("true", |c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"})))
        .err()
        .expect("a host sysctl must be refused");
    assert!(e.to_string().contains("linux.sysctl.kernel.panic"), "{e}");
    assert_eq!(e.exit_code(), 125);
    // A host name without a UTS namespace of the container's own would rename the host: refused.
    let host_before = nix::unistd::gethostname().unwrap();
    let e = run_oci(&b, script("true", |c| c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}])))
        .err()
        .expect("a hostname without a UTS namespace must be refused");
    assert!(e.to_string().contains("hostname"), "{e}");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
}

/// The mountinfo line of `dest` as the container printed it: (mount options, optional fields,
/// fs type, super options).
fn mountinfo(out: &str, dest: &str) -> Option<(String, String, String, String)> {
    out.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        (f.get(4) == Some(&dest)).then(|| {
            (f[5].to_string(), f[6..].join(" "), r[0].to_string(), r.get(2).copied().unwrap_or("").to_string())
        })
    })
}

/// The first child of `pid` (what `unshare --fork` started).
fn child_of(pid: i32) -> i32 {
    let mut child = None;
    common::wait_until(std::time::Duration::from_secs(5), || {
        child = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|c| c.parse().ok()));
        child.is_some()
    });
    child.unwrap()
}

#[test]
fn generic_mounts_with_their_flags() {
    let b = Bundle::new();
    let host_dir = b.dir.path().join("shared");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from the host\n").unwrap();
    let host_file = b.dir.path().join("one-file");
    std::fs::write(&host_file, "a file\n").unwrap();
    let out = stdout_of(
        &b,
        script(
            "cat /mnt/ro/f /etc/one; touch /mnt/ro/x 2>/dev/null && echo WRITABLE; touch /mnt/rw/y && echo rw-ok; \
             touch /scratch/z && echo tmpfs-ok; cat /proc/self/mountinfo",
            |c| {
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.push(json!({"destination": "/mnt/ro", "type": "bind", "source": host_dir, "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}));
                mounts.push(json!({"destination": "/mnt/rw", "type": "bind", "source": host_dir, "options": ["bind", "rslave"]}));
                mounts.push(
                    json!({"destination": "/etc/one", "type": "bind", "source": host_file, "options": ["bind", "ro"]}),
                );
                mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1777"]}));
                mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}));
                mounts.push(json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}));
            },
        ),
    );
    assert!(out.starts_with("from the host\na file\nrw-ok\ntmpfs-ok\n"), "{out}");
    let ro = mountinfo(&out, "/mnt/ro").expect("/mnt/ro mounted");
    assert!(ro.0.starts_with("ro,nosuid,nodev,noexec"), "{ro:?}");
    let rw = mountinfo(&out, "/mnt/rw").expect("/mnt/rw mounted");
    assert!(rw.0.starts_with("rw"), "{rw:?}");
    assert!(mountinfo(&out, "/etc/one").expect("file bind").0.starts_with("ro"));
    let tmp = mountinfo(&out, "/scratch").expect("tmpfs");
    assert!(tmp.0.starts_with("rw,nosuid,nodev,noexec") && tmp.2 == "tmpfs" && tmp.3.contains("size=1024k"), "{tmp:?}");
    let sys = mountinfo(&out, "/sys").expect("sysfs");
    assert!(sys.0.starts_with("ro,nosuid,nodev,noexec") && sys.2 == "sysfs", "{sys:?}");
    assert_eq!(mountinfo(&out, "/dev/mqueue").expect("mqueue").2, "mqueue");
    assert!(!host_dir.join("x").exists() && host_dir.join("y").exists());
}

#[test]
fn rootfs_propagation_and_devices() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script("stat -c '%F %t:%T %a %u:%g' /dev/net/tun /dev/null; grep -E '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ' /proc/self/mountinfo", |c| {
            c["linux"]["rootfsPropagation"] = json!("shared");
            c["linux"]["devices"] = json!([{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 400, "uid": 7, "gid": 8}]);
        }),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["character special file a:c8 620 7:8", "character special file 1:3 666 0:0"], "{out}");
    assert!(lines[2].contains(" shared:"), "root not shared: {out}");
}

/// A process holding namespaces of its own (unshare(1): tests may run host tools), killed on drop.
struct Holder(std::process::Child);

impl Holder {
    fn new(args: &[&str]) -> Holder {
        let child = Command::new("unshare").args(args).args(["sleep", "60"]).spawn().unwrap();
        // The namespaces exist once sleep runs (unshare execs it, or forks it for --pid --fork).
        let pid = child.id();
        common::wait_until(std::time::Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
                || std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).is_ok_and(|c| !c.is_empty())
        });
        Holder(child)
    }

    fn ns(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.0.id()))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn namespaces_joined_by_path() {
    let b = Bundle::new();
    let holder = Holder::new(&["--net", "--uts", "--ipc"]);
    let links: Vec<String> = ["net", "uts", "ipc"]
        .iter()
        .map(|k| std::fs::read_link(holder.ns(k)).unwrap().to_string_lossy().into_owned())
        .collect();
    let out = stdout_of(
        &b,
        script("for n in net uts ipc; do readlink /proc/self/ns/$n; done", |c| {
            c.as_object_mut().unwrap().remove("hostname");
            c["linux"]["namespaces"] = json!([
                {"type": "pid"}, {"type": "mount"},
                {"type": "network", "path": holder.ns("net")},
                {"type": "uts", "path": holder.ns("uts")},
                {"type": "ipc", "path": holder.ns("ipc")}
            ]);
        }),
    );
    assert_eq!(out, format!("{}\n", links.join("\n")));
}

#[test]
fn a_pid_namespace_joined_by_path() {
    let b = Bundle::new();
    // unshare forks: the namespace is its child's (sleep, PID 1 there).
    let holder = Holder::new(&["--pid", "--fork"]);
    let sleep = child_of(holder.0.id() as i32);
    let want = std::fs::read_link(format!("/proc/{sleep}/ns/pid")).unwrap();
    let out = stdout_of(
        &b,
        script("readlink /proc/self/ns/pid; echo $$", |c| {
            c["linux"]["namespaces"] =
                json!([{"type": "pid", "path": format!("/proc/{sleep}/ns/pid")}, {"type": "mount"}, {"type": "uts"}]);
        }),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], want.to_string_lossy(), "{out}");
    assert_ne!(lines[1], "1", "joined, not new: sleep is PID 1 there");
}

#[test]
fn a_user_namespace_with_mappings() {
    let b = Bundle::new();
    // The init becomes root of the namespace (host uid 100000), which must reach the rootfs.
    std::fs::set_permissions(b.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = stdout_of(
        &b,
        script(
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin; echo x > /dev/null && echo null-ok",
            |c| {
                c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
                c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            },
        ),
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    // Host root is not mapped: the rootfs's files show as the overflow uid.
    assert_eq!(words, ["0", "100000", "65536", "0", "100000", "65536", "0", "65534", "null-ok"], "{out}");
}

#[test]
fn process_terminal_makes_fd_0_the_controlling_terminal() {
    let b = Bundle::new();
    // SAFETY: posix_openpt and friends on fds owned here.
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(m)).to_owned();
        let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(s >= 0);
        (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s))
    };
    let fifo = b.dir.path().join("exec.fifo");
    make_fifo(&fifo);
    let (out_r, out_w) = pipe();
    let spec =
        script("set -- $(cat /proc/self/stat); echo session=$6 tty=$7", |c| c["process"]["terminal"] = json!(true));
    let stdio = Stdio::Fds([slave, out_w, OwnedFd::from(std::fs::File::create("/dev/null").unwrap())]);
    let mut created = container::create(options(&b, spec, stdio, InitMode::Exec, StartGate::Fifo(fifo.clone())))
        .unwrap()
        .ready()
        .unwrap();
    let pidfd = created.take_pidfd().unwrap();
    let cgroup = created.take_cgroup().unwrap();
    created.detach();
    container::start_fifo(&fifo).unwrap();
    assert_eq!(container::wait(&pidfd).unwrap(), Termination::Code(0));
    container::delete(cgroup).unwrap();
    drop(master);
    let out = read_all(out_r);
    // The shell (PID 1) leads the session; the tty is the pty (major 136: /dev/pts).
    let tty: u32 = out.trim().rsplit('=').next().unwrap().parse().unwrap();
    assert!(out.starts_with("session=1 ") && (tty >> 8) & 0xfff == 136, "{out}");
}

#[test]
fn a_cgroup_mount_shows_the_containers_own_groups_only() {
    let b = Bundle::new();
    let out = stdout_of(
        &b,
        script(
            "cat $(find /sys/fs/cgroup -name pids.max | head -1); \
             for f in $(find /sys/fs/cgroup -name cgroup.procs); do cat $f; done | sort -u | tr '\\n' ' '; echo; \
             touch /sys/fs/cgroup/x 2>/dev/null && echo WRITABLE; grep -c ' /sys/fs/cgroup' /proc/self/mountinfo",
            |c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                    "options": ["ro", "nosuid", "nodev", "noexec"]
                }));
                c["linux"]["resources"] = json!({"pids": {"limit": 77}});
            },
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "77", "the group's own limit: {out}");
    // Only the container's processes (the shell and what it runs), as seen in its pid namespace.
    assert!(lines[1].split_whitespace().all(|p| p.parse::<u32>().is_ok_and(|p| p < 20)), "{out}");
    assert!(!out.contains("WRITABLE"), "{out}");
}

/// The init's pid in the `tasks` of every one of `paths` within `limit`.
fn joined_within(paths: &[PathBuf], pid: i32, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    let pid = pid.to_string();
    let joined = |p: &PathBuf| std::fs::read_to_string(p.join("tasks")).is_ok_and(|t| t.lines().any(|l| l == pid));
    while start.elapsed() < limit {
        if paths.iter().all(joined) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

/// The supervisor's hook (monitor, network, the /etc files they decide) runs while the init is
/// already at work: the Setup goes first and the hook's files follow it. Seen from the hook: the
/// init joins its cgroups meanwhile (it did so only after the hook returned before); seen from
/// the container: the hook's file is its /etc/hostname. A hook that fails after the Setup went
/// still leaves nothing: no init, no group.
#[test]
fn the_before_setup_hooks_files_follow_the_setup_the_init_has_begun_on() {
    let b = Bundle::new();
    let mut opts =
        options(&b, config(&["/bin/cat", "/etc/hostname"]), Stdio::Pipes, InitMode::Reaper, StartGate::Channel);
    let joined_meanwhile = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = joined_meanwhile.clone();
    opts.before_setup = Some(Box::new(move |init: &container::InitHandle<'_>| {
        let paths = init.cgroup.map(|c| c.paths()).unwrap_or_default();
        assert!(!paths.is_empty(), "the hook is given the container's group");
        let joined = joined_within(&paths, init.pid, std::time::Duration::from_secs(2));
        seen.store(joined, std::sync::atomic::Ordering::SeqCst);
        Ok(vec![container::EtcFile { target: "/etc/hostname".into(), content: "from-the-hook\n".into() }])
    }));
    let mut pending = container::create(opts).unwrap();
    let (out, _err) = pending.take_output().unwrap();
    let running = pending.ready().unwrap().start().unwrap();
    assert_eq!(running.channel.as_ref().unwrap().wait_exited().unwrap(), Termination::Code(0));
    assert_eq!(container::wait(running.pidfd.as_ref().unwrap()).unwrap(), Termination::Code(0));
    container::delete(running.cgroup.unwrap()).unwrap();
    assert_eq!(read_all(out), "from-the-hook\n");
    assert!(
        joined_meanwhile.load(std::sync::atomic::Ordering::SeqCst),
        "the init had not joined its cgroups while the hook ran: the Setup waited for the hook"
    );

    // A hook that fails once the init has begun: create fails and takes everything back.
    let mut opts = options(&b, config(&["/bin/true"]), Stdio::Pipes, InitMode::Reaper, StartGate::Channel);
    let init_pid = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let pid_seen = init_pid.clone();
    opts.before_setup = Some(Box::new(move |init: &container::InitHandle<'_>| {
        pid_seen.store(init.pid, std::sync::atomic::Ordering::SeqCst);
        let paths = init.cgroup.map(|c| c.paths()).unwrap_or_default();
        joined_within(&paths, init.pid, std::time::Duration::from_secs(2));
        Err("the hook gives up".into())
    }));
    let e = container::create(opts).err().expect("a failing hook fails create");
    assert!(e.to_string().contains("the hook gives up"), "{e}");
    let pid = init_pid.load(std::sync::atomic::Ordering::SeqCst);
    assert!(pid > 0);
    // The init was the test's child: reaped by create's clean-up, so no such process is left.
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the init {pid} is left");
    let groups: Vec<_> = std::fs::read_dir(Path::new("/sys/fs/cgroup/memory").join(&b.cgroup_parent))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(groups.is_empty(), "left behind: {groups:?}");
}

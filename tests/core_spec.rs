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
        before_setup: None,
        init_binary: Some(PathBuf::from(common::ENGINE)),
    }
}

/// OCI's way: create (the init waits at its fifo), start through the fifo, wait.
fn run_oci(b: &Bundle, spec: Value) -> Result<Outcome, container::CoreError> {
    let fifo = b.dir.path().join("exec.fifo");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622)).unwrap();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let stdin = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let opts = options(b, spec, Stdio::Fds([stdin, out_w, err_w]), InitMode::Exec, StartGate::Fifo(fifo.clone()));
    let mut created = container::create(opts)?.ready()?;
    let pidfd = created.take_pidfd().unwrap();
    let cgroup = created.take_cgroup().unwrap();
    created.detach();
    assert!(fifo.exists(), "the fifo is there until start");
    container::start_fifo(&fifo).unwrap();
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

//! Fault tolerance of the supervisor (issue 8, items 5, 6 and 8): a full log disk, thread spawns
//! that fail under a pids limit, and clients that stall or flood the socket. Real supervisors,
//! real containers; root and the rootfs from `make rootfs` are required.
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{process_exists, rootfs, wait_until, KillOnDrop, Supervisor, ENGINE};
use engine::supervisor::logs::cri;

fn proc_status(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line[field.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

/// Runs `engine ARGS` against `socket` under a deadline; (success, stdout+stderr, elapsed).
fn engine_within(socket: &Path, args: &[&str], limit: Duration) -> (bool, String, Duration) {
    let t = Instant::now();
    let out = Command::new("timeout")
        .args(["--kill-after=2", &limit.as_secs().to_string(), ENGINE])
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text, t.elapsed())
}

fn inspect_status(socket: &Path, name: &str) -> String {
    let (ok, out, _) = engine_within(socket, &["inspect", name], Duration::from_secs(10));
    assert!(ok, "inspect {name} failed: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["state"]["status"].as_str().unwrap().to_string()
}

/// Every line of a CRI log parses, and the file ends with a whole record.
fn assert_whole_records(path: &Path) -> usize {
    let log = std::fs::read(path).unwrap();
    assert!(log.is_empty() || log.ends_with(b"\n"), "{} ends with a torn record", path.display());
    let mut n = 0;
    for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(
            cri::parse(line).is_some(),
            "torn or malformed record in {}: {:?}",
            path.display(),
            String::from_utf8_lossy(line)
        );
        n += 1;
    }
    n
}

fn free_blocks(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64
}

/// Waits until the disk is (nearly) full and the log has stopped growing for 2 s: whole-batch
/// writes that do not fit are cut back, so a little space may stay free.
fn wait_until_log_stalls(log: &Path, disk: &Path) {
    let t = Instant::now();
    let (mut len, mut since) = (0, Instant::now());
    loop {
        assert!(t.elapsed() < Duration::from_secs(60), "the flood never filled the disk");
        let now_len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        if now_len != len {
            (len, since) = (now_len, Instant::now());
        } else if since.elapsed() > Duration::from_secs(2) && free_blocks(disk) * 4096 < 8 << 20 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small tmpfs, unmounted (lazily, so a process still holding a file cannot keep it) even when
/// the test fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status();
        assert!(st.unwrap().success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A supervisor started with `--detach`: the test only knows its PID by its command line.
struct Detached {
    pid: i32,
    cgroup_parent: String,
    bridge: String,
}

impl Drop for Detached {
    fn drop(&mut self) {
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let t = Instant::now();
        while process_exists(self.pid) && t.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if process_exists(self.pid) {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        // Containers a supervisor that failed the test left behind: kill them, then their groups.
        let groups = |ctrl: &str| -> Vec<PathBuf> {
            let parent = Path::new("/sys/fs/cgroup").join(ctrl).join(&self.cgroup_parent);
            std::fs::read_dir(parent)
                .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
                .unwrap_or_default()
        };
        for group in groups("pids") {
            for pid in std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default().lines() {
                if let Ok(pid) = pid.parse::<i32>() {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = engine::net::remove_bridge(&self.bridge);
        for ctrl in ["memory", "cpu", "cpuacct", "pids", "cpuset", "devices", "blkio", "unified", ""] {
            for group in groups(ctrl) {
                let _ = std::fs::remove_dir(group);
            }
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(&self.cgroup_parent));
        }
    }
}

/// Item 5: one container floods its log onto a full disk. The supervisor and its other containers
/// live on, requests answer, the log holds only whole records and resumes when space returns,
/// and stop and SIGTERM still work.
#[test]
fn full_log_disk_holds_the_flooding_container_back_and_nothing_else() {
    let dir = tempfile::Builder::new().prefix("engine-faults-").tempdir_in("/tmp").unwrap();
    let mnt = dir.path().join("disk");
    let _tmpfs = Tmpfs::mount(&mnt, "20m");
    let root = mnt.join("root");
    let tag = std::process::id() % 100_000;
    let socket = dir.path().join("run/engine.sock");
    let out = Command::new(ENGINE)
        .args(["supervisor", "--detach", "--root"])
        .arg(&root)
        .arg("--socket")
        .arg(&socket)
        .args(["--cgroup-parent", &format!("engine-faults-{tag}"), "--bridge", &format!("ef{tag}")])
        .args(["--subnet", &format!("10.201.{}.0/24", tag % 250)])
        .output()
        .unwrap();
    assert!(out.status.success(), "supervisor --detach: {}", String::from_utf8_lossy(&out.stderr));
    let pid = common::pids_matching(&format!("--root {}", root.display()))
        .into_iter()
        .find(|&p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "engine-core"))
        .expect("the detached supervisor's pid");
    let sup = Detached { pid, cgroup_parent: format!("engine-faults-{tag}"), bridge: format!("ef{tag}") };
    let rootfs = rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let start = |name: &str, cmd: &[&str]| {
        let mut args = vec!["start", "--net", "none", name, rootfs];
        args.extend_from_slice(cmd);
        let (ok, out, _) = engine_within(&socket, &args, Duration::from_secs(30));
        assert!(ok, "start {name}: {out}");
    };
    // Room to give back later, once the disk is full.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![7u8; 4 << 20]).unwrap();
    start("innocent", &["sleep", "60"]);
    start("flood", &["yes", "flood-line-0123456789"]);
    let log = root.join("logs/flood.log");
    wait_until_log_stalls(&log, &mnt);

    assert!(process_exists(sup.pid), "the supervisor died on the full disk");
    let (ok, out, took) = engine_within(&socket, &["ps"], Duration::from_secs(10));
    assert!(ok && took < Duration::from_secs(5), "ps on a full disk: {out} after {took:?}");
    assert_eq!(inspect_status(&socket, "innocent"), "running", "the innocent container was hurt");
    assert_eq!(inspect_status(&socket, "flood"), "running");
    let before = assert_whole_records(&log);
    assert!(before > 1000, "the flood wrote only {before} records");

    // Space comes back: the held-back output resumes.
    std::fs::remove_file(&filler).unwrap();
    wait_until(Duration::from_secs(20), || std::fs::metadata(&log).unwrap().len() > 15 << 20);
    wait_until_log_stalls(&log, &mnt);
    let after = assert_whole_records(&log);
    assert!(after > before, "the log did not resume ({before} then {after} records)");

    for name in ["flood", "innocent"] {
        let (ok, out, took) = engine_within(&socket, &["stop", "-t", "2", name], Duration::from_secs(30));
        assert!(ok && took < Duration::from_secs(15), "stop {name} on a full disk: {out} after {took:?}");
        assert_eq!(inspect_status(&socket, name), "stopped");
    }
    // SIGTERM from the stop (128+15), not SIGPIPE (141) from a log pipe closed under it.
    let (_, out, _) = engine_within(&socket, &["inspect", "innocent"], Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exit_code"], 143, "innocent: {out}");
    assert_whole_records(&log);
    // Nothing lost in between: the payload is `yes`'s line over and over (a dropped chunk would
    // leave a broken line), except a last partial one.
    let raw = std::fs::read(&log).unwrap();
    let mut payload = Vec::new();
    for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        cri::parse(line).unwrap().write_payload(&mut payload, false, true);
    }
    let text = String::from_utf8(payload).unwrap();
    let mut lines: Vec<&str> = text.split('\n').collect();
    let last = lines.pop().unwrap();
    assert!("flood-line-0123456789".starts_with(last), "torn tail {last:?}");
    let bad = lines.iter().filter(|l| **l != "flood-line-0123456789").count();
    assert_eq!(bad, 0, "{bad} of {} lines of the flood were broken: output was lost", lines.len());

    // `rm` gives the space back: the writer lets go of a deleted log it could not finish.
    let (ok, out, _) = engine_within(&socket, &["rm", "flood"], Duration::from_secs(10));
    assert!(ok, "rm flood: {out}");
    wait_until(Duration::from_secs(10), || free_blocks(&mnt) * 4096 > 15 << 20);

    unsafe { libc::kill(sup.pid, libc::SIGTERM) };
    let t = Instant::now();
    while process_exists(sup.pid) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!process_exists(sup.pid), "the supervisor ignored SIGTERM on a full disk");
}

/// A v1 pids cgroup holding a running process; pids.max is set by the test. Removed on drop.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn new(pid: i32) -> PidsCgroup {
        // Unique per run: a group left by an earlier run killed mid-test must not collide.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = PathBuf::from(format!("/sys/fs/cgroup/pids/engine-test-faults-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let g = PidsCgroup(dir);
        std::fs::write(g.0.join("cgroup.procs"), pid.to_string()).unwrap();
        g
    }

    fn set_max(&self, max: &str) {
        std::fs::write(self.0.join("pids.max"), max).unwrap();
    }

    fn current(&self) -> u64 {
        std::fs::read_to_string(self.0.join("pids.current")).unwrap().trim().parse().unwrap()
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("pids.max"), "max");
        // Whatever is left goes back to the root group so the directory can go.
        if let Ok(procs) = std::fs::read_to_string(self.0.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write("/sys/fs/cgroup/pids/cgroup.procs", pid);
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// SIGKILLs the supervisor if it is still alive when the test ends (the base code ignored SIGTERM
/// after its reaper died, and the shared Drop would wait for it forever).
struct KillIfStuck(i32);

impl Drop for KillIfStuck {
    fn drop(&mut self) {
        let alive = || std::fs::read_to_string(format!("/proc/{}/stat", self.0)).is_ok_and(|s| !s.contains(") Z "));
        if !alive() {
            return;
        }
        unsafe { libc::kill(self.0, libc::SIGTERM) };
        let t = Instant::now();
        while alive() && t.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// Item 6: thread spawns fail (a pids limit) while a container ends and requests arrive. The
/// reaper survives: once the limit is lifted containers are reaped, requests answer, SIGTERM works.
#[test]
fn failed_thread_spawns_do_not_kill_the_reaper() {
    let mut sup = Supervisor::start();
    let _stuck = KillIfStuck(sup.pid());
    sup.start_container("short", &["sleep", "2"]);
    // Requests run on kept workers (those of the starts wait now): `logs -f`s take them and
    // hold them, more of them than there are workers, so the `ps` below needs a new thread.
    sup.start_container("holder", &["sh", "-c", "echo up; sleep 60"]);
    let kept = std::fs::read_dir(format!("/proc/{}/task", sup.pid()))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "request"))
        .count();
    let follow: Vec<KillOnDrop> = (0..kept + 2)
        .map(|_| {
            let mut follow = KillOnDrop(
                Command::new(ENGINE)
                    .arg("--socket")
                    .arg(&sup.socket)
                    .args(["logs", "-f", "holder"])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            let mut first = String::new();
            let out = follow.0.stdout.as_mut().unwrap();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut first).unwrap();
            assert_eq!(first.trim(), "up");
            follow
        })
        .collect();
    let cg = PidsCgroup::new(sup.pid());
    // No room for one more thread or process.
    cg.set_max(&cg.current().to_string());
    // A request whose thread cannot start (checked below: is it answered, not dropped?).
    let (ps_ok, ps_out, ps_took) = engine_within(&sup.socket, &["ps"], Duration::from_secs(20));
    // `short` exits under the limit: releasing it needs a thread, which cannot start.
    std::thread::sleep(Duration::from_secs(4));
    cg.set_max("max");

    wait_until(Duration::from_secs(10), || {
        engine_within(&sup.socket, &["inspect", "short"], Duration::from_secs(5)).1.contains("\"exited\"")
    });
    sup.start_container("later", &["true"]);
    let (ok, out, _) = engine_within(&sup.socket, &["wait", "later"], Duration::from_secs(20));
    assert!(ok && out.trim() == "0", "wait later after the limit: {out}");
    assert_eq!(inspect_status(&sup.socket, "later"), "exited");
    assert!(!ps_ok && ps_took < Duration::from_secs(10), "ps under the pids limit: ok={ps_ok} {ps_out}");
    assert!(ps_out.contains("cannot start a thread"), "ps under the pids limit said: {ps_out}");
    drop(follow);
    sup.start_container("long", &["sleep", "60"]);
    let mut child = sup.child.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "the supervisor ignored SIGTERM after failed spawns");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(cg);
}

fn frame_header(header_len: u32, payload_len: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&header_len.to_be_bytes());
    h[4..].copy_from_slice(&payload_len.to_be_bytes());
    h
}

fn raise_fd_limit() {
    let lim = libc::rlimit { rlim_cur: 8192, rlim_max: 8192 };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// `ps` answers within `limit`, retried while the supervisor says it is busy.
fn ps_answers(socket: &Path, limit: Duration) {
    let t = Instant::now();
    loop {
        let (ok, out, _) = engine_within(socket, &["ps"], Duration::from_secs(10));
        if ok {
            return;
        }
        assert!(t.elapsed() < limit, "ps did not answer within {limit:?}: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Item 8: 200 clients announce the largest frames and push 1 MiB of header before stalling.
#[test]
fn stalled_clients_announcing_huge_frames_cost_little_memory() {
    raise_fd_limit();
    let sup = Supervisor::start();
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut c = UnixStream::connect(&sup.socket).unwrap();
        let _ = c.write_all(&frame_header(1 << 20, 4 << 20));
        c.set_nonblocking(true).unwrap();
        clients.push((c, 0usize));
    }
    // Push header bytes for as long as the supervisor takes them.
    let chunk = vec![b' '; 64 << 10];
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let mut progress = false;
        for (c, sent) in clients.iter_mut().filter(|(_, s)| *s < 1 << 20) {
            if let Ok(n) = c.write(&chunk[..chunk.len().min((1 << 20) - *sent)]) {
                *sent += n;
                progress |= n > 0;
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let rss_kib = proc_status(sup.pid(), "VmRSS:");
    assert!(rss_kib < 100 << 10, "supervisor RSS {rss_kib} KiB with 200 stalled clients");
    ps_answers(&sup.socket, Duration::from_secs(15));
    drop(clients);
}

/// Item 8: 1000 clients connect and say nothing. Threads stay bounded, `ps` still answers, and
/// every silent client is closed.
#[test]
fn silent_clients_are_bounded_and_timed_out() {
    raise_fd_limit();
    let sup = Supervisor::start();
    // A client that goes away mid-answer must not kill the supervisor: SIGPIPE is ignored (Rust's
    // default for a binary), so a write to it is an EPIPE error.
    let status = std::fs::read_to_string(format!("/proc/{}/status", sup.pid())).unwrap();
    let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).unwrap().trim();
    assert_ne!(u64::from_str_radix(ignored, 16).unwrap() & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is not ignored");
    let base_threads = proc_status(sup.pid(), "Threads:");
    let mut clients: Vec<UnixStream> = (0..1000).map(|_| UnixStream::connect(&sup.socket).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(1));
    let threads = proc_status(sup.pid(), "Threads:");
    assert!(threads < base_threads + 160, "{threads} supervisor threads for 1000 silent clients");
    ps_answers(&sup.socket, Duration::from_secs(20));
    // Each is answered (busy, or timed out) and closed within the request timeout.
    let t = Instant::now();
    for c in clients.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(15).saturating_sub(t.elapsed()).max(Duration::from_millis(1))))
            .unwrap();
        let mut rest = Vec::new();
        let r = c.read_to_end(&mut rest);
        assert!(r.is_ok(), "a silent client was not closed within 15 s: {r:?}");
    }
}

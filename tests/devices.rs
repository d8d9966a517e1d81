//! Device rules and a container's own cgroups, on real containers (this host: cgroup v1; the
//! QEMU guest checks v2 in tests/vm/engine-scenario.sh).
//!
//! A container may make any node (CAP_MKNOD stays, as in Docker) but open only null, zero,
//! full, random, urandom, tty, ptmx and pts (not console: there is none of the container's own); and it always runs in its own groups,
//! with pids.max 2048 unless --pids-limit says otherwise.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs inside the container. Nodes are made in /dev (the container's own tmpfs), so nothing
/// lands in the shared rootfs. Each open is done by a subshell (`:` with a redirection): the
/// open is what the device rules check, and nothing is written to a host device even on code
/// without rules. One line per node: `LABEL r=[...] w=[...]`, "ok" or the shell's error.
const PROBE: &str = r#"
probe() {
	l=$1; p=$2; shift 2
	if [ $# -gt 0 ]; then m=$(mknod "$p" "$@" 2>&1) || { echo "$l mknod=[$m]"; return; }; fi
	r=$( ( : <"$p" ) 2>&1 ) && r=ok
	w=$( ( : >"$p" ) 2>&1 ) && w=ok
	echo "$l r=[$r] w=[$w]"
}
probe loop /dev/hl b 7 0
d=$(dd if=/dev/hl of=/dev/null count=1 2>&1) && d=ok
echo "loopdd r=[$d] w=[$d]"
probe kmsg /dev/km c 1 11
probe tty1 /dev/t1 c 4 1
probe loopctl /dev/lc c 10 237
probe tun /dev/tn c 10 200
probe fuse /dev/fu c 10 229
probe kvm /dev/kv c 10 232
probe console /dev/co c 5 1
probe mynull /dev/mn c 1 3
probe null /dev/null
probe zero /dev/zero
probe full /dev/full
probe urandom /dev/urandom
probe random /dev/random
probe tty /dev/tty
probe ptmx /dev/ptmx
echo probe-done
"#;

const EPERM: &str = "Operation not permitted";

fn line<'a>(out: &'a str, label: &str) -> &'a str {
    let prefix = format!("{label} ");
    out.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no line for {label} in:\n{out}"))
}

#[test]
fn nodes_may_be_made_but_only_the_default_devices_opened() {
    let sup = Supervisor::start();
    let (code, out, err) = sup.run_with(&["--net", "none"], "devs", &rootfs(), &["/bin/sh", "-c", PROBE]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    assert!(out.contains("probe-done"), "{out}");
    // Made fine, refused at open, for reading and for writing, whatever the node's name.
    for label in ["loop", "loopdd", "kmsg", "tty1", "loopctl", "tun", "fuse", "kvm", "console"] {
        let l = line(&out, label);
        assert!(!l.contains("mknod="), "mknod must stay allowed: {l}");
        assert_eq!(l.matches(EPERM).count(), 2, "{label} must not open for reading or writing: {l}\n{out}");
    }
    // Opened fine (a node the container made for an allowed number, too).
    for label in ["mynull", "null", "zero", "full", "urandom", "random", "ptmx"] {
        let l = line(&out, label);
        assert_eq!(l, format!("{label} r=[ok] w=[ok]"), "{out}");
    }
    // /dev/tty without a controlling terminal is ENXIO, never EPERM: the rules let it through.
    let l = line(&out, "tty");
    assert!(!l.contains(EPERM) && !l.contains("mknod="), "{l}");
    sup.ok(&["rm", "devs"]);
}

/// A pids cgroup of the test's own, capped, that the supervisor is moved into: on code that
/// leaves containers in the supervisor's groups, a fork bomb fills it and the supervisor can
/// no longer make a thread or a process. Kills whatever is left in it, then removes it.
struct CappedGroup {
    dir: PathBuf,
}

impl CappedGroup {
    fn new(tag: &str, max: u64) -> CappedGroup {
        let dir = Path::new("/sys/fs/cgroup/pids").join(format!("engine-test-cap-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("creating the capped pids group (needs cgroup v1 pids)");
        std::fs::write(dir.join("pids.max"), max.to_string()).unwrap();
        CappedGroup { dir }
    }

    fn join(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for CappedGroup {
    fn drop(&mut self) {
        kill_all_in(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// SIGKILLs what is in the cgroup directory `dir` until it is empty (or 10 s passed).
fn kill_all_in(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in left {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `engine ARGS` with a short timeout: a supervisor starved of pids must fail the test
/// quickly, not after the common helper's two minutes.
fn engine_quick(sup: &Supervisor, args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .args(["--kill-after=2", "15", ENGINE])
        .arg("--socket")
        .arg(&sup.socket)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn cgroup_paths(sup: &Supervisor, name: &str) -> Vec<PathBuf> {
    let st = sup.state(name);
    st["cgroup"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).map(PathBuf::from).collect())
        .unwrap_or_default()
}

#[test]
fn a_container_without_limits_has_its_own_groups_with_the_default_pids_limit() {
    let sup = Supervisor::start();
    sup.start_container("plain", &["/bin/sleep", "60"]);
    let paths = cgroup_paths(&sup, "plain");
    assert!(!paths.is_empty(), "no cgroup for a container without limits: {}", sup.state("plain"));
    let pids = paths.iter().find(|p| p.join("pids.max").exists()).expect("a pids group");
    assert_eq!(std::fs::read_to_string(pids.join("pids.max")).unwrap().trim(), "2048");
    // Every hierarchy this module uses that is mounted here (v1: one directory each).
    for ctrl in ["memory", "cpu", "cpuacct", "cpuset", "pids", "devices"] {
        let mount = Path::new("/sys/fs/cgroup").join(ctrl);
        if mount.join("cgroup.procs").exists() {
            assert!(paths.iter().any(|p| p.starts_with(&mount)), "not in {ctrl}: {paths:?}");
        }
    }
    if let Some(devices) = paths.iter().find(|p| p.join("devices.list").exists()) {
        let list = std::fs::read_to_string(devices.join("devices.list")).unwrap();
        assert!(list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"), "{list}");
    }
    // --pids-limit still wins over the default.
    let rootfs = rootfs();
    sup.ok(&["start", "--pids-limit", "77", "limited", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
    let limited = cgroup_paths(&sup, "limited");
    let limited_pids = limited.iter().find(|p| p.join("pids.max").exists()).expect("a pids group");
    assert_eq!(std::fs::read_to_string(limited_pids.join("pids.max")).unwrap().trim(), "77");
    for name in ["plain", "limited"] {
        sup.ok(&["rm", "-f", name]);
    }
    for p in paths.iter().chain(&limited) {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn a_fork_bomb_does_not_silence_the_supervisor() {
    // Declared first, dropped last: after the supervisor and its containers are gone.
    let cap = CappedGroup::new("bomb", 400);
    let mut sup = Supervisor::start();
    cap.join(sup.pid());
    let rootfs = rootfs();

    // The forking subshell dies at its first failed fork (ash gives up); the container's
    // command, already a sleep, keeps the group full and the container running.
    sup.start_container("bomb", &["/bin/sh", "-c", "(while true; do sleep 100 & done) 2>/dev/null & exec sleep 3600"]);
    let bomb = cgroup_paths(&sup, "bomb");
    // The bomb fills its own group to the default limit (or, on code that leaves it in the
    // supervisor's groups, the capped one).
    let bomb_pids = bomb.iter().find(|p| p.join("pids.current").exists()).cloned();
    let count = |p: &Path| std::fs::read_to_string(p.join("pids.current")).ok().and_then(|s| s.trim().parse().ok());
    let deadline = Instant::now() + Duration::from_secs(60);
    let filled = loop {
        let n: u64 = bomb_pids.as_deref().and_then(count).unwrap_or(0);
        let capped: u64 = count(&cap.dir).unwrap_or(0);
        if n >= 2048 || capped >= 400 || Instant::now() > deadline {
            eprintln!("bomb group: {n} pids; the supervisor's capped group: {capped}");
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // A supervisor starved of pids may also ignore SIGTERM (its threads died), and the
    // common Drop would wait for it forever: on a failure, SIGKILL it and its containers.
    let checks = std::panic::catch_unwind(|| {
        let ps = engine_quick(&sup, &["ps"]);
        assert!(ps.status.success(), "ps during the fork bomb: {}", describe(&ps));
        assert!(String::from_utf8_lossy(&ps.stdout).contains("bomb"), "{}", describe(&ps));
        let other =
            engine_quick(&sup, &["run", "--net", "none", "other", rootfs.to_str().unwrap(), "/bin/echo", "alive"]);
        assert!(
            other.status.success() && String::from_utf8_lossy(&other.stdout).contains("alive"),
            "another container during the fork bomb: {}",
            describe(&other)
        );

        assert_eq!(filled, 2048, "the bomb should have stopped at its own default pids limit");
    });
    if let Err(panic) = checks {
        let _ = sup.signal_and_wait(libc::SIGKILL);
        for dir in &bomb {
            kill_all_in(dir);
        }
        std::panic::resume_unwind(panic);
    }
    let out = engine_quick(&sup, &["rm", "-f", "bomb"]);
    assert!(out.status.success(), "rm -f bomb: {}", describe(&out));
    sup.ok(&["rm", "other"]);
    for p in &bomb {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

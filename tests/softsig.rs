//! `--soft-signal` through the cgroup fallback (this host has no kernel monitor and cgroup v1:
//! memory thresholds through cgroup.event_control). The module path runs in the QEMU guest
//! (tests/vm/engine-scenario.sh), and the cgroup-v2 fallback there too.
//!
//! The workload, workloads/soft_trap.c, grows by 2 MiB every 50 ms; in trap mode SIGTERM makes it
//! print a checkpoint line and exit 0, in ignore mode it ignores SIGTERM.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A copy of the test rootfs with /soft_trap in it (built here from workloads/soft_trap.c, so the
/// shared rootfs stays untouched); removed on drop.
struct TrapRootfs {
    dir: tempfile::TempDir,
}

impl TrapRootfs {
    fn new() -> TrapRootfs {
        let dir = tempfile::Builder::new().prefix("engine-softsig-").tempdir_in("/tmp").unwrap();
        let root = dir.path().join("rootfs");
        let st = Command::new("cp").arg("-a").arg(rootfs()).arg(&root).status().unwrap();
        assert!(st.success(), "copying the rootfs");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/soft_trap.c");
        let out = Command::new("gcc")
            .args(["-O2", "-Wall", "-static", "-o"])
            .arg(root.join("soft_trap"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success(), "building soft_trap: {}", String::from_utf8_lossy(&out.stderr));
        TrapRootfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

fn events(sup: &Supervisor, name: &str) -> Vec<String> {
    sup.state(name)["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect()
}

fn ps_state(sup: &Supervisor, name: &str) -> String {
    let ps = sup.ok(&["ps", "-a"]);
    ps.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default().to_string()
}

/// Milliseconds from the first line showing RSS above `soft_kib` to the checkpoint line.
fn signal_delay_ms(log: &str, soft_kib: u64) -> Option<i64> {
    let field = |line: &str, key: &str| -> Option<i64> {
        line.split_whitespace().find_map(|w| w.strip_prefix(key))?.trim_end_matches(',').parse().ok()
    };
    let crossed = log
        .lines()
        .filter(|l| l.contains("allocated="))
        .find(|l| field(l, "rss=").is_some_and(|r| r as u64 > soft_kib))
        .and_then(|l| field(l, "t="))?;
    let checkpoint = log.lines().find(|l| l.contains("checkpoint")).and_then(|l| field(l, "t="))?;
    Some(checkpoint - crossed)
}

#[test]
fn soft_signal_lets_the_application_checkpoint_and_exit_0() {
    let fs = TrapRootfs::new();
    let sup = Supervisor::start();
    let opts = ["--soft-mib", "24", "--hard-mib", "64", "--soft-signal", "TERM"];
    let (code, stdout, stderr) = sup.run_with(&opts, "trap", &fs.path(), &["/soft_trap", "2", "50", "200"]);
    assert_eq!(code, 0, "stdout {stdout:?} stderr {stderr:?}");
    assert!(stdout.contains("checkpoint: got signal 15"), "{stdout}");
    let logs = sup.ok(&["logs", "trap"]);
    assert!(logs.contains("checkpoint"), "{logs}");
    let st = sup.state("trap");
    assert_eq!(st["state"]["status"], "exited", "{st}");
    assert_eq!(st["soft_signals_sent"], 1, "{st}");
    let ev = events(&sup, "trap");
    assert!(ev.iter().any(|e| e.contains("soft limit exceeded")), "{ev:?}");
    assert!(ev.iter().any(|e| e.contains("soft-limit signal SIGTERM sent: rss")), "{ev:?}");
    assert!(!ev.iter().any(|e| e.contains("hard limit")), "{ev:?}");
    assert!(ps_state(&sup, "trap").contains("exited (0) after soft-limit signal"), "{}", ps_state(&sup, "trap"));
    match signal_delay_ms(&logs, 24 << 10) {
        Some(d) => eprintln!("cgroup v1 fallback: crossing -> checkpoint {d} ms (allocation step 50 ms)"),
        None => panic!("no crossing/checkpoint times in {logs}"),
    }
}

#[test]
fn without_soft_signal_the_same_workload_is_killed_at_the_hard_limit() {
    let fs = TrapRootfs::new();
    let sup = Supervisor::start();
    let opts = ["--soft-mib", "24", "--hard-mib", "64"];
    let (code, stdout, _) = sup.run_with(&opts, "nosig", &fs.path(), &["/soft_trap", "2", "50", "200"]);
    assert_eq!(code, 137, "{stdout}");
    assert!(!stdout.contains("checkpoint"), "{stdout}");
    assert!(ps_state(&sup, "nosig").contains("killed (hard limit)"), "{}", ps_state(&sup, "nosig"));
    let ev = events(&sup, "nosig");
    assert!(ev.iter().any(|e| e.contains("soft limit exceeded")), "{ev:?}");
    assert!(ev.iter().any(|e| e.contains("hard limit exceeded")), "{ev:?}");
    assert!(!ev.iter().any(|e| e.contains("soft-limit signal")), "{ev:?}");
}

#[test]
fn an_application_that_ignores_the_signal_is_killed_at_the_hard_limit() {
    let fs = TrapRootfs::new();
    let sup = Supervisor::start();
    let opts = ["--soft-mib", "24", "--hard-mib", "64", "--soft-signal", "SIGTERM"];
    let (code, stdout, _) = sup.run_with(&opts, "deaf", &fs.path(), &["/soft_trap", "2", "50", "200", "ignore"]);
    assert_eq!(code, 137, "{stdout}");
    assert!(!stdout.contains("checkpoint"), "{stdout}");
    assert!(ps_state(&sup, "deaf").contains("killed (hard limit)"), "{}", ps_state(&sup, "deaf"));
    let ev = events(&sup, "deaf");
    // Once per crossing: it stayed above soft until the kill.
    assert_eq!(ev.iter().filter(|e| e.contains("soft-limit signal SIGTERM sent")).count(), 1, "{ev:?}");
    assert!(ev.iter().any(|e| e.contains("hard limit exceeded")), "{ev:?}");
}

#[test]
fn soft_signal_without_soft_mib_is_refused_in_one_line() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let out =
        sup.engine(&["run", "--soft-signal", "TERM", "--hard-mib", "64", "x", rootfs.to_str().unwrap(), "/bin/true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--soft-signal needs --soft-mib"), "{err}");
    let out =
        sup.engine(&["run", "--soft-mib", "8", "--soft-signal", "KILL", "x", rootfs.to_str().unwrap(), "/bin/true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be caught"), "{}", describe(&out));
}

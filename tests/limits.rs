//! Resource limits on real containers (this host: cgroup v1; the QEMU guest runs v2 by hand).
mod common;

use std::path::Path;

use common::*;

fn cgroup_dirs(sup: &Supervisor, name: &str) -> Vec<std::path::PathBuf> {
    ["memory", "cpu", "cpuacct", "pids", "cpuset", "unified", ""]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join(&sup.cgroup_parent).join(name))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn memory_limit_kills_with_oom_and_the_group_is_removed() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let out =
        sup.engine(&["run", "--memory", "10m", "hungry", rootfs.to_str().unwrap(), "/memory_hog", "1", "10", "50"]);
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    let st = sup.state("hungry");
    assert_eq!(st["state"]["reason"], "oom", "{st}");
    assert!(sup.ok(&["ps", "-a"]).contains("killed (oom)"));
    let peak = st["stats"]["memory_peak"].as_u64().unwrap();
    assert!(peak <= 10 << 20 && peak > 5 << 20, "peak {peak}");
    assert!(cgroup_dirs(&sup, "hungry").is_empty(), "cgroup left behind");
    // Under the limit: left alone.
    let out = sup.engine(&[
        "run",
        "--memory",
        "64m",
        "fits",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "/memory_hog 1 0 8 & sleep 0.5; kill $!",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn hard_mib_without_the_module_falls_back_to_cgroup_memory() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let out = sup.engine(&[
        "run",
        "memtest",
        rootfs.to_str().unwrap(),
        "/memory_hog",
        "1",
        "10",
        "500",
        "--soft-mib",
        "3",
        "--hard-mib",
        "6",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    let st = sup.state("memtest");
    assert!(sup.ok(&["ps", "-a"]).contains("killed (hard limit)"));
    assert!(st["memory_enforcement"].as_str().unwrap().starts_with("cgroup"), "{st}");
    assert!(st["peak_rss_bytes"].as_u64().unwrap() <= 6 << 20);
}

#[test]
fn pids_limit_refuses_fork() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let r = rootfs.to_str().unwrap();
    // init + sh take two of the five: the fourth background sleep cannot be forked.
    let script = "for i in 1 2 3 4 5 6; do sleep 2 & done; echo survived";
    let out = sup.engine(&["run", "--pids-limit", "5", "pids", r, "/bin/sh", "-c", script]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("can't fork"), "{}", describe(&out));
    // The same script without the limit forks all six.
    let out = sup.engine(&["run", "unlimited", r, "/bin/sh", "-c", script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "survived\n", "{}", describe(&out));
}

#[test]
fn cpus_throttle_the_container() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let out = sup.ok(&["run", "--cpus", "0.25", "slow", rootfs.to_str().unwrap(), "/cpu_hog", "0.5"]);
    // cpu_hog's last line: "cpu_hog: done cpu=0.50s wall=2.01s"
    let last = out.lines().last().unwrap();
    let field = |k: &str| -> f64 {
        last.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap().trim_end_matches('s').parse().unwrap()
    };
    let (cpu, wall) = (field("cpu="), field("wall="));
    let share = cpu / wall;
    assert!(share < 0.4, "--cpus 0.25 gave a CPU share of {share:.2} ({last})");
    assert!(sup.state("slow")["stats"]["cpu_usage_ns"].as_u64().unwrap() >= 400_000_000);
}

#[test]
fn cpuset_pins_the_command() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let out = sup.ok(&[
        "run",
        "--cpuset-cpus",
        "0",
        "pinned",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status",
    ]);
    assert_eq!(out.split_whitespace().last(), Some("0"), "{out}");
}

#[test]
fn stats_while_running_and_bad_limits_refused() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let r = rootfs.to_str().unwrap();
    sup.ok(&["start", "--memory", "64m", "--pids-limit", "20", "stats", r, "/memory_hog", "4", "0", "8"]);
    wait_until(std::time::Duration::from_secs(5), || {
        sup.state("stats")["stats"]["memory_current"].as_u64().unwrap_or(0) >= 8 << 20
    });
    let st = sup.state("stats");
    assert!(st["stats"]["pids_current"].as_u64().unwrap() >= 2, "{st}");
    let ps = sup.ok(&["ps", "--stats"]);
    let header: Vec<&str> = ps.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "PID", "STARTED", "EXIT", "MEM", "PEAK", "CPU", "PIDS"]);
    let row: Vec<&str> = ps.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(row[row.len() - 4].ends_with("MiB") && row[row.len() - 1].parse::<u32>().unwrap() >= 2, "{ps}");
    assert!(!cgroup_dirs(&sup, "stats").is_empty());
    sup.ok(&["rm", "-f", "stats"]);
    assert!(cgroup_dirs(&sup, "stats").is_empty(), "cgroup left after rm -f");
    for (args, needle) in [
        (vec!["run", "--memory", "lots", "x", r, "/bin/true"], "--memory"),
        (vec!["run", "--cpus", "0", "x", r, "/bin/true"], "--cpus"),
        (vec!["run", "--cpus", "64", "x", r, "/bin/true"], "--cpus"),
        (vec!["run", "--cpuset-cpus", "0-999", "x", r, "/bin/true"], "cpuset"),
    ] {
        let out = sup.engine(&args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{args:?}: {}", describe(&out));
    }
    assert!(!sup.ok(&["ps", "-a"]).contains("x "));
}

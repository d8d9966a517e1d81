//! Bridge networking on real containers: host ↔ container TCP, container ↔ container, addresses.
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use common::*;

fn ip_of(sup: &Supervisor, name: &str) -> Ipv4Addr {
    sup.state(name)["network"]["ip"].as_str().expect("container has an address").parse().unwrap()
}

/// Containers' host ports on the bridge the test's supervisor created, from /sys.
fn veths(sup: &Supervisor) -> usize {
    container_ports(&sup.bridge).len()
}

#[test]
fn host_reaches_a_container_server_through_the_bridge() {
    let sup = Supervisor::start();
    let ip = format!("{}.2", sup.subnet_prefix);
    let rootfs = rootfs();
    sup.ok(&["start", "--ip", &ip, "--hostname", "host-1", "web", rootfs.to_str().unwrap(), "/server", "8080"]);
    assert_eq!(ip_of(&sup, "web").to_string(), ip);
    wait_until(Duration::from_secs(5), || sup.ok(&["logs", "web"]).contains("listening"));
    let mut conn = TcpStream::connect((ip.as_str(), 8080)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"hello through engine0\n").unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello through engine0\n");
    // The workload's own client from the host, like `make demo-net`.
    let client = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/bin/client");
    let out = std::process::Command::new(client).args([&ip, "8080", "ping"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    // /etc/hosts and /etc/hostname inside name the container.
    let hosts = sup.ok(&["run", "--net", "none", "reader", rootfs.to_str().unwrap(), "/bin/cat", "/etc/hostname"]);
    assert_eq!(hosts, "reader\n");
}

#[test]
fn containers_reach_each_other_and_addresses_are_assigned() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let r = rootfs.to_str().unwrap();
    sup.ok(&["start", "c1", r, "/bin/sleep", "60"]);
    let ip1 = ip_of(&sup, "c1");
    assert_eq!(ip1.to_string(), format!("{}.2", sup.subnet_prefix), "first free address");
    let out = sup.ok(&[
        "run",
        "c2",
        r,
        "/bin/sh",
        "-c",
        &format!("ping -c 1 -W 2 {ip1} >/dev/null && echo reached; grep c2 /etc/hosts"),
    ]);
    let ip2 = format!("{}.3", sup.subnet_prefix);
    assert_eq!(out, format!("reached\n{ip2}\tc2\n"));
    // Duplicate and outside-subnet addresses are refused and leave nothing. c2's veth goes with its
    // namespace, in the kernel's own time (the janitor's grace is 2 s): only c1's is counted.
    wait_until(Duration::from_secs(3), || veths(&sup) == 1);
    let ports = veths(&sup);
    for (ip, needle) in
        [(ip1.to_string(), "in use"), ("192.168.77.5".to_string(), "outside"), ("10.1.2.300".to_string(), "--ip")]
    {
        let out = sup.engine(&["start", "--ip", &ip, "dup", r, "/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{ip}: {}", describe(&out));
    }
    assert_eq!(veths(&sup), ports, "a refused start left a veth");
    assert!(!sup.ok(&["ps", "-a"]).contains("dup"));
    // A stopped container gives its address back.
    sup.ok(&["rm", "-f", "c1"]);
    sup.ok(&["start", "--ip", &ip1.to_string(), "c3", r, "/bin/sleep", "60"]);
    sup.ok(&["rm", "-f", "c3"]);
}

#[test]
fn a_hundred_networked_containers_leave_nothing_behind() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let r = rootfs.to_str().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let sup = &sup;
            s.spawn(move || {
                for i in (t..100).step_by(4) {
                    sup.ok(&["start", &format!("n{i}"), r, "/bin/sleep", "120"]);
                }
            });
        }
    });
    assert_eq!(veths(&sup), 100);
    let mut ips: Vec<Ipv4Addr> = (0..100).map(|i| ip_of(&sup, &format!("n{i}"))).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 100, "addresses were handed out twice");
    std::thread::scope(|s| {
        for t in 0..4 {
            let sup = &sup;
            s.spawn(move || {
                for i in (t..100).step_by(4) {
                    sup.ok(&["rm", "-f", &format!("n{i}")]);
                }
            });
        }
    });
    // The pairs go with the containers' namespaces, which the kernel tears down asynchronously
    // (net::release): gone within moments, not necessarily when `rm` returns.
    wait_until(Duration::from_secs(3), || veths(&sup) == 0);
    let leases: Vec<_> = std::fs::read_dir(sup.root.join("net/leases.d")).unwrap().flatten().collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    let cg = std::path::Path::new("/sys/fs/cgroup/memory").join(&sup.cgroup_parent);
    // None of a container's (the live supervisor's groups made ahead are no container's).
    let container =
        |e: &std::fs::DirEntry| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with(".ahead-");
    let groups = std::fs::read_dir(&cg).map(|d| d.flatten().filter(container).count()).unwrap_or(0);
    assert_eq!(groups, 0);
}

/// Issue 14: the links are made after the init's Setup, while it builds its root. A failure
/// there (here: the bridge's name taken by a link that is not a bridge) still ends the start
/// in one line, with nothing left: no container, lease, cgroup, process or link.
#[test]
fn a_start_whose_links_fail_after_the_inits_setup_leaves_nothing_behind() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let ip = |args: &[&str]| std::process::Command::new("ip").args(args).status().unwrap().success();
    // The supervisor makes its bridge at the first start: a veth holds its name.
    assert!(!std::path::Path::new(&format!("/sys/class/net/{}", sup.bridge)).exists());
    assert!(ip(&["link", "add", &sup.bridge, "type", "veth", "peer", "name", &format!("{}p", sup.bridge)]));
    struct Dummy(String);
    impl Drop for Dummy {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let dummy = Dummy(sup.bridge.clone());
    let marker = format!("{}", 700_000 + std::process::id() % 100_000);
    let out = sup.engine(&["start", "unplugged", rootfs.to_str().unwrap(), "/bin/sleep", &marker]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start succeeded on a veth for a bridge");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&sup.bridge), "{err}");
    assert!(!sup.ok(&["ps", "-a"]).contains("unplugged"));
    let leases = std::fs::read_dir(sup.root.join("net/leases.d")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leases, 0, "a lease was left");
    assert!(pids_matching(&marker).is_empty(), "the init or its command is still there");
    let cgroups: Vec<_> = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| format!("/sys/fs/cgroup/{c}/{}/unplugged", sup.cgroup_parent))
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    assert!(cgroups.is_empty(), "left: {cgroups:?}");
    let veths = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter(|l| std::fs::read_to_string(l.path().join("ifalias")).is_ok_and(|a| a.contains(":unplugged")))
        .count();
    assert_eq!(veths, 0, "a veth was left");

    // With the name free again, the same start works and gets the first address.
    drop(dummy);
    sup.ok(&["start", "unplugged", rootfs.to_str().unwrap(), "/bin/sleep", &marker]);
    assert_eq!(ip_of(&sup, "unplugged").to_string(), format!("{}.2", sup.subnet_prefix));
    sup.ok(&["rm", "-f", "unplugged"]);
}

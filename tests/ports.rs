//! Published ports (`-p`), outbound NAT and `--dns`, through real containers as root. "The
//! outside" is a network namespace each test makes itself (a veth from the host into it, an
//! address in 198.18.0.0/15, the benchmarking range); no traffic goes to any other address.
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{describe, rootfs, wait_until, Supervisor};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace playing "another host": `host_ip` is the host's end of a /30, `peer_ip` the
/// namespace's. Removed when dropped, also by a failing test.
struct Outside {
    netns: String,
    veth: String,
    host_ip: Ipv4Addr,
    peer_ip: Ipv4Addr,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("running a host tool");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Outside {
    fn new() -> Outside {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{}x{n}", pid % 100_000);
        // A /30 per namespace: 198.18.A.B with A from the pid, B from the counter.
        let base = u32::from(Ipv4Addr::new(198, 18, (pid % 250) as u8, 0)) + 4 * (n % 64);
        let out = Outside {
            netns: format!("engine-test-ports-{tag}"),
            veth: format!("ept{tag}"),
            host_ip: Ipv4Addr::from(base + 1),
            peer_ip: Ipv4Addr::from(base + 2),
        };
        sh(&["ip", "netns", "add", &out.netns]);
        sh(&["ip", "link", "add", &out.veth, "type", "veth", "peer", "name", "eth0", "netns", &out.netns]);
        sh(&["ip", "addr", "add", &format!("{}/30", out.host_ip), "dev", &out.veth]);
        sh(&["ip", "link", "set", &out.veth, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "-n", out.netns.as_str()];
            all.extend_from_slice(args);
            sh(&all);
        };
        inside(&["addr", "add", &format!("{}/30", out.peer_ip), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        out
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.netns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("opening the outside namespace");
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("entering it");
            f()
        })
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

/// A port nothing on the host listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET /` from `addr`: the body, or the error.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// An httpd in a container serving `body`, published with `publish` (each a `-p` value).
fn start_web(sup: &Supervisor, name: &str, publish: &[String], body: &str) {
    let root = rootfs();
    let script = format!("mkdir -p /tmp/www && echo {body} > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www");
    let mut args = vec!["start"];
    for p in publish {
        args.extend(["-p", p.as_str()]);
    }
    args.extend([name, root.to_str().unwrap(), "sh", "-c", &script]);
    sup.ok(&args);
}

/// The comments of the port rules in the supervisor's table.
fn port_rules(sup: &Supervisor) -> Vec<String> {
    engine::net::firewall::rules(&sup.bridge)
        .expect("listing the supervisor's nf_tables rules")
        .into_iter()
        .filter(|(chain, _)| chain == "ports")
        .map(|(_, comment)| comment)
        .collect()
}

#[test]
fn published_port_is_reached_from_host_addresses_loopback_and_another_host_and_goes_with_rm() {
    let sup = Supervisor::start();
    let outside = Outside::new();
    let (any, local_only) = (free_port(), free_port());
    start_web(&sup, "web", &[format!("{any}:80"), format!("127.0.0.1:{local_only}:80")], "hello-web");

    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, any));
    // httpd needs a moment after the start returns.
    wait_until(Duration::from_secs(10), || http_get(loopback).is_ok_and(|t| t.contains("hello-web")));
    let host_addr = SocketAddr::from((outside.host_ip, any));
    let body = http_get(host_addr).unwrap_or_else(|e| panic!("GET via the host's address {host_addr}: {e}"));
    assert!(body.contains("hello-web"), "{body}");
    let body = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, local_only))).expect("GET 127.0.0.1-only port");
    assert!(body.contains("hello-web"), "{body}");

    // From "another host": prerouting DNAT. The 127.0.0.1-only port is not published to it.
    let (host_ip, any_port) = (outside.host_ip, any);
    let from_outside = outside
        .run(move || {
            let all = http_get(SocketAddr::from((host_ip, any_port))).map_err(|e| e.to_string());
            let local = http_get(SocketAddr::from((host_ip, local_only))).map_err(|e| e.to_string());
            (all, local)
        })
        .join()
        .unwrap();
    assert!(from_outside.0.as_deref().is_ok_and(|t| t.contains("hello-web")), "from outside: {:?}", from_outside.0);
    assert!(from_outside.1.is_err(), "a 127.0.0.1: mapping answered another host: {:?}", from_outside.1);

    // From another container on the bridge through the host's address (hairpin NAT).
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} {any}", outside.host_ip);
    let (code, out, err) = sup.run_with(&[], "peer", &rootfs(), &["sh", "-c", &script]);
    assert!(code == 0 && out.contains("hello-web"), "from a container via the host's address: {code} {out:?} {err}");

    let listed = sup.ok(&["port", "web"]);
    assert_eq!(listed, format!("80/tcp -> 0.0.0.0:{any}\n80/tcp -> 127.0.0.1:{local_only}\n"));
    assert_eq!(sup.state("web")["spec"]["ports"][0]["host_port"], any);
    assert_eq!(port_rules(&sup).len(), 2, "{:?}", port_rules(&sup));

    sup.ok(&["rm", "-f", "web"]);
    assert_eq!(port_rules(&sup), Vec::<String>::new(), "rules left after rm");
    assert!(http_get(loopback).is_err(), "the port still answers after rm");
}

#[test]
fn supervisor_killed_and_restarted_removes_the_stale_port_rules() {
    let mut sup = Supervisor::start();
    let port = free_port();
    start_web(&sup, "stale", &[format!("{port}:80")], "stale-web");
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_until(Duration::from_secs(10), || http_get(loopback).is_ok());
    sup.signal_and_wait(libc::SIGKILL);
    // The crash itself leaves the rule (and the container) behind...
    assert_eq!(port_rules(&sup).len(), 1);
    sup.spawn();
    // ...the next supervisor kills the container as lost and rebuilds the table without it.
    assert_eq!(port_rules(&sup), Vec::<String>::new(), "a restarted supervisor kept a dead container's port rule");
    assert!(http_get(loopback).is_err(), "the published port of a lost container still answers");
    // The outbound masquerade is back too.
    let rules = engine::net::firewall::rules(&sup.bridge).unwrap();
    assert!(rules.iter().any(|(chain, c)| chain == "postrouting" && c.starts_with("outbound")), "{rules:?}");
}

/// An httpd that serves `run-N`, N counting its runs (the counter is in its kept layer), so a
/// reply tells which run answered.
fn start_counting_web(sup: &Supervisor, name: &str, options: &[&str]) {
    let root = rootfs();
    let script = "n=$(( $(cat /runs 2>/dev/null || echo 0) + 1 )); echo $n > /runs; mkdir -p /tmp/www; \
                  echo run-$n > /tmp/www/index.html; exec httpd -f -p 80 -h /tmp/www";
    let mut args = vec!["start"];
    args.extend_from_slice(options);
    args.extend([name, root.to_str().unwrap(), "sh", "-c", script]);
    sup.ok(&args);
}

/// Until `GET /` through `addr` answers `body` (a restarted httpd needs a moment); the last
/// answer or error if it never does.
fn wait_for_body(addr: SocketAddr, body: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = http_get(addr);
        if got.as_ref().is_ok_and(|t| t.contains(body)) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{addr} never answered {body:?}; last: {got:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restarted_container_serves_its_published_port_again_and_keeps_it_claimed() {
    let mut sup = Supervisor::start();
    let outside = Outside::new();
    let root = rootfs();
    let root = root.to_str().unwrap();
    let port = free_port();
    start_counting_web(&sup, "web", &["--restart", "always", "-p", &format!("{port}:80")]);
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let via_host = SocketAddr::from((outside.host_ip, port));
    wait_for_body(loopback, "run-1");

    // Restarted by its policy: the port reaches the new run, through 127.0.0.1 and the host's
    // address, and from "another host".
    let pid = sup.state("web")["pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for_body(loopback, "run-2");
    wait_for_body(via_host, "run-2");
    let from_outside = outside.run(move || http_get(via_host).map_err(|e| e.to_string())).join().unwrap();
    assert!(from_outside.as_deref().is_ok_and(|t| t.contains("run-2")), "from outside: {from_outside:?}");
    let rules = port_rules(&sup);
    assert_eq!(rules.len(), 1, "one rule for the restarted container: {rules:?}");
    // Its port is still its own: another container cannot publish it.
    let out = sup.engine(&["run", "-p", &format!("{port}:81"), "thief", root, "true"]);
    assert_eq!(out.status.code(), Some(125), "another container took the restarted one's port: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken by container web"), "{}", describe(&out));

    // Restarted by the next supervisor after a crash (lost, killed, started again by `always`).
    sup.signal_and_wait(libc::SIGKILL);
    sup.spawn();
    wait_until(Duration::from_secs(15), || sup.state("web")["state"]["status"] == "running");
    wait_for_body(loopback, "run-3");
    wait_for_body(via_host, "run-3");
    let rules = port_rules(&sup);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].starts_with("container=web "), "{rules:?}");
    let ip = sup.state("web")["network"]["ip"].as_str().unwrap().to_string();
    let out = sup.engine(&["run", "-p", &format!("127.0.0.1:{port}:81"), "thief", root, "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "a port of a container the new supervisor restarted was free: {}",
        describe(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken by container web"), "{}", describe(&out));
    assert!(!sup.ok(&["ps", "-a"]).contains("thief"), "a refused container was recorded");

    // And after an orderly supervisor restart (SIGTERM stops it and drops the table; the next
    // one starts it again, `always`).
    sup.signal_and_wait(libc::SIGTERM);
    assert!(http_get(loopback).is_err(), "the port answers with no supervisor and the container stopped");
    sup.spawn();
    wait_for_body(loopback, "run-4");
    wait_for_body(via_host, "run-4");
    assert_eq!(port_rules(&sup).len(), 1, "{:?}", port_rules(&sup));

    sup.ok(&["rm", "-f", "web"]);
    assert_eq!(port_rules(&sup), Vec::<String>::new(), "rules left after rm (container was at {ip})");
    assert!(http_get(loopback).is_err(), "the port still answers after rm");
}

/// A UDP echo server, built static here (the busybox rootfs has no UDP server): each datagram
/// goes back to its sender with "echo:" before it.
const UDP_ECHO_C: &str = r#"
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
    if (argc != 2 || fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    for (;;) {
        char buf[1500] = "echo:";
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&from, &len);
        if (n >= 0) sendto(fd, buf, n + 5, 0, (struct sockaddr *)&from, len);
    }
}
"#;

/// Sends `msg` from `bind` to `to` until the echo comes back (the server needs a moment after
/// the start); the echo and the address it came from, or the last error.
fn udp_echo(bind: SocketAddr, to: SocketAddr, msg: &str, tries: u32) -> Result<(String, SocketAddr), String> {
    let sock = std::net::UdpSocket::bind(bind).map_err(|e| format!("binding {bind}: {e}"))?;
    udp_echo_on(&sock, to, msg, tries)
}

/// [`udp_echo`] from an existing socket (one flow: the same source address and port each time).
fn udp_echo_on(
    sock: &std::net::UdpSocket,
    to: SocketAddr,
    msg: &str,
    tries: u32,
) -> Result<(String, SocketAddr), String> {
    sock.set_read_timeout(Some(Duration::from_millis(300))).map_err(|e| e.to_string())?;
    let mut last = String::from("no attempt");
    for _ in 0..tries {
        if let Err(e) = sock.send_to(msg.as_bytes(), to) {
            // ECONNREFUSED: the ICMP error of an earlier datagram that found no server yet.
            last = format!("send: {e}");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut buf = [0u8; 1500];
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), from)),
            Err(e) => last = format!("recv: {e}"),
        }
    }
    Err(last)
}

/// A directory with the UDP echo server built in it (mounted into containers as /w), removed on drop.
fn udp_echo_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("engine-test-ports-udp-").tempdir_in("/tmp").unwrap();
    std::fs::write(dir.path().join("udp_echo.c"), UDP_ECHO_C).unwrap();
    let out = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(dir.path().join("udp_echo"))
        .arg(dir.path().join("udp_echo.c"))
        .output()
        .expect("running gcc");
    assert!(out.status.success(), "building the UDP echo server: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[test]
fn a_udp_sender_that_began_before_the_port_was_published_reaches_the_container() {
    let sup = Supervisor::start();
    let dir = udp_echo_dir();
    let port = free_port();
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // A client already sending (a syslog or metrics sender started before the container): its
    // flow has a conntrack entry without any translation, renewed by each datagram.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let early = udp_echo_on(&sock, target, "early", 3);
    assert!(early.is_err(), "something on the host echoed before the container: {early:?}");
    let volume = format!("{}:/w:ro", dir.path().display());
    let root = rootfs();
    let publish = format!("{port}:5353/udp");
    sup.ok(&["start", "-v", &volume, "-p", &publish, "late", root.to_str().unwrap(), "/w/udp_echo", "5353"]);
    // The same flow, still sending: its next datagrams reach the container.
    let got = udp_echo_on(&sock, target, "late", 30);
    assert_eq!(got, Ok(("echo:late".to_string(), target)), "a flow begun before -p never reached the container");
    sup.ok(&["rm", "-f", "late"]);
}

#[test]
fn udp_published_port_echoes_datagrams_from_the_host_and_another_host() {
    let sup = Supervisor::start();
    let outside = Outside::new();
    let dir = udp_echo_dir();
    let port = free_port();
    let volume = format!("{}:/w:ro", dir.path().display());
    let root = rootfs();
    sup.ok(&[
        "start",
        "-v",
        &volume,
        "-p",
        &format!("{port}:5353/udp"),
        "udp",
        root.to_str().unwrap(),
        "/w/udp_echo",
        "5353",
    ]);
    assert_eq!(sup.ok(&["port", "udp"]), format!("5353/udp -> 0.0.0.0:{port}\n"));

    // From the host through 127.0.0.1: the reply comes back from the published address.
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (echo, from) = udp_echo(any, target, "hello-udp", 50).expect("no echo through 127.0.0.1");
    assert_eq!((echo.as_str(), from), ("echo:hello-udp", target));
    // Through the host's own address on the outside veth.
    let target = SocketAddr::from((outside.host_ip, port));
    let (echo, from) = udp_echo(any, target, "via-host-address", 20).expect("no echo via the host's address");
    assert_eq!((echo.as_str(), from), ("echo:via-host-address", target));
    // From "another host": prerouting DNAT, and the reply un-NATed to the host's address.
    let peer = SocketAddr::from((outside.peer_ip, 0));
    let got = outside.run(move || udp_echo(peer, target, "from-outside", 20)).join().unwrap();
    assert_eq!(got, Ok(("echo:from-outside".to_string(), target)));

    sup.ok(&["rm", "-f", "udp"]);
    assert_eq!(port_rules(&sup), Vec::<String>::new());
    let gone = udp_echo(any, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), "after-rm", 3);
    assert!(gone.is_err(), "the UDP port still echoes after rm: {gone:?}");
}

#[test]
fn conflicting_or_malformed_publish_is_refused_in_one_line_and_leaves_nothing() {
    let sup = Supervisor::start();
    let root = rootfs();
    let root = root.to_str().unwrap();
    let port = free_port();
    sup.ok(&["start", "-p", &format!("{port}:80"), "first", root, "sleep", "60"]);

    let refused = |args: &[&str], expect: &str| {
        let out = sup.engine(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", describe(&out));
        assert_eq!(stderr.lines().count(), 1, "{args:?}: not one line: {stderr:?}");
        assert!(stderr.contains(expect), "{args:?}: {stderr:?} lacks {expect:?}");
    };
    // Another container's port (on any address, or on one of them).
    refused(
        &["run", "-p", &format!("{port}:81"), "second", root, "true"],
        &format!("host port {port}/tcp is already taken by container first"),
    );
    refused(&["run", "-p", &format!("127.0.0.1:{port}:81"), "second", root, "true"], "taken by container first");
    // A program on the host listening there.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    refused(&["run", "-p", &format!("{busy}:80"), "second", root, "true"], "taken by a program on the host");
    drop(listener);
    // The same port twice in one command, a malformed one, one with --net none.
    refused(&["run", "-p", "9:80", "-p", "9:81", "second", root, "true"], "publish the same host port");
    refused(&["run", "-p", "80", "second", root, "true"], "[HOSTIP:]HOSTPORT:CTRPORT");
    refused(&["run", "-p", "1:2/sctp", "second", root, "true"], "unknown protocol");
    refused(&["run", "--net", "none", "-p", "1:2", "second", root, "true"], "-p needs --net bridge");

    assert!(!sup.ok(&["ps", "-a"]).contains("second"), "a refused container was recorded");
    let rules = port_rules(&sup);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].starts_with("container=first "), "{rules:?}");
    // The first one's port is free again once it is gone, for a new container.
    sup.ok(&["rm", "-f", "first"]);
    let (code, _, stderr) = sup.run_with(&["-p", &format!("{port}:80")], "third", &rootfs(), &["true"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_container_reaches_another_host_through_masquerade() {
    let sup = Supervisor::start();
    let outside = Outside::new();
    let (peer, host_ip) = (outside.peer_ip, outside.host_ip);
    // The server in "the outside" records who connected and what it got.
    let server = outside.run(move || {
        let listener = TcpListener::bind((peer, 9000)).expect("binding in the outside namespace");
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match listener.accept() {
                Ok((mut s, from)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut text = String::new();
                    let _ = s.read_to_string(&mut text);
                    return Some((from, text));
                }
                Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return None,
            }
        }
    });
    let script = format!("echo hello-outside | nc -w 5 {peer} 9000");
    let (code, _, stderr) = sup.run_with(&[], "client", &rootfs(), &["sh", "-c", &script]);
    let got = server.join().unwrap();
    let (from, text) = got.unwrap_or_else(|| panic!("the outside server saw no connection (client {code}: {stderr})"));
    assert_eq!(text.trim(), "hello-outside");
    assert_eq!(from.ip(), std::net::IpAddr::V4(host_ip), "the outside saw the container's own address: no masquerade");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn dns_flag_writes_resolv_conf_inside_the_root_and_net_none_keeps_the_images() {
    let sup = Supervisor::start();
    let (code, out, err) =
        sup.run_with(&["--dns", "192.0.2.53", "--dns", "192.0.2.54"], "dns", &rootfs(), &["cat", "/etc/resolv.conf"]);
    assert_eq!(code, 0, "{err}");
    let servers: Vec<&str> = out.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(servers, ["nameserver 192.0.2.53", "nameserver 192.0.2.54"], "{out}");

    // Without --dns: the host's servers, minus loopback ones.
    let (code, out, err) = sup.run_with(&[], "dns2", &rootfs(), &["cat", "/etc/resolv.conf"]);
    assert_eq!(code, 0, "{err}");
    // The expectation is exact either way: on a host with only loopback servers, no server at all.
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let expected: Vec<&str> = host
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .filter(|l| {
            l.split_whitespace().nth(1).and_then(|ip| ip.parse::<Ipv4Addr>().ok()).is_some_and(|ip| !ip.is_loopback())
        })
        .collect();
    let servers: Vec<&str> = out.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(servers, expected, "host's file: {host:?}");

    // --net none: the image's own file (empty in the test rootfs), not the host's.
    let image = std::fs::read_to_string(rootfs().join("etc/resolv.conf")).unwrap_or_default();
    let (code, out, err) = sup.run_with(&["--net", "none"], "dns3", &rootfs(), &["cat", "/etc/resolv.conf"]);
    assert_eq!((code, out.as_str()), (0, image.as_str()), "{err}");

    // An image whose /etc/resolv.conf is a link climbing out of its root: resolved inside the
    // root, the file there gets the servers; followed out, the host's file would be the target
    // (and the container would still read the one in its root).
    let copy = tempfile::Builder::new().prefix("engine-test-ports-").tempdir_in("/tmp").unwrap();
    let root = copy.path().join("rootfs");
    sh(&["cp", "-a", rootfs().to_str().unwrap(), root.to_str().unwrap()]);
    let name = format!("engine-test-ports-escape-{}", std::process::id());
    let host_file = RemoveOnDrop(std::path::Path::new("/tmp").join(&name));
    std::fs::write(&host_file.0, "host original\n").unwrap();
    std::fs::write(root.join("tmp").join(&name), "in-root original\n").unwrap();
    std::fs::remove_file(root.join("etc/resolv.conf")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../tmp/{name}"), root.join("etc/resolv.conf")).unwrap();
    let (code, out, err) = sup.run_with(&["--dns", "192.0.2.53"], "dns4", &root, &["cat", "/etc/resolv.conf"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some("nameserver 192.0.2.53"), "not written inside the container's root: {out:?}");
    assert_eq!(std::fs::read_to_string(&host_file.0).unwrap(), "host original\n");
}

/// A host path removed when dropped (a test that fails must not leave it).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `nft`, as an administrator would run it; its stdout.
fn nft(args: &[&str]) -> String {
    let out = Command::new("nft").args(args).output().expect("running nft");
    assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rm_removes_a_containers_port_rules_even_after_one_was_deleted_by_hand_and_keeps_the_others() {
    let sup = Supervisor::start();
    let root = rootfs();
    let root = root.to_str().unwrap();
    let (a1, a2, b1) = (free_port(), free_port(), free_port());
    let (pa1, pa2, pb1) = (format!("{a1}:80"), format!("{a2}:81/udp"), format!("{b1}:80"));
    sup.ok(&["start", "--net", "bridge", "-p", &pa1, "-p", &pa2, "a", root, "sleep", "1000"]);
    sup.ok(&["start", "--net", "bridge", "-p", &pb1, "b", root, "sleep", "1000"]);
    assert_eq!(port_rules(&sup).len(), 3, "{:?}", port_rules(&sup));

    // One of a's rules deleted by hand: the handles engine kept are stale now.
    let table = format!("engine-{}", sup.bridge);
    let listing = nft(&["-a", "list", "chain", "ip", &table, "ports"]);
    let handle = listing
        .lines()
        .find(|l| l.contains(&format!("container=a 80/tcp -> 0.0.0.0:{a1}")))
        .and_then(|l| l.rsplit_once("# handle "))
        .map(|(_, h)| h.trim().to_string())
        .unwrap_or_else(|| panic!("no rule of a for port {a1} in {listing}"));
    nft(&["delete", "rule", "ip", &table, "ports", "handle", &handle]);

    sup.ok(&["rm", "-f", "a"]);
    assert_eq!(port_rules(&sup), [format!("container=b 80/tcp -> 0.0.0.0:{b1}")], "after rm -f a");
    sup.ok(&["rm", "-f", "b"]);
    assert_eq!(port_rules(&sup), Vec::<String>::new(), "after rm -f b");
}

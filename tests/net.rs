//! Container networking against the real kernel (run as root).
//!
//! Each test stands in for containers with `sleep` processes in fresh
//! network namespaces, uses its own bridge ("et<pid>n<N>"), its own subnet
//! (10.99.N.0/24) and a temporary lease directory, so tests run in
//! parallel. Traffic only goes to namespaces the test created; checks are
//! made through /sys/class/net, /proc/thread-self/net and real sockets.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use engine::net::{self, NetConfig, NetError};

const TIMEOUT: Duration = Duration::from_secs(3);

// ----- fixtures ------------------------------------------------------------------

/// A test network: bridge, subnet and lease directory of its own. Dropping it
/// detaches whatever is left and deletes the bridge.
struct TestNet {
    cfg: NetConfig,
    _dir: tempfile::TempDir,
}

impl TestNet {
    fn new(n: u8) -> TestNet {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = NetConfig {
            bridge: format!("et{}n{n}", std::process::id()),
            subnet: format!("10.99.{n}.0/24").parse().unwrap(),
            gateway: Ipv4Addr::new(10, 99, n, 1),
            state_dir: dir.path().join("net"),
        };
        // A leftover from an aborted earlier run with the same pid.
        let _ = net::remove_bridge(&cfg.bridge);
        TestNet { cfg, _dir: dir }
    }

    fn ip(&self, last: u8) -> Ipv4Addr {
        let o = self.cfg.gateway.octets();
        Ipv4Addr::new(o[0], o[1], o[2], last)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let (_, errors) = net::try_cleanup_stale(&self.cfg, &|_| false);
        for e in errors {
            eprintln!("cleanup of {}: {e}", self.cfg.bridge);
        }
        if let Err(e) = net::remove_bridge(&self.cfg.bridge) {
            eprintln!("removing bridge {}: {e}", self.cfg.bridge);
        }
    }
}

/// A stand-in container: a process alone in a new network namespace.
struct Sandbox {
    child: Child,
}

impl Sandbox {
    fn new() -> Sandbox {
        let mut cmd = Command::new("sleep");
        cmd.arg("120").stdin(Stdio::null());
        // SAFETY: unshare is a plain syscall, fine between fork and exec.
        unsafe {
            cmd.pre_exec(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from));
        }
        Sandbox { child: cmd.spawn().expect("spawn sleep in a new netns") }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- probes --------------------------------------------------------------------

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The bridge a host link is plugged into, from /sys.
fn master_of(name: &str) -> Option<String> {
    let target = fs::read_link(Path::new("/sys/class/net").join(name).join("master")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Host links that carry this network's ownership alias.
fn tagged_links(cfg: &NetConfig) -> Vec<String> {
    let prefix = format!("engine:{}:", cfg.bridge);
    let mut found = Vec::new();
    for entry in fs::read_dir("/sys/class/net").unwrap().flatten() {
        let alias = fs::read_to_string(entry.path().join("ifalias")).unwrap_or_default();
        if alias.starts_with(&prefix) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Interface names and the default gateway (with its interface) as seen from
/// inside the namespace of `pid`.
fn inside_view(pid: i32) -> (HashSet<String>, Option<(String, Ipv4Addr)>) {
    net::run_in_netns(pid, || {
        // /proc/thread-self/net shows the namespace of the reading thread.
        let dev = fs::read_to_string("/proc/thread-self/net/dev").unwrap();
        let names = dev.lines().skip(2).filter_map(|l| Some(l.split(':').next()?.trim().to_string()));
        let route = fs::read_to_string("/proc/thread-self/net/route").unwrap();
        let default = route.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"00000000")).then(|| {
                let gw = u32::from_str_radix(f[2], 16).unwrap();
                // The kernel prints the network-order word as a native integer.
                (f[0].to_string(), Ipv4Addr::from(gw.to_le_bytes()))
            })
        });
        (names.collect(), default)
    })
    .expect("enter namespace")
}

/// A TCP listener inside the namespace of `pid`, bound to `ip`, that echoes
/// one connection in the background.
fn echo_server(pid: i32, ip: Ipv4Addr) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener: TcpListener = net::run_in_netns(pid, move || TcpListener::bind((ip, 0)))
        .expect("enter namespace")
        .expect("bind inside the namespace");
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).expect("read");
        conn.write_all(&buf[..n]).expect("write");
    });
    (addr, handle)
}

/// Sends a line over `stream` and expects it back.
fn echo_roundtrip(mut stream: TcpStream) {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(b"hello through the bridge").unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).expect("echo reply");
    assert_eq!(&buf[..n], b"hello through the bridge");
}

/// One ICMP echo from inside the namespace of `from_pid` to `to`, through a
/// raw socket (no `ping` binary): true when the matching reply arrives.
fn ping(from_pid: i32, to: Ipv4Addr) -> bool {
    net::run_in_netns(from_pid, move || unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
        let tv = libc::timeval { tv_sec: 0, tv_usec: 500_000 };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let id = (std::process::id() as u16).to_be_bytes();
        let mut pkt = vec![8u8, 0, 0, 0, id[0], id[1], 0, 1];
        pkt.extend_from_slice(b"engine net test");
        let sum = checksum(&pkt).to_be_bytes();
        pkt[2] = sum[0];
        pkt[3] = sum[1];
        let dst = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(to.octets()) },
            sin_zero: [0; 8],
        };
        let mut ok = false;
        'attempts: for _ in 0..3 {
            libc::sendto(
                fd,
                pkt.as_ptr() as *const libc::c_void,
                pkt.len(),
                0,
                &dst as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            let mut buf = [0u8; 1500];
            loop {
                let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                if n <= 0 {
                    break; // timed out: send again
                }
                let ihl = ((buf[0] & 0x0f) as usize) * 4;
                let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                let icmp = &buf[ihl..n as usize];
                if src == to && icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id {
                    ok = true;
                    break 'attempts;
                }
            }
        }
        libc::close(fd);
        ok
    })
    .expect("enter namespace")
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The lease directory's entries.
fn lease_files(cfg: &NetConfig) -> Vec<String> {
    let entries = fs::read_dir(cfg.state_dir.join("leases.d")).unwrap();
    entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

fn lease_names(cfg: &NetConfig) -> Vec<String> {
    net::leases(cfg).unwrap().into_iter().map(|(_, c)| c).collect()
}

// ----- tests ---------------------------------------------------------------------

#[test]
fn host_reaches_container_over_tcp() {
    let tn = TestNet::new(1);
    let c = Sandbox::new();
    let att = net::attach(&tn.cfg, "web", c.pid(), None).expect("attach");

    assert_eq!((att.ip, att.prefix, att.gateway), (tn.ip(2), 24, tn.ip(1)));
    assert!(att.host_veth.starts_with("ve-") && att.host_veth.len() == 15, "{}", att.host_veth);
    assert_eq!(tagged_links(&tn.cfg), std::slice::from_ref(&att.host_veth));
    assert_eq!(att.mac, "02:42:0a:63:01:02");
    // Host side: the bridge exists and the host end is plugged into it.
    assert!(link_exists(&tn.cfg.bridge));
    assert_eq!(master_of(&att.host_veth).as_deref(), Some(tn.cfg.bridge.as_str()));
    // Container side: lo and eth0, default route via the gateway on eth0.
    let (names, default) = inside_view(c.pid());
    assert!(names.contains("eth0") && names.contains("lo"), "links inside: {names:?}");
    assert_eq!(default, Some(("eth0".to_string(), tn.ip(1))));

    // IPv4 only: IPv6 is off on both ends (no solicitations flooded over the bridge).
    let host_conf = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", att.host_veth);
    assert_eq!(fs::read_to_string(host_conf).unwrap().trim(), "1");
    let inside = net::run_in_netns(c.pid(), || fs::read_to_string("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"));
    assert_eq!(inside.unwrap().unwrap().trim(), "1");

    let (addr, server) = echo_server(c.pid(), att.ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).expect("host -> container TCP"));
    server.join().unwrap();

    // The Attachment is what the supervisor stores.
    let json = serde_json::to_string(&att).unwrap();
    assert_eq!(serde_json::from_str::<net::Attachment>(&json).unwrap(), att);
    net::detach(&tn.cfg, "web").unwrap();
}

#[test]
fn containers_reach_each_other() {
    let tn = TestNet::new(2);
    let (a, b) = (Sandbox::new(), Sandbox::new());
    let att_a = net::attach(&tn.cfg, "a", a.pid(), None).expect("attach a");
    let att_b = net::attach(&tn.cfg, "b", b.pid(), None).expect("attach b");

    assert!(ping(a.pid(), att_b.ip), "a cannot ping b");
    assert!(ping(b.pid(), att_a.ip), "b cannot ping a");
    assert!(ping(a.pid(), tn.cfg.gateway), "a cannot ping the gateway");

    let (addr, server) = echo_server(a.pid(), att_a.ip);
    let stream =
        net::run_in_netns(b.pid(), move || TcpStream::connect_timeout(&addr, TIMEOUT)).unwrap().expect("b -> a TCP");
    echo_roundtrip(stream);
    server.join().unwrap();
}

#[test]
fn static_assigned_and_refused_addresses() {
    let tn = TestNet::new(3);
    let cs: Vec<Sandbox> = (0..4).map(|_| Sandbox::new()).collect();
    let cfg = &tn.cfg;

    assert_eq!(net::attach(cfg, "c1", cs[0].pid(), None).unwrap().ip, tn.ip(2));
    assert_eq!(net::attach(cfg, "c2", cs[1].pid(), Some(tn.ip(50))).unwrap().ip, tn.ip(50));
    assert_eq!(net::attach(cfg, "c3", cs[2].pid(), None).unwrap().ip, tn.ip(3));

    let refuse = |ip: Ipv4Addr| net::attach(cfg, "c4", cs[3].pid(), Some(ip)).unwrap_err();
    match refuse(tn.ip(50)) {
        NetError::AddressInUse { ip, holder } => {
            assert_eq!((ip, holder.as_str()), (tn.ip(50), "c2"))
        }
        e => panic!("duplicate address: {e}"),
    }
    let e = refuse(Ipv4Addr::new(10, 98, 0, 5));
    assert!(matches!(e, NetError::OutsideSubnet { .. }), "{e}");
    assert!(e.to_string().contains("10.98.0.5") && e.to_string().contains("10.99.3.0/24"), "{e}");
    for (last, what) in [(1, "gateway"), (0, "network"), (255, "broadcast")] {
        match refuse(tn.ip(last)) {
            NetError::ReservedAddress { what: w, .. } => assert_eq!(w, what),
            e => panic!("{what} address: {e}"),
        }
    }
    let e = net::attach(cfg, "c1", cs[3].pid(), None).unwrap_err();
    assert!(matches!(e, NetError::AlreadyAttached { .. }), "{e}");

    // Refusals left nothing behind.
    assert!(!lease_names(cfg).contains(&"c4".to_string()));
    assert_eq!(tagged_links(cfg).len(), 3, "{:?}", tagged_links(cfg));
    assert_eq!(lease_names(cfg), ["c1", "c3", "c2"]); // ordered by address

    // `--ip` parsing says what is wrong.
    assert_eq!(net::parse_ip("10.99.3.7").unwrap(), tn.ip(7));
    for bad in ["", "10.99.3", "10.99.3.300", "10.99.3.7/24", "ten.0.0.1"] {
        let e = net::parse_ip(bad).unwrap_err();
        assert!(matches!(e, NetError::InvalidAddress { .. }), "{bad}: {e}");
    }
}

#[test]
fn detach_removes_veth_and_lease() {
    let tn = TestNet::new(4);
    let cfg = &tn.cfg;
    // Keeps the bridge's carrier up, so the host keeps its ARP entries.
    let keeper = Sandbox::new();
    net::attach(cfg, "keeper", keeper.pid(), None).unwrap();
    let c1 = Sandbox::new();
    let att = net::attach(cfg, "c1", c1.pid(), None).unwrap();
    assert!(link_exists(&att.host_veth));
    // Talk to it, so the host caches its MAC for the address.
    let (addr, server) = echo_server(c1.pid(), att.ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap());
    server.join().unwrap();

    net::detach(cfg, "c1").unwrap();
    assert!(!link_exists(&att.host_veth), "host veth left after detach");
    assert_eq!(net::lease_of(cfg, "c1").unwrap(), None);
    net::detach(cfg, "c1").expect("detach is idempotent");
    net::detach(cfg, "never-attached").expect("detach of an unknown container");

    // The freed address goes to the next container, and it works at once
    // (same MAC for the same address: the host's ARP entry stays right).
    let c2 = Sandbox::new();
    let att2 = net::attach(cfg, "c2", c2.pid(), None).unwrap();
    assert_eq!(att2.ip, att.ip);
    let (addr, server) = echo_server(c2.pid(), att2.ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap());
    server.join().unwrap();

    // A container that died: its namespace took the pair away; detach still
    // succeeds and frees the lease.
    drop(c2);
    net::detach(cfg, "c2").unwrap();
    assert!(!link_exists(&att2.host_veth));
    assert_eq!(lease_names(cfg), ["keeper"]);
    net::detach(cfg, "keeper").unwrap();
    assert!(net::leases(cfg).unwrap().is_empty());

    // The bridge goes away by netlink too.
    assert!(net::remove_bridge(&cfg.bridge).unwrap());
    assert!(!link_exists(&cfg.bridge));
    assert!(!net::remove_bridge(&cfg.bridge).unwrap());
}

#[test]
fn leases_survive_restart() {
    let tn = TestNet::new(5);
    let (c1, c2, c3) = (Sandbox::new(), Sandbox::new(), Sandbox::new());
    net::attach(&tn.cfg, "c1", c1.pid(), None).unwrap();
    net::attach(&tn.cfg, "c2", c2.pid(), Some(tn.ip(9))).unwrap();

    // A "restarted supervisor": a fresh config on the same state directory.
    let again = NetConfig { ..tn.cfg.clone() };
    assert_eq!(net::leases(&again).unwrap(), [(tn.ip(2), "c1".to_string()), (tn.ip(9), "c2".to_string())]);
    let e = net::attach(&again, "c3", c3.pid(), Some(tn.ip(9))).unwrap_err();
    assert!(matches!(e, NetError::AddressInUse { .. }), "{e}");
    assert_eq!(net::attach(&again, "c3", c3.pid(), None).unwrap().ip, tn.ip(3));
    let files = lease_files(&tn.cfg);
    assert!(files.iter().any(|f| f.starts_with("10.99.5.9@c2@ve-")), "{files:?}");
}

#[test]
fn failed_attach_is_undone() {
    let tn = TestNet::new(6);
    let c1 = Sandbox::new();

    // Our own pid shares the host namespace: refused before any change.
    let e = net::attach(&tn.cfg, "self", std::process::id() as i32, None).unwrap_err();
    assert!(matches!(e, NetError::Namespace { .. }), "{e}");
    let e = net::attach(&tn.cfg, "ghost", i32::MAX, None).unwrap_err();
    assert!(matches!(e, NetError::Namespace { .. }), "{e}");
    assert!(net::leases(&tn.cfg).unwrap().is_empty());

    // A failure after the lease was taken: the "bridge" is an existing veth.
    let att = net::attach(&tn.cfg, "c1", c1.pid(), None).unwrap();
    let c2 = Sandbox::new();
    let dir = tempfile::tempdir().unwrap();
    let wrong = NetConfig { bridge: att.host_veth.clone(), state_dir: dir.path().into(), ..tn.cfg.clone() };
    let e = net::attach(&wrong, "c2", c2.pid(), None).unwrap_err();
    assert!(matches!(e, NetError::WrongLinkKind { .. }), "{e}");
    assert!(net::leases(&wrong).unwrap().is_empty(), "lease kept after a failed attach");
    assert!(tagged_links(&wrong).is_empty(), "veth kept after a failed attach");
    assert!(net::remove_bridge(&att.host_veth).is_err(), "remove_bridge must refuse a veth");

    // c1 already has an eth0, so a second network cannot make its peer there: no pair, and
    // the lease must go.
    let other = TestNet::new(60);
    let e = net::attach(&other.cfg, "c1-again", c1.pid(), None).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(tagged_links(&other.cfg).is_empty(), "veth kept after a failed attach");
    assert!(net::leases(&other.cfg).unwrap().is_empty(), "lease kept after a failed attach");
    // c1 itself is untouched.
    let (addr, server) = echo_server(c1.pid(), att.ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap());
    server.join().unwrap();
}

#[test]
fn cleanup_after_crash() {
    let tn = TestNet::new(7);
    let cfg = &tn.cfg;
    let cs: Vec<Sandbox> = (0..3).map(|_| Sandbox::new()).collect();
    let atts: Vec<_> =
        ["c1", "c2", "c3"].iter().zip(&cs).map(|(name, c)| net::attach(cfg, name, c.pid(), None).unwrap()).collect();

    // The supervisor restarts and only c1 is still running.
    let cleaned = net::cleanup_stale(cfg, &|c| c == "c1");
    assert_eq!(cleaned, ["c2", "c3"]);
    assert!(!link_exists(&atts[1].host_veth) && !link_exists(&atts[2].host_veth));
    assert_eq!(lease_names(cfg), ["c1"]);
    let (addr, server) = echo_server(cs[0].pid(), atts[0].ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).expect("kept container still reachable"));
    server.join().unwrap();

    // Even with the lease file lost, the host veth is found by its alias.
    fs::remove_dir_all(cfg.state_dir.join("leases.d")).unwrap();
    assert_eq!(net::cleanup_stale(cfg, &|_| false), ["c1"]);
    assert!(!link_exists(&atts[0].host_veth));
    assert!(tagged_links(cfg).is_empty());
}

#[test]
fn hundred_attach_detach_cycles_leak_nothing() {
    let tn = TestNet::new(8);
    let cfg = &tn.cfg;
    let start = Instant::now();
    // 10 batches of 10 containers attached and detached in parallel (the
    // first batch also races to create the bridge).
    for batch in 0..10 {
        let cs: Vec<Sandbox> = (0..10).map(|_| Sandbox::new()).collect();
        let names: Vec<String> = (0..10).map(|i| format!("b{batch}c{i}")).collect();
        let atts: Vec<net::Attachment> = thread::scope(|s| {
            let hs: Vec<_> =
                names.iter().zip(&cs).map(|(n, c)| s.spawn(move || net::attach(cfg, n, c.pid(), None))).collect();
            hs.into_iter().map(|h| h.join().unwrap().expect("parallel attach")).collect()
        });
        let ips: HashSet<Ipv4Addr> = atts.iter().map(|a| a.ip).collect();
        assert_eq!(ips.len(), 10, "addresses must be distinct: {ips:?}");
        assert_eq!(fs::read_dir(format!("/sys/class/net/{}/brif", cfg.bridge)).unwrap().count(), 10);

        let (addr, server) = echo_server(cs[batch].pid(), atts[batch].ip);
        echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap());
        server.join().unwrap();

        thread::scope(|s| {
            for n in &names {
                s.spawn(move || net::detach(cfg, n).expect("parallel detach"));
            }
        });
    }
    assert!(net::leases(cfg).unwrap().is_empty(), "leaked leases");
    assert!(tagged_links(cfg).is_empty(), "leaked veths: {:?}", tagged_links(cfg));
    assert_eq!(fs::read_dir(format!("/sys/class/net/{}/brif", cfg.bridge)).unwrap().count(), 0);
    eprintln!("100 attach/detach cycles in {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn etc_hosts_names_the_container() {
    let hosts = net::etc_hosts("web", Ipv4Addr::new(10, 88, 0, 2));
    assert!(hosts.lines().any(|l| l == "10.88.0.2\tweb"), "{hosts}");
    assert!(hosts.contains("127.0.0.1\tlocalhost"));
    assert!(net::etc_hosts("solo", None).contains("\tsolo"));
}

#[test]
fn release_leaves_the_pair_to_the_namespace() {
    let tn = TestNet::new(9);
    let cfg = &tn.cfg;
    // An ended container: its process is gone, its namespace dies and takes the pair with it,
    // without release waiting for the kernel's deletion.
    let c0 = Sandbox::new();
    let att0 = net::attach(cfg, "c0", c0.pid(), None).unwrap();
    drop(c0);
    net::release(cfg, "c0", &att0).unwrap();
    assert_eq!(net::lease_of(cfg, "c0").unwrap(), None);
    assert!(wait_until(net::RELEASE_GRACE / 2, || !link_exists(&att0.host_veth)), "the kernel kept the pair");

    // A namespace that outlives its container (someone else holds it): release returns with
    // the pair still there, and gives the lease back at once.
    let held = Sandbox::new();
    let att = net::attach(cfg, "c1", held.pid(), None).unwrap();
    net::release(cfg, "c1", &att).unwrap();
    assert!(link_exists(&att.host_veth), "release deleted the pair itself");
    assert!(net::leases(cfg).unwrap().is_empty());
    // The same name again at once: a veth name of its own, and not the address that the old
    // eth0 still answers for.
    let c2 = Sandbox::new();
    let att2 = net::attach(cfg, "c1", c2.pid(), None).unwrap();
    assert_ne!(att2.host_veth, att.host_veth);
    assert_ne!(att2.ip, att.ip);
    let (addr, server) = echo_server(c2.pid(), att2.ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap());
    server.join().unwrap();
    // Past the grace, the janitor deletes the pair the kernel could not take.
    assert!(wait_until(net::RELEASE_GRACE * 3, || !link_exists(&att.host_veth)), "held pair never deleted");

    // Asked for by `--ip`, the address of a pair still on its way out is given at once: the
    // old pair is deleted first, and the address reaches the new container.
    net::release(cfg, "c1", &att2).unwrap();
    let c3 = Sandbox::new();
    let att3 = net::attach(cfg, "c3", c3.pid(), Some(att2.ip)).unwrap();
    assert!(!link_exists(&att2.host_veth), "the old pair of {} is still there", att2.ip);
    let (addr, server) = echo_server(c3.pid(), att3.ip);
    echo_roundtrip(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap());
    server.join().unwrap();
    net::detach(cfg, "c3").unwrap();
    assert!(tagged_links(cfg).is_empty(), "{:?}", tagged_links(cfg));
    drop(held);
}

#[test]
fn leases_are_files_of_their_own() {
    let tn = TestNet::new(10);
    let cfg = &tn.cfg;
    // An older engine's lease file is taken over.
    fs::create_dir_all(&cfg.state_dir).unwrap();
    let legacy = r#"{"leases": {"10.99.10.7": {"container": "old", "host_veth": "ve-000000000007"}}}"#;
    fs::write(cfg.state_dir.join("leases.json"), legacy).unwrap();
    let c1 = Sandbox::new();
    let att = net::attach(cfg, "c1", c1.pid(), None).unwrap();
    assert!(!cfg.state_dir.join("leases.json").exists(), "the old lease file is still there");
    assert_eq!(net::leases(cfg).unwrap(), [(tn.ip(2), "c1".to_string()), (tn.ip(7), "old".to_string())]);
    // One empty file per lease, made once and removed once: nothing is ever rewritten.
    let mut files = lease_files(cfg);
    files.sort();
    assert_eq!(files, [format!("10.99.10.2@c1@{}", att.host_veth), "10.99.10.7@old@ve-000000000007".to_string()]);
    assert_eq!(fs::metadata(cfg.state_dir.join("leases.d").join(&files[0])).unwrap().len(), 0);
    net::detach(cfg, "old").unwrap();
    net::detach(cfg, "c1").unwrap();
    assert!(lease_files(cfg).is_empty());
}

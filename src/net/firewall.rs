//! Published ports (`-p`) and outbound NAT, the way Docker (without its userland proxy) and
//! netavark do them, in one nf_tables table that engine owns per bridge (`ip engine-<bridge>`):
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump ports }
//! chain output      { type nat hook output priority -100;      fib daddr type local jump ports }
//! chain ports       { [ip daddr HOSTIP] meta l4proto tcp|udp th dport HOSTPORT dnat to CTR:PORT ... }
//! chain postrouting { type nat hook postrouting priority srcnat;
//!                     ip saddr SUBNET oifname != BRIDGE masquerade              # outbound
//!                     oifname BRIDGE ip saddr 127.0.0.0/8 masquerade            # via 127.0.0.1
//!                     oifname BRIDGE ip saddr SUBNET ct status dnat masquerade } # hairpin
//! ```
//!
//! Reaching a published port through 127.0.0.1 works as in Docker and netavark: the output chain
//! DNATs it, `route_localnet` on the bridge lets a packet with a loopback source leave through
//! it, and the masquerade gives it the bridge's address so the container's reply comes back.
//! Each port rule carries its container's name in its comment; a container's rules go with it:
//! the kernel echoes each port rule back with its handle when it is added, and the container's
//! removal deletes those handles (found by their comment in the ports chain only when they are
//! not known, e.g. a reply lost after the kernel applied the batch).
//! The table is rebuilt whole when a supervisor starts (no container of a predecessor survives
//! that), so a crash leaves no rule behind for longer than the next start.
//!
//! Changes go through netlink ([`super::nftables`]): no `nft` or `iptables` is run.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::NetError;
use super::nftables::{
    self, match_oifname, match_prefix, Base, BaseChain, Batch, CmpOp, Expr, Hook, MetaKey, DADDR, REG1, REG2, SADDR,
};
use super::NetConfig;

const PORTS: &str = "ports";
/// The comment of a port rule starts with this and the container's name.
const TAG: &str = "container=";
/// `RTN_LOCAL` from <linux/rtnetlink.h>.
const RTN_LOCAL: u32 = 2;
/// `IPS_DST_NAT` from <linux/netfilter/nf_conntrack_common.h>.
const IPS_DST_NAT: u32 = 1 << 5;

/// One rule change at a time in this process, and the handles of each container's port rules by
/// (table, container), as the kernel echoed them: a removal deletes them by handle, which must
/// not race with another change.
static HANDLES: Mutex<BTreeMap<(String, String), Vec<u64>>> = Mutex::new(BTreeMap::new());

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Only traffic to this address of the host; None: any of its addresses (Docker's 0.0.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl FromStr for PortMapping {
    type Err = String;

    fn from_str(s: &str) -> Result<PortMapping, String> {
        let bad = |why: &str| format!("invalid -p {s:?}: {why} (expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp])");
        let (spec, proto) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Proto::Tcp),
            Some((spec, "udp")) => (spec, Proto::Udp),
            Some((_, p)) => return Err(bad(&format!("unknown protocol {p:?}"))),
            None => (s, Proto::Tcp),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host_ip, host, ctr) = match parts.as_slice() {
            [host, ctr] => (None, *host, *ctr),
            [ip, host, ctr] => {
                let ip: Ipv4Addr = ip.parse().map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
                // 0.0.0.0 is Docker's spelling of "every address".
                (Some(ip).filter(|ip| !ip.is_unspecified()), *host, *ctr)
            }
            [_] => return Err(bad("a host port is needed (engine does not pick one)")),
            _ => return Err(bad("too many ':'")),
        };
        let port = |p: &str, what: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&format!("{what} port {p:?} is not a number from 1 to 65535"))),
        };
        Ok(PortMapping { host_ip, host_port: port(host, "host")?, container_port: port(ctr, "container")?, proto })
    }
}

impl fmt::Display for PortMapping {
    /// Docker's `docker port` line: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(f, "{}/{} -> {ip}:{}", self.container_port, self.proto, self.host_port)
    }
}

impl PortMapping {
    /// As the user wrote it: `[HOSTIP:]HOSTPORT:CTRPORT/PROTO`.
    pub fn flag(&self) -> String {
        let ip = self.host_ip.map(|ip| format!("{ip}:")).unwrap_or_default();
        format!("{ip}{}:{}/{}", self.host_port, self.container_port, self.proto)
    }

    /// Whether the two cannot both be published: same protocol and host port, and an address in
    /// common (no address means all of them).
    pub fn overlaps(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

/// The table engine owns for `bridge`.
pub fn table_name(bridge: &str) -> String {
    format!("engine-{bridge}")
}

/// Rebuilds the table of `cfg`'s bridge from scratch (dropping every rule a predecessor left),
/// with the outbound masquerade, and turns on IPv4 forwarding (as Docker does; it stays on).
pub fn setup(cfg: &NetConfig) -> Result<(), NetError> {
    enable_forwarding()?;
    let table = table_name(&cfg.bridge);
    let (subnet, prefix, bridge) = (cfg.subnet.network(), cfg.subnet.prefix(), cfg.bridge.as_str());
    let nat = |hook, priority| Some(BaseChain { kind: "nat", hook, priority });
    let to_ports = vec![
        Expr::FibDaddrType { dreg: REG1 },
        Expr::Cmp { op: CmpOp::Eq, sreg: REG1, data: RTN_LOCAL.to_ne_bytes().to_vec() },
        Expr::Jump(PORTS.to_string()),
    ];
    let outbound = [match_prefix(SADDR, subnet, prefix), match_oifname(CmpOp::Neq, bridge), vec![Expr::Masquerade]];
    let loopback =
        [match_oifname(CmpOp::Eq, bridge), match_prefix(SADDR, Ipv4Addr::new(127, 0, 0, 0), 8), vec![Expr::Masquerade]];
    let hairpin = [
        match_oifname(CmpOp::Eq, bridge),
        match_prefix(SADDR, subnet, prefix),
        vec![
            Expr::CtStatus { dreg: REG1 },
            Expr::Mask { reg: REG1, mask: IPS_DST_NAT.to_ne_bytes().to_vec() },
            Expr::Cmp { op: CmpOp::Neq, sreg: REG1, data: 0u32.to_ne_bytes().to_vec() },
            Expr::Masquerade,
        ],
    ];
    let mut handles = HANDLES.lock();
    let mut b = Batch::new();
    // Add-then-delete removes the table whether or not it exists, in the same transaction.
    b.add_table(&table).delete_table(&table).add_table(&table);
    b.add_chain(&table, PORTS, None);
    b.add_chain(&table, "prerouting", nat(Hook::Prerouting, -100));
    b.add_chain(&table, "output", nat(Hook::Output, -100));
    b.add_chain(&table, "postrouting", nat(Hook::Postrouting, 100));
    b.add_rule(&table, "prerouting", &to_ports, "published ports");
    b.add_rule(&table, "output", &to_ports, "published ports, from the host itself");
    b.add_rule(&table, "postrouting", &outbound.concat(), "outbound: containers masquerade");
    b.add_rule(&table, "postrouting", &loopback.concat(), "published ports reached through 127.0.0.1");
    b.add_rule(&table, "postrouting", &hairpin.concat(), "published ports reached from a container");
    b.commit(&mut nftables::open()?)?;
    handles.retain(|(t, _), _| *t != table);
    Ok(())
}

/// Removes the table of `bridge`, if there is one.
pub fn teardown(bridge: &str) -> Result<(), NetError> {
    let table = table_name(bridge);
    let mut handles = HANDLES.lock();
    let mut b = Batch::new();
    b.add_table(&table).delete_table(&table);
    b.commit(&mut nftables::open()?)?;
    handles.retain(|(t, _), _| *t != table);
    Ok(())
}

/// DNATs each of `ports` to `ip`, the container's address, in one transaction (all or none).
pub fn publish(cfg: &NetConfig, container: &str, ip: Ipv4Addr, ports: &[PortMapping]) -> Result<(), NetError> {
    if ports.is_empty() {
        return Ok(());
    }
    // Lets the output chain's DNAT of 127.0.0.1 leave through the bridge (Docker and netavark
    // set the same); the bridge exists once a container is attached.
    let path = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", cfg.bridge);
    write_sysctl(&path)?;
    let table = table_name(&cfg.bridge);
    let tag = format!("{TAG}{container} ");
    let mut b = Batch::echoing();
    for p in ports {
        let mut exprs = Vec::new();
        if let Some(host_ip) = p.host_ip {
            exprs.extend(match_prefix(DADDR, host_ip, 32));
        }
        exprs.extend([
            Expr::Meta { key: MetaKey::L4Proto, dreg: REG1 },
            Expr::Cmp { op: CmpOp::Eq, sreg: REG1, data: vec![p.proto.number()] },
            // The destination port is at offset 2 of both TCP and UDP headers.
            Expr::Payload { base: Base::Transport, offset: 2, len: 2, dreg: REG1 },
            Expr::Cmp { op: CmpOp::Eq, sreg: REG1, data: p.host_port.to_be_bytes().to_vec() },
            Expr::Immediate { dreg: REG1, data: ip.octets().to_vec() },
            Expr::Immediate { dreg: REG2, data: p.container_port.to_be_bytes().to_vec() },
            Expr::Dnat { addr: REG1, proto: REG2 },
        ]);
        b.add_rule(&table, PORTS, &exprs, &format!("{tag}{p}"));
    }
    let mut handles = HANDLES.lock();
    let added = b.commit(&mut nftables::open()?)?;
    let ours: Vec<u64> = added
        .iter()
        .filter(|r| r.chain == PORTS && r.comment.as_deref().is_some_and(|c| c.starts_with(&tag)))
        .map(|r| r.handle)
        .collect();
    let key = (table, container.to_string());
    if ours.len() == ports.len() {
        handles.entry(key).or_default().extend(ours);
    } else {
        // Not every rule came back: unpublish looks them all up by their comment.
        handles.remove(&key);
    }
    // A UDP sender that began before this rule (a client waiting for the container, or one
    // sending through a restart that changed the container's address) has a conntrack entry
    // without this translation, kept alive by its own datagrams: it goes, so the next datagram
    // is translated anew. (TCP has no such problem: a new connection is a new entry.)
    for p in ports.iter().filter(|p| p.proto == Proto::Udp) {
        super::nftables::forget_flows(p.proto.number(), p.host_port)?;
    }
    Ok(())
}

/// Removes every port rule of `container` (none is fine): by the handles its publish got back,
/// else (unknown, or one of them gone behind engine's back) found by their comment.
pub fn unpublish(cfg: &NetConfig, container: &str) -> Result<(), NetError> {
    let table = table_name(&cfg.bridge);
    let mut handles = HANDLES.lock();
    let mut chan = nftables::open()?;
    if let Some(known) = handles.remove(&(table.clone(), container.to_string())) {
        let mut b = Batch::new();
        for handle in known {
            b.delete_rule(&table, PORTS, handle);
        }
        match b.commit(&mut chan) {
            // A rule was deleted behind engine's back, so the batch did nothing: look them up,
            // on a fresh socket (nothing of the failed batch is left to read on it).
            Err(e) if e.errno() == Some(libc::ENOENT) => chan = nftables::open()?,
            done => return done.map(drop),
        }
    }
    let tag = format!("{TAG}{container} ");
    let mut b = Batch::new();
    for r in nftables::rules(&mut chan, &table, Some(PORTS))? {
        if r.comment.as_deref().is_some_and(|c| c.starts_with(&tag)) {
            b.delete_rule(&table, &r.chain, r.handle);
        }
    }
    b.commit(&mut chan).map(drop)
}

/// What the table of `bridge` holds: (chain, comment) of each rule, in order; empty without a
/// table. For `engine info`-like views and tests.
pub fn rules(bridge: &str) -> Result<Vec<(String, String)>, NetError> {
    let _guard = HANDLES.lock();
    Ok(nftables::rules(&mut nftables::open()?, &table_name(bridge), None)?
        .into_iter()
        .map(|r| (r.chain, r.comment.unwrap_or_default()))
        .collect())
}

/// Which published host ports are taken, and by whom: checked and taken in one step, so two
/// starts asking for one port cannot both get it.
#[derive(Default)]
pub struct Claims {
    held: Mutex<HashMap<String, Vec<PortMapping>>>,
}

impl Claims {
    pub fn new() -> Claims {
        Claims::default()
    }

    /// Takes `ports` for `container`, or says which container (or host program) holds one.
    pub fn claim(&self, container: &str, ports: &[PortMapping]) -> Result<(), NetError> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut held = self.held.lock();
        for (i, p) in ports.iter().enumerate() {
            if let Some(q) = ports[..i].iter().find(|q| q.overlaps(p)) {
                return Err(NetError::PortTaken { port: *p, holder: format!("its own -p {}", q.flag()) });
            }
            for (other, theirs) in held.iter() {
                if theirs.iter().any(|q| q.overlaps(p)) {
                    return Err(NetError::PortTaken { port: *p, holder: format!("container {other}") });
                }
            }
            probe_host(p)?;
        }
        held.insert(container.to_string(), ports.to_vec());
        Ok(())
    }

    pub fn release(&self, container: &str) {
        self.held.lock().remove(container);
    }
}

/// Refuses a port a host program already listens on: its traffic would silently go to the
/// container instead (Docker refuses it too, "address already in use").
fn probe_host(p: &PortMapping) -> Result<(), NetError> {
    let addr = std::net::SocketAddr::from((p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port));
    let bound = match p.proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
        Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
    };
    match bound {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(NetError::PortTaken { port: *p, holder: "a program on the host".into() })
        }
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(NetError::InvalidAddress {
            input: addr.ip().to_string(),
            reason: format!("-p {p}: not an address of this host"),
        }),
        Err(e) => Err(NetError::io("checking the host port", format!("{addr}"), e)),
    }
}

fn enable_forwarding() -> Result<(), NetError> {
    write_sysctl("/proc/sys/net/ipv4/ip_forward")
}

/// Sets a sysctl file to 1 unless it already is.
fn write_sysctl(path: &str) -> Result<(), NetError> {
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => std::fs::write(path, "1\n").map_err(|e| NetError::io("setting", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<PortMapping, String> {
        s.parse()
    }

    #[test]
    fn docker_forms_parse() {
        let m = p("8080:80").unwrap();
        assert_eq!((m.host_ip, m.host_port, m.container_port, m.proto), (None, 8080, 80, Proto::Tcp));
        let m = p("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((m.host_port, m.container_port, m.proto), (53, 5353, Proto::Udp));
        assert_eq!(p("0.0.0.0:1:2/tcp").unwrap().host_ip, None);
        assert_eq!(p("127.0.0.1:8080:80").unwrap().to_string(), "80/tcp -> 127.0.0.1:8080");
    }

    #[test]
    fn malformed_forms_are_refused_with_the_expected_syntax() {
        for bad in ["80", "0:80", "8080:0", "x:80", "8080:80/sctp", "1.2.3:80:80", "a:b:c:d", "70000:80", ""] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("[HOSTIP:]HOSTPORT:CTRPORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn overlaps_need_protocol_port_and_a_common_address() {
        let any = p("8080:80").unwrap();
        assert!(any.overlaps(&p("127.0.0.1:8080:81").unwrap()));
        assert!(!any.overlaps(&p("8080:80/udp").unwrap()));
        assert!(!any.overlaps(&p("8081:80").unwrap()));
        assert!(!p("127.0.0.1:8080:80").unwrap().overlaps(&p("127.0.0.2:8080:80").unwrap()));
    }
}

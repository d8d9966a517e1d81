//! Container networking: a host bridge with the gateway address, one veth
//! pair per container (host end on the bridge, container end as eth0 in the
//! container's network namespace), addresses from a lease file that
//! survives restarts. Everything goes through netlink; no program is run.
//! Published ports and the outbound masquerade are nf_tables rules in a
//! table engine owns per bridge ([`firewall`]).

mod bridge;
pub mod dns;
mod error;
pub mod firewall;
mod ipam;
mod netlink;
mod netns;
mod nftables;
mod veth;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use bridge::remove_bridge;
pub use error::NetError;
pub use firewall::{PortMapping, Proto};
pub use ipam::{parse_ip, Ipv4Net};
pub use netns::run_in_netns;
pub use veth::fnv1a;

use ipam::{Lease, Leases};
use netlink::{link_alias, link_name, Netlink};

/// Where containers are plugged in and which addresses they get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Bridge name on the host ("engine0").
    pub bridge: String,
    /// The containers' network (10.88.0.0/16).
    pub subnet: Ipv4Net,
    /// The bridge's address and the containers' default route (10.88.0.1).
    pub gateway: Ipv4Addr,
    /// Where the lease file lives (e.g. `<root>/net`).
    pub state_dir: PathBuf,
}

impl NetConfig {
    /// `bridge` on `subnet`, the bridge taking the subnet's first address as the containers'
    /// gateway; leases under `state_dir`.
    pub fn new(bridge: String, subnet: Ipv4Net, state_dir: PathBuf) -> Result<NetConfig, NetError> {
        let gateway = Ipv4Addr::from(u32::from(subnet.network()) + 1);
        let cfg = NetConfig { bridge, subnet, gateway, state_dir };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the bridge name and that the gateway is a host of the subnet.
    pub fn validate(&self) -> Result<(), NetError> {
        check_ifname(&self.bridge)?;
        if !self.subnet.contains(self.gateway)
            || self.gateway == self.subnet.network()
            || self.gateway == self.subnet.broadcast()
        {
            return Err(NetError::InvalidSubnet {
                input: self.subnet.to_string(),
                reason: format!("gateway {} is not a host address of it", self.gateway),
            });
        }
        Ok(())
    }
}

/// What a container got; stored by the supervisor with the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    /// Host end of the veth pair (on the bridge).
    pub host_veth: String,
    /// Name of the container end inside its namespace.
    pub ifname: String,
    /// MAC of the container end ("02:42:0a:58:00:02").
    pub mac: String,
}

/// Connects the network namespace of `pid` (the container's init, already
/// in its own namespace) to the bridge, with `requested` or the next free
/// address. On failure everything done so far is undone.
pub fn attach(cfg: &NetConfig, container: &str, pid: i32, requested: Option<Ipv4Addr>) -> Result<Attachment, NetError> {
    cfg.validate()?;
    check_container_name(container)?;
    // Opened first: a bad pid (or one sharing the host namespace) fails
    // before anything is changed.
    let ns = netns::open(pid)?;
    let host_veth = veth::host_name(&cfg.bridge, container);
    let ip = Leases::open(&cfg.state_dir)?.acquire(
        cfg.subnet,
        cfg.gateway,
        requested,
        Lease { container: container.to_string(), host_veth: host_veth.clone() },
    )?;
    // The lease lock is released here; the links are set up without it so
    // several containers can be attached at once.

    let mut veth_created = false;
    match plug(cfg, container, pid, &ns, ip, &host_veth, &mut veth_created) {
        Ok(att) => Ok(att),
        Err(err) => {
            let mut errors = vec![err];
            if veth_created {
                // Deleting the host end deletes the pair.
                if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_link(&host_veth)) {
                    errors.push(e);
                }
            }
            if let Err(e) = Leases::open(&cfg.state_dir).and_then(|mut l| l.release(container)) {
                errors.push(e);
            }
            Err(if errors.len() == 1 { errors.remove(0) } else { NetError::Multiple(errors) })
        }
    }
}

/// The link work of [`attach`]; sets `veth_created` as soon as there is a
/// pair to undo.
fn plug(
    cfg: &NetConfig,
    container: &str,
    pid: i32,
    ns: &File,
    ip: Ipv4Addr,
    host_veth: &str,
    veth_created: &mut bool,
) -> Result<Attachment, NetError> {
    let mut nl = Netlink::open()?;
    let bridge_index = bridge::ensure(&mut nl, &cfg.bridge, cfg.subnet, cfg.gateway)?;

    let mac = bridge::mac_for(ip);
    // The peer is born inside the container's namespace under a temporary
    // name and renamed to eth0 there.
    let peer = veth::peer_name(host_veth);
    nl.create_veth(host_veth, &peer, mac, ns.as_raw_fd())?;
    *veth_created = true;
    let host_index = nl
        .link_by_name(host_veth)?
        .map(|l| l.header.index)
        .ok_or_else(|| NetError::protocol(format!("find {host_veth}"), "veth vanished after creation"))?;
    nl.set_alias(host_index, &veth::alias(&cfg.bridge, container))?;
    nl.set_master(host_index, bridge_index)?;
    nl.set_up(host_index)?;

    let (prefix, broadcast, gateway) = (cfg.subnet.prefix(), cfg.subnet.broadcast(), cfg.gateway);
    netns::run_in(pid, ns, move || veth::configure_inside(&peer, ip, prefix, broadcast, gateway))??;

    Ok(Attachment {
        ip,
        prefix,
        gateway,
        bridge: cfg.bridge.clone(),
        host_veth: host_veth.to_string(),
        ifname: veth::CONTAINER_IFNAME.to_string(),
        mac: bridge::format_mac(mac),
    })
}

/// Removes the container's host veth (which deletes the pair) and releases
/// its lease. Idempotent; keeps going past a failure and reports them all.
pub fn detach(cfg: &NetConfig, container: &str) -> Result<(), NetError> {
    let mut errors = Vec::new();
    let mut names = vec![veth::host_name(&cfg.bridge, container)];
    match Leases::open(&cfg.state_dir) {
        Ok(leases) => {
            if let Some((_, lease)) = leases.of(container) {
                if !names.contains(&lease.host_veth) {
                    names.push(lease.host_veth.clone());
                }
            }
        }
        Err(e) => errors.push(e),
    }
    match Netlink::open() {
        Ok(mut nl) => {
            for name in &names {
                // Absent is fine: the kernel removes the pair by itself when
                // the container's namespace goes away.
                if let Err(e) = nl.delete_link(name) {
                    errors.push(e);
                }
            }
        }
        Err(e) => errors.push(e),
    }
    if let Err(e) = Leases::open(&cfg.state_dir).and_then(|mut l| l.release(container)) {
        errors.push(e);
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(NetError::Multiple(errors)),
    }
}

/// After a crash: detaches every container of this network that `keep`
/// does not claim, found through the lease file and through the aliases of
/// host veths. Returns the containers cleaned; failures are reported on
/// stderr (see [`try_cleanup_stale`] to get them).
pub fn cleanup_stale(cfg: &NetConfig, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
    let (cleaned, errors) = try_cleanup_stale(cfg, keep);
    for e in errors {
        crate::warn!("network cleanup: {e}");
    }
    cleaned
}

/// [`cleanup_stale`] that returns the failures too.
pub fn try_cleanup_stale(cfg: &NetConfig, keep: &dyn Fn(&str) -> bool) -> (Vec<String>, Vec<NetError>) {
    let mut errors = Vec::new();
    let mut owners: Vec<String> = Vec::new();
    match Leases::open(&cfg.state_dir) {
        Ok(leases) => owners.extend(leases.all().map(|(_, l)| l.container.clone())),
        Err(e) => errors.push(e),
    }
    match Netlink::open().and_then(|mut nl| nl.links()) {
        Ok(links) => {
            for link in &links {
                let name = link_name(link).unwrap_or_default();
                if let Some(c) = link_alias(link).and_then(|a| veth::container_of_alias(&cfg.bridge, a)) {
                    // Only our own naming scheme, so a foreign link that
                    // happens to carry such an alias is never touched.
                    if name == veth::host_name(&cfg.bridge, c) {
                        owners.push(c.to_string());
                    }
                }
            }
        }
        Err(e) => errors.push(e),
    }
    owners.sort();
    owners.dedup();

    let mut cleaned = Vec::new();
    for c in owners.into_iter().filter(|c| !keep(c)) {
        match detach(cfg, &c) {
            Ok(()) => cleaned.push(c),
            Err(e) => errors.push(e),
        }
    }
    (cleaned, errors)
}

/// The address leased to `container`, if any.
pub fn lease_of(cfg: &NetConfig, container: &str) -> Result<Option<Ipv4Addr>, NetError> {
    Ok(Leases::open(&cfg.state_dir)?.of(container).map(|(ip, _)| ip))
}

/// Every lease: (address, container), ordered by address.
pub fn leases(cfg: &NetConfig) -> Result<Vec<(Ipv4Addr, String)>, NetError> {
    Ok(Leases::open(&cfg.state_dir)?.all().map(|(ip, l)| (ip, l.container.clone())).collect())
}

/// The host end name [`attach`] uses for `container` on this network.
pub fn host_veth_name(cfg: &NetConfig, container: &str) -> String {
    veth::host_name(&cfg.bridge, container)
}

/// /etc/hosts for a container called `name` with address `ip`, so the
/// container resolves its own name. `ip` is an address or None (no network).
pub fn etc_hosts(name: &str, ip: impl Into<Option<Ipv4Addr>>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    match ip.into() {
        Some(ip) => s.push_str(&format!("{ip}\t{name}\n")),
        // Without a network the name still resolves, to loopback.
        None => s.push_str(&format!("127.0.1.1\t{name}\n")),
    }
    s
}

fn check_ifname(name: &str) -> Result<(), NetError> {
    let bad = |reason: &str| NetError::InvalidName { name: name.to_string(), reason: reason.into() };
    if name.is_empty() || name.len() > 15 {
        return Err(bad("interface names are 1 to 15 bytes"));
    }
    if name == "." || name == ".." || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(bad("interface names cannot contain '/', ':' or spaces"));
    }
    Ok(())
}

/// The one name rule (64 bytes at most keeps the veth alias within the kernel's 255).
fn check_container_name(name: &str) -> Result<(), NetError> {
    crate::container::name::validate(name)
        .map_err(|e| NetError::InvalidName { name: name.to_string(), reason: e.to_string() })
}

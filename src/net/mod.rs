//! Container networking: a host bridge with the gateway address, one veth
//! pair per container (host end on the bridge, container end as eth0 in the
//! container's network namespace), addresses from a lease file that
//! survives restarts. Everything goes through netlink; no program is run.
//! Published ports and the outbound masquerade are nf_tables rules in a
//! table engine owns per bridge ([`firewall`]).

pub mod ahead;
mod bridge;
pub mod dns;
mod error;
pub mod firewall;
mod ipam;
mod janitor;
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
pub use veth::{disable_ipv6_by_default, fnv1a};

/// How long an ended container's veth pair is left to the kernel before [`release`]'s
/// background thread deletes it (its namespace was held by someone else).
pub const RELEASE_GRACE: std::time::Duration = janitor::GRACE;

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
    // Checked first: a bad pid (or one sharing the host namespace) fails
    // before anything is changed.
    let att = reserve(cfg, container, requested, pid)?;
    match plug(cfg, container, &att, pid) {
        Ok(()) => Ok(att),
        Err(err) => match Leases::open(&cfg.state_dir).and_then(|mut l| l.release(container)) {
            Ok(_) => Err(err),
            Err(e) => Err(NetError::Multiple(vec![err, e])),
        },
    }
}

/// The first half of [`attach`]: `requested` or the next free address leased to `container`,
/// and the names of its links; nothing is made yet. The supervisor reserves before the init's
/// Setup (the address goes into its /etc/hosts) and plugs while the init builds its root.
/// [`release`] gives the address back, plugged or not.
pub fn reserve(
    cfg: &NetConfig,
    container: &str,
    requested: Option<Ipv4Addr>,
    pid: i32,
) -> Result<Attachment, NetError> {
    reserve_with(cfg, container, requested, pid, &|_| false)
}

/// [`reserve`], the lease's (empty) file put in place by `place` where it can (the supervisor
/// renames one made ahead: no inode is made on the start's path; it must not replace a file
/// there), made here otherwise.
pub fn reserve_with(
    cfg: &NetConfig,
    container: &str,
    requested: Option<Ipv4Addr>,
    pid: i32,
    place: &dyn Fn(&std::path::Path) -> bool,
) -> Result<Attachment, NetError> {
    cfg.validate()?;
    check_container_name(container)?;
    // Checked first: a bad pid (or one sharing the host namespace) fails before anything is
    // changed. The pair is named after the namespace: the one made ahead has that name.
    let ns = netns::open(pid)?;
    let host_veth =
        ahead::host_name(&cfg.bridge, &ns).map_err(|source| NetError::Namespace { pid, step: "stat", source })?;
    if let Some(ip) = requested {
        // The address may still sit on the veth of its last holder, on its way out.
        janitor::settle(ip)?;
    }
    let ip = Leases::open(&cfg.state_dir)?.acquire(
        cfg.subnet,
        cfg.gateway,
        requested,
        &janitor::is_dying,
        Lease { container: container.to_string(), host_veth: host_veth.clone() },
        place,
    )?;
    // The lease lock is released here; the links are set up without it so
    // several containers can be attached at once.
    Ok(Attachment {
        ip,
        prefix: cfg.subnet.prefix(),
        gateway: cfg.gateway,
        bridge: cfg.bridge.clone(),
        host_veth,
        ifname: veth::CONTAINER_IFNAME.to_string(),
        mac: bridge::format_mac(bridge::mac_for(ip)),
    })
}

/// The second half of [`attach`]: the links of `att` (reserved for `container`) made into the
/// network namespace of `pid`. On failure the links made so far are deleted; the lease stays
/// for [`release`].
pub fn plug(cfg: &NetConfig, container: &str, att: &Attachment, pid: i32) -> Result<(), NetError> {
    let ns = netns::open(pid)?;
    let mut veth_created = false;
    plug_links(cfg, container, pid, &ns, att, &mut veth_created).map_err(|err| {
        // Deleting the host end deletes the pair.
        match veth_created.then(|| Netlink::open().and_then(|mut nl| nl.delete_link(&att.host_veth))) {
            Some(Err(e)) => NetError::Multiple(vec![err, e]),
            _ => err,
        }
    })
}

/// The link work of [`plug`]; sets `veth_created` as soon as there is a
/// pair to undo.
fn plug_links(
    cfg: &NetConfig,
    container: &str,
    pid: i32,
    ns: &File,
    att: &Attachment,
    veth_created: &mut bool,
) -> Result<(), NetError> {
    let mut nl = Netlink::open()?;
    let bridge_index = bridge::ensure(&mut nl, &cfg.bridge, cfg.subnet, cfg.gateway)?;

    let made_ahead = take_or_make_pair(&mut nl, att, bridge_index, ns)?;
    *veth_created = true;
    // IPv6 off on a host end made here before it is up (see veth::disable_ipv6); one made ahead
    // was made so.
    if !made_ahead {
        veth::disable_ipv6(&att.host_veth)?;
    }
    nl.set_alias_up(&att.host_veth, &veth::alias(&cfg.bridge, container))?;

    let (ip, prefix, broadcast, gateway) = (att.ip, cfg.subnet.prefix(), cfg.subnet.broadcast(), cfg.gateway);
    let mac = bridge::mac_for(ip);
    netns::run_in(pid, ns, move || veth::configure_inside(ip, prefix, broadcast, gateway, mac))??;
    Ok(())
}

/// The container's veth pair: the one made ahead in its namespace (`ahead`), or made here (in one
/// request, the host end on the bridge and the peer born as eth0 inside the namespace). Whether
/// it was made ahead.
fn take_or_make_pair(nl: &mut Netlink, att: &Attachment, bridge_index: u32, ns: &File) -> Result<bool, NetError> {
    ahead::settled(&att.host_veth);
    if nl.link_by_name(&att.host_veth)?.is_some() {
        return Ok(true);
    }
    let mac = bridge::mac_for(att.ip);
    match nl.create_veth(&att.host_veth, bridge_index, veth::CONTAINER_IFNAME, mac, ns.as_raw_fd()) {
        Ok(()) => Ok(false),
        // Made ahead meanwhile (the refill's thread had the namespace but had not yet said it was
        // making its pair): wait for it as above. EEXIST is also an eth0 the namespace already
        // has: then no host end of this name is there, and the error stands.
        Err(e @ NetError::Netlink { .. }) if e.errno() == Some(libc::EEXIST) => {
            ahead::settled(&att.host_veth);
            nl.link_by_name(&att.host_veth)?.map(|_| true).ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Gives back the address of a container that has ended. Its veth pair is not deleted: it
/// goes with the container's network namespace, which the kernel tears down asynchronously
/// once the last process in it is gone (as podman's netavark leaves it too). Deleting it here
/// would wait for RCU, 10 to 40 ms, on every `run --rm`. Until the kernel is done (usually
/// milliseconds) the address is not handed out again, and a pair still there after
/// `janitor::GRACE` (its namespace held by someone else) is deleted by a background thread.
pub fn release(cfg: &NetConfig, container: &str, att: &Attachment) -> Result<(), NetError> {
    janitor::watch(&att.host_veth, att.ip);
    let released = Leases::open(&cfg.state_dir).and_then(|mut l| l.release(container));
    if !janitor::link_exists(&att.host_veth) {
        janitor::forget(&att.host_veth);
    }
    released.map(drop)
}

/// Removes the container's host veth (which deletes the pair, and waits for the kernel to
/// do so) and releases its lease. Idempotent; keeps going past a failure and reports them all.
pub fn detach(cfg: &NetConfig, container: &str) -> Result<(), NetError> {
    detach_links(cfg, container, Vec::new())
}

/// [`detach`], deleting `names` too.
fn detach_links(cfg: &NetConfig, container: &str, mut names: Vec<String>) -> Result<(), NetError> {
    let mut errors = Vec::new();
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
                match nl.delete_link(name) {
                    Ok(_) => janitor::forget(name),
                    Err(e) => errors.push(e),
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
    // Each owner with the host veths found carrying its alias.
    let mut owners: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    match Leases::open(&cfg.state_dir) {
        Ok(leases) => {
            for (_, l) in leases.all() {
                owners.entry(l.container.clone()).or_default();
            }
        }
        Err(e) => errors.push(e),
    }
    match Netlink::open().and_then(|mut nl| nl.links()) {
        Ok(links) => {
            for link in &links {
                let name = link_name(link).unwrap_or_default();
                if let Some(c) = link_alias(link).and_then(|a| veth::container_of_alias(&cfg.bridge, a)) {
                    // Only our own naming scheme, so a foreign link that
                    // happens to carry such an alias is never touched.
                    if veth::is_host_name(name) {
                        owners.entry(c.to_string()).or_default().push(name.to_string());
                    }
                }
            }
        }
        Err(e) => errors.push(e),
    }

    let mut cleaned = Vec::new();
    for (c, names) in owners.into_iter().filter(|(c, _)| !keep(c)) {
        match detach_links(cfg, &c, names) {
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

//! The veth pair of one container: naming of the host end, and the
//! configuration of the container end from inside its namespace.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use super::error::NetError;
use super::netlink::{address_request, default_route_request, up_request, up_with_mac_request, Netlink};

/// Name of the container end, inside its namespace.
pub(crate) const CONTAINER_IFNAME: &str = "eth0";

/// Host end name: "ve-" + 12 hex digits of a hash of the bridge and the inode number of the
/// container's network namespace (15 bytes, the kernel's limit; see `ahead::host_name`). Unique
/// per start, not per container: the pair of an ended container is left to the kernel's
/// asynchronous teardown of its namespace, and a container started again under the same name
/// gets a new namespace. The bridge is part of the hash so two networks (e.g. parallel tests)
/// never pick the same name either.
pub(crate) fn host_name_of(bridge: &str, netns_ino: u64) -> String {
    let h = fnv1a(bridge.bytes().chain([0u8]).chain(netns_ino.to_le_bytes()));
    format!("{HOST_PREFIX}{:012x}", h & 0xffff_ffff_ffff)
}

const HOST_PREFIX: &str = "ve-";

/// Whether `name` follows [`host_name`]'s scheme (so cleanup never touches a foreign link that
/// merely carries an alias like ours).
pub(crate) fn is_host_name(name: &str) -> bool {
    name.len() == 15
        && name
            .strip_prefix(HOST_PREFIX)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// FNV-1a of `bytes`: stable across Rust releases (std's hasher is not), for names derived
/// from other names.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The alias stamped on the host end: says which network and container own
/// it, so cleanup after a crash finds it even without a lease.
pub(crate) fn alias(bridge: &str, container: &str) -> String {
    format!("engine:{bridge}:{container}")
}

/// The container named by an alias of this bridge, if it is one of ours.
pub(crate) fn container_of_alias<'a>(bridge: &str, alias: &'a str) -> Option<&'a str> {
    alias.strip_prefix("engine:")?.strip_prefix(bridge)?.strip_prefix(':')
}

/// Turns IPv6 off on link `name` of the calling thread's namespace, before it goes up. The
/// network is IPv4 only (no address, route or DNS of it is IPv6). Left
/// on, every link that goes up sends router solicitations, MLD reports and DAD probes, which
/// the bridge floods to every other port and every container answers: work on each start
/// that grows with the number of containers. A kernel without IPv6 has nothing to turn off.
pub(crate) fn disable_ipv6(name: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(mut f) => f.write_all(b"1").map_err(|e| NetError::io("disable IPv6 on a veth:", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("disable IPv6 on a veth:", path, e)),
    }
}

/// Turns IPv6 off for every link made from now on in the calling thread's network namespace
/// (`net.ipv6.conf.default.disable_ipv6`; the spawner does it in each namespace it makes, so
/// eth0 is born without IPv6). Through a procfs instance of its own, dropped after: the host's
/// /proc would keep one `net` entry per namespace looked into, and every later lookup there
/// walks them all.
pub fn disable_ipv6_by_default() -> std::io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let proc = crate::sys::mount_detached(c"proc", &[])?;
    let path = c"sys/net/ipv6/conf/default/disable_ipv6";
    // SAFETY: a C string constant, relative to an fd owned here.
    let knob = match crate::sys::check(unsafe {
        libc::openat(proc.as_raw_fd(), path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC)
    }) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()), // no IPv6 in this kernel
        other => other?,
    };
    // SAFETY: a new fd the kernel just returned.
    std::fs::File::from(unsafe { OwnedFd::from_raw_fd(knob) }).write_all(b"1")
}

/// Runs inside the container's namespace, where the peer was born as eth0 (down): IPv6 off,
/// eth0's index, then loopback up, eth0 up with `mac` (a pair made ahead has a placeholder),
/// its address and the default route in one batch.
pub(crate) fn configure_inside(
    ip: Ipv4Addr,
    prefix: u8,
    broadcast: Ipv4Addr,
    gateway: Ipv4Addr,
    mac: [u8; 6],
) -> Result<(), NetError> {
    let mut nl = Netlink::open()?;
    let eth = nl
        .link_by_name(CONTAINER_IFNAME)?
        .ok_or_else(|| NetError::protocol(format!("find {CONTAINER_IFNAME}"), "no such link in the namespace"))?;
    // A namespace the spawner made has IPv6 off for every new link (its conf/default): eth0 was
    // born so. Otherwise, /proc/sys: a lookup there walks one `net` entry per namespace any
    // process looked into, so it slows with every running container.
    if ipv6_enabled(&eth) {
        disable_ipv6(CONTAINER_IFNAME)?;
    }
    let eth = eth.header.index;
    nl.batch(vec![
        up_request(LOOPBACK_INDEX),
        up_with_mac_request(eth, mac),
        address_request(eth, ip, prefix, broadcast),
        default_route_request(gateway, eth),
    ])
}

/// Whether a link has IPv6 on, from its AF_INET6 devconf (a kernel without IPv6 reports none).
fn ipv6_enabled(link: &netlink_packet_route::link::LinkMessage) -> bool {
    use netlink_packet_route::link::{AfSpecInet6, AfSpecUnspec, LinkAttribute};
    link.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::AfSpecUnspec(specs) => Some(specs),
            _ => None,
        })
        .flatten()
        .filter_map(|s| match s {
            AfSpecUnspec::Inet6(inet6) => Some(inet6),
            _ => None,
        })
        .flatten()
        .any(|i| matches!(i, AfSpecInet6::DevConf(conf) if conf.disable_ipv6 == 0))
}

/// Loopback's index in every network namespace (LOOPBACK_IFINDEX in the kernel).
const LOOPBACK_INDEX: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ() {
        let a = host_name_of("engine0", 4026532000);
        assert_eq!(a.len(), 15);
        assert!(is_host_name(&a), "{a}");
        // Each namespace (each start) gets its own name, on each bridge.
        assert_eq!(a, host_name_of("engine0", 4026532000));
        assert_ne!(a, host_name_of("engine0", 4026532001));
        assert_ne!(a, host_name_of("engine1", 4026532000));
        assert!(!is_host_name("ve-12345678901g") && !is_host_name("eth0") && !is_host_name("ve-123"));
        assert_eq!(container_of_alias("engine0", &alias("engine0", "w:x")), Some("w:x"));
        assert_eq!(container_of_alias("engine", &alias("engine0", "web")), None);
    }
}

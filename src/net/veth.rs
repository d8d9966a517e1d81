//! The veth pair of one container: naming of the host end, and the
//! configuration of the container end from inside its namespace.

use std::net::Ipv4Addr;

use super::error::NetError;
use super::netlink::Netlink;

/// Name of the container end, inside its namespace.
pub(crate) const CONTAINER_IFNAME: &str = "eth0";

/// Host end name: "ve-" + 12 hex digits of a stable hash of bridge and
/// container name (15 bytes, the kernel's limit). The bridge is part of the
/// hash so two networks (e.g. parallel tests) never pick the same name.
pub(crate) fn host_name(bridge: &str, container: &str) -> String {
    let h = fnv1a(bridge.bytes().chain([0u8]).chain(container.bytes()));
    format!("ve-{:012x}", h & 0xffff_ffff_ffff)
}

/// FNV-1a of `bytes`: stable across Rust releases (std's hasher is not), for names derived
/// from other names.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Temporary name of the container end, until it is renamed to eth0
/// inside the namespace: "vc-" + the same hash as the host end.
pub(crate) fn peer_name(host_name: &str) -> String {
    format!("vc-{}", &host_name[3..])
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

/// Runs inside the container's namespace: the peer renamed to eth0,
/// loopback up, address on eth0, eth0 up, default route via the gateway.
pub(crate) fn configure_inside(
    peer: &str,
    ip: Ipv4Addr,
    prefix: u8,
    broadcast: Ipv4Addr,
    gateway: Ipv4Addr,
) -> Result<(), NetError> {
    let mut nl = Netlink::open()?;
    let index_of = |nl: &mut Netlink, name: &str| -> Result<u32, NetError> {
        nl.link_by_name(name)?
            .map(|l| l.header.index)
            .ok_or_else(|| NetError::protocol(format!("find {name}"), "no such link in the namespace"))
    };
    let lo = index_of(&mut nl, "lo")?;
    nl.set_up(lo)?;
    let eth = index_of(&mut nl, peer)?;
    nl.set_name(eth, CONTAINER_IFNAME)?;
    nl.add_address(eth, ip, prefix, broadcast)?;
    nl.set_up(eth)?;
    nl.add_default_route(gateway, eth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ() {
        let a = host_name("engine0", "web");
        assert_eq!(a.len(), 15);
        assert_eq!(a, host_name("engine0", "web"));
        assert_ne!(a, host_name("engine0", "web2"));
        assert_ne!(a, host_name("engine1", "web"));
        assert_eq!(container_of_alias("engine0", &alias("engine0", "w:x")), Some("w:x"));
        assert_eq!(container_of_alias("engine", &alias("engine0", "web")), None);
    }
}

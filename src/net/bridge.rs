//! The host bridge that all container veths are plugged into. It carries
//! the gateway address, so the host reaches containers through it; what goes
//! beyond it is NATed by the rules of `firewall`.

use std::net::Ipv4Addr;

use netlink_packet_route::link::InfoKind;

use super::error::NetError;
use super::ipam::Ipv4Net;
use super::netlink::{link_kind, Netlink};

/// Makes sure bridge `name` exists, carries `gateway/prefix` and is up;
/// returns its interface index. Safe to race with itself: every step
/// tolerates "already done".
pub(crate) fn ensure(nl: &mut Netlink, name: &str, subnet: Ipv4Net, gateway: Ipv4Addr) -> Result<u32, NetError> {
    let link = match nl.link_by_name(name)? {
        Some(link) => link,
        None => {
            match nl.create_bridge(name, mac_for(gateway)) {
                Ok(()) => {}
                // Another thread created it between our look-up and now.
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
            nl.link_by_name(name)?
                .ok_or_else(|| NetError::protocol(format!("create bridge {name}"), "bridge vanished after creation"))?
        }
    };
    if link_kind(&link) != Some(&InfoKind::Bridge) {
        return Err(NetError::WrongLinkKind { name: name.to_string(), expected: "bridge" });
    }
    let index = link.header.index;
    match nl.add_address(index, gateway, subnet.prefix(), subnet.broadcast()) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    nl.set_up(index)?;
    Ok(index)
}

/// Deletes bridge `name` if it exists (its ports are released, not
/// deleted), and engine's NAT table for it; Ok(false) when there was no
/// bridge. Refuses links that are not bridges so a typo cannot delete a
/// physical interface.
pub fn remove_bridge(name: &str) -> Result<bool, NetError> {
    let mut nl = Netlink::open()?;
    let removed = match nl.link_by_name(name)? {
        None => false,
        Some(link) if link_kind(&link) != Some(&InfoKind::Bridge) => {
            return Err(NetError::WrongLinkKind { name: name.to_string(), expected: "bridge" })
        }
        Some(_) => nl.delete_link(name)?,
    };
    // The masquerade and port rules name the bridge: they go with it, after it (an unusable
    // nf_tables must not keep the bridge from going).
    super::firewall::teardown(name)?;
    Ok(removed)
}

/// A locally administered MAC derived from an IPv4 address (the scheme
/// Docker used): stable across restarts, and an address that is handed to a
/// new container gets the same MAC, so neighbours' ARP caches stay right.
pub(crate) fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub(crate) fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

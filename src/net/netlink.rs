//! A small synchronous rtnetlink client: one socket per network namespace,
//! one short method per operation. Every request carries a fresh sequence
//! number, every reply is checked against it, requests that change state ask
//! for an ACK, and each method states how many answers it expects.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::error::NetError;

/// `RT_TABLE_MAIN` from <linux/rtnetlink.h>.
const RT_TABLE_MAIN: u8 = 254;

pub(crate) struct Netlink {
    socket: Socket,
    seq: u32,
}

/// What a request expects back before its ACK / DONE.
enum Expect {
    /// Exactly this many messages (0 for plain change requests).
    Exactly(usize),
    /// A dump: any number, terminated by NLMSG_DONE.
    Dump,
}

impl Netlink {
    /// Opens a route-netlink socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Netlink, NetError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| NetError::netlink("open socket", e))?;
        socket.bind_auto().map_err(|e| NetError::netlink("bind socket", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| NetError::netlink("connect socket", e))?;
        Ok(Netlink { socket, seq: 0 })
    }

    // ----- links -------------------------------------------------------------

    /// The link called `name`, or None when there is none.
    pub(crate) fn link_by_name(&mut self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let op = format!("get link {name}");
        match self.request(&op, RouteNetlinkMessage::GetLink(msg), 0, Expect::Exactly(1)) {
            Ok(mut replies) => match replies.pop() {
                Some(RouteNetlinkMessage::NewLink(link)) => Ok(Some(link)),
                other => Err(NetError::protocol(op, format!("unexpected reply {other:?}"))),
            },
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of this namespace.
    pub(crate) fn links(&mut self) -> Result<Vec<LinkMessage>, NetError> {
        // A dump that raced with a change is inconsistent: ask again.
        let mut attempts = 0;
        let replies = loop {
            attempts += 1;
            match self.request(
                "dump links",
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
                Expect::Dump,
            ) {
                Err(e) if attempts < 5 && interrupted(&e) => continue,
                result => break result?,
            }
        };
        replies
            .into_iter()
            .map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Ok(link),
                other => Err(NetError::protocol("dump links", format!("unexpected reply {other:?}"))),
            })
            .collect()
    }

    /// Creates a bridge with a fixed MAC, so its address never changes as
    /// ports come and go (containers keep a valid ARP entry for the gateway).
    pub(crate) fn create_bridge(&mut self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.change(format!("create bridge {name}"), RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Creates a veth pair in one request: `host` stays here, already a port of bridge
    /// `master` (down: see [`Netlink::set_alias_up`]); the peer is born inside the namespace `peer_netns` as `peer` (down, with
    /// `peer_mac`), so it is neither moved nor renamed afterwards (a rename costs a
    /// synchronize_net in the kernel).
    pub(crate) fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        peer_mac: [u8; 6],
        peer_netns: RawFd,
    ) -> Result<(), NetError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg.attributes.push(LinkAttribute::NetNsFd(peer_netns));

        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::Controller(master));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.change(
            format!("create veth pair {host}/{peer}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Stamps `alias` on the link called `name` and brings it up.
    pub(crate) fn set_alias_up(&mut self, name: &str, alias: &str) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
        self.change(format!("set alias of {name} and bring it up"), RouteNetlinkMessage::SetLink(msg), 0)
    }

    pub(crate) fn set_up(&mut self, index: u32) -> Result<(), NetError> {
        self.change(format!("set link #{index} up"), RouteNetlinkMessage::SetLink(up_msg(index)), 0)
    }

    /// Deletes the link called `name`; Ok(false) when there was none.
    pub(crate) fn delete_link(&mut self, name: &str) -> Result<bool, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.change(format!("delete link {name}"), RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ----- addresses and routes ---------------------------------------------

    /// Adds `ip/prefix` (with its broadcast address) to link `index`.
    pub(crate) fn add_address(
        &mut self,
        index: u32,
        ip: Ipv4Addr,
        prefix: u8,
        broadcast: Ipv4Addr,
    ) -> Result<(), NetError> {
        let (op, msg, flags) = address_request(index, ip, prefix, broadcast);
        self.change(op, msg, flags)
    }

    /// Several change requests in one datagram: one send, then one ACK each, read in order (the
    /// kernel handles them one after the other and answers every one, even after a failure).
    /// Returns the first failure.
    pub(crate) fn batch(&mut self, requests: Vec<Request>) -> Result<(), NetError> {
        let first = self.seq.wrapping_add(1);
        let mut buf = Vec::new();
        let mut ops = Vec::with_capacity(requests.len());
        for (op, msg, flags) in requests {
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            header.sequence_number = self.seq;
            let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
            packet.finalize();
            let start = buf.len();
            buf.resize(start + packet.buffer_len(), 0);
            packet.serialize(&mut buf[start..]);
            // Messages in one datagram start 4-byte aligned.
            buf.resize((buf.len() + 3) & !3, 0);
            ops.push(op);
        }
        let label = ops.join(", ");
        self.send(&label, &buf)?;

        let mut acked = vec![false; ops.len()];
        let mut failure = None;
        while acked.iter().any(|a| !a) {
            let data = self.recv(&label)?;
            let mut offset = 0;
            while offset < data.len() {
                let reply: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&data[offset..])
                    .map_err(|e| NetError::protocol(&label, format!("undecodable reply: {e}")))?;
                let len = reply.header.length as usize;
                let i = reply.header.sequence_number.wrapping_sub(first) as usize;
                if i >= ops.len() || acked[i] {
                    return Err(NetError::protocol(
                        &label,
                        format!("sequence number out of sync (got {})", reply.header.sequence_number),
                    ));
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        acked[i] = true;
                        if let (Some(code), None) = (e.code, &failure) {
                            failure =
                                Some(NetError::netlink(ops[i].clone(), io::Error::from_raw_os_error(-code.get())));
                        }
                    }
                    NetlinkPayload::Noop => {}
                    _ => return Err(NetError::protocol(&ops[i], "unexpected reply to a change")),
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
        failure.map_or(Ok(()), Err)
    }

    // ----- transport ---------------------------------------------------------

    /// A request that changes state: no data back, just the ACK.
    fn change(&mut self, op: String, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NetError> {
        self.request(&op, msg, flags, Expect::Exactly(0)).map(|_| ())
    }

    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
        expect: Expect,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = matches!(expect, Expect::Dump);

        let mut header = NetlinkHeader::default();
        // Dumps end with NLMSG_DONE; everything else ends with an ACK.
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.send(op, &buf)?;

        let mut replies = Vec::new();
        let mut dump_interrupted = false;
        loop {
            let data = self.recv(op)?;
            let mut offset = 0;
            while offset < data.len() {
                let reply: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&data[offset..])
                    .map_err(|e| NetError::protocol(op, format!("undecodable reply: {e}")))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number != seq {
                    return Err(NetError::protocol(
                        op,
                        format!("sequence number out of sync (got {}, want {seq})", reply.header.sequence_number),
                    ));
                }
                // Read the dump to its end (so the socket stays in sync),
                // then report it as interrupted.
                dump_interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            return Err(NetError::netlink(op, io::Error::from_raw_os_error(-code.get())));
                        }
                        // A plain ACK ends a non-dump request.
                        return self.check_count(op, replies, &expect);
                    }
                    NetlinkPayload::Done(_) if dump_interrupted => {
                        return Err(NetError::netlink(
                            op,
                            io::Error::new(io::ErrorKind::Interrupted, "dump interrupted by a change"),
                        ))
                    }
                    NetlinkPayload::Done(_) => return self.check_count(op, replies, &expect),
                    NetlinkPayload::Noop => {}
                    NetlinkPayload::Overrun(_) => return Err(NetError::protocol(op, "receive buffer overrun")),
                    _ => return Err(NetError::protocol(op, "unknown netlink payload")),
                }
                if len == 0 {
                    break;
                }
                // Messages are 4-byte aligned inside one datagram.
                offset += (len + 3) & !3;
            }
        }
    }

    fn send(&mut self, op: &str, buf: &[u8]) -> Result<(), NetError> {
        let sent = loop {
            match self.socket.send(buf, 0) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::netlink(op, e)),
            }
        };
        if sent != buf.len() {
            return Err(NetError::protocol(op, format!("short send ({sent} of {} bytes)", buf.len())));
        }
        Ok(())
    }

    fn recv(&mut self, op: &str) -> Result<Vec<u8>, NetError> {
        loop {
            match self.socket.recv_from_full() {
                Ok((data, _)) => return Ok(data),
                // A signal (SIGCHLD in the supervisor) is not a failure.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::netlink(op, e)),
            }
        }
    }

    fn check_count(
        &self,
        op: &str,
        replies: Vec<RouteNetlinkMessage>,
        expect: &Expect,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        match expect {
            Expect::Exactly(n) if replies.len() != *n => Err(NetError::protocol(
                op,
                format!("expected {n} repl{}, got {}", if *n == 1 { "y" } else { "ies" }, replies.len()),
            )),
            _ => Ok(replies),
        }
    }
}

fn interrupted(e: &NetError) -> bool {
    matches!(e, NetError::Netlink { source, .. } if source.kind() == io::ErrorKind::Interrupted)
}

// ----- requests for [`Netlink::batch`] ---------------------------------------------

/// What a change is called in errors, the message, and its extra flags.
pub(crate) type Request = (String, RouteNetlinkMessage, u16);

fn up_msg(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg
}

/// Link `index` up.
pub(crate) fn up_request(index: u32) -> Request {
    (format!("set link #{index} up"), RouteNetlinkMessage::SetLink(up_msg(index)), 0)
}

/// `ip/prefix` (with its broadcast address) on link `index`.
pub(crate) fn address_request(index: u32, ip: Ipv4Addr, prefix: u8, broadcast: Ipv4Addr) -> Request {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(ip.into()));
    msg.attributes.push(AddressAttribute::Address(ip.into()));
    msg.attributes.push(AddressAttribute::Broadcast(broadcast));
    (
        format!("add address {ip}/{prefix} to link #{index}"),
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// `default via gateway dev #oif` in the main table.
pub(crate) fn default_route_request(gateway: Ipv4Addr, oif: u32) -> Request {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = 0;
    msg.header.table = RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    msg.attributes.push(RouteAttribute::Oif(oif));
    (format!("add default route via {gateway}"), RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL)
}

// ----- reading link messages --------------------------------------------------

pub(crate) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_alias(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

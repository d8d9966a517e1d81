//! Netlink for engine: one request/ACK/dump machinery ([`Channel`]) that both protocols engine
//! speaks go through (rtnetlink here, nf_tables in [`super::nftables`]), and on top of it a small
//! synchronous rtnetlink client ([`Netlink`]): one socket per network namespace, one short method
//! per operation. Every request carries a fresh sequence number, every reply is checked against
//! it, requests that change state ask for an ACK, dumps the kernel flags as interrupted by a
//! change are asked again, and each method states how many answers it expects.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};

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
    chan: Channel,
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
        Ok(Netlink { chan: Channel::open(NETLINK_ROUTE, "route netlink")? })
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
        let replies =
            self.request("dump links", RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP, Expect::Dump)?;
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
        let first = self.chan.next_seqs(requests.len() as u32);
        let mut buf = Vec::new();
        let mut ops = Vec::with_capacity(requests.len());
        for (i, (op, msg, flags)) in requests.into_iter().enumerate() {
            buf.extend(encode(msg, NLM_F_REQUEST | NLM_F_ACK | flags, first.wrapping_add(i as u32)));
            // Messages in one datagram start 4-byte aligned.
            buf.resize((buf.len() + 3) & !3, 0);
            ops.push(op);
        }
        self.chan.batch(&ops.join(", "), &buf, first, &ops).map(drop)
    }

    // ----- requests ----------------------------------------------------------

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
        let replies = match expect {
            // Dumps end with NLMSG_DONE; everything else ends with an ACK.
            Expect::Dump => self.chan.dump(op, |seq| encode(msg.clone(), NLM_F_REQUEST | flags, seq))?,
            Expect::Exactly(_) => {
                let seq = self.chan.next_seqs(1);
                self.chan.request(op, &encode(msg, NLM_F_REQUEST | NLM_F_ACK | flags, seq), seq)?
            }
        };
        let replies = replies.iter().map(|r| decode(op, r)).collect::<Result<Vec<_>, _>>()?;
        match expect {
            Expect::Exactly(n) if replies.len() != n => Err(NetError::protocol(
                op,
                format!("expected {n} repl{}, got {}", if n == 1 { "y" } else { "ies" }, replies.len()),
            )),
            _ => Ok(replies),
        }
    }
}

fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn decode(op: &str, reply: &Reply) -> Result<RouteNetlinkMessage, NetError> {
    let message: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&reply.message)
        .map_err(|e| NetError::protocol(op, format!("undecodable reply: {e}")))?;
    match message.payload {
        NetlinkPayload::InnerMessage(m) => Ok(m),
        other => Err(NetError::protocol(op, format!("unexpected reply {other:?}"))),
    }
}

// ----- the transport, for rtnetlink and nf_tables alike ---------------------------------

/// Message types of <linux/netlink.h>.
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
/// The size of `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
/// How often a dump that a change interrupted is asked for, in all.
const DUMP_ATTEMPTS: usize = 5;

/// One message the kernel sent: its header's type, flags and sequence number, and the whole
/// message, header included.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub message: Vec<u8>,
}

impl Reply {
    /// What follows the netlink header.
    pub(crate) fn payload(&self) -> &[u8] {
        self.message.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The errno of an NLMSG_ERROR or NLMSG_DONE (0: an ACK, or a dump that ended well).
    fn errno(&self) -> i32 {
        self.payload().get(0..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]).wrapping_neg())
    }
}

/// A netlink socket and its sequence numbers: sends requests and reads them back to their ACK
/// or DONE, for rtnetlink ([`Netlink`]) and nf_tables ([`super::nftables`]) alike. One per
/// operation: its requests share the socket.
pub(crate) struct Channel {
    socket: Socket,
    seq: u32,
}

impl Channel {
    /// A socket of netlink `protocol` (`what` names it in errors), connected to the kernel.
    pub(crate) fn open(protocol: isize, what: &str) -> Result<Channel, NetError> {
        let step = |s: &str| format!("{s} {what} socket");
        let mut socket = Socket::new(protocol).map_err(|e| NetError::netlink(step("open"), e))?;
        socket.bind_auto().map_err(|e| NetError::netlink(step("bind"), e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| NetError::netlink(step("connect"), e))?;
        // A reply that never comes fails the step instead of hanging a start or the supervisor.
        let tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
        // SAFETY: setsockopt with a valid timeval of the right size on our own socket.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(NetError::netlink(step("set the timeout of the"), io::Error::last_os_error()));
        }
        Ok(Channel { socket, seq: 0 })
    }

    /// Takes `n` sequence numbers for the requests about to be sent; the first of them.
    pub(crate) fn next_seqs(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n);
        first
    }

    /// Sends one request, built with sequence number `seq`, and reads its answer: up to its ACK,
    /// or for a dump up to NLMSG_DONE. The messages before that; an error answer names `op`.
    pub(crate) fn request(&mut self, op: &str, request: &[u8], seq: u32) -> Result<Vec<Reply>, NetError> {
        self.send(op, request)?;
        let mut answer = Answer { seq, replies: Vec::new(), interrupted: false };
        loop {
            for reply in self.recv(op)? {
                if let Some(result) = answer.take(op, reply) {
                    return result;
                }
            }
        }
    }

    /// A dump, `build` making its request for a sequence number: asked again while the kernel
    /// flags it interrupted (a change raced with it, so it may miss or repeat entries).
    pub(crate) fn dump(&mut self, op: &str, build: impl Fn(u32) -> Vec<u8>) -> Result<Vec<Reply>, NetError> {
        let mut attempt = 1;
        loop {
            let seq = self.next_seqs(1);
            match self.request(op, &build(seq), seq) {
                Err(e) if attempt < DUMP_ATTEMPTS && interrupted(&e) => attempt += 1,
                result => return result,
            }
        }
    }

    /// Requests sent in one datagram, numbered `first`, `first + 1`, ... (one per entry of `ops`,
    /// which names them in errors), each asking for an ACK. Reads until each has answered: the
    /// kernel answers every one, even after a failure. The other messages sent back under their
    /// numbers (echoes), or the first failure. An error under any other number (an nf_tables
    /// batch's envelope) fails the whole, named `label`; anything else under one is passed over.
    pub(crate) fn batch(
        &mut self,
        label: &str,
        datagram: &[u8],
        first: u32,
        ops: &[String],
    ) -> Result<Vec<Reply>, NetError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.send(label, datagram)?;
        let mut acked = vec![false; ops.len()];
        let mut failure = None;
        let mut echoes = Vec::new();
        while acked.iter().any(|a| !a) {
            for reply in self.recv(label)? {
                let i = reply.seq.wrapping_sub(first) as usize;
                let ours = i < ops.len();
                match reply.kind {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => return Err(NetError::protocol(label, "receive buffer overrun")),
                    NLMSG_ERROR if ours => {
                        if acked[i] {
                            return Err(NetError::protocol(&ops[i], "answered twice"));
                        }
                        acked[i] = true;
                        if let (errno @ 1.., None) = (reply.errno(), &failure) {
                            failure = Some(NetError::netlink(ops[i].clone(), io::Error::from_raw_os_error(errno)));
                        }
                    }
                    NLMSG_ERROR if reply.errno() != 0 => {
                        return Err(NetError::netlink(label, io::Error::from_raw_os_error(reply.errno())))
                    }
                    _ if ours => echoes.push(reply),
                    // A notice about the batch as a whole (nf_tables' NEWGEN): not an answer.
                    _ => {}
                }
            }
        }
        failure.map_or(Ok(echoes), Err)
    }

    fn send(&self, op: &str, buf: &[u8]) -> Result<(), NetError> {
        loop {
            match self.socket.send(buf, 0) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => return Err(NetError::protocol(op, format!("short send ({n} of {} bytes)", buf.len()))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::netlink(op, e)),
            }
        }
    }

    /// The messages of the next datagram.
    fn recv(&mut self, op: &str) -> Result<Vec<Reply>, NetError> {
        let data = loop {
            match self.socket.recv_from_full() {
                Ok((data, _)) => break data,
                // A signal (SIGCHLD in the supervisor) is not a failure.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::netlink(op, e)),
            }
        };
        split(op, &data)
    }
}

/// What one request has been answered so far.
struct Answer {
    seq: u32,
    replies: Vec<Reply>,
    /// The kernel flagged a message of this dump NLM_F_DUMP_INTR.
    interrupted: bool,
}

impl Answer {
    /// Takes the next message; the request's result once this one ends it.
    fn take(&mut self, op: &str, reply: Reply) -> Option<Result<Vec<Reply>, NetError>> {
        if reply.seq != self.seq {
            return Some(Err(NetError::protocol(
                op,
                format!("sequence number out of sync (got {}, want {})", reply.seq, self.seq),
            )));
        }
        // Read a dump to its end (so the socket stays in sync), then report it as interrupted.
        self.interrupted |= reply.flags & NLM_F_DUMP_INTR != 0;
        let failed = |errno| Some(Err(NetError::netlink(op, io::Error::from_raw_os_error(errno))));
        match reply.kind {
            // An ACK ends a plain request; an error ends any.
            NLMSG_ERROR => match reply.errno() {
                0 => Some(Ok(std::mem::take(&mut self.replies))),
                errno => failed(errno),
            },
            // A dump that failed part way says why in its DONE.
            NLMSG_DONE => match reply.errno() {
                errno @ 1.. => failed(errno),
                _ if self.interrupted => Some(Err(NetError::netlink(
                    op,
                    io::Error::new(io::ErrorKind::Interrupted, "dump interrupted by a change"),
                ))),
                _ => Some(Ok(std::mem::take(&mut self.replies))),
            },
            NLMSG_NOOP => None,
            NLMSG_OVERRUN => Some(Err(NetError::protocol(op, "receive buffer overrun"))),
            _ => {
                self.replies.push(reply);
                None
            }
        }
    }
}

/// The messages of one datagram (each starts 4-byte aligned).
fn split(op: &str, mut data: &[u8]) -> Result<Vec<Reply>, NetError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(h) = data.get(..HEADER_LEN) else {
            return Err(NetError::protocol(op, format!("truncated reply ({} bytes)", data.len())));
        };
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < HEADER_LEN || len > data.len() {
            return Err(NetError::protocol(op, format!("reply of a bad length ({len}, {} bytes left)", data.len())));
        }
        out.push(Reply {
            kind: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            message: data[..len].to_vec(),
        });
        data = &data[((len + 3) & !3).min(data.len())..];
    }
    Ok(out)
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

/// Link `index` up with hardware address `mac` (set first: the kernel applies the address of a
/// SETLINK before its flags, while the link is still down).
pub(crate) fn up_with_mac_request(index: u32, mac: [u8; 6]) -> Request {
    let mut msg = up_msg(index);
    msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    (format!("set link #{index} address and up"), RouteNetlinkMessage::SetLink(msg), 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel sends it: header, then `payload`.
    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(payload);
        m.resize((m.len() + 3) & !3, 0);
        m
    }

    fn answer(seq: u32, datagram: &[u8]) -> Option<Result<Vec<Reply>, NetError>> {
        let mut answer = Answer { seq, replies: Vec::new(), interrupted: false };
        split("test", datagram).ok()?.into_iter().find_map(|r| answer.take("test", r))
    }

    #[test]
    fn a_dump_ends_with_done_and_keeps_its_messages_in_order() {
        let mut d = message(100, 2, 7, b"one");
        d.extend(message(100, 2, 7, b"second"));
        d.extend(message(NLMSG_DONE, 2, 7, &0i32.to_ne_bytes()));
        let replies = answer(7, &d).and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            replies.iter().map(|r| r.payload().to_vec()).collect::<Vec<_>>(),
            [b"one".to_vec(), b"second".to_vec()]
        );
    }

    #[test]
    fn a_dump_the_kernel_flags_interrupted_is_an_interrupted_error() {
        let mut d = message(100, 2 | NLM_F_DUMP_INTR, 3, b"x");
        d.extend(message(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
        match answer(3, &d) {
            Some(Err(e)) => assert!(interrupted(&e), "{e}"),
            other => panic!("not interrupted: {other:?}"),
        }
    }

    #[test]
    fn errors_carry_the_errno_and_a_done_may_carry_one_too() {
        let mut err = (-libc::ENOENT).to_ne_bytes().to_vec();
        err.extend([0u8; 16]); // the request's header
        match answer(1, &message(NLMSG_ERROR, 0, 1, &err)) {
            Some(Err(e)) => assert_eq!(e.errno(), Some(libc::ENOENT), "{e}"),
            other => panic!("{other:?}"),
        }
        match answer(1, &message(NLMSG_DONE, 2, 1, &(-libc::EBUSY).to_ne_bytes())) {
            Some(Err(e)) => assert_eq!(e.errno(), Some(libc::EBUSY), "{e}"),
            other => panic!("{other:?}"),
        }
        let ack = answer(1, &message(NLMSG_ERROR, 0, 1, &[0u8; 20]));
        assert!(matches!(ack, Some(Ok(v)) if v.is_empty()));
    }

    #[test]
    fn a_reply_to_another_request_or_a_bad_length_is_a_protocol_error() {
        assert!(matches!(answer(2, &message(NLMSG_DONE, 0, 1, &[0; 4])), Some(Err(NetError::Protocol { .. }))));
        let mut d = message(NLMSG_DONE, 0, 1, &[0; 4]);
        d[0] = 200;
        assert!(matches!(split("test", &d), Err(NetError::Protocol { .. })));
        assert!(matches!(split("test", &d[..10]), Err(NetError::Protocol { .. })));
    }
}

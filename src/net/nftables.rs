//! nf_tables over netlink, hand-built: the few message kinds engine's NAT needs (tables, chains,
//! rules with their expressions, a rule dump), sent as one atomic batch per change. No `nft`
//! binary and no libnftnl: the messages are the kernel's uapi (<linux/netfilter/nf_tables.h>),
//! every request of a batch asks for an ACK, and the batch is read back until each has answered,
//! so a failure names the step it belongs to. A batch is one kernel transaction: it applies whole
//! or not at all. The socket, ACKs and dumps are [`super::netlink::Channel`]'s, as for rtnetlink.

use std::net::Ipv4Addr;

use netlink_sys::protocols::NETLINK_NETFILTER;

use super::error::NetError;
use super::netlink::{Channel, Reply};

// ----- uapi constants (<linux/netlink.h>, <linux/netfilter/nfnetlink.h>, nf_tables.h) ------------

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ECHO: u16 = 0x8;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFPROTO_IPV4`: engine's containers are IPv4 only.
const NFPROTO_IPV4: u8 = 2;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// The comment type of rule user data, as `nft` writes it (libnftnl's NFTNL_UDATA_RULE_COMMENT),
/// so `nft list ruleset` shows engine's comments.
const UDATA_RULE_COMMENT: u8 = 0;

/// `NFT_REG_1`, `NFT_REG_2`: 16-byte data registers.
pub(crate) const REG1: u32 = 1;
pub(crate) const REG2: u32 = 2;

/// Netfilter hooks (`NF_INET_*`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hook {
    Prerouting = 0,
    Output = 3,
    Postrouting = 4,
}

/// A base chain's type, hook and priority (`NF_IP_PRI_NAT_DST` -100, `NF_IP_PRI_NAT_SRC` 100).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BaseChain {
    pub kind: &'static str,
    pub hook: Hook,
    pub priority: i32,
}

/// `NFT_PAYLOAD_*_HEADER`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Base {
    Network = 1,
    Transport = 2,
}

/// `NFT_CMP_EQ`, `NFT_CMP_NEQ`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CmpOp {
    Eq = 0,
    Neq = 1,
}

/// `NFT_META_OIFNAME`, `NFT_META_L4PROTO`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MetaKey {
    OifName = 7,
    L4Proto = 16,
}

/// One expression of a rule: the subset engine's rules use.
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Meta {
        key: MetaKey,
        dreg: u32,
    },
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Cmp {
        op: CmpOp,
        sreg: u32,
        data: Vec<u8>,
    },
    /// `reg = (reg & mask) ^ 0`.
    Mask {
        reg: u32,
        mask: Vec<u8>,
    },
    Immediate {
        dreg: u32,
        data: Vec<u8>,
    },
    /// `jump CHAIN`.
    Jump(String),
    /// `fib daddr type` into `dreg` (an `RTN_*` number, host byte order).
    FibDaddrType {
        dreg: u32,
    },
    /// `ct status` into `dreg` (host byte order).
    CtStatus {
        dreg: u32,
    },
    /// `dnat ip to <addr reg>:<proto reg>`.
    Dnat {
        addr: u32,
        proto: u32,
    },
    Masquerade,
}

/// A rule as a dump returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleInfo {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

// ----- messages -----------------------------------------------------------------------------------

/// One netlink message under construction: header, nfgenmsg, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence number, set by `finish`
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg { buf, nests: Vec::new() }
    }

    fn nft(kind: u16, flags: u16) -> Msg {
        Msg::new((NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_REQUEST | flags, NFPROTO_IPV4, 0)
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn string(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    fn be32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_be_bytes())
    }

    fn begin(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    /// `NFTA_DATA_VALUE` nested in `kind`.
    fn value(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        self.begin(kind).attr(NFTA_DATA_VALUE, data).end()
    }

    fn expr(&mut self, e: &Expr) {
        let name = match e {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Mask { .. } => "bitwise",
            Expr::Immediate { .. } | Expr::Jump(_) => "immediate",
            Expr::FibDaddrType { .. } => "fib",
            Expr::CtStatus { .. } => "ct",
            Expr::Dnat { .. } => "nat",
            Expr::Masquerade => "masq",
        };
        self.begin(NFTA_LIST_ELEM).string(NFTA_EXPR_NAME, name).begin(NFTA_EXPR_DATA);
        match e {
            // NFTA_META_DREG 1, NFTA_META_KEY 2
            Expr::Meta { key, dreg } => {
                self.be32(1, *dreg).be32(2, *key as u32);
            }
            // NFTA_PAYLOAD_DREG 1, _BASE 2, _OFFSET 3, _LEN 4
            Expr::Payload { base, offset, len, dreg } => {
                self.be32(1, *dreg).be32(2, *base as u32).be32(3, *offset).be32(4, *len);
            }
            // NFTA_CMP_SREG 1, _OP 2, _DATA 3
            Expr::Cmp { op, sreg, data } => {
                self.be32(1, *sreg).be32(2, *op as u32).value(3, data);
            }
            // NFTA_BITWISE_SREG 1, _DREG 2, _LEN 3, _MASK 4, _XOR 5
            Expr::Mask { reg, mask } => {
                let xor = vec![0u8; mask.len()];
                self.be32(1, *reg).be32(2, *reg).be32(3, mask.len() as u32).value(4, mask).value(5, &xor);
            }
            // NFTA_IMMEDIATE_DREG 1, _DATA 2
            Expr::Immediate { dreg, data } => {
                self.be32(1, *dreg).value(2, data);
            }
            Expr::Jump(chain) => {
                // NFT_JUMP = -3 into the verdict register (NFT_REG_VERDICT = 0).
                self.be32(1, 0).begin(2).begin(NFTA_DATA_VERDICT);
                self.be32(NFTA_VERDICT_CODE, (-3i32) as u32).string(NFTA_VERDICT_CHAIN, chain).end().end();
            }
            // NFTA_FIB_DREG 1, _RESULT 2 (NFT_FIB_RESULT_ADDRTYPE 3), _FLAGS 3 (NFTA_FIB_F_DADDR 2)
            Expr::FibDaddrType { dreg } => {
                self.be32(1, *dreg).be32(2, 3).be32(3, 1 << 1);
            }
            // NFTA_CT_DREG 1, _KEY 2 (NFT_CT_STATUS 2)
            Expr::CtStatus { dreg } => {
                self.be32(1, *dreg).be32(2, 2);
            }
            // NFTA_NAT_TYPE 1 (NFT_NAT_DNAT 1), _FAMILY 2, _REG_ADDR_MIN 3, _REG_PROTO_MIN 5
            Expr::Dnat { addr, proto } => {
                self.be32(1, 1).be32(2, u32::from(NFPROTO_IPV4)).be32(3, *addr).be32(5, *proto);
            }
            Expr::Masquerade => {}
        }
        self.end().end();
    }
}

/// A batch of changes, committed as one kernel transaction.
#[derive(Default)]
pub(crate) struct Batch {
    /// Each message with the step it does, for the error.
    msgs: Vec<(Msg, String)>,
    /// Its rules are sent back as added, with the handles the kernel gave them.
    echo: bool,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch::default()
    }

    /// A batch whose [`Batch::commit`] returns the rules it added, handles included.
    pub(crate) fn echoing() -> Batch {
        Batch { msgs: Vec::new(), echo: true }
    }

    pub(crate) fn add_table(&mut self, table: &str) -> &mut Batch {
        let mut m = Msg::nft(NFT_MSG_NEWTABLE, NLM_F_CREATE);
        m.string(NFTA_TABLE_NAME, table);
        self.push(m, format!("add table ip {table}"))
    }

    /// Deletes the table with everything in it (it must exist: add it first in the same batch to
    /// delete it whether or not it does, as `nft` does for "destroy" on older kernels).
    pub(crate) fn delete_table(&mut self, table: &str) -> &mut Batch {
        let mut m = Msg::nft(NFT_MSG_DELTABLE, 0);
        m.string(NFTA_TABLE_NAME, table);
        self.push(m, format!("delete table ip {table}"))
    }

    /// A chain; with `base`, hooked into netfilter with policy accept.
    pub(crate) fn add_chain(&mut self, table: &str, chain: &str, base: Option<BaseChain>) -> &mut Batch {
        let mut m = Msg::nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
        m.string(NFTA_CHAIN_TABLE, table).string(NFTA_CHAIN_NAME, chain);
        if let Some(b) = base {
            m.begin(NFTA_CHAIN_HOOK)
                .be32(NFTA_HOOK_HOOKNUM, b.hook as u32)
                .be32(NFTA_HOOK_PRIORITY, b.priority as u32)
                .end();
            m.be32(NFTA_CHAIN_POLICY, 1); // NF_ACCEPT
            m.string(NFTA_CHAIN_TYPE, b.kind);
        }
        self.push(m, format!("add chain ip {table} {chain}"))
    }

    /// Appends a rule to `chain`, tagged with `comment`.
    pub(crate) fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr], comment: &str) -> &mut Batch {
        let echo = if self.echo { NLM_F_ECHO } else { 0 };
        let mut m = Msg::nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | echo);
        m.string(NFTA_RULE_TABLE, table).string(NFTA_RULE_CHAIN, chain);
        m.begin(NFTA_RULE_EXPRESSIONS);
        for e in exprs {
            m.expr(e);
        }
        m.end();
        let mut udata = vec![UDATA_RULE_COMMENT, (comment.len() + 1).min(255) as u8];
        udata.extend(comment.bytes().take(254));
        udata.push(0);
        m.attr(NFTA_RULE_USERDATA, &udata);
        self.push(m, format!("add rule ip {table} {chain} ({comment})"))
    }

    pub(crate) fn delete_rule(&mut self, table: &str, chain: &str, handle: u64) -> &mut Batch {
        let mut m = Msg::nft(NFT_MSG_DELRULE, 0);
        m.string(NFTA_RULE_TABLE, table).string(NFTA_RULE_CHAIN, chain).attr(NFTA_RULE_HANDLE, &handle.to_be_bytes());
        self.push(m, format!("delete rule ip {table} {chain} handle {handle}"))
    }

    fn push(&mut self, m: Msg, op: String) -> &mut Batch {
        self.msgs.push((m, op));
        self
    }

    /// Sends the batch on `chan` and waits for every ACK; the first error, named by its step.
    /// The rules it added when it is [`Batch::echoing`] (else none).
    pub(crate) fn commit(self, chan: &mut Channel) -> Result<Vec<RuleInfo>, NetError> {
        if self.msgs.is_empty() {
            return Ok(Vec::new());
        }
        // Sequence numbers: BATCH_BEGIN, one per message, BATCH_END.
        let begin = chan.next_seqs(self.msgs.len() as u32 + 2);
        let mut buf = Msg::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES).finish(begin);
        let mut ops = Vec::with_capacity(self.msgs.len());
        for (i, (mut m, op)) in self.msgs.into_iter().enumerate() {
            let flags = u16::from_ne_bytes([m.buf[6], m.buf[7]]) | NLM_F_ACK;
            m.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
            buf.extend(m.finish(begin.wrapping_add(i as u32 + 1)));
            ops.push(op);
        }
        let end = begin.wrapping_add(ops.len() as u32 + 1);
        buf.extend(Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES).finish(end));
        let echoes = chan.batch("nf_tables batch", &buf, begin.wrapping_add(1), &ops)?;
        Ok(echoes.iter().filter_map(rule_of).collect())
    }
}

/// An nf_tables socket, for the steps of one operation.
pub(crate) fn open() -> Result<Channel, NetError> {
    Channel::open(NETLINK_NETFILTER, "nf_tables")
}

/// Every rule of `table`, or of its `chain` only (empty when there is no such table).
pub(crate) fn rules(chan: &mut Channel, table: &str, chain: Option<&str>) -> Result<Vec<RuleInfo>, NetError> {
    let op = match chain {
        Some(chain) => format!("list rules of chain ip {table} {chain}"),
        None => format!("list rules of table ip {table}"),
    };
    let build = |seq| {
        let mut m = Msg::nft(NFT_MSG_GETRULE, NLM_F_DUMP);
        m.string(NFTA_RULE_TABLE, table);
        if let Some(chain) = chain {
            // The kernel dumps that chain alone.
            m.string(NFTA_RULE_CHAIN, chain);
        }
        m.finish(seq)
    };
    match chan.dump(&op, build) {
        Ok(replies) => Ok(replies.iter().filter_map(rule_of).collect()),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The rule a NEWRULE message (a dump's or an echo) describes.
fn rule_of(reply: &Reply) -> Option<RuleInfo> {
    // After the netlink header: the 4-byte nfgenmsg, then the attributes.
    (reply.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)
        .then(|| parse_rule(reply.payload().get(4..).unwrap_or(&[])))
}

fn parse_rule(attrs: &[u8]) -> RuleInfo {
    let mut rule = RuleInfo { chain: String::new(), handle: 0, comment: None };
    for (kind, data) in attributes(attrs) {
        match kind {
            NFTA_RULE_CHAIN => rule.chain = cstr(data),
            NFTA_RULE_HANDLE if data.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(data);
                rule.handle = u64::from_be_bytes(b);
            }
            NFTA_RULE_USERDATA => {
                // TLVs: type u8, length u8, value.
                let mut rest = data;
                while rest.len() >= 2 {
                    let (t, l) = (rest[0], rest[1] as usize);
                    let Some(value) = rest.get(2..2 + l) else { break };
                    if t == UDATA_RULE_COMMENT {
                        rule.comment = Some(cstr(value));
                    }
                    rest = &rest[2 + l..];
                }
            }
            _ => {}
        }
    }
    rule
}

fn cstr(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// (type without flags, payload) of each attribute in `buf`.
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & !(NLA_F_NESTED | 0x4000);
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

// ----- conntrack (<linux/netfilter/nfnetlink_conntrack.h>) ---------------------------------------

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;

/// Deletes every IPv4 conntrack entry whose original direction goes to `proto` port `port`, as
/// Docker does for a UDP port it publishes (moby's DeleteConntrackEntriesByPort): a datagram
/// flow seen before the port's DNAT rule (or DNATed to an address the container no longer has)
/// keeps its old translation for as long as the sender keeps sending, and never reaches the
/// container. Returns how many went; an entry that expired meanwhile is not an error.
pub(crate) fn forget_flows(proto: u8, port: u16) -> Result<usize, NetError> {
    let mut chan = Channel::open(NETLINK_NETFILTER, "conntrack")?;
    let kind = |k: u16| (NFNL_SUBSYS_CTNETLINK << 8) | k;
    let op = format!("list conntrack entries to port {port}");
    let dump = |seq| Msg::new(kind(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, NFPROTO_IPV4, 0).finish(seq);
    // The original tuples (CTA_TUPLE_ORIG's payload, as the kernel wrote it) to delete.
    let stale: Vec<Vec<u8>> = chan
        .dump(&op, dump)?
        .iter()
        .filter(|r| r.kind == kind(IPCTNL_MSG_CT_NEW))
        .filter_map(|r| {
            let (_, orig) = attributes(r.payload().get(4..)?).into_iter().find(|(t, _)| *t == CTA_TUPLE_ORIG)?;
            tuple_goes_to(orig, proto, port).then(|| orig.to_vec())
        })
        .collect();
    let mut deleted = 0;
    for tuple in stale {
        let mut m = Msg::new(kind(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, NFPROTO_IPV4, 0);
        m.begin(CTA_TUPLE_ORIG);
        m.buf.extend_from_slice(&tuple);
        m.end();
        let seq = chan.next_seqs(1);
        match chan.request(&format!("delete a conntrack entry to port {port}"), &m.finish(seq), seq) {
            Ok(_) => deleted += 1,
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Whether an original tuple (CTA_TUPLE_IP, CTA_TUPLE_PROTO) is `proto` to destination `port`.
fn tuple_goes_to(tuple: &[u8], proto: u8, port: u16) -> bool {
    let Some((_, l4)) = attributes(tuple).into_iter().find(|(t, _)| *t == CTA_TUPLE_PROTO) else { return false };
    let fields = attributes(l4);
    let num = fields.iter().find(|(t, _)| *t == CTA_PROTO_NUM).and_then(|(_, d)| d.first().copied());
    let dport = fields.iter().find(|(t, _)| *t == CTA_PROTO_DST_PORT).and_then(|(_, d)| d.get(0..2));
    num == Some(proto) && dport == Some(&port.to_be_bytes()[..])
}

// ----- building blocks of engine's rules ----------------------------------------------------------

/// `ip saddr|daddr ADDR/PREFIX` (`saddr` at offset 12 of the IPv4 header, `daddr` at 16).
pub(crate) fn match_prefix(offset: u32, addr: Ipv4Addr, prefix: u8) -> Vec<Expr> {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    let mut v = vec![Expr::Payload { base: Base::Network, offset, len: 4, dreg: REG1 }];
    if prefix < 32 {
        v.push(Expr::Mask { reg: REG1, mask: mask.to_be_bytes().to_vec() });
    }
    v.push(Expr::Cmp { op: CmpOp::Eq, sreg: REG1, data: (u32::from(addr) & mask).to_be_bytes().to_vec() });
    v
}

pub(crate) const SADDR: u32 = 12;
pub(crate) const DADDR: u32 = 16;

/// `oifname [!=] NAME`.
pub(crate) fn match_oifname(op: CmpOp, name: &str) -> Vec<Expr> {
    // The kernel compares the whole IFNAMSIZ buffer: the name NUL-padded to 16 bytes.
    let mut data = name.as_bytes().to_vec();
    data.resize(16, 0);
    vec![Expr::Meta { key: MetaKey::OifName, dreg: REG1 }, Expr::Cmp { op, sreg: REG1, data }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_sized() {
        let mut m = Msg::nft(NFT_MSG_NEWTABLE, NLM_F_CREATE);
        m.string(NFTA_TABLE_NAME, "engine-x");
        let buf = m.finish(7);
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize, buf.len());
        assert_eq!(u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]), 7);
        let attrs = attributes(&buf[20..]);
        assert_eq!(attrs, vec![(NFTA_TABLE_NAME, &b"engine-x\0"[..])]);
    }

    #[test]
    fn nested_lengths_cover_their_children() {
        let mut m = Msg::nft(NFT_MSG_NEWRULE, 0);
        m.begin(NFTA_RULE_EXPRESSIONS);
        m.expr(&Expr::Masquerade);
        m.end();
        let buf = m.finish(1);
        let outer = attributes(&buf[20..]);
        assert_eq!(outer.len(), 1);
        let elems = attributes(outer[0].1);
        assert_eq!(elems[0].0, NFTA_LIST_ELEM);
        let inner = attributes(elems[0].1);
        assert_eq!(inner[0], (NFTA_EXPR_NAME, &b"masq\0"[..]));
    }

    #[test]
    fn comments_round_trip_through_user_data() {
        let mut b = Batch::new();
        b.add_rule("t", "ports", &[Expr::Masquerade], "engine:web");
        let (m, _) = &b.msgs[0];
        let buf = m.buf.clone();
        let rule = parse_rule(&buf[20..]);
        assert_eq!(rule.chain, "ports");
        assert_eq!(rule.comment.as_deref(), Some("engine:web"));
    }

    #[test]
    fn prefixes_mask_the_address() {
        let e = match_prefix(SADDR, "10.88.3.7".parse().unwrap(), 16);
        match &e[2] {
            Expr::Cmp { data, .. } => assert_eq!(data, &vec![10, 88, 0, 0]),
            other => panic!("unexpected {other:?}"),
        }
    }
}

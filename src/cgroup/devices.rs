//! Which device nodes a container may open: every container gets the same default rules,
//! limits or not. Without them, a container with CAP_MKNOD makes `b 7:0` in its /dev and
//! reads and writes the host's loop device, or `c 1:11` and writes the host's kernel log.
//!
//! The rules follow Docker's default (runc's `AllowedDevices`): mknod of any node is allowed
//! (CAP_MKNOD stays, as in Docker), but opening is refused for every node except the few a
//! program expects in /dev. The kernel checks the device number at open, so the rule holds
//! whatever the node's name and wherever it was made.
//!
//! cgroup v1 enforces them through the devices controller (`devices.deny` then
//! `devices.allow`); cgroup v2 has no devices file, only a BPF_PROG_TYPE_CGROUP_DEVICE program
//! attached to the group, hand-assembled below.

use super::{fs, CgroupError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Char,
    Block,
    /// Both (OCI type "a", v1 "a").
    All,
}

/// Bits of `Rule::access`, as the kernel's BPF_DEVCG_ACC_* (v1 spells them "m", "r", "w").
pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;
const RWM: u32 = READ | WRITE | MKNOD;

/// One rule; `None` for major or minor is the wildcard `*`. A list of rules is read as runc
/// reads it: everything starts refused, and the last rule matching an access decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

const fn rwm(major: u32, minor: u32) -> Rule {
    Rule { allow: true, kind: Kind::Char, major: Some(major), minor: Some(minor), access: RWM }
}

/// Everything not listed is refused. runc's list, less /dev/net/tun (10:200, kept in runc only
/// for backward compatibility: a container has no business making host network devices). No
/// /dev/console (5:1) either: a container here has no console of its own, so a node it made for
/// 5:1 would open the host's (when terminals come, their console is a pts, allowed below).
pub const DEFAULT_RULES: &[Rule] = &[
    // mknod of any node: a container may make nodes, it cannot open them.
    Rule { allow: true, kind: Kind::Char, major: None, minor: None, access: MKNOD },
    Rule { allow: true, kind: Kind::Block, major: None, minor: None, access: MKNOD },
    rwm(1, 3), // null
    rwm(1, 5), // zero
    rwm(1, 7), // full
    rwm(1, 8), // random
    rwm(1, 9), // urandom
    rwm(5, 0), // tty
    rwm(5, 2), // ptmx
    // /dev/pts/N: the container's own devpts instance (newinstance).
    Rule { allow: true, kind: Kind::Char, major: Some(136), minor: None, access: RWM },
];

impl Rule {
    /// The rule as a v1 `devices.allow` line: "c 1:3 rwm", "b *:* m".
    pub fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::All => 'a',
        };
        let mut access = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }

    /// Whether the rule matches every access of every device ("a *:* rwm").
    pub fn is_everything(&self) -> bool {
        self.kind == Kind::All && self.major.is_none() && self.minor.is_none() && self.access & RWM == RWM
    }

    /// The lines to write for this rule, to devices.allow or devices.deny. The kernel reads any
    /// line starting with "a" as "every device" whatever follows, so a type-a rule narrower than
    /// that becomes its c and b halves: "a 1:3 r" must not allow everything.
    pub fn v1_lines(&self) -> Vec<String> {
        if self.is_everything() {
            return vec!["a".into()];
        }
        match self.kind {
            Kind::All => [Kind::Char, Kind::Block].iter().map(|&kind| Rule { kind, ..*self }.v1_line()).collect(),
            _ => vec![self.v1_line()],
        }
    }
}

/// OCI `linux.resources.devices` entries as rules, in order, refusing what cannot be expressed.
pub fn from_oci(list: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    const FIELD: &str = "linux.resources.devices";
    let bad = |d: &oci_spec::runtime::LinuxDeviceCgroup, reason: &str| CgroupError::InvalidValue {
        flag: FIELD,
        value: d.to_string(),
        reason: reason.into(),
    };
    let num = |d: &oci_spec::runtime::LinuxDeviceCgroup, n: Option<i64>| match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| bad(d, "major and minor must be -1 (any) or 0..2^32")),
    };
    list.iter()
        .map(|d| {
            let kind = match d.typ() {
                None | Some(T::A) => Kind::All,
                Some(T::C) | Some(T::U) => Kind::Char,
                Some(T::B) => Kind::Block,
                Some(T::P) => return Err(bad(d, "type p (fifo) has no device cgroup rule: use a, b or c")),
            };
            // No access given means all three, as crun reads it.
            let access = match d.access().as_deref() {
                None | Some("") => RWM,
                Some(a) => a.chars().try_fold(0, |acc, c| match c {
                    'r' => Ok(acc | READ),
                    'w' => Ok(acc | WRITE),
                    'm' => Ok(acc | MKNOD),
                    _ => Err(bad(d, "access is a combination of r, w and m")),
                })?,
            };
            Ok(Rule { allow: d.allow(), kind, major: num(d, d.major())?, minor: num(d, d.minor())?, access })
        })
        .collect()
}

/// v1: deny everything, then write each rule in order to devices.allow or devices.deny. Must
/// run before a process joins the group: a node already open stays open.
pub fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    // Each file opened once for all its rules (a group's ~11 rules were as many opens of it).
    // "a" clears the inherited allow-all and makes the group deny by default.
    let mut deny = fs::Writer::first(&dir.join("devices.deny"), "a")?;
    let mut allow: Option<fs::Writer> = None;
    for rule in rules {
        // One rule per write: the kernel parses each write as one line.
        for line in rule.v1_lines() {
            match (rule.allow, &mut allow) {
                (false, _) => deny.write(&line)?,
                (true, Some(allow)) => allow.write(&line)?,
                (true, None) => allow = Some(fs::Writer::first(&dir.join("devices.allow"), &line)?),
            }
        }
    }
    Ok(())
}

/// One eBPF instruction (struct bpf_insn): opcode, dst and src registers in one byte
/// (dst in the low nibble), a 16-bit jump offset and a 32-bit immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes: class | operation | source, from linux/bpf_common.h and linux/bpf.h.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K: dst &= imm (32-bit)
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K: dst >>= imm (32-bit)
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X: dst = src (32-bit)
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K: if dst != imm goto pc + 1 + off
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X: if dst != src goto pc + 1 + off
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K: if dst == imm goto pc + 1 + off
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT: return r0

// BPF_DEVCG_DEV_* in the low 16 bits of access_type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

/// The program for `rules`: 1 (allow) or 0 (refuse) from the last rule matching the access,
/// 0 if none matches (runc's and crun's reading of the list).
///
/// The context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
/// access_type being (access << 16) | type. Registers: r2 type, r3 access, r4 major,
/// r5 minor; r1 (the context pointer, not needed once read) is scratch. The rules are emitted
/// last first, each a block of tests jumping past the block's "return" when one fails; a
/// wildcard field or full rwm access has no test, and a rule matching everything ends the
/// program (the rules before it can never decide).
///
/// An allow rule matches a request asking for nothing beyond the rule's access; a deny rule
/// matches a request asking for any of it (runc's filter needs the whole request inside a deny
/// rule too, so "deny w" would let an "rw" open through to an earlier allow).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let verdict = [insn(ALU64_MOV_K, 0, 0, 0, rule.allow as i32), insn(EXIT, 0, 0, 0, 0)];
        if rule.is_everything() {
            p.extend(verdict);
            return p;
        }
        let mut tests: Vec<Vec<Insn>> = Vec::new();
        match rule.kind {
            Kind::Char => tests.push(vec![insn(JNE_K, 2, 0, 0, DEV_CHAR)]),
            Kind::Block => tests.push(vec![insn(JNE_K, 2, 0, 0, DEV_BLOCK)]),
            Kind::All => {}
        }
        if rule.access & RWM != RWM {
            tests.push(if rule.allow {
                // (req & rule) == req
                vec![
                    insn(ALU32_MOV_X, 1, 3, 0, 0),
                    insn(ALU32_AND_K, 1, 0, 0, rule.access as i32),
                    insn(JNE_X, 1, 3, 0, 0),
                ]
            } else {
                // (req & rule) != 0
                vec![
                    insn(ALU32_MOV_X, 1, 3, 0, 0),
                    insn(ALU32_AND_K, 1, 0, 0, rule.access as i32),
                    insn(JEQ_K, 1, 0, 0, 0),
                ]
            });
        }
        if let Some(major) = rule.major {
            tests.push(vec![insn(JNE_K, 4, 0, 0, major as i32)]);
        }
        if let Some(minor) = rule.minor {
            tests.push(vec![insn(JNE_K, 5, 0, 0, minor as i32)]);
        }
        let mut block: Vec<Insn> = tests.into_iter().flatten().collect();
        block.extend(verdict);
        // Each jump lands just after the block's last instruction.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JNE_K | JNE_X | JEQ_K) {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

// From linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Lets a later program on a descendant run too; every program on the path must allow
/// (crun and youki attach with it as well).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of union bpf_attr for BPF_PROG_LOAD; the kernel takes a shorter attr
/// as if the rest were zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, properly laid-out prefix of union bpf_attr of the given size;
    // every pointer inside it points to memory the caller keeps alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loads the program; on failure loads it again with the verifier's log, so the error says
/// which instruction it refused.
fn load(insns: &[Insn]) -> Result<OwnedFd, CgroupError> {
    const LICENSE: &[u8] = b"MIT\0";
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"engine_devices");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let source = match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: the kernel returned a new fd that nothing else owns.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let retry = bpf(BPF_PROG_LOAD, &mut attr);
    if let Ok(fd) = retry {
        // Loaded the second time (a transient failure): use it.
        // SAFETY: as above.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]).trim().to_string();
    Err(CgroupError::DeviceProgram { step: "loading", path: None, log, source })
}

/// v2: loads the device program for `rules` and attaches it to the group `dir`. Must run
/// before a process joins the group. The group holds the program once attached; it goes
/// with the group, so nothing is kept here.
pub fn apply_v2(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let prog = load(&program(rules))?;
    let group = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|source| CgroupError::Read { path: dir.into(), source })?;
    let mut attr = ProgAttachAttr {
        target_fd: group.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| CgroupError::DeviceProgram {
        step: "attaching",
        path: Some(dir.into()),
        log: String::new(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        let lines: Vec<String> = DEFAULT_RULES.iter().map(Rule::v1_line).collect();
        assert_eq!(
            lines,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
            ]
        );
        let r = Rule { allow: true, kind: Kind::Block, major: Some(7), minor: None, access: READ | MKNOD };
        assert_eq!(r.v1_line(), "b 7:* rm");
    }

    #[test]
    fn nothing_outside_the_list_is_opened() {
        // Docker's list: mknod of anything, open only these. No block device opens.
        for r in DEFAULT_RULES {
            if r.major.is_none() || r.kind == Kind::Block {
                assert_eq!(r.access, MKNOD, "{r:?}: a wildcard major or a block device is mknod only");
            }
        }
        let opened: Vec<(u32, Option<u32>)> =
            DEFAULT_RULES.iter().filter(|r| r.access & READ != 0).map(|r| (r.major.unwrap(), r.minor)).collect();
        for refused in [(7, 0), (1, 11), (4, 1), (10, 200), (10, 229), (10, 232), (10, 237), (1, 1)] {
            assert!(!opened.contains(&(refused.0, Some(refused.1))), "{refused:?} must not be allowed");
        }
        assert!(opened.contains(&(136, None)));
    }

    /// Runs the program on one access, as the kernel would: a small interpreter of exactly
    /// the instructions `program` emits.
    fn run(p: &[Insn], kind: i32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | kind as u32), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[(i.off / 4) as usize] as u64;
                }
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = (r[dst] as u32 >> i.imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JNE_K | JNE_X | JEQ_K => {}
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn program_allows_exactly_the_rules() {
        let p = program(DEFAULT_RULES);
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        for (kind, major, minor) in [(c, 1, 3), (c, 1, 5), (c, 1, 7), (c, 1, 8), (c, 1, 9), (c, 5, 0)] {
            for acc in [READ, WRITE, READ | WRITE, MKNOD] {
                assert_eq!(run(&p, kind, acc, major, minor), 1, "{kind} {major}:{minor} access {acc}");
            }
        }
        assert_eq!(run(&p, c, READ | WRITE, 5, 2), 1);
        assert_eq!(run(&p, c, READ | WRITE, 136, 0), 1);
        assert_eq!(run(&p, c, READ | WRITE, 136, 4095), 1);
        for (kind, major, minor) in
            [(b, 7, 0), (c, 1, 11), (c, 4, 1), (c, 5, 1), (c, 10, 200), (c, 10, 229), (c, 10, 232)]
        {
            assert_eq!(run(&p, kind, MKNOD, major, minor), 1, "mknod {major}:{minor} is allowed");
            for acc in [READ, WRITE, READ | WRITE, READ | MKNOD] {
                assert_eq!(run(&p, kind, acc, major, minor), 0, "{kind} {major}:{minor} access {acc}");
            }
        }
        // A block device numbered like an allowed char device is still refused.
        assert_eq!(run(&p, b, READ, 1, 3), 0);
        assert_eq!(run(&p, c, READ, 137, 0), 0);
    }

    #[test]
    fn program_shape() {
        let p = program(&[rwm(1, 3)]);
        let expected = [
            insn(LDX_MEM_W, 2, 1, 0, 0),
            insn(ALU32_AND_K, 2, 0, 0, 0xffff),
            insn(LDX_MEM_W, 3, 1, 0, 0),
            insn(ALU32_RSH_K, 3, 0, 0, 16),
            insn(LDX_MEM_W, 4, 1, 4, 0),
            insn(LDX_MEM_W, 5, 1, 8, 0),
            // c 1:3 rwm: type, major, minor, then allow.
            insn(JNE_K, 2, 0, 4, DEV_CHAR),
            insn(JNE_K, 4, 0, 3, 1),
            insn(JNE_K, 5, 0, 2, 3),
            insn(ALU64_MOV_K, 0, 0, 0, 1),
            insn(EXIT, 0, 0, 0, 0),
            insn(ALU64_MOV_K, 0, 0, 0, 0),
            insn(EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(p, expected);
        // The access test of an "m" rule: r1 = r3; r1 &= 1; if r1 != r3 skip.
        let p = program(&[DEFAULT_RULES[0]]);
        assert_eq!(
            &p[6..11],
            &[
                insn(JNE_K, 2, 0, 5, DEV_CHAR),
                insn(ALU32_MOV_X, 1, 3, 0, 0),
                insn(ALU32_AND_K, 1, 0, 0, MKNOD as i32),
                insn(JNE_X, 1, 3, 2, 0),
                insn(ALU64_MOV_K, 0, 0, 0, 1),
            ]
        );
        // Encoded as the kernel reads struct bpf_insn: 8 bytes, dst in the low nibble.
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(insn(JNE_X, 1, 3, 2, 0).regs, 0x31);
    }

    fn oci(json: &str) -> Vec<Rule> {
        let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        from_oci(&list).unwrap()
    }

    #[test]
    fn oci_rules_last_match_wins() {
        // What podman/containerd send: deny all, then allow some; a later deny narrows.
        let rules = oci(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":200,"access":"rwm"},
                {"allow":true,"type":"b","major":7,"access":"r"},{"allow":false,"type":"b","major":7,"minor":3,"access":"w"}]"#,
        );
        assert!(rules[0].is_everything() && !rules[0].allow);
        let p = program(&rules);
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        assert_eq!(run(&p, c, READ | WRITE, 10, 200), 1);
        assert_eq!(run(&p, c, READ, 10, 201), 0);
        assert_eq!(run(&p, b, READ, 7, 1), 1);
        assert_eq!(run(&p, b, WRITE, 7, 1), 0, "the allow was r only");
        assert_eq!(run(&p, b, READ, 7, 3), 1, "deny w leaves r");
        assert_eq!(run(&p, b, READ | WRITE, 7, 3), 0, "deny w refuses an rw open");
        // An allow-all at the end (privileged) ends the program: everything is allowed.
        let all = oci(r#"[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]"#);
        let p = program(&all);
        assert_eq!(p.len(), 8, "loads + return 1");
        assert_eq!(run(&p, b, READ | WRITE, 8, 0), 1);
        // v1: the same list, in order, with "a" narrower than everything split into c and b.
        let narrow = oci(r#"[{"allow":true,"type":"a","major":1,"minor":3,"access":"r"}]"#);
        assert_eq!(narrow[0].v1_lines(), ["c 1:3 r", "b 1:3 r"]);
        assert_eq!(all[1].v1_lines(), ["a"]);
        assert_eq!(oci(r#"[{"allow":true,"type":"c","major":-1,"minor":-1}]"#)[0].v1_line(), "c *:* rwm");
    }

    #[test]
    fn bad_oci_rules_name_the_field() {
        for bad in [
            r#"[{"allow":true,"type":"p","access":"r"}]"#,
            r#"[{"allow":true,"type":"c","access":"rx"}]"#,
            r#"[{"allow":true,"type":"c","major":-2}]"#,
            r#"[{"allow":true,"type":"c","major":4294967296}]"#,
        ] {
            let list: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(bad).unwrap();
            let e = from_oci(&list).expect_err(bad).to_string();
            assert!(e.starts_with("linux.resources.devices: invalid value"), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_are_one_instance_of_the_general_list() {
        // The spec's list is followed by the defaults; with no list, exactly today's program.
        assert_eq!(program(DEFAULT_RULES), program(&[oci(r#"[]"#), DEFAULT_RULES.to_vec()].concat()));
        let denied_then_defaults = [oci(r#"[{"allow":false,"access":"rwm"}]"#), DEFAULT_RULES.to_vec()].concat();
        let p = program(&denied_then_defaults);
        assert_eq!(run(&p, DEV_CHAR, READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, READ, 7, 0), 0);
        assert_eq!(run(&p, DEV_CHAR, READ, 1, 11), 0);
    }
}

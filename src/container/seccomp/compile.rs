//! The OCI profile → one BPF program.
//!
//! Layout: the architecture word picks a section (x86_64, then x32 by the number's X32_BIT, then
//! i386); each section is a binary search over the call number (intervals of numbers with the
//! same outcome, so an allow-list of 350 calls costs ~9 comparisons, not a scan); a call with
//! argument rules jumps to its own block; every outcome is one shared `ret`.
use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::bpf::{Asm, Label};
use super::{tables, Filter, SeccompError, X32_BIT};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// seccomp_data: nr at 0, arch at 4, instruction pointer at 8, args[6] (u64 each) from 16.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARGS: u32 = 16;

/// The three ABIs of an x86_64 host, each a section of the program.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Abi {
    X86_64,
    X32,
    I386,
}

impl Abi {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => tables::X86_64,
            Abi::X32 => tables::X32,
            Abi::I386 => tables::I386,
        }
    }

    fn number(self, name: &str) -> Option<u32> {
        let table = self.table();
        table.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| table[i].1)
    }

    /// Arguments are 64-bit on x86_64 and x32; i386 compares their low 32 bits only, as libseccomp
    /// does on 32-bit architectures.
    fn wide(self) -> bool {
        self != Abi::I386
    }
}

/// One alternative of a call: all its conditions hold (AND) → `ret`.
struct Rule {
    conds: Vec<LinuxSeccompArg>,
    ret: u32,
}

fn action_name(a: LinuxSeccompAction) -> &'static str {
    match a {
        LinuxSeccompAction::ScmpActKill => "SCMP_ACT_KILL",
        LinuxSeccompAction::ScmpActKillThread => "SCMP_ACT_KILL_THREAD",
        LinuxSeccompAction::ScmpActKillProcess => "SCMP_ACT_KILL_PROCESS",
        LinuxSeccompAction::ScmpActTrap => "SCMP_ACT_TRAP",
        LinuxSeccompAction::ScmpActErrno => "SCMP_ACT_ERRNO",
        LinuxSeccompAction::ScmpActNotify => "SCMP_ACT_NOTIFY",
        LinuxSeccompAction::ScmpActTrace => "SCMP_ACT_TRACE",
        LinuxSeccompAction::ScmpActLog => "SCMP_ACT_LOG",
        LinuxSeccompAction::ScmpActAllow => "SCMP_ACT_ALLOW",
    }
}

/// The seccomp return value of an action; ERRNO and TRACE carry `errno` (EPERM when absent, as runc).
fn action_value(action: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32, SeccompError> {
    let data = |errno: Option<u32>| -> Result<u32, SeccompError> {
        let value = errno.unwrap_or(libc::EPERM as u32);
        if value > 0xffff {
            return Err(SeccompError::ErrnoRange { field: format!("{field}.errnoRet"), value });
        }
        Ok(value)
    };
    let plain = |ret: u32| -> Result<u32, SeccompError> {
        match errno {
            Some(_) => Err(SeccompError::ErrnoRetWithout { field: field.to_string(), action: action_name(action) }),
            None => Ok(ret),
        }
    };
    match action {
        LinuxSeccompAction::ScmpActErrno => Ok(libc::SECCOMP_RET_ERRNO | data(errno)?),
        LinuxSeccompAction::ScmpActTrace => Ok(libc::SECCOMP_RET_TRACE | data(errno)?),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => plain(libc::SECCOMP_RET_KILL_THREAD),
        LinuxSeccompAction::ScmpActKillProcess => plain(libc::SECCOMP_RET_KILL_PROCESS),
        LinuxSeccompAction::ScmpActTrap => plain(libc::SECCOMP_RET_TRAP),
        LinuxSeccompAction::ScmpActLog => plain(libc::SECCOMP_RET_LOG),
        LinuxSeccompAction::ScmpActAllow => plain(libc::SECCOMP_RET_ALLOW),
        LinuxSeccompAction::ScmpActNotify => Err(SeccompError::UnsupportedAction {
            field: field.to_string(),
            action: "SCMP_ACT_NOTIFY",
            why: "engine does not hand seccomp listener fds to an agent (listenerPath)",
        }),
    }
}

/// Compiles an OCI seccomp profile, field by field as runc (over libseccomp) reads it:
/// - `defaultAction` (+ `defaultErrnoRet`, EPERM when absent) for every call no rule matches.
/// - `architectures`: the host's own (x86_64) is always in, as libseccomp adds the native one;
///   SCMP_ARCH_X86 adds i386 calls and SCMP_ARCH_X32 x32 calls. An i386 call when i386 is not
///   listed kills the process (libseccomp's bad-arch action kills the thread: engine kills the
///   process, as its old profile did, so no half-dead multi-threaded program is left). An x32 call
///   when x32 is not listed gets ENOSYS, as on kernels built without x32 (runc kills it): x32 is
///   a mode of the x86_64 architecture, and a program probing for it learns it is missing.
///   Architectures this host cannot run (aarch64, s390x, ...) are accepted and need no code.
/// - `syscalls[]`: names unknown to an ABI's table are skipped (a newer profile on an older
///   table, as runc and libseccomp do); `args` with different indexes must all hold (AND), but
///   when one index appears twice each condition is an alternative of its own (OR: runc's
///   reading, which Docker's profiles rely on); ops NE, LT, LE, EQ, GE, GT compare the 64-bit
///   argument with `value`, MASKED_EQ tests `arg & value == valueTwo`. The rules of one call are
///   tried in profile order and the first that holds decides (libseccomp refuses most overlaps;
///   profiles that podman and containerd send have none), else the default action.
/// - runc's -ENOSYS stub: unless the default action allows (ALLOW, LOG, TRACE) or is already
///   ENOSYS, a call numbered above every call the profile names on a listed ABI gets ENOSYS, so a
///   program on a newer kernel sees "not implemented" and falls back instead of EPERM.
/// - `flags`: SECCOMP_FILTER_FLAG_LOG, SPEC_ALLOW and TSYNC are passed to seccomp(2);
///   WAIT_KILLABLE_RECV and SCMP_ACT_NOTIFY (a seccomp agent at listenerPath) are refused.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::UnsupportedHost(std::env::consts::ARCH));
    }
    let default_ret =
        action_value(profile.default_action(), profile.default_errno_ret(), "linux.seccomp.defaultAction")?;
    let mut flags: libc::c_ulong = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::UnsupportedFlag {
                    flag: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                    why: "it only applies to SCMP_ACT_NOTIFY, which engine does not support",
                })
            }
        };
    }

    // The ABIs named by `architectures` (the stub's scope) and the ABIs with a section.
    let mut listed = Vec::new();
    for arch in profile.architectures().iter().flatten() {
        match arch {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => listed.push(Abi::X86_64),
            Arch::ScmpArchX86 => listed.push(Abi::I386),
            Arch::ScmpArchX32 => listed.push(Abi::X32),
            _ => {}
        }
    }
    let mut abis = listed.clone();
    abis.push(Abi::X86_64);
    abis.sort();
    abis.dedup();

    // Per ABI: call number → its rules in profile order; and the highest number named.
    let mut calls: BTreeMap<Abi, BTreeMap<u32, Vec<Rule>>> = BTreeMap::new();
    let mut highest: BTreeMap<Abi, u32> = BTreeMap::new();
    for (i, entry) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let ret = action_value(entry.action(), entry.errno_ret(), &format!("{field}.action"))?;
        let args = entry.args().as_deref().unwrap_or_default();
        for a in args {
            if a.index() > 5 {
                return Err(SeccompError::ArgIndex { field: format!("{field}.args"), index: a.index() });
            }
        }
        let repeated = (0..6).any(|idx| args.iter().filter(|a| a.index() == idx).count() > 1);
        for &abi in &abis {
            for name in entry.names() {
                let Some(nr) = abi.number(name) else { continue };
                let rules = calls.entry(abi).or_default().entry(nr).or_default();
                if repeated {
                    rules.extend(args.iter().map(|a| Rule { conds: vec![*a], ret }));
                } else {
                    rules.push(Rule { conds: args.to_vec(), ret });
                }
                let top = highest.entry(abi).or_insert(nr);
                *top = (*top).max(nr);
            }
        }
    }
    let stub = !matches!(
        profile.default_action(),
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog | LinuxSeccompAction::ScmpActTrace
    ) && default_ret != libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    let mut gen = Gen { asm: Asm::default(), rets: BTreeMap::new(), blocks: Vec::new() };
    let default = gen.ret(default_ret);
    let enosys = gen.ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    let bad_arch = gen.ret(libc::SECCOMP_RET_KILL_PROCESS);
    let section: BTreeMap<Abi, Label> = abis.iter().map(|&abi| (abi, gen.asm.label())).collect();

    gen.asm.load(OFFSET_ARCH);
    match section.get(&Abi::I386) {
        Some(&i386) => {
            let next = gen.asm.label();
            gen.asm.jump(libc::BPF_JEQ, AUDIT_ARCH_X86_64, section[&Abi::X86_64], next);
            gen.asm.mark(next);
            gen.asm.jump(libc::BPF_JEQ, AUDIT_ARCH_I386, i386, bad_arch);
        }
        None => gen.asm.jump(libc::BPF_JEQ, AUDIT_ARCH_X86_64, section[&Abi::X86_64], bad_arch),
    }
    for (&abi, &label) in &section {
        gen.asm.mark(label);
        let base = if abi == Abi::X32 { X32_BIT } else { 0 };
        if abi != Abi::X32 {
            // x32 shares x86_64's architecture word: its section is reached from here.
            gen.asm.load(OFFSET_NR);
        }
        if abi == Abi::X86_64 {
            let tree = gen.asm.label();
            gen.asm.jump(libc::BPF_JGE, X32_BIT, section.get(&Abi::X32).copied().unwrap_or(enosys), tree);
            gen.asm.mark(tree);
        }
        let rules = calls.remove(&abi).unwrap_or_default();
        let above = highest.get(&abi).filter(|_| stub && listed.contains(&abi)).map(|&top| (top + 1, enosys));
        gen.section(abi, base, rules, default, above);
    }
    gen.blocks(default);
    gen.rets();
    let program = gen.asm.assemble().map_err(|e| SeccompError::Layout(e.0))?;
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(SeccompError::TooLong(program.len()));
    }
    Ok(Filter { program, flags })
}

struct Gen {
    asm: Asm,
    /// One `ret` per distinct return value, laid out at the end.
    rets: BTreeMap<u32, Label>,
    /// Calls with argument rules: their block's label, ABI and rules, laid out after the sections.
    blocks: Vec<(Label, Abi, Vec<Rule>)>,
}

impl Gen {
    fn ret(&mut self, value: u32) -> Label {
        if let Some(&l) = self.rets.get(&value) {
            return l;
        }
        let l = self.asm.label();
        self.rets.insert(value, l);
        l
    }

    /// The binary search of one ABI's numbers from `base` on (A holds the number).
    fn section(
        &mut self,
        abi: Abi,
        base: u32,
        calls: BTreeMap<u32, Vec<Rule>>,
        default: Label,
        above: Option<(u32, Label)>,
    ) {
        let mut spans = Spans(vec![(base, default)]);
        for (nr, rules) in calls {
            let target = match rules.first() {
                Some(first) if first.conds.is_empty() => self.ret(first.ret),
                _ => {
                    let l = self.asm.label();
                    self.blocks.push((l, abi, rules));
                    l
                }
            };
            spans.set(nr, target);
            spans.set(nr + 1, default);
        }
        if let Some((from, enosys)) = above {
            spans.set(from, enosys);
        }
        match spans.0.as_slice() {
            [(_, only)] => self.asm.goto(*only),
            all => {
                let root = self.asm.label();
                self.tree(all, root);
            }
        }
    }

    /// Emits the node `me` of the search over `spans` (at least two): A >= the middle start goes right.
    fn tree(&mut self, spans: &[(u32, Label)], me: Label) {
        self.asm.mark(me);
        let (left, right) = spans.split_at(spans.len() / 2);
        let mut child = |s: &[(u32, Label)]| if s.len() == 1 { s[0].1 } else { self.asm.label() };
        let (l, r) = (child(left), child(right));
        self.asm.jump(libc::BPF_JGE, right[0].0, r, l);
        if left.len() > 1 {
            self.tree(left, l);
        }
        if right.len() > 1 {
            self.tree(right, r);
        }
    }

    fn blocks(&mut self, default: Label) {
        for (label, abi, rules) in std::mem::take(&mut self.blocks) {
            self.asm.mark(label);
            let count = rules.len();
            for (n, rule) in rules.into_iter().enumerate() {
                let ret = self.ret(rule.ret);
                if rule.conds.is_empty() {
                    self.asm.goto(ret);
                    break;
                }
                // The last rule failing is the default action: jump there at once.
                let next = if n + 1 == count { default } else { self.asm.label() };
                let last = rule.conds.len() - 1;
                for (i, cond) in rule.conds.iter().enumerate() {
                    let pass = if i == last { ret } else { self.asm.label() };
                    self.cond(abi, cond, pass, next);
                    if i != last {
                        self.asm.mark(pass);
                    }
                }
                if n + 1 != count {
                    self.asm.mark(next);
                }
            }
        }
    }

    /// One argument condition: jumps to `pass` or `fail`. 64-bit values are compared high word
    /// first (seccomp_data is little-endian on x86).
    fn cond(&mut self, abi: Abi, c: &LinuxSeccompArg, pass: Label, fail: Label) {
        use LinuxSeccompOperator as Op;
        let lo_at = OFFSET_ARGS + 8 * c.index() as u32;
        let hi_at = lo_at + 4;
        let (value, value_two) = (c.value(), c.value_two().unwrap_or(0));
        let (hi, lo) = ((value >> 32) as u32, value as u32);
        // NE, LT and LE are EQ, GE and GT with the outcomes swapped.
        let (kind, pass, fail) = match c.op() {
            Op::ScmpCmpEq => (Kind::Equal, pass, fail),
            Op::ScmpCmpNe => (Kind::Equal, fail, pass),
            Op::ScmpCmpGt => (Kind::Above { strict: true }, pass, fail),
            Op::ScmpCmpGe => (Kind::Above { strict: false }, pass, fail),
            Op::ScmpCmpLt => (Kind::Above { strict: false }, fail, pass),
            Op::ScmpCmpLe => (Kind::Above { strict: true }, fail, pass),
            Op::ScmpCmpMaskedEq => (Kind::Masked, pass, fail),
        };
        let low = self.asm.label();
        match kind {
            Kind::Equal => {
                if abi.wide() {
                    self.asm.load(hi_at);
                    self.asm.jump(libc::BPF_JEQ, hi, low, fail);
                }
                self.asm.mark(low);
                self.asm.load(lo_at);
                self.asm.jump(libc::BPF_JEQ, lo, pass, fail);
            }
            Kind::Above { strict } => {
                if abi.wide() {
                    let equal = self.asm.label();
                    self.asm.load(hi_at);
                    self.asm.jump(libc::BPF_JGT, hi, pass, equal);
                    self.asm.mark(equal);
                    self.asm.jump(libc::BPF_JEQ, hi, low, fail);
                }
                self.asm.mark(low);
                self.asm.load(lo_at);
                self.asm.jump(if strict { libc::BPF_JGT } else { libc::BPF_JGE }, lo, pass, fail);
            }
            Kind::Masked => {
                let (want_hi, want_lo) = ((value_two >> 32) as u32, value_two as u32);
                if abi.wide() {
                    self.asm.load(hi_at);
                    self.asm.and(hi);
                    self.asm.jump(libc::BPF_JEQ, want_hi, low, fail);
                }
                self.asm.mark(low);
                self.asm.load(lo_at);
                self.asm.and(lo);
                self.asm.jump(libc::BPF_JEQ, want_lo, pass, fail);
            }
        }
    }

    fn rets(&mut self) {
        for (value, label) in std::mem::take(&mut self.rets) {
            self.asm.mark(label);
            self.asm.ret(value);
        }
    }
}

/// The comparisons BPF can make on an argument.
enum Kind {
    Equal,
    Above { strict: bool },
    Masked,
}

/// Intervals of call numbers `[start, next start)`, each with its outcome; neighbours differ.
struct Spans(Vec<(u32, Label)>);

impl Spans {
    /// From `start` on (up to the next span already set after it, or the end) the outcome is `target`.
    /// Calls arrive in increasing order, so `start` is at or after the last span's start.
    fn set(&mut self, start: u32, target: Label) {
        let v = &mut self.0;
        if let Some(last) = v.last_mut() {
            if last.0 == start {
                last.1 = target;
                if v.len() >= 2 && v[v.len() - 2].1 == target {
                    v.pop();
                }
                return;
            }
            if last.1 == target {
                return;
            }
        }
        v.push((start, target));
    }
}

//! A small classic-BPF assembler: instructions refer to labels, and a conditional jump whose
//! target lies beyond the 255 instructions its 8-bit offsets reach goes through an unconditional
//! `ja` (32-bit offset) placed right after it. Seccomp programs only jump forward.

/// A place in the program, set once with [`Asm::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Label(usize);

enum Op {
    Stmt { code: u16, k: u32 },
    Jump { code: u16, k: u32, jt: Label, jf: Label },
    Ja(Label),
    Mark(Label),
}

#[derive(Default)]
pub(super) struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

/// Why a program could not be laid out: a compiler bug (a label never set, or a backward jump).
#[derive(Debug)]
pub(super) struct LayoutError(pub(super) &'static str);

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub(super) fn mark(&mut self, l: Label) {
        self.ops.push(Op::Mark(l));
    }

    /// `A = seccomp_data[offset]` (a 32-bit word).
    pub(super) fn load(&mut self, offset: u32) {
        self.ops.push(Op::Stmt { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, k: offset });
    }

    /// `A &= k`.
    pub(super) fn and(&mut self, k: u32) {
        self.ops.push(Op::Stmt { code: (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16, k });
    }

    pub(super) fn ret(&mut self, k: u32) {
        self.ops.push(Op::Stmt { code: (libc::BPF_RET | libc::BPF_K) as u16, k });
    }

    /// Jumps to `jt` when `A <cond> k` holds, else to `jf`; `cond` is BPF_JEQ, BPF_JGT, BPF_JGE or BPF_JSET.
    pub(super) fn jump(&mut self, cond: u32, k: u32, jt: Label, jf: Label) {
        self.ops.push(Op::Jump { code: (libc::BPF_JMP | cond | libc::BPF_K) as u16, k, jt, jf });
    }

    pub(super) fn goto(&mut self, l: Label) {
        self.ops.push(Op::Ja(l));
    }

    /// Lays the program out. Sizes only grow (a jump gains a trampoline when a target is too far),
    /// so the loop ends: at most two growths per jump.
    pub(super) fn assemble(self) -> Result<Vec<libc::sock_filter>, LayoutError> {
        // For each op: does its true / false target need a trampoline?
        let mut far = vec![(false, false); self.ops.len()];
        loop {
            let (addr, label_addr) = self.layout(&far)?;
            let mut grew = false;
            for (i, op) in self.ops.iter().enumerate() {
                if let Op::Jump { jt, jf, .. } = op {
                    let next = addr[i] + 1;
                    let too_far = |target: &Label| -> Result<bool, LayoutError> {
                        let to = label_addr[target.0].ok_or(LayoutError("a label was never placed"))?;
                        Ok(to.checked_sub(next).ok_or(LayoutError("a backward jump"))? > 255)
                    };
                    if !far[i].0 && too_far(jt)? {
                        far[i].0 = true;
                        grew = true;
                    }
                    if !far[i].1 && too_far(jf)? {
                        far[i].1 = true;
                        grew = true;
                    }
                }
            }
            if !grew {
                return self.emit(&far, &addr, &label_addr);
            }
        }
    }

    fn size(op: &Op, far: (bool, bool)) -> usize {
        match op {
            Op::Mark(_) => 0,
            Op::Stmt { .. } | Op::Ja(_) => 1,
            Op::Jump { .. } => 1 + usize::from(far.0) + usize::from(far.1),
        }
    }

    #[allow(clippy::type_complexity)]
    fn layout(&self, far: &[(bool, bool)]) -> Result<(Vec<usize>, Vec<Option<usize>>), LayoutError> {
        let mut addr = Vec::with_capacity(self.ops.len());
        let mut label_addr = vec![None; self.labels];
        let mut at = 0;
        for (op, &f) in self.ops.iter().zip(far) {
            addr.push(at);
            if let Op::Mark(l) = op {
                if label_addr[l.0].replace(at).is_some() {
                    return Err(LayoutError("a label was placed twice"));
                }
            }
            at += Self::size(op, f);
        }
        Ok((addr, label_addr))
    }

    fn emit(
        &self,
        far: &[(bool, bool)],
        addr: &[usize],
        label_addr: &[Option<usize>],
    ) -> Result<Vec<libc::sock_filter>, LayoutError> {
        let at = |l: &Label| label_addr[l.0].ok_or(LayoutError("a label was never placed"));
        let dist = |from: usize, l: &Label| -> Result<usize, LayoutError> {
            at(l)?.checked_sub(from + 1).ok_or(LayoutError("a backward jump"))
        };
        let short = |d: usize| u8::try_from(d).map_err(|_| LayoutError("a jump beyond 255 after layout"));
        let mut out = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Mark(_) => {}
                Op::Stmt { code, k } => out.push(libc::sock_filter { code: *code, jt: 0, jf: 0, k: *k }),
                Op::Ja(l) => {
                    let k = u32::try_from(dist(addr[i], l)?).map_err(|_| LayoutError("a program beyond 2^32"))?;
                    out.push(libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JA) as u16, jt: 0, jf: 0, k })
                }
                Op::Jump { code, k, jt, jf } => {
                    let (far_t, far_f) = far[i];
                    // Trampolines follow the jump: first the true target's, then the false one's.
                    let t = if far_t { 0 } else { short(dist(addr[i], jt)?)? };
                    let f = if far_f { u8::from(far_t) } else { short(dist(addr[i], jf)?)? };
                    out.push(libc::sock_filter { code: *code, jt: t, jf: f, k: *k });
                    let mut pos = addr[i] + 1;
                    for (is_far, target) in [(far_t, jt), (far_f, jf)] {
                        if is_far {
                            let k =
                                u32::try_from(dist(pos, target)?).map_err(|_| LayoutError("a program beyond 2^32"))?;
                            out.push(libc::sock_filter {
                                code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                                jt: 0,
                                jf: 0,
                                k,
                            });
                            pos += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A tiny interpreter of the subset emitted here, over a seccomp_data given as words.
    pub(crate) fn run(prog: &[libc::sock_filter], data: &[u32]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code & 0x07 {
                libc::BPF_LD => a = data[i.k as usize / 4],
                libc::BPF_ALU => a &= i.k,
                libc::BPF_RET => return i.k,
                _ if code == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                _ => {
                    let hit = match code & 0xf0 {
                        libc::BPF_JEQ => a == i.k,
                        libc::BPF_JGT => a > i.k,
                        libc::BPF_JGE => a >= i.k,
                        libc::BPF_JSET => a & i.k != 0,
                        other => panic!("op {other:#x}"),
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
            }
        }
    }

    #[test]
    fn far_targets_go_through_trampolines() {
        let mut asm = Asm::default();
        let (near, far, end) = (asm.label(), asm.label(), asm.label());
        asm.load(0);
        asm.jump(libc::BPF_JEQ, 7, far, near);
        asm.mark(near);
        for _ in 0..300 {
            asm.and(u32::MAX);
        }
        asm.ret(1);
        asm.mark(far);
        asm.goto(end);
        asm.mark(end);
        asm.ret(2);
        let prog = asm.assemble().unwrap();
        assert_eq!(prog.len(), 2 + 1 + 300 + 3);
        assert_eq!(run(&prog, &[7]), 2);
        assert_eq!(run(&prog, &[8]), 1);
    }

    #[test]
    fn a_label_never_placed_is_an_error() {
        let mut asm = Asm::default();
        let nowhere = asm.label();
        asm.goto(nowhere);
        assert!(asm.assemble().is_err());
    }
}

use std::collections::BTreeMap;

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};

use super::*;

const ALLOW: u32 = 0x7fff_0000;
const KILL_PROCESS: u32 = 0x8000_0000;
const fn errno(e: i32) -> u32 {
    0x0005_0000 | e as u32
}

/// Runs `filter` in the assembler's test interpreter on one call.
fn decide(filter: &Filter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = vec![nr, arch, 0, 0];
    for a in args {
        data.push(a as u32);
        data.push((a >> 32) as u32);
    }
    super::bpf::tests::run(filter.instructions(), &data)
}

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;

fn nr(name: &str) -> u32 {
    super::tables::X86_64.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr).unwrap()
}

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

/// A Docker-like profile: EPERM by default, an allow-list, personality and socket by argument,
/// clone3 ENOSYS, for the three x86 ABIs.
const DOCKER_LIKE: &str = r#"{
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "getpid", "no_such_call_in_any_table"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["mseal"], "action": "SCMP_ACT_KILL_PROCESS"}
    ]
}"#;

#[test]
fn a_docker_like_allow_list_decides_by_name_argument_and_abi() {
    let f = compile(&profile(DOCKER_LIKE)).unwrap();
    let d = |nr, a0| decide(&f, X86_64, nr, [a0, 0, 0, 0, 0, 0]);
    assert_eq!(d(nr("read"), 0), ALLOW);
    assert_eq!(d(nr("getpid"), 0), ALLOW);
    assert_eq!(d(nr("mount"), 0), errno(1), "outside the list: the default action");
    assert_eq!(d(nr("socket"), 2), ALLOW);
    assert_eq!(d(nr("socket"), 40), errno(1));
    assert_eq!(d(nr("socket"), 40 | 1 << 32), ALLOW, "NE compares all 64 bits, as libseccomp");
    assert_eq!(d(nr("personality"), 0), ALLOW);
    assert_eq!(d(nr("personality"), 0xffff_ffff), ALLOW);
    assert_eq!(d(nr("personality"), 0x40_0000), errno(1));
    assert_eq!(d(nr("clone"), 0x11), ALLOW);
    assert_eq!(d(nr("clone"), libc::CLONE_NEWUSER as u64 | 0x11), errno(1));
    assert_eq!(d(nr("clone3"), 0), errno(libc::ENOSYS));
    assert_eq!(d(nr("mseal"), 0), KILL_PROCESS);
    // runc's stub: above the highest call the profile names, ENOSYS rather than EPERM.
    assert_eq!(d(nr("mseal") + 1, 0), errno(libc::ENOSYS));
    assert_eq!(d(1000, 0), errno(libc::ENOSYS));
    // i386 and x32 are listed: their own numbers.
    assert_eq!(decide(&f, I386, 20, [0; 6]), ALLOW, "i386 getpid");
    assert_eq!(decide(&f, I386, 21, [0; 6]), errno(1), "i386 mount");
    assert_eq!(decide(&f, X86_64, X32_BIT + 39, [0; 6]), ALLOW, "x32 getpid");
    assert_eq!(decide(&f, X86_64, X32_BIT + 165, [0; 6]), errno(1), "x32 mount");
    // Another architecture word: killed.
    assert_eq!(decide(&f, 0xc000_00b7, 172, [0; 6]), KILL_PROCESS);
}

#[test]
fn unlisted_abis_x32_gets_enosys_and_i386_is_killed() {
    let f = compile(&profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).unwrap();
    assert_eq!(decide(&f, X86_64, 39, [0; 6]), ALLOW);
    assert_eq!(decide(&f, X86_64, X32_BIT + 39, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(decide(&f, I386, 20, [0; 6]), KILL_PROCESS);
}

/// Each op, around its value, on 64-bit values whose halves differ.
#[test]
fn every_operator_compares_64_bits() {
    let v: u64 = 0x0000_0002_0000_0010;
    let ops = [
        ("SCMP_CMP_NE", Box::new(|a: u64| a != v) as Box<dyn Fn(u64) -> bool>),
        ("SCMP_CMP_LT", Box::new(|a| a < v)),
        ("SCMP_CMP_LE", Box::new(|a| a <= v)),
        ("SCMP_CMP_EQ", Box::new(|a| a == v)),
        ("SCMP_CMP_GE", Box::new(|a| a >= v)),
        ("SCMP_CMP_GT", Box::new(|a| a > v)),
    ];
    let samples = [0, 1, v - 1, v, v + 1, 0x10, 0x0000_0001_ffff_ffff, 0x0000_0003_0000_0000, u64::MAX];
    for (op, holds) in ops {
        let p = profile(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{{"index": 3, "value": {v}, "op": "{op}"}}]}}]}}"#
        ));
        let f = compile(&p).unwrap();
        for a in samples {
            let want = if holds(a) { ALLOW } else { errno(libc::EPERM) };
            assert_eq!(decide(&f, X86_64, 0, [0, 0, 0, a, 0, 0]), want, "{op} {a:#x}");
        }
    }
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_KILL", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 5, "value": 18446744069414584335, "valueTwo": 4294967299, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    let f = compile(&p).unwrap(); // mask 0xffff_ffff_0000_000f, want 0x1_0000_0003
    for (a, ok) in [(0x1_0000_0003, true), (0x1_0000_0013, true), (0x1_0000_0004, false), (0x3, false)] {
        let want = if ok { ALLOW } else { 0 };
        assert_eq!(decide(&f, X86_64, 0, [0, 0, 0, 0, 0, a]), want, "MASKED_EQ {a:#x}");
    }
}

#[test]
fn conditions_on_different_arguments_and_one_argument_twice() {
    // Two indexes: both must hold. One index twice: either may hold (runc's reading).
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    let f = compile(&p).unwrap();
    let d = |name, a0, a1| decide(&f, X86_64, nr(name), [a0, a1, 0, 0, 0, 0]);
    assert_eq!(d("socket", 2, 1), ALLOW);
    assert_eq!(d("socket", 2, 2), errno(1));
    assert_eq!(d("socket", 10, 1), errno(1));
    assert_eq!(d("kill", 1, 0), ALLOW);
    assert_eq!(d("kill", 1, 15), ALLOW);
    assert_eq!(d("kill", 1, 9), errno(1));
}

#[test]
fn actions_and_flags_map_to_the_kernels_values() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_LOG", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_KILL"},
            {"names": ["write"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["open"], "action": "SCMP_ACT_TRAP"},
            {"names": ["close"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["stat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["fstat"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let f = compile(&p).unwrap();
    assert_eq!(f.flags(), libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW);
    let d = |nr| decide(&f, X86_64, nr, [0; 6]);
    assert_eq!(
        [d(0), d(1), d(2), d(3), d(4), d(5), d(6)],
        [0, 0, 0x0003_0000, 0x7ff0_0007, errno(1), ALLOW, 0x7ffc_0000]
    );
    // No stub when the default lets calls through: a high number gets the default.
    assert_eq!(d(1000), 0x7ffc_0000);
}

#[test]
fn refusals_name_the_field() {
    let err = |json: &str| compile(&profile(json)).unwrap_err().to_string();
    let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}"#);
    assert!(e.starts_with("linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY is not supported"), "{e}");
    let e = err(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
    assert!(e.starts_with("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"), "{e}");
    let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#);
    assert!(e.starts_with("linux.seccomp.syscalls[0].args: argument index 6"), "{e}");
    let e = err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#);
    assert!(e.starts_with("linux.seccomp.defaultAction.errnoRet: errnoRet 70000"), "{e}");
    let e = err(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}"#,
    );
    assert!(e.contains("syscalls[0].action: errnoRet is only meaningful"), "{e}");
    let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#);
    assert!(e.starts_with("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"), "{e}");
    // Unknown action, op or architecture names never reach compile: the spec's types refuse them.
    for bad in [
        r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
    ] {
        let e = serde_json::from_str::<LinuxSeccomp>(bad).unwrap_err().to_string();
        assert!(e.contains("unknown variant"), "{e}");
    }
}

/// Other architectures' names (aarch64, s390x) are accepted and cost nothing here.
#[test]
fn foreign_architectures_are_accepted() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_S390X"],
        "syscalls": [{"names": ["read", "set_tls"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let f = compile(&p).unwrap();
    assert_eq!(decide(&f, X86_64, 0, [0; 6]), ALLOW);
    assert_eq!(decide(&f, X86_64, 1, [0; 6]), errno(1), "no stub: x86_64 is not listed");
}

/// An allow-list of every x86 call on the three ABIs, one call in eight with an argument rule
/// (Docker's profiles have about ten): it fits the kernel's 4096 instructions and still decides
/// right across far jumps; a profile beyond the limit is one clear error.
#[test]
fn a_full_allow_list_with_conditions_fits_and_decides() {
    let mut names: Vec<String> = super::tables::I386
        .iter()
        .chain(super::tables::X86_64)
        .chain(super::tables::X32)
        .map(|(n, _)| n.to_string())
        .collect();
    names.sort();
    names.dedup();
    let entry = |names: &[String], args| {
        let mut e = LinuxSyscall::default();
        e.set_names(names.to_vec());
        e.set_action(LinuxSeccompAction::ScmpActAllow);
        e.set_args(args);
        e
    };
    let ne = super::arg(LinuxSeccompOperator::ScmpCmpNe, 0xdead, 0);
    let (guarded, free): (Vec<_>, Vec<_>) = names.iter().cloned().enumerate().partition(|(i, _)| i % 8 == 0);
    let guarded: Vec<String> = guarded.into_iter().map(|(_, n)| n).collect();
    let free: Vec<String> = free.into_iter().map(|(_, n)| n).collect();
    let mut p = LinuxSeccomp::default();
    p.set_default_action(LinuxSeccompAction::ScmpActErrno);
    p.set_architectures(Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]));
    p.set_syscalls(Some(vec![entry(&guarded, Some(vec![ne])), entry(&free, None)]));
    let f = compile(&p).unwrap();
    assert!(f.len() > 256 && f.len() <= 4096, "{}", f.len());
    for (arch, table, abi) in [
        (X86_64, super::tables::X86_64, "x86_64"),
        (X86_64, super::tables::X32, "x32"),
        (I386, super::tables::I386, "i386"),
    ] {
        for (name, n) in table {
            let is_guarded = guarded.iter().any(|g| g == name);
            let want = if is_guarded { errno(1) } else { ALLOW };
            assert_eq!(decide(&f, arch, *n, [1, 0, 0, 0, 0, 0]), ALLOW, "{abi} {name}");
            assert_eq!(decide(&f, arch, *n, [0xdead, 0, 0, 0, 0, 0]), want, "{abi} {name}");
        }
    }
    // Every call with a rule of its own: beyond the limit.
    p.set_syscalls(Some(vec![entry(&names, Some(vec![ne]))]));
    let err = compile(&p).unwrap_err();
    assert!(matches!(err, SeccompError::TooLong(n) if n > 4096), "{err}");
    assert!(err.to_string().contains("beyond the kernel's limit of 4096"), "{err}");
}

/// The OCI default profile decides every call as the old three seccompiler filters did (deny-list
/// with EPERM, clone3 ENOSYS, x32 ENOSYS; other architectures killed), by the kernel's rule for
/// stacked filters: the most restrictive action wins, the last installed among equals.
#[test]
fn the_default_profile_decides_like_the_old_three_filters() {
    let new = compile(&default_profile()).unwrap();
    let old = old_profile::filters();
    let stacked = |arch, nr, args: [u64; 6]| {
        let mut data = vec![nr, arch, 0, 0];
        for a in args {
            data.extend([a as u32, (a >> 32) as u32]);
        }
        old.iter()
            .map(|f| super::bpf::tests::run(f, &data))
            .enumerate()
            .min_by_key(|&(i, ret)| ((ret & 0xffff_0000) as i32, std::cmp::Reverse(i)))
            .map(|(_, ret)| ret)
            .unwrap()
    };
    let mut args_samples: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6], [0xffff_ffff, 0, 0, 0, 0, 0]];
    for v in [0x8, 0x20000, 0x20008, 0x400000, 40, 40 | 1 << 32, 2, 0x11, 0x1_0000_0000] {
        args_samples.push([v, 0, 0, 0, 0, 0]);
    }
    for f in super::NAMESPACE_FLAGS {
        args_samples.push([*f as u64 | 0x11, 0, 0, 0, 0, 0]);
    }
    let mut checked = 0;
    for arch in [X86_64, I386, 0xc000_00b7] {
        for nr in (0..600).chain((0..600).map(|n| X32_BIT + n)).chain([u32::MAX, 0x3fff_ffff]) {
            for args in &args_samples {
                assert_eq!(decide(&new, arch, nr, *args), stacked(arch, nr, *args), "arch {arch:#x} nr {nr} {args:x?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 50_000);
    // The deny-list's names all resolve (a typo would silently allow the call).
    for name in super::DENIED {
        assert!(super::tables::X86_64.iter().any(|(n, _)| n == name), "{name}");
    }
    let sizes: BTreeMap<&str, usize> = [("new", new.len())].into();
    assert!(sizes["new"] < 400, "{sizes:?}");
}

/// The profile as it was, built with seccompiler (now a dev-dependency only).
mod old_profile {
    use std::collections::BTreeMap;

    use seccompiler::{
        sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    const DENIED: &[libc::c_long] = &[
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_keyctl,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_fanotify_init,
        libc::SYS_lookup_dcookie,
        libc::SYS_kcmp,
        libc::SYS_pidfd_getfd,
        libc::SYS_process_madvise,
        libc::SYS_syslog,
        libc::SYS_vhangup,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS_ustat,
        libc::SYS_sysfs,
        libc::SYS__sysctl,
        libc::SYS_nfsservctl,
        libc::SYS_open_by_handle_at,
        libc::SYS_mbind,
        libc::SYS_set_mempolicy,
        libc::SYS_get_mempolicy,
        libc::SYS_move_pages,
        libc::SYS_migrate_pages,
        libc::SYS_set_mempolicy_home_node,
        174,
        177,
        178,
        181,
        182,
        183,
        184,
        185,
        236,
    ];

    fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> BpfProgram {
        let filter =
            SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), TargetArch::x86_64)
                .unwrap();
        filter.try_into().unwrap()
    }

    fn to_libc(p: BpfProgram) -> Vec<libc::sock_filter> {
        p.into_iter().map(|i: sock_filter| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect()
    }

    pub(super) fn filters() -> Vec<Vec<libc::sock_filter>> {
        let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&nr| (nr, vec![])).collect();
        let per_flag = super::super::NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let flag = flag as u64;
                SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )
                .unwrap()])
                .unwrap()
            })
            .collect();
        denied.insert(libc::SYS_clone, per_flag);
        let dword = |op, value| SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, value).unwrap();
        denied.insert(libc::SYS_socket, vec![SeccompRule::new(vec![dword(SeccompCmpOp::Eq, 40)]).unwrap()]);
        let other = super::super::PERSONALITIES.iter().map(|&p| dword(SeccompCmpOp::Ne, p)).collect();
        denied.insert(libc::SYS_personality, vec![SeccompRule::new(other).unwrap()]);
        let clone3 = BTreeMap::from([(libc::SYS_clone3, vec![])]);
        let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
        let x32 = vec![
            ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
            ins(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, 0, 1, 0x4000_0000),
            ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ];
        vec![to_libc(compile(denied, libc::EPERM)), to_libc(compile(clone3, libc::ENOSYS)), x32]
    }
}

#[test]
fn a_compiled_filter_crosses_the_init_channel_unchanged_and_each_profile_is_compiled_once() {
    let p = profile(DOCKER_LIKE);
    let filter = compile(&p).unwrap();
    let numbers = |f: &Filter| f.instructions().iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect::<Vec<_>>();
    // The init gets it in its Setup (JSON): the same program and flags come out.
    let back: Filter = serde_json::from_slice(&serde_json::to_vec(&filter).unwrap()).unwrap();
    assert_eq!(numbers(&back), numbers(&filter));
    assert_eq!(back.flags, filter.flags);
    // One string, not an array of numbers; a program that is not whole hex instructions is refused.
    let wire = serde_json::to_value(&filter).unwrap();
    let digits = wire["program"].as_str().expect("the program is sent as a string");
    assert_eq!(digits.len(), filter.len() * 16);
    for bad in [&digits[..digits.len() - 2], &format!("{}zz", &digits[..digits.len() - 2])] {
        let json = serde_json::json!({ "program": bad, "flags": 0 });
        assert!(serde_json::from_value::<Filter>(json).is_err(), "a bad program was taken: {bad:.20}...");
    }
    // Compiled on the first call, kept for the next.
    let key = serde_json::to_vec(&p).unwrap();
    let kept = || COMPILED.lock().iter().filter(|(k, _)| *k == key).count();
    let first = compile_once(&p).unwrap();
    assert_eq!(kept(), 1, "the compiled profile was not kept");
    let again = compile_once(&p).unwrap();
    assert_eq!(kept(), 1, "the profile was compiled again");
    assert_eq!(numbers(&first), numbers(&filter));
    assert_eq!(numbers(&again), numbers(&filter));
    // A profile that does not compile is not kept, and its error is the compiler's.
    let bad = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(matches!(compile_once(&bad), Err(SeccompError::ArgIndex { .. })));
}

#[test]
fn the_init_calls_madvise_only_where_the_profile_cannot_kill_it_for_it() {
    assert!(allows_madvise(&profile(&serde_json::json!({ "defaultAction": "SCMP_ACT_ERRNO" }).to_string())));
    let kill = profile(
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "syscalls": [{ "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" }]
        })
        .to_string(),
    );
    assert!(!allows_madvise(&kill));
    let kill_but_allowed = profile(
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL",
            "syscalls": [{ "names": ["read", "madvise"], "action": "SCMP_ACT_ALLOW" }]
        })
        .to_string(),
    );
    assert!(allows_madvise(&kill_but_allowed));
    let only_some_args = profile(
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_TRAP",
            "syscalls": [{ "names": ["madvise"], "action": "SCMP_ACT_ALLOW",
                           "args": [{ "index": 2, "value": 4, "op": "SCMP_CMP_EQ" }] }]
        })
        .to_string(),
    );
    assert!(!allows_madvise(&only_some_args));
    assert!(allows_madvise(&default_profile()));
}

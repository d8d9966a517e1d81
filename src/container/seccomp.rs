//! The default seccomp profile: Docker's choice of system calls a container does not get.
//!
//! Capabilities already stop most of them (mount, module loading, reboot need ones the container
//! lacks); this filter adds what no capability guards: user namespaces (unshare/clone with a
//! namespace flag), the kernel keyring, bpf, perf_event_open, userfaultfd and io_uring, whose
//! bugs are the usual way out of a container. Everything else is allowed (a deny-list, not
//! Docker's allow-list of ~350 calls); `--security-opt seccomp=unconfined` turns it off.
//!
//! Compared call by call with Docker's default profile (moby profiles/seccomp/default.json, for a
//! container with the default capabilities, on x86_64): every call Docker refuses is refused here,
//! with the same argument rules for clone (namespace flags), clone3 (ENOSYS), socket (AF_VSOCK)
//! and personality. The differences, each stricter: io_uring_setup/enter/register are refused
//! (as newer Docker profiles do; older ones allowed them: io_uring performs its operations out of
//! the filter's sight); x32 calls get ENOSYS and i386 calls are killed (Docker allows both ABIs with the
//! same list); unknown future calls are allowed here and refused by Docker's allow-list, which is
//! the cost of a deny-list: review new kernels' calls when the list is updated.
use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Answered with EPERM whatever their arguments.
const DENIED: &[libc::c_long] = &[
    // kernel modules, kexec, reboot, swap, accounting, quotas, the clock
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
    // mounts and namespaces
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
    // the UTS names: the init sets the host name before the filter; CAP_SYS_ADMIN guards them
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    // host-wide kernel interfaces
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
    // other processes' fds and memory advice (CAP_SYS_PTRACE in Docker's profile)
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
    // NUMA placement of other processes' memory
    libc::SYS_mbind,
    libc::SYS_set_mempolicy,
    libc::SYS_get_mempolicy,
    libc::SYS_move_pages,
    libc::SYS_migrate_pages,
    libc::SYS_set_mempolicy_home_node,
    // gone from the kernel (ENOSYS anyway) and absent from the libc crate: create_module,
    // get_kernel_syms, query_module, getpmsg, putpmsg, afs_syscall, tuxcall, security, vserver,
    // refused as Docker's profile refuses them
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

/// socket() is refused for this address family: vsock talks to the hypervisor, outside every
/// namespace (Docker's rule).
const AF_VSOCK: u64 = 40;

/// The only personality() values allowed (Docker's list): PER_LINUX, PER_LINUX32, UNAME26 alone
/// and with PER_LINUX32, and 0xffffffff, which queries. Others, such as READ_IMPLIES_EXEC (every
/// readable mapping executable) or ADDR_NO_RANDOMIZE, weaken the container's own defences.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// clone() is refused when it asks for any new namespace (Docker's rule).
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, seccompiler::BackendError> {
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), TargetArch::x86_64)?;
    filter.try_into()
}

/// x32 calls are x86_64 calls with bit 30 set in their number, which would slip past the exact
/// numbers of the deny-list: they get ENOSYS, as on kernels built without x32.
fn x32_filter() -> BpfProgram {
    let ins = |code: u32, jt: u8, jf: u8, k: u32| sock_filter { code: code as u16, jt, jf, k };
    vec![
        // seccomp_data.nr is at offset 0.
        ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        ins(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, 0, 1, X32_SYSCALL_BIT),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The filters of the default profile. Calls of any other architecture than x86_64 (32-bit
/// programs) are killed by the first one, as seccompiler builds it. clone3 passes its flags in
/// memory, out of a filter's reach: it gets ENOSYS, which makes glibc fall back to clone(),
/// whose flags the first filter sees.
pub fn default_profile() -> Result<Vec<BpfProgram>, seccompiler::BackendError> {
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&nr| (nr, vec![])).collect();
    let per_flag = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    denied.insert(libc::SYS_clone, per_flag);
    let dword = |op, value| SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, value);
    denied.insert(libc::SYS_socket, vec![SeccompRule::new(vec![dword(SeccompCmpOp::Eq, AF_VSOCK)?])?]);
    // One rule whose conditions all hold (AND) for any value outside the list.
    let other_persona = PERSONALITIES.iter().map(|&p| dword(SeccompCmpOp::Ne, p)).collect::<Result<Vec<_>, _>>()?;
    denied.insert(libc::SYS_personality, vec![SeccompRule::new(other_persona)?]);
    let clone3 = BTreeMap::from([(libc::SYS_clone3, vec![])]);
    Ok(vec![compile(denied, libc::EPERM)?, compile(clone3, libc::ENOSYS)?, x32_filter()])
}

/// Installs `program` on the calling thread. The init still holds CAP_SYS_ADMIN here, so the
/// kernel does not require no_new_privs (which would change setuid behaviour in the container;
/// that stays `--security-opt no-new-privileges`).
pub fn install(program: &BpfProgram) -> io::Result<()> {
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: fprog points at `program`, which outlives the call; the kernel copies it.
    super::security::syscall_result(unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_compiles_to_three_small_filters() {
        let filters = default_profile().unwrap();
        assert_eq!(filters.len(), 3);
        // The kernel's limit is 4096 instructions per filter.
        assert!(
            filters.iter().all(|f| !f.is_empty() && f.len() < 4096),
            "{:?}",
            filters.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn sock_filter_layouts_agree() {
        assert_eq!(std::mem::size_of::<seccompiler::sock_filter>(), std::mem::size_of::<libc::sock_filter>());
    }
}

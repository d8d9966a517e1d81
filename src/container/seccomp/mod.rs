//! Seccomp: the OCI profile (`linux.seccomp`, what podman and containerd send: a full allow-list
//! with argument conditions) compiled to one BPF program, and engine's own default profile.
//!
//! The compiler is engine's own (compile.rs over a small assembler, bpf.rs), not libseccomp: it
//! keeps the binary free of C libraries (the QEMU guest test binary is static), runs anywhere
//! (it only allocates, so the parent can compile and the init only installs), and it does what
//! runc does with libseccomp, rule for rule (see [`compile`]). The names of the system calls come
//! from tables.rs, generated from the kernel's headers by scripts/gen-seccomp-tables.sh.
mod bpf;
mod compile;
mod tables;

use std::fmt;
use std::io;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};

pub use compile::compile;

/// x32 calls are x86_64 calls with this bit set in their number.
pub(crate) const X32_BIT: u32 = 0x4000_0000;

/// A compiled profile, ready for [`install`]; sent to the init in its Setup.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "FilterWire", into = "FilterWire")]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    flags: libc::c_ulong,
}

/// [`Filter`] on the wire: the program as one hex string, each instruction's 8 bytes (code, jt,
/// jf, k; little-endian) as 16 digits. Half of a default Setup is the program: as a JSON array
/// of 4-tuples it was ~600 numbers for the init to parse on its start's path, as a string it
/// is one token and a loop.
#[derive(serde::Serialize, serde::Deserialize)]
struct FilterWire {
    program: String,
    flags: libc::c_ulong,
}

const INSTRUCTION_DIGITS: usize = 16;

impl From<Filter> for FilterWire {
    fn from(f: Filter) -> FilterWire {
        use std::fmt::Write;
        let mut program = String::with_capacity(f.program.len() * INSTRUCTION_DIGITS);
        for i in &f.program {
            let bytes = instruction_bytes(i);
            for b in bytes {
                let _ = write!(program, "{b:02x}");
            }
        }
        FilterWire { program, flags: f.flags }
    }
}

impl TryFrom<FilterWire> for Filter {
    type Error = String;

    fn try_from(w: FilterWire) -> Result<Filter, String> {
        let digits = w.program.as_bytes();
        if !digits.len().is_multiple_of(INSTRUCTION_DIGITS) {
            return Err(format!("a seccomp program of {} hex digits is not whole instructions", digits.len()));
        }
        let program = digits
            .chunks_exact(INSTRUCTION_DIGITS)
            .map(|chunk| {
                let mut bytes = [0u8; 8];
                for (b, pair) in bytes.iter_mut().zip(chunk.chunks_exact(2)) {
                    *b = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
                }
                Some(instruction_from_bytes(bytes))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "a seccomp program with a digit that is not hex".to_string())?;
        Ok(Filter { program, flags: w.flags })
    }
}

fn instruction_bytes(i: &libc::sock_filter) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..2].copy_from_slice(&i.code.to_le_bytes());
    bytes[2] = i.jt;
    bytes[3] = i.jf;
    bytes[4..].copy_from_slice(&i.k.to_le_bytes());
    bytes
}

fn instruction_from_bytes(b: [u8; 8]) -> libc::sock_filter {
    libc::sock_filter {
        code: u16::from_le_bytes([b[0], b[1]]),
        jt: b[2],
        jf: b[3],
        k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// [`compile`], once per distinct profile in this process: a supervisor's containers mostly
/// share one (the default), whose compile was ~0.35 ms of every start.
pub fn compile_once(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    const KEPT: usize = 8;
    let Ok(key) = serde_json::to_vec(profile) else { return compile(profile) };
    if let Some((_, filter)) = COMPILED.lock().iter().find(|(k, _)| *k == key) {
        return Ok(filter.clone());
    }
    let filter = compile(profile)?;
    let mut cache = COMPILED.lock();
    if cache.len() >= KEPT {
        cache.remove(0);
    }
    cache.push((key, filter.clone()));
    Ok(filter)
}

/// Whether `profile` lets the init call madvise without being killed (to let go of its code
/// pages, `init::let_go_of_code_pages`): a default action that does not kill (an errno only leaves the pages mapped), or an
/// unconditional allow of madvise.
pub fn allows_madvise(profile: &LinuxSeccomp) -> bool {
    use oci_spec::runtime::LinuxSeccompAction as Action;
    let fatal = |a: Action| {
        matches!(a, Action::ScmpActKill | Action::ScmpActKillThread | Action::ScmpActKillProcess | Action::ScmpActTrap)
    };
    !fatal(profile.default_action())
        || profile.syscalls().iter().flatten().any(|rule| {
            rule.names().iter().any(|n| n == "madvise")
                && rule.action() == Action::ScmpActAllow
                && rule.args().as_ref().is_none_or(|a| a.is_empty())
        })
}

/// The profiles [`compile_once`] compiled last (as their JSON) and their programs.
static COMPILED: parking_lot::Mutex<Vec<(Vec<u8>, Filter)>> = parking_lot::Mutex::new(Vec::new());

impl Filter {
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }

    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    pub fn flags(&self) -> u64 {
        self.flags
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({} instructions, flags {:#x})", self.program.len(), self.flags)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: {action} is not supported: {why}")]
    UnsupportedAction { field: String, action: &'static str, why: &'static str },
    #[error("{field}: errnoRet is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")]
    ErrnoRetWithout { field: String, action: &'static str },
    #[error("{field}: errnoRet {value} does not fit the 16 bits of a seccomp return value")]
    ErrnoRange { field: String, value: u32 },
    #[error("{field}: argument index {index} does not exist (a system call has six, 0 to 5)")]
    ArgIndex { field: String, index: usize },
    #[error("linux.seccomp.flags: {flag} is not supported: {why}")]
    UnsupportedFlag { flag: &'static str, why: &'static str },
    #[error("linux.seccomp: engine has no system call table for a {0} host")]
    UnsupportedHost(&'static str),
    #[error("linux.seccomp: the profile compiles to {0} BPF instructions, beyond the kernel's limit of 4096")]
    TooLong(usize),
    #[error("linux.seccomp: compiler error: {0}")]
    Layout(&'static str),
    #[error("installing the seccomp filter: {0}")]
    Install(#[source] io::Error),
    #[error("installing the seccomp filter: thread {0} could not be synchronised (SECCOMP_FILTER_FLAG_TSYNC)")]
    Tsync(i64),
}

/// Installs `filter` on the calling thread (and its other threads with SECCOMP_FILTER_FLAG_TSYNC).
/// The caller holds CAP_SYS_ADMIN or has set no_new_privs: the kernel refuses otherwise (EACCES).
/// One system call, no allocation: safe in a freshly cloned child.
pub fn install(filter: &Filter) -> Result<(), SeccompError> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(filter.program.len()).map_err(|_| SeccompError::TooLong(filter.program.len()))?,
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at the program, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, filter.flags, &fprog as *const libc::sock_fprog)
    };
    match rc {
        0 => Ok(()),
        -1 => Err(SeccompError::Install(io::Error::last_os_error())),
        tid => Err(SeccompError::Tsync(tid)),
    }
}

/// Refused with EPERM whatever their arguments. Capabilities already stop most of them (mount,
/// module loading, reboot need ones the container lacks); the filter adds what no capability
/// guards: user namespaces, the kernel keyring, bpf, perf_event_open, userfaultfd and io_uring,
/// whose bugs are the usual way out of a container.
const DENIED: &[&str] = &[
    // kernel modules, kexec, reboot, swap, accounting, quotas, the clock
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    // mounts and namespaces
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    // the UTS names: the init sets the host name before the filter; CAP_SYS_ADMIN guards them
    "sethostname",
    "setdomainname",
    // host-wide kernel interfaces
    "add_key",
    "request_key",
    "keyctl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    "lookup_dcookie",
    // other processes' fds and memory advice (CAP_SYS_PTRACE in Docker's profile)
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "nfsservctl",
    "open_by_handle_at",
    // NUMA placement of other processes' memory
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "move_pages",
    "migrate_pages",
    "set_mempolicy_home_node",
    // gone from the kernel (ENOSYS anyway), refused as Docker's profile refuses them
    "create_module",
    "get_kernel_syms",
    "query_module",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "vserver",
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

/// `int` arguments are compared on their low 32 bits, as the kernel reads them (the upper half of
/// the register is the caller's to fill): MASKED_EQ with this mask.
const INT_MASK: u64 = 0xffff_ffff;

fn rule(names: &[&str], action: LinuxSeccompAction, errno: Option<u32>, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    s.set_errno_ret(errno);
    s.set_args((!args.is_empty()).then_some(args));
    s
}

fn arg(op: LinuxSeccompOperator, value: u64, value_two: u64) -> LinuxSeccompArg {
    // The type has no setters; its builder cannot fail: every field has a default.
    #[allow(clippy::expect_used)]
    LinuxSeccompArgBuilder::default()
        .index(0usize)
        .op(op)
        .value(value)
        .value_two(value_two)
        .build()
        .expect("LinuxSeccompArgBuilder: every field has a default")
}

/// engine's default profile (what `engine run` applies unless `--security-opt seccomp=unconfined`):
/// Docker's choice of system calls a container does not get, as a deny-list (everything else is
/// allowed), for x86_64 only.
///
/// Compared call by call with Docker's default profile (moby profiles/seccomp/default.json, for a
/// container with the default capabilities, on x86_64): every call Docker refuses is refused here,
/// with the same argument rules for clone (namespace flags), clone3 (ENOSYS, so libc falls back to
/// clone, whose flags a filter can see), socket (AF_VSOCK) and personality. The differences, each
/// stricter: io_uring is refused (as newer Docker profiles do: it performs its operations out of
/// the filter's sight); x32 calls get ENOSYS (x32 is not listed: see [`compile`]) and i386 calls
/// kill the process (not listed either), where Docker allows both ABIs with the same list; unknown
/// future calls are allowed here and refused by Docker's allow-list, which is the cost of a
/// deny-list: review new kernels' calls when the list is updated.
///
/// The rules of one call are tried in order and the first that holds decides, so personality's
/// allowed values come before its catch-all EPERM.
pub fn default_profile() -> LinuxSeccomp {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::ScmpCmpMaskedEq as MaskedEq;
    let eperm = Some(libc::EPERM as u32);
    let mut syscalls = vec![rule(DENIED, Errno, eperm, vec![])];
    // One entry per flag: conditions on one argument in one entry are alternatives (runc's reading).
    for &flag in NAMESPACE_FLAGS {
        let flag = flag as u64;
        syscalls.push(rule(&["clone"], Errno, eperm, vec![arg(MaskedEq, flag, flag)]));
    }
    syscalls.push(rule(&["clone3"], Errno, Some(libc::ENOSYS as u32), vec![]));
    syscalls.push(rule(&["socket"], Errno, eperm, vec![arg(MaskedEq, INT_MASK, AF_VSOCK)]));
    let allowed = PERSONALITIES.iter().map(|&p| arg(MaskedEq, INT_MASK, p)).collect();
    syscalls.push(rule(&["personality"], Allow, None, allowed));
    syscalls.push(rule(&["personality"], Errno, eperm, vec![]));
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(Allow);
    profile.set_architectures(Some(vec![Arch::ScmpArchX86_64]));
    profile.set_syscalls(Some(syscalls));
    profile
}

#[cfg(test)]
mod tests;

//! What the container's processes may do: capabilities (the five sets of the Spec), no_new_privs,
//! and the init's own protection.
//!
//! Without this, root in the container could mount filesystems, load kernel modules or reach host
//! devices: every capability outside the bounding set is dropped from it (so a command exec'd as
//! root is granted only those), and the init's own sets are those the Spec gives.
use std::io;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::error::CoreError;

/// CAP_CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE,
/// NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP: Docker's and containerd's default.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::NetRaw,
    Capability::SysChroot,
    Capability::Mknod,
    Capability::AuditWrite,
    Capability::Setfcap,
];

/// The kernel's number of a capability (linux/capability.h).
pub fn number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// A set as a 64-bit mask, as /proc/PID/status shows it (CapBnd, CapEff, ...).
pub fn mask(set: Option<&Capabilities>) -> u64 {
    set.into_iter().flatten().fold(0, |m, &c| m | 1 << number(c))
}

/// One set of the Spec's (absent: empty) as a mask.
pub fn set_mask(caps: Option<&LinuxCapabilities>, get: impl Fn(&LinuxCapabilities) -> &Option<Capabilities>) -> u64 {
    mask(caps.and_then(|c| get(c).as_ref()))
}

/// Docker's default set as a mask.
pub fn default_mask() -> u64 {
    DEFAULT_CAPS.iter().fold(0, |m, &c| m | 1 << number(c))
}

/// The kernel's highest capability number, read once per process: an init made ahead reads it
/// before its Setup (`init::warm_up_after_kit`), not on its start's path.
pub(super) fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(&n) = LAST.get() {
        return n;
    }
    match std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()) {
        Some(n) => *LAST.get_or_init(|| n),
        None => 40,
    }
}

/// Drops from the bounding set every capability outside `bounding` (needs CAP_SETPCAP, so it
/// comes before the capset that may remove it).
pub fn limit_bounding(bounding: u64) -> Result<(), CoreError> {
    for cap in 0..=last_cap() {
        if bounding & (1 << cap) == 0 {
            if let Err(e) = prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
                // EINVAL: a capability this kernel does not know.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(CoreError::process(format!("dropping capability {cap} from the bounding set"))(e));
                }
            }
        }
    }
    Ok(())
}

/// The Spec's effective/permitted/inheritable sets on the calling process, then ambient (each
/// ambient one must be permitted and inheritable, or the kernel refuses it). The bounding set is
/// [`limit_bounding`]'s, earlier: after a switch to another uid CAP_SETPCAP is no longer effective.
pub fn apply_capabilities(caps: Option<&LinuxCapabilities>) -> Result<(), CoreError> {
    let set = |get: fn(&LinuxCapabilities) -> &Option<Capabilities>| set_mask(caps, get);
    let (eff, perm, inh) =
        (set(LinuxCapabilities::effective), set(LinuxCapabilities::permitted), set(LinuxCapabilities::inheritable));
    capset(eff, perm, inh).map_err(CoreError::process("capset"))?;
    // SAFETY: prctl with integer arguments only.
    let clear = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    syscall_result(clear.into()).map_err(CoreError::process("clearing the ambient capabilities"))?;
    for cap in caps.and_then(|c| c.ambient().as_ref()).into_iter().flatten() {
        let n = number(*cap);
        // SAFETY: as above.
        let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, n as libc::c_ulong, 0, 0) };
        match syscall_result(rc.into()) {
            // Not in the inheritable set (`crun spec`'s default lists ambient caps with an empty
            // inheritable set): the kernel grants nothing, and crun and runc run the container
            // without it, as here; any other error is refused.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && !inh_has(caps, *cap) => {}
            other => other.map_err(CoreError::process(format!("raising ambient capability {cap}")))?,
        }
    }
    Ok(())
}

fn inh_has(caps: Option<&LinuxCapabilities>, cap: Capability) -> bool {
    caps.and_then(|c| c.inheritable().as_ref()).is_some_and(|set| set.contains(&cap))
}

/// The init runs the host's engine binary and holds the channel to its parent: made
/// non-dumpable, processes of the container cannot ptrace it, read /proc/1/exe or reach its fds
/// (what runc guards against since CVE-2019-5736).
pub fn hide_init() -> Result<(), CoreError> {
    prctl(libc::PR_SET_DUMPABLE, 0).map_err(CoreError::process("PR_SET_DUMPABLE"))
}

/// Inherited by the command across fork and execve: a setuid binary or file capability can
/// then grant nothing beyond what the container's root already holds.
pub fn set_no_new_privileges() -> Result<(), CoreError> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(CoreError::process("PR_SET_NO_NEW_PRIVS"))
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    syscall_result(unsafe { libc::prctl(option, arg, 0, 0, 0) }.into())
}

/// A raw system call's return value as a Result: -1 means errno says why.
pub fn syscall_result(rc: libc::c_long) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets the calling process's effective, permitted and inheritable sets.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let word = |shift: u32| Data {
        effective: (effective >> shift) as u32,
        permitted: (permitted >> shift) as u32,
        inheritable: (inheritable >> shift) as u32,
    };
    let data = [word(0), word(32)];
    // SAFETY: header and two data words, as capset(2) expects for version 3.
    syscall_result(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_mask_is_dockers() {
        assert_eq!(super::default_mask(), 0xa80425fb);
    }

    #[test]
    fn numbers_match_the_kernel_names() {
        use oci_spec::runtime::Capability;
        assert_eq!(super::number(Capability::SysAdmin), 21);
        assert_eq!(super::number(Capability::CheckpointRestore), 40);
    }
}

//! What the container's root may do: Docker's default capability set, nothing more.
//!
//! Without this, root in the container could mount filesystems, load kernel modules or reach host
//! devices: every capability outside the set is dropped from the bounding set (so the command,
//! exec'd as root, is granted only these) and from the init's own sets.
use std::io;

use super::init::SetupError;

/// CAP_CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE,
/// NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP: Docker's and containerd's default.
pub const DEFAULT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// The default set as a 64-bit mask, as /proc/PID/status shows it (CapBnd).
pub fn default_mask() -> u64 {
    DEFAULT_CAPS.iter().fold(0, |m, c| m | 1 << c)
}

pub fn drop_capabilities() -> Result<(), SetupError> {
    let keep = default_mask();
    for cap in 0..=last_cap() {
        if keep & (1 << cap) == 0 {
            if let Err(e) = prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
                // EINVAL: a capability this kernel does not know.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(SetupError::new(format!("dropping capability {cap}: {e}")));
                }
            }
        }
    }
    capset(keep).map_err(|e| SetupError::new(format!("capset: {e}")))
}

/// The init runs the host's engine binary and holds the channel to the supervisor: made
/// non-dumpable, processes of the container cannot ptrace it, read /proc/1/exe or reach its fds
/// (what runc guards against since CVE-2019-5736).
pub fn hide_init() -> Result<(), SetupError> {
    prctl(libc::PR_SET_DUMPABLE, 0).map_err(|e| SetupError::new(format!("PR_SET_DUMPABLE: {e}")))
}

/// Inherited by the command across fork and execve: a setuid binary or file capability can
/// then grant nothing beyond what the container's root already holds.
pub fn set_no_new_privileges() -> Result<(), SetupError> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| SetupError::new(format!("PR_SET_NO_NEW_PRIVS: {e}")))
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

/// Sets the calling process's effective, permitted and inheritable sets to `mask`.
fn capset(mask: u64) -> io::Result<()> {
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
    let word = |shift: u32| {
        let w = (mask >> shift) as u32;
        Data { effective: w, permitted: w, inheritable: w }
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
}

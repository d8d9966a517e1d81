//! Process handles that cannot be fooled by PID reuse: a pidfd names one process for as long as
//! the fd is open, so a signal sent through it never reaches a stranger that got the same PID.
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// A pidfd for `pid`. For a child, open it before the child can be reaped (e.g. while it waits
/// on its init channel); otherwise the PID may already name another process.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall returning a new fd (close-on-exec by definition).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `signal` to the process behind `pidfd`. ESRCH: it has exited (it may not be reaped yet).
pub fn pidfd_send_signal(pidfd: impl AsFd, signal: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a borrowed fd.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_fd().as_raw_fd(), signal, std::ptr::null::<u8>(), 0)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. With the PID
/// it tells a live process from an unrelated one that reused its PID (after a crash, no pidfd).
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')': fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Waits for the child behind `pidfd` to end and reaps it (waitid P_PIDFD, Linux 5.4).
pub fn wait(pidfd: impl AsFd) -> io::Result<super::exit::Termination> {
    loop {
        // SAFETY: a zeroed siginfo_t is valid; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: P_PIDFD with a borrowed fd; `info` outlives the call.
        let rc =
            unsafe { libc::waitid(libc::P_PIDFD, pidfd.as_fd().as_raw_fd() as libc::id_t, &mut info, libc::WEXITED) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: filled by a successful waitid with WEXITED.
        let (code, status) = unsafe { (info.si_code, info.si_status()) };
        return Ok(match code {
            libc::CLD_EXITED => super::exit::Termination::Code(status),
            _ => super::exit::Termination::Signal(status),
        });
    }
}

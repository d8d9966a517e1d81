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

/// The state letter (field 3) and start time (field 22, clock ticks since boot) of /proc/PID/stat.
/// With the PID, the start time tells a live process from an unrelated one that reused its PID
/// (after a crash, no pidfd).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name (field 2) may hold spaces and ')': fields resume after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) comes field 4; the start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start time of `pid`, zombie or not.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// The start time of `pid` while it still runs; None once it is a zombie or gone.
pub fn live_start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).filter(|(state, _)| !matches!(state, 'Z' | 'X')).map(|(_, t)| t)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_from_the_last_paren() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_live() {
        let me = std::process::id() as i32;
        assert!(live_start_ticks(me).is_some());
        assert_eq!(live_start_ticks(me), process_start_ticks(me));
    }
}

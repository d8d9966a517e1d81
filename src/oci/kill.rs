//! `kill [--all] ID [SIGNAL]`: a signal by name (`KILL`, `SIGKILL`, any case) or number, SIGTERM by
//! default. The conformance suite sends names, podman and containerd numbers.
//!
//! The container's pid is signalled through a pidfd opened and then checked against the recorded
//! start time: a pid reused since the container ended is never signalled.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::error::{OciError, Result};
use super::state::{self, Status};
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signal every process in the container's cgroup, not only its init.
    #[arg(short, long)]
    all: bool,
    id: String,
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

/// `9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+2` → the signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || OciError::Signal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 =
            if rest.is_empty() { 0 } else { rest.strip_prefix('+').and_then(|n| n.parse().ok()).ok_or_else(bad)? };
        let n = libc::SIGRTMIN() + off;
        return if n <= libc::SIGRTMAX() { Ok(n) } else { Err(bad()) };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off: i32 =
            if rest.is_empty() { 0 } else { rest.strip_prefix('-').and_then(|n| n.parse().ok()).ok_or_else(bad)? };
        let n = libc::SIGRTMAX() - off;
        return if n >= libc::SIGRTMIN() { Ok(n) } else { Err(bad()) };
    }
    let full = format!("SIG{name}");
    full.parse::<nix::sys::signal::Signal>().map(|s| s as i32).map_err(|_| bad())
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let sig = parse_signal(&args.signal)?;
    let c = ctx.root.open(&args.id)?;
    let rec = c.record()?;
    let status = c.status();
    if args.all {
        // Every process of the cgroup, the init's leftovers too (runc allows this when stopped).
        super::cgroups::kill_all(rec, sig)?;
    } else {
        if status == Status::Stopped {
            return Err(OciError::Status {
                id: args.id,
                status: "stopped",
                verb: "kill",
                wanted: "created or running",
            });
        }
        signal_checked(rec.pid, rec.pid_start, sig)?;
    }
    // A frozen v1 task does not die before it is thawed: a kill of a paused container thaws it,
    // as runc does, so SIGKILL means gone.
    if status == Status::Paused && sig == libc::SIGKILL {
        super::cgroups::set_frozen(rec, false)?;
    }
    Ok(0)
}

/// Opens a pidfd for `pid`; None when the process is gone or is not the one that started at
/// `start` (checked after the open: the pidfd pins the process from then on).
pub fn pidfd_checked(pid: i32, start: u64) -> Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(None);
        }
        return Err(OciError::io(format!("pidfd_open({pid})"))(e));
    }
    // SAFETY: a fresh fd from pidfd_open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok(state::process_is(pid, start).then_some(fd))
}

/// Signals the container's process, if it is still that process.
pub fn signal_checked(pid: i32, start: u64, sig: i32) -> Result<()> {
    let Some(fd) = pidfd_checked(pid, start)? else {
        return Err(OciError::Other(format!("kill: process {pid} has already exited")));
    };
    // SAFETY: pidfd_send_signal on our pidfd, no siginfo.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(OciError::io(format!("kill: signalling process {pid}"))(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (s, n) in [
            ("9", 9),
            ("KILL", 9),
            ("SIGKILL", 9),
            ("sigterm", 15),
            ("term", 15),
            ("HUP", 1),
            ("SIGUSR1", 10),
            ("WINCH", 28),
        ] {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert_eq!(parse_signal("SIGRTMAX").unwrap(), libc::SIGRTMAX());
        for bad in ["", "0", "65", "-1", "FOO", "SIG", "RTMIN+99", "KILLX"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}

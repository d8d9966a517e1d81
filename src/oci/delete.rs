//! `delete [--force] ID`: removes a stopped container (with --force any: its process is killed
//! first), as runc: the process waited for, what is left in its cgroup killed, the cgroup
//! removed, the monitor entry dropped, the poststop hooks run, the state directory removed.
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::error::{OciError, Result};
use super::state::{self, Container, Status};
use super::{cgroups, hooks, kill, log, Ctx};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill the container first if it is not stopped.
    #[arg(short, long)]
    force: bool,
    id: String,
}

/// How long a killed process may take to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let c = match ctx.root.open(&args.id) {
        // runc: deleting what is not there with --force is no error (the shim's cleanup relies on it).
        Err(OciError::NotExist(_)) if args.force => return Ok(0),
        r => r?,
    };
    let status = c.status();
    if status != Status::Stopped && !args.force {
        return Err(OciError::Other(format!(
            "cannot delete container \"{}\" that is not stopped: {} (use --force)",
            args.id,
            status.as_str()
        )));
    }
    destroy(c)?;
    Ok(0)
}

/// Ends whatever runs of the container and removes every trace of it. Keeps going past a failed
/// step so as much as possible goes; the first error is returned.
pub fn destroy(c: Container) -> Result<()> {
    let mut first: Option<OciError> = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            log::warn(&e.to_string());
            first.get_or_insert(e);
        }
    };
    if let Some(rec) = c.record.clone() {
        // A frozen task dies only once thawed: SIGKILL first (so nothing runs in between), thaw.
        if state::process_is(rec.pid, rec.pid_start) && cgroups::is_frozen(&rec) {
            let _ = kill::signal_checked(rec.pid, rec.pid_start, libc::SIGKILL);
            keep(cgroups::set_frozen(&rec, false));
        }
        keep(kill_and_wait(rec.pid, rec.pid_start));
        keep(cgroups::remove(&rec));
        if let Some(id) = rec.host_root_mount {
            keep(
                crate::container::rootfs::release_host_root(&rec.rootfs, id)
                    .map_err(|e| OciError::Other(e.to_string())),
            );
        }
        if rec.monitored {
            keep(super::monitor::unregister(rec.pid));
        }
        // poststop failures are warnings (runtime-spec): the container is gone regardless.
        if let Some(hooks) = rec.hooks.as_ref() {
            hooks::run_all_warn("poststop", hooks.poststop().as_ref(), &rec.spec_state(Status::Stopped));
        }
    }
    keep(c.remove());
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// SIGKILLs the container's process if it still is that process, and waits until it is gone.
pub fn kill_and_wait(pid: i32, start: u64) -> Result<()> {
    let Some(fd) = kill::pidfd_checked(pid, start)? else { return Ok(()) };
    // SAFETY: pidfd_send_signal on our pidfd.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0) };
    // A pidfd polls readable once the process has exited (whoever reaps it).
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if left.is_zero() || rc < 0 {
            return Err(OciError::Other(format!("process {pid} did not exit within {KILL_WAIT:?} of SIGKILL")));
        }
    }
}

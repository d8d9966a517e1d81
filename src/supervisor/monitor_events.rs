//! Waits on /dev/container_monitor and records its soft-limit and hard-kill events as they come.
use std::os::fd::AsFd;
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::Supervisor;

pub fn spawn(sup: Arc<Supervisor>) -> std::io::Result<()> {
    std::thread::Builder::new().name("monitor-events".into()).spawn(move || {
        let Some(dev) = &sup.monitor else { return };
        let mut warned = false;
        loop {
            let mut fds = [PollFd::new(dev.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => sup.drain_monitor_events(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    // Keep going (more slowly): events still arrive, and the reaper drains them too.
                    if !std::mem::replace(&mut warned, true) {
                        crate::warn!("polling the kernel monitor: {e}; retrying every second");
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    sup.drain_monitor_events();
                }
            }
        }
    })?;
    Ok(())
}

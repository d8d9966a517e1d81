//! Waits on /dev/container_monitor and records its soft-limit and hard-kill events as they come.
use std::os::fd::AsFd;
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::Supervisor;

pub fn spawn(sup: Arc<Supervisor>) -> std::io::Result<()> {
    std::thread::Builder::new().name("monitor-events".into()).spawn(move || {
        let Some(dev) = &sup.monitor else { return };
        loop {
            let mut fds = [PollFd::new(dev.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => sup.drain_monitor_events(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    crate::warn!("polling the kernel monitor: {e}");
                    return;
                }
            }
        }
    })?;
    Ok(())
}

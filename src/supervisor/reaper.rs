//! SIGCHLD drives a waitpid loop; SIGINT/SIGTERM start an orderly shutdown.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{launch, Supervisor};

/// Registers the handlers now (before any container exists, so no exit is missed) and handles
/// them on a thread of their own.
pub fn spawn(sup: Arc<Supervisor>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGCHLD, SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("reaper".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGCHLD => reap_all(&sup),
                _ => {
                    if !sup.shutting_down.swap(true, Ordering::SeqCst) {
                        let sup = sup.clone();
                        // Shutdown waits for exits, which this thread must keep reaping meanwhile.
                        std::thread::spawn(move || sup.shutdown());
                    }
                }
            }
        }
    })?;
    Ok(())
}

/// SIGCHLDs coalesce: one signal may stand for many exits, so drain every waitable child.
/// Monitor events are read first: a hard-limit kill is queued before its victim can be reaped,
/// so the exit is attributed to the limit. Giving back a cgroup or a veth can take milliseconds
/// (rmdir retries, netlink), so it runs on a thread of its own and never delays the next reap.
fn reap_all(sup: &Arc<Supervisor>) {
    sup.drain_monitor_events();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                let ended = status.pid().and_then(|pid| sup.registry.on_exit(pid.as_raw(), status));
                if let Some(ended) = ended {
                    let sup = sup.clone();
                    std::thread::spawn(move || launch::release(&sup, ended));
                }
            }
        }
    }
}

//! SIGCHLD drives a waitpid loop; SIGINT/SIGTERM start an orderly shutdown. This thread must
//! never die (containers would stay zombies shown as running, SIGTERM would be ignored): nothing
//! here panics, and work it hands to other threads is done inline when no thread can start.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::workers::Workers;
use super::{launch, Supervisor};

/// Where ended containers are given back (see `reap_all`).
static RELEASE: Workers = Workers::new("release");

/// Registers the handlers now (before any container exists, so no exit is missed) and handles
/// them on a thread of their own.
pub fn spawn(sup: Arc<Supervisor>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGCHLD, SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("reaper".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGCHLD => {
                    // Last line of defence: a bug that panics while recording one exit must not
                    // take the reaper with it (registry locks are parking_lot: never poisoned).
                    let reaped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reap_all(&sup)));
                    if reaped.is_err() {
                        crate::warn!("reaper: recording an exit panicked; reaping goes on");
                    }
                }
                _ => {
                    if !sup.shutting_down.swap(true, Ordering::SeqCst) {
                        // Shutdown waits for exits, so it reaps them itself; it never returns.
                        sup.shutdown(|| reap_all(&sup));
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
                    crate::container::trace::step(&ended.name, "exit reaped");
                    let sup2 = sup.clone();
                    // A job no thread can run comes back: it is run here.
                    if let Err((job, e)) = RELEASE.run(Box::new(move || launch::release(&sup2, ended))) {
                        crate::warn!("cannot start a thread to release a container ({e}): releasing it inline");
                        job();
                    }
                }
            }
        }
    }
}

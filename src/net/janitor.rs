//! Host veths of ended containers that the kernel is still taking away. Deleting a veth pair
//! with netlink waits for RCU (unregister_netdevice: synchronize_net, then rcu_barrier and the
//! wait for the last references), 10 to 40 ms, longer than the rest of a container's start.
//! Yet the pair goes by itself once the container's network namespace dies with its last
//! process: the kernel's cleanup_net (a workqueue) unregisters the devices inside it, and the
//! peer of a veth goes with it, host end included. So `release` leaves the pair to that and
//! only watches it here: a watched address is not handed out again while its old veth is still
//! on the bridge (the old eth0 would still answer ARP for it, with the same MAC), and a veth
//! still there after [`GRACE`] (someone else holds the namespace: an `nsenter`, a bind mount)
//! is deleted for good by this thread.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::error::NetError;
use super::netlink::Netlink;

/// How long the kernel gets to take a veth away with its namespace.
pub(crate) const GRACE: Duration = Duration::from_secs(2);
/// How often the watched veths are looked at.
const POLL: Duration = Duration::from_millis(20);

struct Dying {
    veth: String,
    ip: Ipv4Addr,
    since: Instant,
}

#[derive(Default)]
struct Janitor {
    dying: Mutex<Vec<Dying>>,
    wake: Condvar,
    started: Mutex<bool>,
}

fn janitor() -> &'static Janitor {
    static JANITOR: OnceLock<Janitor> = OnceLock::new();
    JANITOR.get_or_init(Janitor::default)
}

fn lock(m: &Mutex<Vec<Dying>>) -> MutexGuard<'_, Vec<Dying>> {
    // The list stays consistent whatever a panicking holder did (it only pushes and retains).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether host veth `name` still exists (sysfs shows this namespace's links).
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Starts watching `veth` (the host end of a container whose address `ip` is being given
/// back). Called before the lease goes, so the address is never free while the veth lives.
pub(crate) fn watch(veth: &str, ip: Ipv4Addr) {
    let j = janitor();
    lock(&j.dying).push(Dying { veth: veth.to_string(), ip, since: Instant::now() });
    let mut started = j.started.lock().unwrap_or_else(|p| p.into_inner());
    if !*started {
        match std::thread::Builder::new().name("veth-janitor".into()).spawn(run) {
            Ok(_) => *started = true,
            // Without the thread the next watch tries again; meanwhile forget() still finds
            // the veths gone (the kernel does the work), and a still-held one is deleted then.
            Err(e) => crate::warn!("cannot start the veth janitor thread: {e}"),
        }
    }
    j.wake.notify_one();
}

/// Stops watching `veth`: it is gone.
pub(crate) fn forget(veth: &str) {
    lock(&janitor().dying).retain(|d| d.veth != veth);
}

/// Whether `ip` still belongs to a veth on its way out.
pub(crate) fn is_dying(ip: Ipv4Addr) -> bool {
    let mut dying = lock(&janitor().dying);
    dying.retain(|d| d.ip != ip || link_exists(&d.veth));
    dying.iter().any(|d| d.ip == ip)
}

/// Makes sure the old veth of `ip` (if one is watched) is gone before the address is given
/// out again by request (`--ip`): waits for it, deleting it if the kernel has not.
pub(crate) fn settle(ip: Ipv4Addr) -> Result<(), NetError> {
    let veths: Vec<String> = lock(&janitor().dying).iter().filter(|d| d.ip == ip).map(|d| d.veth.clone()).collect();
    if veths.is_empty() {
        return Ok(());
    }
    let mut nl = Netlink::open()?;
    for veth in veths {
        nl.delete_link(&veth)?;
        forget(&veth);
    }
    Ok(())
}

/// The janitor thread: forgets the veths the kernel took, deletes those left past the grace.
fn run() {
    let j = janitor();
    let mut nl: Option<Netlink> = None;
    loop {
        let mut dying = lock(&j.dying);
        while dying.is_empty() {
            dying = j.wake.wait(dying).unwrap_or_else(|p| p.into_inner());
        }
        dying.retain(|d| link_exists(&d.veth));
        let overdue: Vec<String> =
            dying.iter().filter(|d| d.since.elapsed() >= GRACE).map(|d| d.veth.clone()).collect();
        drop(dying);
        for veth in overdue {
            let result = match &mut nl {
                Some(nl) => nl.delete_link(&veth),
                None => Netlink::open().and_then(|n| nl.insert(n).delete_link(&veth)),
            };
            match result {
                Ok(_) => forget(&veth),
                Err(e) => {
                    // Tried again after another grace; the next supervisor's sweep finds it too.
                    crate::warn!("deleting the veth {veth} of an ended container: {e}");
                    nl = None;
                    for d in lock(&j.dying).iter_mut().filter(|d| d.veth == veth) {
                        d.since = Instant::now();
                    }
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

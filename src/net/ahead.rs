//! A bridged container's veth pair made ahead, in the network namespace its init will be cloned
//! in. Creating a pair is most of a bridged start's network work (~1.5 ms here: two net devices
//! registered, a bridge port added, their sysfs and sysctl entries), and it ran on the start's
//! path while the init waited for Start. Once a bridged start is answered, the spawner hands the
//! supervisor the namespace it will clone the next init in (`container::spawner::refill`) and
//! the request's thread makes the pair there: the host end a port of the bridge (down, IPv6 off,
//! no alias yet), the peer `eth0` inside (down, no address). The next start finds it by its name
//! and only makes it its own and configures it ([`super::plug`]). A namespace so given is never
//! given to a start without the bridge; a pair nobody takes goes with its namespace (the kernel
//! deletes a pair with either end's namespace).
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::netlink::Netlink;
use super::{veth, NetConfig};

/// Host ends being made ahead right now: a start whose pair it is waits for it ([`settled`]).
static MAKING: Mutex<Vec<String>> = Mutex::new(Vec::new());
static MADE: Condvar = Condvar::new();

/// The host end's name for the pair of the namespace `netns` on `bridge`: the pair made ahead
/// has it, and so does one a start makes (it finds the one made ahead by that name). Unique
/// while the namespace lives: a namespace's inode number is freed only after its links are gone,
/// so no new pair meets a dying one of that name.
pub(crate) fn host_name(bridge: &str, netns: &File) -> std::io::Result<String> {
    Ok(veth::host_name_of(bridge, netns.metadata()?.ino()))
}

/// Makes the pair of namespace `netns` on the network's bridge. Best effort: if the bridge is
/// gone or a step fails, what was made is deleted and the start makes its pair on its path.
pub fn make(cfg: &NetConfig, netns: &File) {
    let Ok(name) = host_name(&cfg.bridge, netns) else { return };
    MAKING.lock().push(name.clone());
    if let Ok(mut nl) = Netlink::open() {
        if let Ok(Some(master)) = nl.link_by_name(&cfg.bridge) {
            // A placeholder address, locally administered: the start sets the one of its IP.
            let mac = [0x02, 0, 0, 0, 0, 1];
            let made = nl.create_veth(&name, master.header.index, veth::CONTAINER_IFNAME, mac, netns.as_raw_fd());
            // IPv6 off before the start brings it up (see veth::disable_ipv6).
            if made.is_ok() && veth::disable_ipv6(&name).is_err() {
                let _ = nl.delete_link(&name);
            }
        }
    }
    MAKING.lock().retain(|n| *n != name);
    MADE.notify_all();
}

/// Returns once the pair named `host` is not being made ahead (at most a second: a make that
/// takes longer is left to finish; the start then finds the pair made or makes its own).
pub(crate) fn settled(host: &str) {
    let mut making = MAKING.lock();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while making.iter().any(|n| n == host) {
        if MADE.wait_until(&mut making, deadline).timed_out() {
            return;
        }
    }
}

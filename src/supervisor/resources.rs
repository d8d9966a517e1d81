//! What a container holds outside its namespaces while it lives: a cgroup, an entry in the kernel
//! memory monitor, a network attachment. Acquired between clone() and the go-ahead (so the
//! workload never runs unlimited or unplugged), released when the container ends.
use crate::cgroup::Cgroup;
use crate::net::{self, Attachment};

use super::failure::Failure;
use super::record::KillReason;
use super::spec::{ContainerSpec, NetMode};
use super::Supervisor;

#[derive(Default)]
pub struct Resources {
    pub cgroup: Option<Cgroup>,
    /// What an OOM kill inside the cgroup means: `--memory` (oom) or `--hard-mib` (hard limit).
    oom_reason: Option<KillReason>,
    /// Registered with /dev/container_monitor under the init's host pid.
    pub monitored: bool,
    /// Watched by the cgroup fallback for soft-limit crossings (`softlimit`).
    pub soft_watched: bool,
    pub network: Option<Attachment>,
    /// Its `-p` ports have DNAT rules (removed at release).
    pub published: bool,
    /// The init's mount namespace, held open so that the last reference is not the init's: the
    /// unmounting of the container's root (RCU grace periods, several ms) then happens when the
    /// supervisor lets go of this after the container is settled (`launch::give_back`), not in
    /// the init's exit, which everything that waits for the container's end waits for.
    pub mount_ns: Option<std::os::fd::OwnedFd>,
}

/// Holds the mount namespace of the process `pid` (see `Resources::mount_ns`); None if it cannot
/// (the end is then slower, nothing else changes).
pub fn hold_mount_ns(pid: i32) -> Option<std::os::fd::OwnedFd> {
    std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok().map(std::os::fd::OwnedFd::from)
}

impl Resources {
    /// Whether the cgroup's OOM killer ended the container, and what that means.
    pub fn kill_reason(&self) -> Option<KillReason> {
        self.cgroup.as_ref().filter(|c| c.oom_killed()).and(self.oom_reason)
    }
}

/// Registers the container (init `pid`, before its Setup; its cgroup at `cgroup_paths` is made
/// by the core with the limits of `to_oci`) with the memory monitor or the cgroup fallback and
/// reserves its address on the network ([`plug`] makes the links), filling `res` as it goes so
/// the caller can release a partial acquisition. Returns which mechanism enforces `--soft-mib/--hard-mib`, if they were given.
pub fn acquire(
    sup: &Supervisor,
    spec: &ContainerSpec,
    pid: i32,
    cgroup_paths: &[std::path::PathBuf],
    res: &mut Resources,
) -> Result<Option<String>, Failure> {
    res.oom_reason = Some(KillReason::Oom);
    let mut enforcement = None;
    let (soft, hard) = (spec.soft_bytes(), spec.hard_bytes());
    if soft.is_some() || hard.is_some() {
        match &sup.monitor {
            Some(dev) => {
                // An ABI 1 module would refuse the flag with a bare EINVAL: say why instead.
                if spec.soft_signal.is_some() && !dev.version().soft_signal() {
                    return Err(Failure::engine(format!(
                        "--soft-signal: the loaded container_monitor module speaks ABI {} and cannot send signals; load the monitor.ko built with this engine",
                        dev.version().abi
                    )));
                }
                dev.register(pid, soft.unwrap_or(0), hard.unwrap_or(u64::MAX), &spec.name, spec.soft_signal)
                    .map_err(|e| Failure::engine(format!("registering {} with the kernel monitor: {e}", spec.name)))?;
                res.monitored = true;
                enforcement = Some("kernel monitor (/dev/container_monitor)".to_string());
            }
            None => {
                // The cgroup's own limits (set by `to_oci::limits`) are the second line of defence.
                if hard.is_some_and(|h| spec.memory.is_none_or(|m| h <= m)) {
                    res.oom_reason = Some(KillReason::HardLimit);
                }
                let version = Cgroup::detect().map_err(|e| Failure::engine(format!("--soft-mib/--hard-mib: {e}")))?;
                enforcement = Some(format!("{version} memory (no /dev/container_monitor)"));
            }
        }
    }
    if let (false, Some(soft)) = (res.monitored, soft) {
        // The cgroup tells the supervisor of soft crossings (events, and --soft-signal).
        match sup.softlimits.add(cgroup_paths, &spec.name, soft, spec.soft_signal) {
            Ok(()) => res.soft_watched = true,
            Err(e) if spec.soft_signal.is_some() => {
                return Err(Failure::engine(format!("--soft-signal: watching the memory cgroup of {}: {e}", spec.name)))
            }
            Err(e) => crate::warn!("{}: no soft-limit events (watching its memory cgroup: {e})", spec.name),
        }
    }
    if spec.net == NetMode::Bridge {
        // The address only: the links are made by `plug`, while the init builds its root.
        let place = |lease: &std::path::Path| sup.fresh.place(lease);
        res.network = Some(net::reserve_with(&sup.net, &spec.name, spec.ip, pid, &place).map_err(Failure::engine)?);
    }
    Ok(enforcement)
}

/// Puts the container (init `pid`) on the network [`acquire`] reserved for it, if any, and
/// publishes its ports. The caller runs it after the init's Setup, while the init builds its
/// root (a bridged start's 2 ms of links no longer come before it), and before its Start: the
/// command never runs unplugged.
pub fn plug(sup: &Supervisor, spec: &ContainerSpec, pid: i32, res: &mut Resources) -> Result<(), Failure> {
    let Some(att) = &res.network else { return Ok(()) };
    net::plug(&sup.net, &spec.name, att, pid).map_err(Failure::engine)?;
    if !spec.ports.is_empty() {
        // Set before the attempt: a batch that failed half-way is still looked for at release.
        res.published = true;
        net::firewall::publish(&sup.net, &spec.name, att.ip, &spec.ports)
            .map_err(|e| Failure::engine(format!("publishing the ports of {}: {e}", spec.name)))?;
    }
    Ok(())
}

/// Gives everything back; keeps going past a failure and returns every error.
pub fn release(sup: &Supervisor, name: &str, pid: Option<i32>, res: Resources) -> Vec<String> {
    let mut errors = Vec::new();
    if res.soft_watched {
        // Before the group goes: its eventfd registration dies with it.
        super::softlimit::Watcher::remove(sup, name);
    }
    if let (true, Some(dev), Some(pid)) = (res.monitored, &sup.monitor, pid) {
        // The monitor drops a container whose init is gone by itself: ENOENT is the normal case.
        if let Err(e) = dev.unregister(pid) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                errors.push(format!("unregistering {name} from the kernel monitor: {e}"));
            }
        }
    }
    if let Some(cg) = res.cgroup {
        if let Err(e) = cg.remove() {
            errors.push(format!("removing the cgroup of {name}: {e}"));
        }
    }
    if res.published {
        if let Err(e) = net::firewall::unpublish(&sup.net, name) {
            errors.push(format!("removing the published ports of {name}: {e}"));
        }
    }
    sup.ports.release(name);
    if let Some(att) = &res.network {
        // The veth pair goes with the container's namespace (see net::release).
        if let Err(e) = net::release(&sup.net, name, att) {
            errors.push(format!("detaching {name} from {}: {e}", sup.net.bridge));
        }
    }
    errors
}

/// /etc/hosts and /etc/hostname for the container. Only their contents: the init writes them on
/// a small tmpfs of the container's own, so nothing of them is on the supervisor's disk.
pub fn etc_files(spec: &ContainerSpec, res: &Resources) -> Vec<crate::container::EtcFile> {
    use crate::container::EtcFile;
    vec![
        EtcFile {
            target: "/etc/hosts".into(),
            content: net::etc_hosts(spec.hostname(), res.network.as_ref().map(|a| a.ip)),
        },
        EtcFile { target: "/etc/hostname".into(), content: format!("{}\n", spec.hostname()) },
    ]
    .into_iter()
    // On the bridge, Docker's /etc/resolv.conf (`--dns`, else the host's); with `--net none`
    // the image's own is left alone. Bound over the target like the others: resolved inside the
    // container's root, never through a link out of it.
    .chain(
        res.network
            .is_some()
            .then(|| EtcFile { target: "/etc/resolv.conf".into(), content: net::dns::resolv_conf(&spec.dns) }),
    )
    .collect()
}

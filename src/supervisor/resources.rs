//! What a container holds outside its namespaces while it lives: a cgroup, an entry in the kernel
//! memory monitor, a network attachment. Acquired between clone() and the go-ahead (so the
//! workload never runs unlimited or unplugged), released when the container ends.
use crate::cgroup::{Cgroup, Limits, DEFAULT_PIDS_MAX};
use crate::container::spec::{ContainerSpec, NetMode};
use crate::container::state::KillReason;
use crate::net::{self, Attachment};

use super::launch::Failure;
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
}

impl Resources {
    /// Whether the cgroup's OOM killer ended the container, and what that means.
    pub fn kill_reason(&self) -> Option<KillReason> {
        self.cgroup.as_ref().filter(|c| c.oom_killed()).and(self.oom_reason)
    }
}

/// Puts the container (init `pid`, still waiting for its go-ahead) under its limits and on its
/// network, filling `res` as it goes so the caller can release a partial acquisition. Returns
/// which mechanism enforces `--soft-mib/--hard-mib`, if they were given.
pub fn acquire(
    sup: &Supervisor,
    spec: &ContainerSpec,
    pid: i32,
    res: &mut Resources,
) -> Result<Option<String>, Failure> {
    let mut limits = Limits {
        memory_max: spec.memory,
        memory_high: None,
        cpus: spec.cpus,
        pids_max: spec.pids_limit,
        cpuset_cpus: spec.cpuset_cpus.clone(),
    };
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
                // The second line of defence: the cgroup's own limits.
                limits.memory_high = soft;
                if let Some(h) = hard {
                    if limits.memory_max.is_none_or(|m| h <= m) {
                        limits.memory_max = Some(h);
                        res.oom_reason = Some(KillReason::HardLimit);
                    }
                }
                let version = Cgroup::detect().map_err(|e| Failure::engine(format!("--soft-mib/--hard-mib: {e}")))?;
                enforcement = Some(format!("{version} memory (no /dev/container_monitor)"));
            }
        }
    }
    // Every container gets its own groups, limits or not: left in the supervisor's groups it
    // would share its pids (a fork bomb would silence the socket) and have no device rules.
    limits.pids_max = spec.pids_limit.or(Some(DEFAULT_PIDS_MAX));
    let unsupported = Cgroup::unsupported(&limits).map_err(Failure::engine)?;
    // sched_setaffinity in the init pins the command where no cpuset controller is delegated.
    if unsupported.contains(&"--cpuset-cpus") {
        limits.cpuset_cpus = None;
    }
    // The default pids limit is a safety net where a pids controller exists, not a demand.
    if spec.pids_limit.is_none() && unsupported.contains(&"--pids-limit") {
        limits.pids_max = None;
    }
    let cg = Cgroup::create_in(&sup.cgroup_parent, &spec.name, &limits).map_err(Failure::engine)?;
    // The init joins it later (cgroup::add_pid_to), while it builds its root: before Start.
    let cg = res.cgroup.insert(cg);
    if let (false, Some(soft)) = (res.monitored, soft) {
        // The cgroup tells the supervisor of soft crossings (events, and --soft-signal).
        match sup.softlimits.add(&cg.paths(), &spec.name, soft, spec.soft_signal) {
            Ok(()) => res.soft_watched = true,
            Err(e) if spec.soft_signal.is_some() => {
                return Err(Failure::engine(format!("--soft-signal: watching the memory cgroup of {}: {e}", spec.name)))
            }
            Err(e) => crate::warn!("{}: no soft-limit events (watching its memory cgroup: {e})", spec.name),
        }
    }
    if spec.net == NetMode::Bridge {
        let attachment = net::attach(&sup.net, &spec.name, pid, spec.ip).map_err(Failure::engine)?;
        res.network = Some(attachment);
    }
    Ok(enforcement)
}

/// Gives everything back; keeps going past a failure and returns every error.
pub fn release(sup: &Supervisor, name: &str, pid: Option<i32>, res: Resources) -> Vec<String> {
    let mut errors = Vec::new();
    if res.soft_watched {
        // Before the group goes: its eventfd registration dies with it.
        sup.softlimits.remove(name);
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
    if res.network.is_some() {
        if let Err(e) = net::detach(&sup.net, name) {
            errors.push(format!("detaching {name} from {}: {e}", sup.net.bridge));
        }
    }
    errors
}

/// /etc/hosts and /etc/hostname for the container. Only their contents: the init writes them on
/// a small tmpfs of the container's own, so nothing of them is on the supervisor's disk.
pub fn etc_files(spec: &ContainerSpec, res: &Resources) -> Vec<crate::container::channel::EtcFile> {
    use crate::container::channel::EtcFile;
    vec![
        EtcFile {
            target: "/etc/hosts".into(),
            content: net::etc_hosts(spec.hostname(), res.network.as_ref().map(|a| a.ip)),
        },
        EtcFile { target: "/etc/hostname".into(), content: format!("{}\n", spec.hostname()) },
    ]
}

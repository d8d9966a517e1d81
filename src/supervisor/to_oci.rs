//! The Docker-style description → the OCI runtime Spec the core consumes: what docker →
//! containerd → runc do, giving exactly engine's own behaviour (namespaces, mounts, masked and
//! read-only /proc paths, Docker's capabilities, limits). What OCI has no field for travels as
//! `org.engine.*` annotations.
use std::collections::HashMap;

use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use super::failure::Failure;
use super::spec::ContainerSpec;
use crate::cgroup::{Cgroup, Limits, Version, DEFAULT_PIDS_MAX};
use crate::container::init::{ANNOTATION_CPU_AFFINITY, ANNOTATION_NICE};
use crate::container::kit;

pub const ANNOTATION_SOFT_BYTES: &str = "org.engine.monitor.soft-bytes";
pub const ANNOTATION_HARD_BYTES: &str = "org.engine.monitor.hard-bytes";
pub const ANNOTATION_SOFT_SIGNAL: &str = "org.engine.monitor.soft-signal";

/// Docker's CFS period for `--cpus`: quota = cpus × 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

/// What the translation needs to know of the host.
pub struct Host {
    /// /dev/container_monitor enforces --soft-mib/--hard-mib; without it the cgroup does.
    pub monitor: bool,
    /// Where named volumes live (`ROOT/volumes`).
    pub volumes_dir: std::path::PathBuf,
}

fn oci(what: &str) -> impl Fn(oci_spec::OciSpecError) -> Failure + '_ {
    move |e| Failure::engine(format!("building the container's {what}: {e}"))
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, Failure> {
    kit::mount_of(dest, typ, source, options).map_err(oci("mounts"))
}

/// `-v`/`--tmpfs`/`--mount`, parents before what is mounted inside them (Docker sorts the same
/// way), so `/a/b` is not hidden by a later `/a`.
fn volume_mounts(spec: &ContainerSpec, host: &Host) -> Result<Vec<Mount>, Failure> {
    use super::volumes::MountKind;
    let mut volumes: Vec<_> = spec.volumes.iter().collect();
    volumes.sort_by_key(|v| v.target.split('/').filter(|c| !c.is_empty()).count());
    let mut out = Vec::new();
    for v in volumes {
        let ro: &[&str] = if v.readonly { &["ro"] } else { &[] };
        let m = match v.kind {
            MountKind::Tmpfs => {
                let options: Vec<&str> = v.options.iter().map(String::as_str).chain(ro.iter().copied()).collect();
                mount(&v.target, "tmpfs", "tmpfs", &options)?
            }
            MountKind::Bind | MountKind::Volume => {
                let source = match v.kind {
                    MountKind::Volume => host.volumes_dir.join(&v.source).join("_data"),
                    _ => v.source.clone().into(),
                };
                let options: Vec<&str> = ["rbind", "rprivate"].into_iter().chain(ro.iter().copied()).collect();
                mount(&v.target, "bind", &source.to_string_lossy(), &options)?
            }
        };
        out.push(m);
    }
    Ok(out)
}

/// The cgroup limits of today's flags (the memory fallback of the monitor included), with what
/// this host cannot enforce left out where engine has another way or it is only a default.
pub fn limits(spec: &ContainerSpec, host: &Host) -> Result<Limits, Failure> {
    let mut limits = Limits {
        memory_max: spec.memory,
        memory_high: None,
        cpus: spec.cpus,
        pids_max: spec.pids_limit,
        cpuset_cpus: spec.cpuset_cpus.clone(),
    };
    if !host.monitor {
        // The second line of defence: the cgroup's own limits.
        limits.memory_high = spec.soft_bytes();
        if let Some(h) = spec.hard_bytes() {
            if limits.memory_max.is_none_or(|m| h <= m) {
                limits.memory_max = Some(h);
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
    Ok(limits)
}

/// The Spec for `spec` on this host; `cgroups_path` is `<parent>/<name>`; `user` is `--user` or
/// the image's User, resolved in the container's files.
pub fn translate(
    spec: &ContainerSpec,
    host: &Host,
    cgroups_path: &str,
    user: &crate::image::user::ExecUser,
) -> Result<Spec, Failure> {
    let caps: Capabilities = crate::container::security::DEFAULT_CAPS.iter().copied().collect();
    let none = Capabilities::new();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(none.clone())
        .ambient(none)
        .build()
        .map_err(oci("capabilities"))?;
    let mut environment = spec.environment();
    // HOME of the user's passwd line, as Docker, unless the image or `-e` set it.
    if let (Some(home), false) = (&user.home, spec.env.iter().any(|kv| kv.starts_with("HOME="))) {
        if let Some(slot) = environment.iter_mut().find(|(k, _)| k == "HOME") {
            slot.1 = home.clone();
        }
    }
    let env: Vec<String> = environment.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.groups.clone())
                .build()
                .map_err(oci("user"))?,
        )
        .args(spec.command.clone())
        .env(env)
        .cwd(spec.workdir.as_deref().unwrap_or("/"))
        .capabilities(capabilities)
        .no_new_privileges(spec.no_new_privileges)
        .build()
        .map_err(oci("process"))?;
    // /proc and /dev as Docker makes them (what an init makes ahead: `container::kit`).
    let mut mounts = kit::MOUNTS
        .iter()
        .map(|&(dest, typ, source, options)| mount(dest, typ, source, options))
        .collect::<Result<Vec<_>, _>>()?;
    mounts.extend(volume_mounts(spec, host)?);
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Network,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build().map_err(oci("namespaces")))
    .collect::<Result<Vec<_>, _>>()?;

    let limits = limits(spec, host)?;
    let mut resources = LinuxResourcesBuilder::default();
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(max) = limits.memory_max {
        memory = memory.limit(max as i64);
    }
    let mut unified = HashMap::new();
    if let Some(high) = limits.memory_high {
        // The soft limit: memory.high on v2 (OCI's reservation would be memory.low there), the
        // soft limit (reservation) on v1.
        match Cgroup::detect().map_err(|e| Failure::engine(format!("--soft-mib/--hard-mib: {e}")))? {
            Version::V2 => {
                unified.insert("memory.high".to_string(), high.to_string());
            }
            Version::V1 => memory = memory.reservation(high as i64),
        }
    }
    resources = resources.memory(memory.build().map_err(oci("memory limits"))?);
    if !unified.is_empty() {
        resources = resources.unified(unified);
    }
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(cpus) = limits.cpus {
        cpu = cpu.quota((cpus * CPU_PERIOD_US as f64).round() as i64).period(CPU_PERIOD_US);
    }
    if let Some(set) = &limits.cpuset_cpus {
        cpu = cpu.cpus(set.clone());
    }
    resources = resources.cpu(cpu.build().map_err(oci("CPU limits"))?);
    if let Some(pids) = limits.pids_max {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids as i64).build().map_err(oci("pids limit"))?);
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(oci("resources"))?)
        .cgroups_path(cgroups_path)
        .masked_paths(kit::masked_paths())
        .readonly_paths(kit::readonly_paths());
    if !spec.seccomp_unconfined {
        linux = linux.seccomp(crate::container::seccomp::default_profile());
    }

    let mut annotations = HashMap::new();
    if let Some(n) = spec.nice {
        annotations.insert(ANNOTATION_NICE.to_string(), n.to_string());
    }
    if let Some(cpus) = &spec.cpuset_cpus {
        annotations.insert(ANNOTATION_CPU_AFFINITY.to_string(), cpus.clone());
    }
    for (key, value) in [
        (ANNOTATION_SOFT_BYTES, spec.soft_bytes()),
        (ANNOTATION_HARD_BYTES, spec.hard_bytes()),
        (ANNOTATION_SOFT_SIGNAL, spec.soft_signal.map(|s| s as u64)),
    ] {
        if let Some(v) = value {
            annotations.insert(key.to_string(), v.to_string());
        }
    }
    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(&spec.rootfs).readonly(spec.read_only).build().map_err(oci("root"))?)
        .mounts(mounts)
        .process(process)
        .hostname(spec.hostname())
        .annotations(annotations)
        .linux(linux.build().map_err(oci("linux section"))?)
        .build()
        .map_err(oci("spec"))
}

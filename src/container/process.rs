//! Applies `spec.process` to the calling process: what the init does before the command, and
//! what an OCI `exec` does after joining a running container's namespaces.
//!
//! Order (runc's): working directory and CPU affinity while the caller can still reach them,
//! seccomp while it still holds CAP_SYS_ADMIN (so no_new_privs is not forced on the command),
//! then the capability sets, then no_new_privs.
use oci_spec::runtime::{Linux, Process};

use super::error::CoreError;
use super::security;

pub fn apply(process: &Process, linux: Option<&Linux>) -> Result<(), CoreError> {
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).map_err(|e| CoreError::Process {
        step: format!("cannot use working directory {}", cwd.display()),
        source: e.into(),
    })?;
    // execCPUAffinity.final: the CPUs after the move into the cgroup (an OCI exec's).
    if let Some(cpus) = process.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().as_ref()) {
        set_affinity(cpus, "process.execCPUAffinity.final")?;
    }
    if let Some(profile) = linux.and_then(|l| l.seccomp().as_ref()) {
        let filter = super::seccomp::compile(profile).map_err(|e| CoreError::Process {
            step: "compiling linux.seccomp".into(),
            source: std::io::Error::other(e),
        })?;
        super::seccomp::install(&filter).map_err(|e| CoreError::Process {
            step: "installing the seccomp profile".into(),
            source: std::io::Error::other(e),
        })?;
    }
    // No capabilities in the Spec: the process gets none (runc's reading of an absent list).
    security::apply_capabilities(process.capabilities().as_ref())?;
    if process.no_new_privileges() == Some(true) {
        security::set_no_new_privileges()?;
    }
    Ok(())
}

/// Pins the calling process to the CPU list `cpus` (`field`: where it came from, for the error).
/// Works even where no cpuset controller is delegated.
pub fn set_affinity(cpus: &str, field: &str) -> Result<(), CoreError> {
    let list = crate::cgroup::parse_cpuset(cpus).map_err(|e| CoreError::spec(field, format!("{cpus:?}: {e}")))?;
    let mut set = nix::sched::CpuSet::new();
    for cpu in list {
        set.set(cpu).map_err(|e| CoreError::Process { step: format!("CPU affinity: CPU {cpu}"), source: e.into() })?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| CoreError::Process { step: "sched_setaffinity".into(), source: e.into() })
}

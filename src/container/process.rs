//! Applies `spec.process` to the calling process: what the init does before the command, and
//! what an OCI `exec` does after joining a running container's namespaces.
//!
//! Order (runc's): rlimits and oom_score_adj while the caller may still raise them; the
//! bounding set while it holds CAP_SETPCAP; the user (groups, gid, uid) keeping the capabilities
//! across the switch; the working directory as that user; then the capability sets. Seccomp comes
//! first when no_new_privs is off (installing a filter then needs CAP_SYS_ADMIN) and last when it
//! is on (so the filter sees only the exec), as runc does.
use std::io;

use oci_spec::runtime::{Linux, PosixRlimitType, Process};

use super::error::CoreError;
use super::security::{self, syscall_result};

/// `compiled`: linux.seccomp already compiled (None: compiled here, if there is one).
pub fn apply(
    process: &Process,
    linux: Option<&Linux>,
    compiled: Option<&super::seccomp::Filter>,
) -> Result<(), CoreError> {
    for limit in process.rlimits().iter().flatten() {
        let rlim = libc::rlimit { rlim_cur: limit.soft(), rlim_max: limit.hard() };
        // SAFETY: a valid rlimit struct for the call.
        let rc = unsafe { libc::setrlimit(rlimit_resource(limit.typ()), &rlim) };
        syscall_result(rc.into()).map_err(CoreError::process(format!("setrlimit {}", limit.typ())))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(CoreError::process(format!("setting oom_score_adj to {adj}")))?;
    }
    // execCPUAffinity.final: the CPUs after the move into the cgroup (an OCI exec's).
    if let Some(cpus) = process.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().as_ref()) {
        set_affinity(cpus, "process.execCPUAffinity.final")?;
    }
    let nnp = process.no_new_privileges() == Some(true);
    let seccomp = linux.and_then(|l| l.seccomp().as_ref());
    let filter = match compiled {
        Some(filter) => Some(std::borrow::Cow::Borrowed(filter)),
        None => seccomp.map(super::seccomp::compile).transpose()?.map(std::borrow::Cow::Owned),
    };
    if let (false, Some(filter)) = (nnp, &filter) {
        super::seccomp::install(filter)?;
    }
    let caps = process.capabilities().as_ref();
    security::limit_bounding(security::set_mask(caps, |c| c.bounding()))?;
    set_user(process)?;
    if let Some(mask) = process.user().umask() {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).map_err(|e| CoreError::Process {
        step: format!("cannot use working directory {}", cwd.display()),
        source: e.into(),
    })?;
    // No capabilities in the Spec: the process gets none (runc's reading of an absent list).
    security::apply_capabilities(caps)?;
    if nnp {
        security::set_no_new_privileges()?;
        if let Some(filter) = &filter {
            super::seccomp::install(filter)?;
        }
    }
    Ok(())
}

/// Supplementary groups, gid, uid, in that order (each later step needs the privilege the
/// earlier ones keep). The capabilities survive the uid switch (PR_SET_KEEPCAPS) until the
/// capability sets are applied.
fn set_user(process: &Process) -> Result<(), CoreError> {
    let user = process.user();
    let (uid, gid) = (user.uid(), user.gid());
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // SAFETY: a pointer and length of a live vector.
    let rc = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    // EPERM in a user namespace whose setgroups is denied: only an empty list is possible there.
    if let Err(e) = syscall_result(rc.into()) {
        if !(groups.is_empty() && e.raw_os_error() == Some(libc::EPERM)) {
            return Err(CoreError::process(format!("setgroups {groups:?}"))(e));
        }
    }
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        syscall_result(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into())
            .map_err(CoreError::process("PR_SET_KEEPCAPS"))?;
        syscall_result(libc::setresgid(gid, gid, gid).into())
            .map_err(CoreError::process(format!("setresgid {gid}")))?;
        syscall_result(libc::setresuid(uid, uid, uid).into())
            .map_err(CoreError::process(format!("setresuid {uid}")))?;
        syscall_result(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0).into())
            .map_err(CoreError::process("PR_SET_KEEPCAPS"))?;
    }
    Ok(())
}

fn rlimit_resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
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
        .map_err(|e| CoreError::Process { step: "sched_setaffinity".into(), source: io::Error::from(e) })
}

//! The container's init: `engine` re-exec'd as `engine-init` inside the new namespaces.
//!
//! It waits for the supervisor's go-ahead, builds the container's view of the system (rootfs,
//! /proc, /dev, hostname, loopback, workdir, nice), starts the command as its child and stays as
//! PID 1: it forwards signals to the command, reaps orphans (what `docker --init` adds), and reports
//! how the command ended before exiting with the same code.
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::channel::{EtcFile, FromInit, InitChannel, ToInit};
use super::rootfs;
use super::spawn::INIT_CHANNEL_FD;
use super::spec::ContainerSpec;
use super::state::Termination;

/// Docker's exit codes for a container that never ran its command.
pub const EXIT_ENGINE_ERROR: i32 = 125;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// A failure before the command runs: a sentence naming the step, and the user's exit code.
#[derive(Debug)]
pub struct SetupError {
    pub message: String,
    pub exit_code: i32,
}

impl SetupError {
    pub fn new(message: String) -> SetupError {
        SetupError { message, exit_code: EXIT_ENGINE_ERROR }
    }
}

/// Entry point of `engine-init`; the return value is the process exit code.
pub fn main() -> i32 {
    // Whatever the supervisor had open must not reach the container (the class of leak behind
    // CVE-2024-21626): close everything but stdio and the channel, and whatever the init opens
    // itself from here on is close-on-exec.
    close_fds_from(INIT_CHANNEL_FD as u32 + 1);
    // The channel stays with the init; the command must not inherit it.
    // SAFETY: sets a flag on an fd this process owns.
    unsafe { libc::fcntl(INIT_CHANNEL_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: fd 3 is the init channel, placed there by spawn::exec_init.
    let chan = unsafe { InitChannel::from_raw_fd(INIT_CHANNEL_FD) };
    let (spec, files, overlay) = match chan.recv::<ToInit>() {
        Ok(Some(ToInit::Prepare { spec, files, overlay })) => (spec, files, overlay),
        // The supervisor gave up on this container before releasing it.
        _ => return EXIT_ENGINE_ERROR,
    };
    let signals = forwarded_signals();
    let started = prepare_root(&spec, &files, &overlay)
        .and_then(|()| wait_for_start(&chan))
        .and_then(|()| prepare_process(&spec))
        .and_then(|()| start_command(&spec, &signals));
    let child = match started {
        Ok(child) => child,
        Err(e) => {
            let _ = chan.send(&FromInit::Failed { message: e.message, exit_code: e.exit_code });
            return e.exit_code;
        }
    };
    let _ = chan.send(&FromInit::Started { pid: child.as_raw() });
    let how = supervise(child, &signals);
    let _ = chan.send(&FromInit::Exited(how));
    match how {
        Termination::Code(c) => c,
        Termination::Signal(s) => 128 + s,
    }
}

fn close_fds_from(first: u32) {
    // SAFETY: nothing in this fresh process owns an fd at or above `first` yet.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    if rc != 0 {
        // Kernels before 5.11: walk the fd table instead.
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map(|dir| dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        for fd in fds.into_iter().filter(|&fd| fd >= first as i32) {
            // SAFETY: as above; the directory's own fd may already be gone (EBADF is fine).
            unsafe { libc::close(fd) };
        }
    }
}

/// Namespaced system state, in the order the design gives: mounts, pivot_root, host name, lo.
/// Nothing here needs the cgroups, so it overlaps with the supervisor moving us into them.
fn prepare_root(spec: &ContainerSpec, files: &[EtcFile], overlay: &std::path::Path) -> Result<(), SetupError> {
    rootfs::enter(spec, overlay, files)?;
    nix::unistd::sethostname(spec.hostname()).map_err(|e| SetupError::new(format!("sethostname: {e}")))?;
    loopback_up().map_err(|e| SetupError::new(format!("bringing up lo: {e}")))
}

/// Blocks until the supervisor has put this process in its cgroups and saved the record.
fn wait_for_start(chan: &InitChannel) -> Result<(), SetupError> {
    match chan.recv::<ToInit>() {
        Ok(Some(ToInit::Start)) => Ok(()),
        Ok(Some(other)) => Err(SetupError::new(format!("unexpected message before the start: {other:?}"))),
        Ok(None) => Err(SetupError::new("the supervisor gave up before the start".into())),
        Err(e) => Err(SetupError::new(format!("waiting for the start: {e}"))),
    }
}

/// The process's own settings, after the move into the cgroups (a cpuset move would reset the
/// affinity set here), ending with what drops privileges.
fn prepare_process(spec: &ContainerSpec) -> Result<(), SetupError> {
    let workdir = spec.workdir.as_deref().unwrap_or("/");
    nix::unistd::chdir(workdir).map_err(|e| SetupError::new(format!("cannot use working directory {workdir}: {e}")))?;
    if let Some(cpus) = spec.cpu_list().map_err(|e| SetupError::new(e.0))? {
        // Pinning works even where no cpuset controller is delegated to engine.
        let mut set = nix::sched::CpuSet::new();
        for cpu in cpus {
            set.set(cpu).map_err(|e| SetupError::new(format!("--cpuset-cpus: CPU {cpu}: {e}")))?;
        }
        nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
            .map_err(|e| SetupError::new(format!("--cpuset-cpus: sched_setaffinity: {e}")))?;
    }
    if let Some(n) = spec.nice {
        // SAFETY: plain syscall with integer arguments.
        super::security::syscall_result(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) }.into())
            .map_err(|e| SetupError::new(format!("setpriority({n}): {e}")))?;
    }
    // Last: the steps above need capabilities (and calls) the container's root does not keep.
    if !spec.seccomp_unconfined {
        let filter = super::seccomp::compile(&super::seccomp::default_profile())
            .map_err(|e| SetupError::new(format!("seccomp profile: {e}")))?;
        super::seccomp::install(&filter).map_err(|e| SetupError::new(e.to_string()))?;
    }
    super::security::drop_capabilities()?;
    if spec.no_new_privileges {
        super::security::set_no_new_privileges()?;
    }
    super::security::hide_init()
}

/// The new network namespace has only `lo`, and it is down.
fn loopback_up() -> io::Result<()> {
    use super::security::syscall_result;
    // SAFETY: a zeroed ifreq is valid; the socket is closed by OwnedFd.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let _guard = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        syscall_result(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr).into())?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        syscall_result(libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr).into())
    }
}

/// Every signal the init passes on to the command. PID 1 of a namespace only receives signals it
/// has a handler for, so each gets a no-op handler and stays blocked; `sigwait` picks them up.
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [Signal::SIGKILL, Signal::SIGSTOP, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGFPE, Signal::SIGILL] {
        set.remove(s);
    }
    set
}

extern "C" fn ignore(_: libc::c_int) {}

fn start_command(spec: &ContainerSpec, signals: &SigSet) -> Result<Pid, SetupError> {
    // Blocked before the fork, so no signal is lost between spawn and the wait loop. The child
    // unblocks them again before exec (the mask survives exec; the handlers do not).
    signals.thread_block().map_err(|e| SetupError::new(format!("blocking signals: {e}")))?;
    let action = SigAction::new(SigHandler::Handler(ignore), SaFlags::SA_RESTART, SigSet::empty());
    for sig in signals.iter() {
        // SAFETY: the handler does nothing; failures (SIGKILL-like) are harmless.
        let _ = unsafe { sigaction(sig, &action) };
    }
    let mut cmd = Command::new(&spec.command[0]);
    // Its own process group, so a forwarded signal reaches the whole job, as Ctrl-C in a terminal
    // would (`tini -g`): `sh -c 'a; b'` would otherwise wait for `a` before acting on SIGINT.
    cmd.args(&spec.command[1..]).env_clear().envs(spec.environment()).arg0(&spec.command[0]).process_group(0);
    // SAFETY: pthread_sigmask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| SigSet::empty().thread_set_mask().map_err(io::Error::from));
    }
    match cmd.spawn() {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(e) => Err(exec_error(&spec.command[0], e)),
    }
}

fn exec_error(program: &str, e: io::Error) -> SetupError {
    let exit_code = match e.kind() {
        io::ErrorKind::NotFound => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    };
    let why = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)).desc();
    SetupError { message: format!("exec {program}: {why}"), exit_code }
}

/// Forward signals to the command and reap every child until the command itself has ended.
fn supervise(child: Pid, signals: &SigSet) -> Termination {
    loop {
        let sig = match signals.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // The group first; if the command already left it, at least the command itself.
            if kill(Pid::from_raw(-child.as_raw()), sig).is_err() {
                let _ = kill(child, sig);
            }
            continue;
        }
        let mut ended = None;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => ended = Some(Termination::Code(code)),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => ended = Some(Termination::Signal(s as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {} // an orphan reaped
            }
        }
        if let Some(how) = ended {
            return how;
        }
    }
}

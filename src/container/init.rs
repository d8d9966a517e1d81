//! The container's init: `engine` re-exec'd as `engine-init` inside the new namespaces.
//!
//! It waits for its Setup, builds the container's view of the system (root, mounts, /dev,
//! hostname, loopback), reports Ready and waits at its start gate (a Start on the channel, or
//! the OCI fifo), applies the process's settings and then either execs the command itself (Exec
//! mode: the command is PID 1) or starts it as its child and stays as PID 1 (Reaper mode: it
//! forwards signals, reaps orphans as `docker --init` does, and reports how the command ended).
use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::channel::{FromInit, InitChannel, Plan};
use super::error::CoreError;
use super::exit::{self, Termination};
use super::lifecycle::{InitMode, StartGate};
use super::process;
use super::rootfs::{self, Kit};
use super::spawn::{INIT_CHANNEL_FD, INIT_CONSOLE_FD};

/// Annotation: the command's scheduling niceness (-20..19); OCI has no plain field for it.
pub const ANNOTATION_NICE: &str = "org.engine.nice";
/// Annotation: a CPU list the command is pinned to after the move into its cgroup (what
/// `--cpuset-cpus` gives where no cpuset controller is delegated; execCPUAffinity is for exec).
pub const ANNOTATION_CPU_AFFINITY: &str = "org.engine.cpu-affinity";

/// Entry point of `engine-init`; the return value is the process exit code.
pub fn main() -> i32 {
    main_after_clone(None)
}

/// [`main`], for an init the spawner cloned; `ahead`: before any request asked for it
/// (`spawner::ReadyInit`), so it has idle time to warm up in before its Setup; `Some(true)`:
/// cloned in the spawner's holding namespace, to make the mounts every container gets there
/// (see `kit`).
pub(crate) fn main_after_clone(ahead: Option<bool>) -> i32 {
    // Whatever the parent had open must not reach the container (the class of leak behind
    // CVE-2024-21626): close everything but stdio and the channel, and whatever the init opens
    // itself from here on is close-on-exec.
    // Fd 4 may be the console socket: whether it is, the plan says (closed below if not).
    close_fds_from(INIT_CONSOLE_FD as u32 + 1);
    // The channel (and console socket) stay with the init; the command must not inherit them.
    // SAFETY: sets a flag on fds this process owns (EBADF on a closed 4 is harmless).
    unsafe {
        libc::fcntl(INIT_CHANNEL_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(INIT_CONSOLE_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: fd 3 is the init channel, placed there by spawn::exec_init.
    let chan = unsafe { InitChannel::from_raw_fd(INIT_CHANNEL_FD) };
    if ahead.is_some() {
        warm_up();
    }
    // In a copy of the spawner's holding namespace: the kit, or nothing to build a root with.
    let kit = (ahead == Some(true)).then(Kit::make);
    if ahead.is_some() {
        warm_up_after_kit();
    }
    // The parent gave up on this container before its Setup: nothing was done.
    let Ok(mut plan) = chan.wait_setup() else { return exit::ENGINE_ERROR };
    let kit = match kit.transpose() {
        Ok(kit) => kit,
        Err(e) => {
            report_failure(&chan, &e);
            return e.exit_code();
        }
    };
    let console = match plan.console {
        // SAFETY: spawn::exec_init placed the console socket at fd 4 for this plan.
        true => Some(unsafe { OwnedFd::from_raw_fd(INIT_CONSOLE_FD) }),
        false => {
            // Not ours: whatever the caller left at 4 (close-on-exec already).
            // SAFETY: closing an fd nothing here uses.
            unsafe { libc::close(INIT_CONSOLE_FD) };
            None
        }
    };
    // An overlay root made ahead: its mount is the first fd after the Setup.
    let root_mount = match plan.root_mount {
        true => match chan.recv_fds(1).map(|mut fds| fds.pop()) {
            Ok(fd) => fd,
            Err(e) => {
                let e = CoreError::from(e);
                report_failure(&chan, &e);
                return e.exit_code();
            }
        },
        false => None,
    };
    // The cgroups' `tasks` files, opened ahead (see `Plan::cgroup_tasks_sent`).
    let tasks = match plan.cgroup_tasks_sent {
        false => Vec::new(),
        true => match chan.recv_fds(plan.cgroup_self_join.len()) {
            Ok(fds) => fds,
            Err(e) => {
                let e = CoreError::from(e);
                report_failure(&chan, &e);
                return e.exit_code();
            }
        },
    };
    // The step trace's file: the next fd, when tracing (before any preserved fds: those take
    // 3 .. 3+N-1 only at the exec).
    let trace_file = match plan.trace {
        None => None,
        Some(_) => match chan.recv_fds(1).map(|mut fds| fds.pop()) {
            Ok(fd) => fd,
            Err(e) => {
                let e = CoreError::from(e);
                report_failure(&chan, &e);
                return e.exit_code();
            }
        },
    };
    // --preserve-fds: they follow the Setup; the channel and the console socket leave 3 and 4
    // to them (`place_preserved` puts them there at the exec).
    let (chan, console, preserved) = match take_preserved(chan, console, plan.preserve_fds) {
        Ok(taken) => taken,
        Err((chan, e)) => {
            report_failure(&chan, &e);
            return e.exit_code();
        }
    };
    let signals = forwarded_signals();
    let trace = super::trace::InitTrace::open(plan.trace.as_ref(), trace_file);
    trace.step(&plan.id, "init: Setup received");
    let given = Given { root_mount, tasks, kit };
    let child = match run(&chan, &mut plan, console, preserved, given, &signals, &trace) {
        Ok(child) => child,
        Err(e) => {
            // After a Fifo gate nobody reads the channel any more: the container's stderr is
            // where runc reports it too.
            if !report_failure(&chan, &e) {
                let _ = writeln!(io::stderr(), "engine-init: {e}");
            }
            return e.exit_code();
        }
    };
    trace.step(&plan.id, "init: command spawned");
    let_go_of_output();
    let _ = chan.send(&FromInit::Started { pid: child.as_raw() });
    // The engine's code pages the init mapped (~4.4 MB; ~2 MB faulted back in after an early
    // drop, see `let_go_of_code_pages`), let go once the command has run for LATE_DROP_AFTER:
    // a short command's exit is not held up by it (0.2-1 ms). Under the container's seccomp
    // profile by now: only where it cannot kill the init for it.
    let late_drop = (!plan.madvise_denied).then_some(LATE_DROP_AFTER);
    let how = supervise(child, &signals, late_drop);
    trace.step(&plan.id, "init: command reaped");
    let _ = chan.send(&FromInit::Exited(how));
    trace.step(&plan.id, "init: Exited sent");
    drop(trace);
    how.exit_code()
}

/// Tells the parent why the init gives up; whether that reached the channel. What the parent
/// sent meanwhile (a Start sent ahead of Ready, `Pending::start_when_ready`) is read off first:
/// a socket closed with unread messages resets its peer, whose next read would then fail with
/// ECONNRESET instead of reading this report.
fn report_failure(chan: &InitChannel, e: &CoreError) -> bool {
    chan.discard_unread();
    chan.send(&FromInit::Failed(e.to_failure())).is_ok()
}

/// What came with the Setup on the channel (the root mounted ahead, the cgroups' `tasks` files),
/// and the mounts this init made ahead.
struct Given {
    root_mount: Option<OwnedFd>,
    tasks: Vec<OwnedFd>,
    kit: Option<Kit>,
}

/// Everything up to the command; in Exec mode it does not return on success.
fn run(
    chan: &InitChannel,
    plan: &mut Plan,
    console: Option<OwnedFd>,
    preserved: Vec<OwnedFd>,
    given: Given,
    signals: &SigSet,
    trace: &super::trace::InitTrace,
) -> Result<Pid, CoreError> {
    let spec = &plan.spec;
    let process = spec.process().as_ref().ok_or_else(|| CoreError::spec("process", "missing"))?;
    // First, before anything else happens in the container: its cgroups.
    join_cgroups(&plan.cgroup_self_join, given.tasks)?;
    trace.step(&plan.id, "init: cgroups joined");
    // The fifo is a host path: held as an O_PATH fd from before the namespaces are joined and
    // the pivot, reopened after.
    let fifo = match &plan.gate {
        StartGate::Fifo(path) => Some(open_path(path)?),
        StartGate::Channel => None,
    };
    join_namespaces(spec)?;
    // The spawner hands an init with a kit only to a start whose Spec it fits; checked again on
    // the Spec this init was given: it can build no other (its namespace has nothing of the host's).
    let kit = given.kit;
    if kit.is_some() && !super::kit::fits(spec) {
        return Err(CoreError::spec("mounts", "the init made ahead was given a Spec its mounts do not fit"));
    }
    let made_ahead = kit.is_some();
    if plan.files_follow {
        plan.files = chan.wait_files()?;
    }
    let plan = &*plan;
    rootfs::build(plan, given.root_mount, kit)?;
    trace.step(&plan.id, "init: root built");
    if made_ahead {
        trace.step(&plan.id, "init: /proc and /dev were made ahead");
    }
    if let Some(name) = spec.hostname() {
        nix::unistd::sethostname(name)
            .map_err(|e| CoreError::Process { step: "sethostname".into(), source: e.into() })?;
    }
    if let Some(name) = spec.domainname() {
        set_domainname(name)?;
    }
    if rootfs::has_new_namespace(spec, LinuxNamespaceType::Network) {
        loopback_up().map_err(CoreError::process("bringing up lo"))?;
    }
    if let Some(socket) = console {
        // After the root (the container's own /dev/ptmx and devpts), before the process's
        // settings drop the rights to open it; the slave becomes the controlling terminal at
        // the exec (take_terminal).
        let size = process.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16));
        super::console::attach(socket.as_fd(), size).map_err(CoreError::process(
            "process.terminal: the container's pty from /dev/ptmx to the console socket",
        ))?;
    }
    match fifo {
        Some(fifo) => {
            // Runc's order: everything applied, the program found, then the gate.
            finish(spec, process, plan.seccomp.as_ref())?;
            let program = resolve_program(process)?;
            chan.send(&FromInit::Ready)?;
            wait_fifo(&fifo)?;
            start_hooks(plan)?;
            match plan.mode {
                InitMode::Exec => {
                    place_preserved(preserved)?;
                    Err(exec(&program, process))
                }
                InitMode::Reaper => reaper(process, signals),
            }
        }
        None => {
            trace.step(&plan.id, "init: Ready sent");
            chan.send(&FromInit::Ready)?;
            // Now the parent has moved us into our cgroup (a cpuset move would reset an
            // affinity set earlier) and saved what it must.
            chan.wait_start()?;
            trace.step(&plan.id, "init: Start received");
            if plan.mode == InitMode::Reaper && plan.rss_limited {
                // Before the process's settings: a seccomp profile could refuse madvise after.
                let_go_of_code_pages();
            }
            finish(spec, process, plan.seccomp.as_ref())?;
            trace.step(&plan.id, "init: process applied (seccomp, caps)");
            start_hooks(plan)?;
            match plan.mode {
                InitMode::Exec => {
                    let program = resolve_program(process)?;
                    place_preserved(preserved)?;
                    Err(exec(&program, process))
                }
                InitMode::Reaper => reaper(process, signals),
            }
        }
    }
}

type Taken = (InitChannel, Option<OwnedFd>, Vec<OwnedFd>);

/// Receives the `n` preserved fds and moves the channel and the console socket above 3+n-1
/// (close-on-exec all), so the fds can take 3 .. 3+n-1 at the exec.
fn take_preserved(chan: InitChannel, console: Option<OwnedFd>, n: usize) -> Result<Taken, (InitChannel, CoreError)> {
    if n == 0 {
        return Ok((chan, console, Vec::new()));
    }
    let fds = match chan.recv_fds(n) {
        Ok(fds) => fds,
        Err(e) => return Err((chan, e.into())),
    };
    let min = INIT_CHANNEL_FD + n as i32;
    // The old numbers close once the copies exist (dropped here).
    let console = match console.as_ref().map(|c| super::channel::dup_above(c, min)).transpose() {
        Ok(moved) => moved,
        Err(e) => return Err((chan, CoreError::process("moving the console socket above the preserved fds")(e))),
    };
    match chan.renumber(min) {
        Ok(moved) => {
            drop(chan);
            Ok((moved, console, fds))
        }
        Err(e) => Err((chan, CoreError::process("moving the init channel above the preserved fds")(e))),
    }
}

/// The preserved fds become 3, 4, ... (inheritable) right before the exec: first all moved above
/// the range (a source may sit on another's target), then each dup2'd onto its number.
fn place_preserved(fds: Vec<OwnedFd>) -> Result<(), CoreError> {
    if fds.is_empty() {
        return Ok(());
    }
    let min = INIT_CHANNEL_FD + fds.len() as i32;
    let high = fds
        .iter()
        .map(|fd| super::channel::dup_above(fd, min))
        .collect::<io::Result<Vec<_>>>()
        .map_err(CoreError::process("moving the preserved fds"))?;
    drop(fds);
    for (i, fd) in high.iter().enumerate() {
        // SAFETY: dup2 of an fd owned here onto a number nothing else of the init uses now.
        let rc = unsafe { libc::dup2(fd.as_raw_fd(), INIT_CHANNEL_FD + i as i32) };
        if rc < 0 {
            return Err(CoreError::process(format!("placing preserved fd {}", INIT_CHANNEL_FD + i as i32))(
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// The process's own settings, in the cgroup, ending with what drops privileges.
fn finish(spec: &super::Spec, process: &Process, seccomp: Option<&super::seccomp::Filter>) -> Result<(), CoreError> {
    if rootfs::has_new_namespace(spec, LinuxNamespaceType::Cgroup) {
        // After the move into the cgroup: the namespace's root is the container's own group.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| CoreError::Process { step: "unshare(CLONE_NEWCGROUP)".into(), source: e.into() })?;
    }
    if let Some(n) = spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION_NICE)) {
        let n: i32 = n.parse().map_err(|_| CoreError::spec(format!("annotations.{ANNOTATION_NICE}"), n.clone()))?;
        // SAFETY: plain syscall with integer arguments.
        super::security::syscall_result(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) }.into())
            .map_err(CoreError::process(format!("setpriority({n})")))?;
    }
    if let Some(cpus) = spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION_CPU_AFFINITY)) {
        process::set_affinity(cpus, ANNOTATION_CPU_AFFINITY)?;
    }
    process::apply(process, spec.linux().as_ref(), seccomp)
}

/// Moves this (single-threaded) process into each v1 cgroup directory by writing "0" (the
/// calling thread) to its `tasks`: a thread moving itself is migrated without the global
/// threadgroup lock a write of a pid to `cgroup.procs` takes, so no RCU grace period is waited
/// for. `opened`: those files as the parent opened them ahead, one per directory (each closes
/// once written); empty: each is opened here.
fn join_cgroups(dirs: &[PathBuf], opened: Vec<OwnedFd>) -> Result<(), CoreError> {
    let err = |dir: &PathBuf| CoreError::process(format!("joining the cgroup {}", dir.display()));
    if !opened.is_empty() {
        for (file, dir) in opened.into_iter().zip(dirs) {
            std::fs::File::from(file).write_all(b"0").map_err(err(dir))?;
        }
        return Ok(());
    }
    for dir in dirs {
        let file = std::fs::OpenOptions::new().write(true).open(dir.join("tasks"));
        file.and_then(|mut f| f.write_all(b"0")).map_err(err(dir))?;
    }
    Ok(())
}

fn set_domainname(name: &str) -> Result<(), CoreError> {
    // SAFETY: pointer and length of a live string.
    super::security::syscall_result(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }.into())
        .map_err(CoreError::process("setdomainname"))
}

fn open_path(path: &Path) -> Result<OwnedFd, CoreError> {
    let fd =
        nix::fcntl::open(path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| CoreError::Fifo { path: path.to_path_buf(), source: e.into() })?;
    // SAFETY: a fresh fd owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks until `start_fifo` opens the other end, then writes the byte it reads.
fn wait_fifo(fifo: &OwnedFd) -> Result<(), CoreError> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", fifo.as_raw_fd()));
    let err = |source: io::Error| CoreError::Fifo { path: path.clone(), source };
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).map_err(err)?;
    f.write_all(b"0").map_err(err)
}

/// Where execve will find args[0]: as given when it has a '/', else the first executable
/// regular file in the process's PATH (the default one if it has none). Not found: ENOENT;
/// found but not executable: EACCES (execvp's rules).
pub(crate) fn resolve_program(process: &Process) -> Result<CString, CoreError> {
    let program = process.args().as_ref().and_then(|a| a.first()).cloned().unwrap_or_default();
    let fail = |errno: i32| CoreError::Exec { program: program.clone(), errno };
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(&program)]
    } else {
        let path = process
            .env()
            .as_ref()
            .and_then(|env| env.iter().rev().find_map(|kv| kv.strip_prefix("PATH=")).map(str::to_string))
            .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(&program)).collect()
    };
    let mut errno = libc::ENOENT;
    for c in candidates {
        let Ok(cpath) = CString::new(c.as_os_str().as_encoded_bytes()) else { return Err(fail(libc::EINVAL)) };
        // SAFETY: a valid C string.
        if unsafe { libc::access(cpath.as_ptr(), libc::X_OK) } == 0 {
            match std::fs::metadata(&c) {
                Ok(m) if m.is_file() => return Ok(cpath),
                Ok(_) => errno = libc::EACCES,
                Err(_) => {}
            }
        } else {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT);
            if e != libc::ENOENT && e != libc::ENOTDIR {
                errno = e;
            }
        }
    }
    Err(fail(errno))
}

/// Reaper mode: the init stays, running the host's engine binary and holding the channel to the
/// parent: made non-dumpable, processes of the container cannot ptrace it, read /proc/1/exe or
/// reach its fds (what runc guards against since CVE-2019-5736). Not earlier: a non-dumpable
/// process's /proc/self/fd is root's, which a non-root init could not reopen its fifo through.
/// (In Exec mode the exec replaces the init's image and resets the flag anyway.)
fn reaper(process: &Process, signals: &SigSet) -> Result<Pid, CoreError> {
    super::security::hide_init()?;
    start_command(process, signals)
}

/// startContainer: after the start gate, before the program is exec'd (runc's place: the process
/// already applied), its path resolved in the container's root.
fn start_hooks(plan: &Plan) -> Result<(), CoreError> {
    super::hooks::run_in_init(
        "startContainer",
        plan.spec.hooks().as_ref().and_then(|h| h.start_container().as_ref()),
        plan.hook_state.as_deref(),
    )
}

/// Joins the namespaces the Spec gives by path (a pid namespace was entered by the clone). The
/// user namespace first would be needed for the others; joining one is not supported.
fn join_namespaces(spec: &super::Spec) -> Result<(), CoreError> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    // Every path opened first: once in another mount namespace, the later paths would resolve there.
    let mut joins = Vec::new();
    for ns in namespaces.into_iter().flatten() {
        let (Some(path), flag) = (
            ns.path(),
            match ns.typ() {
                LinuxNamespaceType::Network => nix::sched::CloneFlags::CLONE_NEWNET,
                LinuxNamespaceType::Ipc => nix::sched::CloneFlags::CLONE_NEWIPC,
                LinuxNamespaceType::Uts => nix::sched::CloneFlags::CLONE_NEWUTS,
                LinuxNamespaceType::Cgroup => nix::sched::CloneFlags::CLONE_NEWCGROUP,
                LinuxNamespaceType::Mount => nix::sched::CloneFlags::CLONE_NEWNS,
                _ => continue,
            },
        ) else {
            continue;
        };
        let err =
            |e: nix::Error| CoreError::Namespace { kind: ns.typ().to_string(), path: path.clone(), source: e.into() };
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(err)?;
        // SAFETY: a fresh fd owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        joins.push((fd, flag, ns.typ().to_string(), path.clone()));
    }
    for (fd, flag, kind, path) in joins {
        nix::sched::setns(&fd, flag).map_err(|e| CoreError::Namespace { kind, path, source: e.into() })?;
    }
    Ok(())
}

/// process.terminal: fd 0 is a terminal (the pty slave the caller gave) and becomes the
/// controlling terminal of a new session, as a login would make it.
fn take_terminal() -> io::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: ioctl on fd 0 with an integer argument.
    super::security::syscall_result(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }.into())
}

/// Exec mode (and `engine-oci exec`): the command replaces this process, with a terminal of
/// its own session when it asks for one. Returns only on failure.
pub(crate) fn exec(program: &CString, process: &Process) -> CoreError {
    if process.terminal() == Some(true) {
        if let Err(e) = take_terminal() {
            return CoreError::process("making fd 0 the controlling terminal")(e);
        }
    }
    let name = program.to_string_lossy().into_owned();
    let cstrings = |v: &[String]| v.iter().map(|s| CString::new(s.as_bytes())).collect::<Result<Vec<_>, _>>();
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let (Ok(args), Ok(env)) = (cstrings(args), cstrings(env)) else {
        return CoreError::spec("process", "arguments and environment must not contain NUL bytes");
    };
    default_signals();
    match nix::unistd::execve(program, &args, &env) {
        Err(e) => CoreError::Exec { program: name, errno: e as i32 },
        Ok(never) => match never {},
    }
}

/// Every signal back to its default action and none blocked, so the command starts as under
/// runc: an ignored signal survives execve, and the init inherits at least the SIGPIPE the Rust
/// runtime ignores (whatever else its caller ignored too, without the re-exec). Done last, after
/// the hooks, whose stdin writes rely on SIGPIPE being ignored. Raw rt_sigaction, which unlike
/// glibc's wrapper also resets the signals glibc reserves (32, 33); failures (SIGKILL, SIGSTOP,
/// a seccomp profile refusing it) leave that signal as it was.
fn default_signals() {
    // The kernel's struct sigaction, all zero: SIG_DFL, no flags, empty mask. Sized for the
    // largest layout (handler, flags, restorer, mask).
    let dfl = [0u64; 4];
    for sig in 1..=libc::SIGRTMAX() {
        // SAFETY: rt_sigaction reads `dfl` (8 bytes of mask, as the kernel expects) and writes nothing.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<u64>(), 8usize) };
    }
    let _ = SigSet::empty().thread_set_mask();
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

/// The new network namespace has only `lo`, and it is down (up already in one the spawner made
/// ahead: then nothing is set).
pub(super) fn loopback_up() -> io::Result<()> {
    use super::security::syscall_result;
    // SAFETY: a zeroed ifreq is valid; the socket is closed by OwnedFd.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let _guard = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        syscall_result(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr).into())?;
        // Up already in a namespace the spawner made ahead: the set would still take the
        // RTNL lock, which other namespaces' setup and cleanup hold for long (36 µs asleep
        // per start, ftrace).
        if ifr.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
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

/// A no-op handler for each of `signals`, once per process: PID 1 of a namespace is only sent
/// the signals it handles, and an exec resets handled signals to their default action.
fn install_forwarding_handlers(signals: &SigSet) {
    static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if INSTALLED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let action = SigAction::new(SigHandler::Handler(ignore), SaFlags::SA_RESTART, SigSet::empty());
    for sig in signals.iter() {
        // SAFETY: the handler does nothing; failures (SIGKILL-like) are harmless.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The stack the command's clone runs on until its execve (`spawn_vfork`): made and faulted in
/// ahead by an init made ahead (`warm_up_after_kit`), else at the spawn.
static SPAWN_STACK: parking_lot::Mutex<Vec<u8>> = parking_lot::Mutex::new(Vec::new());

/// [`SPAWN_STACK`], 64 KiB, made on first use.
fn spawn_stack() -> parking_lot::MutexGuard<'static, Vec<u8>> {
    let mut stack = SPAWN_STACK.lock();
    if stack.is_empty() {
        *stack = vec![0u8; 64 * 1024];
    }
    stack
}

fn start_command(process: &Process, signals: &SigSet) -> Result<Pid, CoreError> {
    let args = process.args().as_deref().unwrap_or_default();
    let program = args.first().cloned().unwrap_or_default();
    // Blocked before the fork, so no signal is lost between spawn and the wait loop. The child
    // unblocks them again before exec (the mask survives exec; the handlers do not).
    signals.thread_block().map_err(|e| CoreError::Process { step: "blocking signals".into(), source: e.into() })?;
    install_forwarding_handlers(signals);
    let terminal = process.terminal() == Some(true);
    if !terminal {
        return spawn_vfork(process);
    }
    let env = process.env().as_deref().unwrap_or_default().iter().map(|kv| match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (kv.clone(), String::new()),
    });
    let mut cmd = Command::new(&program);
    cmd.args(&args[1..]).env_clear().envs(env).arg0(&program);
    // With a terminal the command leads a session of its own (see `spawn_vfork` for the rest).
    // SAFETY: pthread_sigmask, setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            SigSet::empty().thread_set_mask().map_err(io::Error::from)?;
            take_terminal()
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(e) => Err(CoreError::Exec { program, errno: e.raw_os_error().unwrap_or(libc::ENOENT) }),
    }
}

/// The command without a terminal: clone(CLONE_VM|CLONE_VFORK) and execve, as posix_spawn does,
/// so the init's page tables are not copied (a fork's cost) and no close-on-exec pipe is waited
/// on: the init resumes once the child has exec'd or failed. The child only makes raw system
/// calls on what is prepared here (it shares the init's memory; the init is single-threaded and
/// suspended meanwhile): every signal back to its default action and none blocked (as
/// `default_signals` does for Exec mode; glibc's posix_spawn would leave its two internal
/// signals ignored), its own process group, so a forwarded signal reaches the whole job, as
/// Ctrl-C in a terminal would (`tini -g`): `sh -c 'a; b'` would otherwise wait for `a` before
/// acting on SIGINT.
fn spawn_vfork(process: &Process) -> Result<Pid, CoreError> {
    let program = resolve_program(process)?;
    let name = program.to_string_lossy().into_owned();
    let cstrings = |v: &[String]| v.iter().map(|s| CString::new(s.as_bytes())).collect::<Result<Vec<_>, _>>();
    let (Ok(args), Ok(env)) = (
        cstrings(process.args().as_deref().unwrap_or_default()),
        cstrings(process.env().as_deref().unwrap_or_default()),
    ) else {
        return Err(CoreError::spec("process", "arguments and environment must not contain NUL bytes"));
    };
    let argv: Vec<*const libc::c_char> =
        args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // The child's errno when its execve (or setpgid) failed; 0: it exec'd.
    let failed = std::sync::atomic::AtomicI32::new(0);
    let mut stack = spawn_stack();
    let last_signal = libc::SIGRTMAX();
    let child = Box::new(|| -> isize {
        // SAFETY: raw system calls on memory prepared above, which outlives the child's use of
        // it (the parent is suspended until the execve or the _exit).
        unsafe {
            // The kernel's struct sigaction, all zero: SIG_DFL, no flags, empty mask.
            let dfl = [0u64; 4];
            for sig in 1..=last_signal {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<u64>(), 8usize);
            }
            let empty = 0u64;
            libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &empty, std::ptr::null_mut::<u64>(), 8usize);
            let rc = match libc::syscall(libc::SYS_setpgid, 0, 0) {
                0 => libc::syscall(libc::SYS_execve, program.as_ptr(), argv.as_ptr(), envp.as_ptr()),
                rc => rc,
            };
            if rc != 0 {
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOEXEC);
                failed.store(errno, std::sync::atomic::Ordering::Relaxed);
            }
            libc::_exit(127)
        }
    });
    let flags = nix::sched::CloneFlags::CLONE_VM | nix::sched::CloneFlags::CLONE_VFORK;
    // SAFETY: the callback ends in execve or _exit; the stack and what it reads outlive it
    // (CLONE_VFORK: this thread waits for either).
    let pid = unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| CoreError::Exec { program: name.clone(), errno: e as i32 })?;
    match failed.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Ok(pid),
        errno => {
            let _ = waitpid(pid, None);
            Err(CoreError::Exec { program: name, errno })
        }
    }
}

/// The container is built: what is left for the init is to apply the process's settings, start
/// the command, forward signals and reap, a little code. What it ran to build the container
/// (several MB of the engine binary's code and read-only data, mapped 64 KiB at a time by the
/// kernel's fault-around) would otherwise stay in its RSS, which the kernel monitor counts
/// against the container's limits from before the command starts (a 6 MiB hard limit was met
/// by the init and a newly started command). The page cache keeps those pages; only this
/// process's mappings of them go. Only where that monitor counts (`Plan::rss_limited`): it took
/// 0.15-0.27 ms of the init's path to the command (step trace; ~1,100 pages unmapped, half
/// faulted back in by the spawn), and is done for every init once its command has run
/// LATE_DROP_AFTER anyway.
fn let_go_of_code_pages() {
    extern "C" {
        // The linker's: the start of the image (ELF header) and the end of its code.
        static __ehdr_start: u8;
        static etext: u8;
    }
    let (start, end) = (std::ptr::addr_of!(__ehdr_start) as usize, std::ptr::addr_of!(etext) as usize);
    let page = 4096;
    // Whole pages only, so no writable page next to the code is touched.
    let (start, end) = (start.div_ceil(page) * page, end / page * page);
    if end > start {
        // SAFETY: the range is the binary's read-only and executable mappings (no page of it was
        // ever written: MADV_DONTNEED only drops the mappings, and the next access faults the
        // file's page back in); ENOMEM for a gap between them is harmless.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// What an init made ahead does before its Setup comes, so that it is not done on the start's
/// path: a first run of the Setup's decoder, on a default Spec (most of a Setup). A fresh clone
/// maps its code, its heap and its stack page by page as it first runs them; measured (ftrace,
/// 20 runs): ~110 page faults between its Setup and its command before this, ~53 after.
fn warm_up() {
    if let Ok(json) = serde_json::to_vec(&super::Spec::default()) {
        std::hint::black_box(serde_json::from_slice::<super::Spec>(&json).is_ok());
    }
    touch_stack();
}

/// The rest of an init made ahead's warm-up, once its namespace has a /proc (the kit's, or the
/// host's): what its start would otherwise do on its path, whatever the Setup says. The kernel's
/// last capability (read from /proc, for the bounding set); the command's clone stack, allocated
/// and faulted in (`spawn_vfork`); the no-op handlers that make the forwarded signals deliverable
/// to a PID 1 (`start_command`). ~40 system calls and ~16 page faults off the path.
fn warm_up_after_kit() {
    let _ = super::security::last_cap();
    // Written through: every page faulted in now.
    spawn_stack().fill(1);
    install_forwarding_handlers(&forwarded_signals());
}

/// Zeroes STACK_WARMED bytes of stack below this frame: the decode alone touches less of it than
/// the path after the Setup does (measured: 9 of the ~62 faults left on that path were its stack).
#[inline(never)]
fn touch_stack() {
    const STACK_WARMED: usize = 64 * 1024;
    // A binding, not `&[0; N]`: a constant's reference would be promoted to a static.
    let area = [0u8; STACK_WARMED];
    std::hint::black_box(&area);
}

/// The command holds the output now: the init's own stdout and stderr become the container's
/// /dev/null, so the supervisor sees the output end when the command's ends (`run --rm` answers
/// then, on the init's report) rather than only at the init's exit. Nothing of the init writes
/// there after the spawn. Left as they are unless /dev/null is the null device.
fn let_go_of_output() {
    // SAFETY: open, fstat, dup2 and close on fds of our own; `st` is written by fstat.
    unsafe {
        let null =
            libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK);
        if null < 0 {
            return;
        }
        let mut st: libc::stat = std::mem::zeroed();
        let is_null = libc::fstat(null, &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFCHR
            && st.st_rdev == libc::makedev(1, 3);
        if is_null {
            libc::dup2(null, 1);
            libc::dup2(null, 2);
        }
        libc::close(null);
    }
}

/// Forward signals to the command and reap every child until the command itself has ended.
/// How long the command runs before the init lets go of its code pages a second time.
const LATE_DROP_AFTER: libc::timespec = libc::timespec { tv_sec: 0, tv_nsec: 20_000_000 };

/// Forwards signals to the command and reaps until it ends. `late_drop`: after that long
/// without a signal, the code pages are dropped once (see `let_go_of_code_pages`).
fn supervise(child: Pid, signals: &SigSet, mut late_drop: Option<libc::timespec>) -> Termination {
    loop {
        let sig = match late_drop {
            Some(timeout) => match wait_signal_for(signals, &timeout) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    late_drop = None;
                    let_go_of_code_pages();
                    continue;
                }
                Err(_) => continue,
            },
            None => match signals.wait() {
                Ok(s) => s,
                Err(_) => continue,
            },
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

/// A blocked signal of `signals`, or None once `timeout` has passed without one.
fn wait_signal_for(signals: &SigSet, timeout: &libc::timespec) -> nix::Result<Option<Signal>> {
    // SAFETY: the set and the timeout outlive the call; no siginfo is asked for.
    let n = unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), timeout) };
    match n {
        -1 if nix::errno::Errno::last() == nix::errno::Errno::EAGAIN => Ok(None),
        -1 => Err(nix::errno::Errno::last()),
        n => Signal::try_from(n).map(Some),
    }
}

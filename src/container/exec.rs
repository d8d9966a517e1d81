//! Entering a running container: the one implementation behind `engine exec` and `engine-oci exec`.
//!
//! A single-threaded caller forks a middle child that first joins the container's cgroups (their
//! host paths, while it still sees the host's mounts), then its namespaces by the fds of
//! /proc/PID/ns/* opened beforehand (the user namespace first when it differs, then ipc, uts,
//! net, cgroup, pid and mnt); joining a pid namespace only places the children, so that child
//! forks once more and the grandchild applies the process (`process::apply`: user,
//! capabilities, seccomp, no_new_privs, working directory) and execs it with the init's own
//! lookup. The grandchild's pid comes back on a pipe; a second pipe, close-on-exec, carries an
//! error if the exec fails (EOF means it succeeded).
//!
//! All of this needs a single-threaded process: setns into a user or mount namespace is refused
//! to a threaded one, and a fork child of a threaded parent may not allocate. engine-oci is one;
//! the supervisor is not, so it runs this in a helper: the engine binary re-exec'd as
//! `engine-exec` ([`spawn_helper`]) by `std::process::Command`, whose only work between fork
//! and execve is one dup2 (async-signal-safe). The helper waits for the process as its
//! subreaper and reports how it ended on fd 3 ([`HelperResult`]), not through its own wait
//! status, which the supervisor's reaper (waitpid on any child) may collect first.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{Linux, Process};
use serde::{Deserialize, Serialize};

use super::exit;

/// argv[0] of the engine binary re-exec'd to run an exec for a threaded caller; `main`
/// dispatches on it.
pub const HELPER_ARGV0: &str = "engine-exec";
/// The fd on which the helper writes its [`HelperResult`].
const HELPER_RESULT_FD: i32 = 3;
/// The fd from which the helper reads its [`HelperPlan`] (JSON, to EOF): not argv, which every
/// user of the host can read in /proc and which would show the container's environment.
const HELPER_PLAN_FD: i32 = 4;
/// The fd of the connected console socket, when the plan's `console` says so (`exec -t`).
const HELPER_CONSOLE_FD: i32 = 5;

/// A failed step of an exec, with the exit code the caller should end with.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec: opening {path}: {source}")]
    OpenNamespace { path: String, source: std::io::Error },
    #[error("exec: the container's process {pid} is gone")]
    Gone { pid: i32 },
    #[error("exec: {step}: {source}")]
    Setup { step: &'static str, source: std::io::Error },
    /// Reported by a child: the exit code (127 not found, 126 not executable, else 1 or 125)
    /// and why.
    #[error("{message}")]
    Child { code: i32, message: String },
}

impl ExecError {
    fn setup(step: &'static str) -> impl FnOnce(nix::Error) -> ExecError {
        move |e| ExecError::Setup { step, source: e.into() }
    }

    /// The code to exit with: a child's own, else the engine's.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Child { code, .. } => *code,
            _ => exit::ENGINE_ERROR,
        }
    }
}

/// The namespaces joined, in order: the user namespace first (it grants the rights to join the
/// others), the mount namespace last (paths stop meaning the host's after it).
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// An open namespace of the container's init, to join.
pub struct NsFd {
    pub name: &'static str,
    pub flag: CloneFlags,
    pub fd: OwnedFd,
}

/// Opens every namespace of `pid` that differs from ours (same inode and device: already in it,
/// and setns into our own user namespace would fail with EINVAL).
pub fn open_namespaces(pid: i32) -> Result<Vec<NsFd>, ExecError> {
    let mut out = Vec::new();
    for &(name, flag) in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let f = match File::open(&path) {
            Ok(f) => f,
            // A kernel without this namespace type.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && pid_alive(pid) => continue,
            Err(source) => return Err(ExecError::OpenNamespace { path, source }),
        };
        let a = f.metadata().map_err(|source| ExecError::OpenNamespace { path: path.clone(), source })?;
        if let Ok(b) = std::fs::metadata(format!("/proc/self/ns/{name}")) {
            if a.ino() == b.ino() && a.dev() == b.dev() {
                if flag == CloneFlags::CLONE_NEWNS {
                    out.extend(chroot_of(pid)?);
                }
                continue;
            }
        }
        out.push(NsFd { name, flag, fd: f.into() });
    }
    Ok(out)
}

/// A container in our own mount namespace (an OCI config without one) lives chrooted in its
/// root: that root, to chroot into as the last "namespace" (flag empty), when it is not ours.
fn chroot_of(pid: i32) -> Result<Option<NsFd>, ExecError> {
    let path = format!("/proc/{pid}/root");
    let err = |source| ExecError::OpenNamespace { path: path.clone(), source };
    let (theirs, ours) = (std::fs::metadata(&path).map_err(err)?, std::fs::metadata("/").map_err(err)?);
    if theirs.ino() == ours.ino() && theirs.dev() == ours.dev() {
        return Ok(None);
    }
    let fd = nix::fcntl::open(
        path.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    // SAFETY: a fresh fd owned here.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    Ok(Some(NsFd { name: "root", flag: CloneFlags::empty(), fd }))
}

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Joins them in order (in the calling, single-threaded process).
pub fn join_namespaces(ns: &[NsFd]) -> Result<(), String> {
    for n in ns {
        if n.flag.is_empty() {
            // chroot_of's root: entered as the container's init did.
            nix::unistd::fchdir(n.fd.as_raw_fd())
                .and_then(|()| nix::unistd::chroot("."))
                .map_err(|e| format!("entering the container's root: {e}"))?;
            continue;
        }
        nix::sched::setns(n.fd.as_fd(), n.flag)
            .map_err(|e| format!("joining the container's {} namespace: {e}", n.name))?;
    }
    Ok(())
}

/// Everything the children need, prepared before the fork.
pub struct Plan {
    pub process: Process,
    /// The container's `linux` section: its seccomp profile applies to the new process too.
    pub linux: Option<Linux>,
    pub ns: Vec<NsFd>,
    /// The container's cgroup directories (host paths), joined by the middle child.
    pub cgroups: Vec<PathBuf>,
    /// process.terminal: the connected console socket, for the container's pty.
    pub console: Option<OwnedFd>,
    /// fds 3 .. 3+N-1 stay open across the exec.
    pub preserve_fds: u32,
}

fn pipe() -> Result<(File, File), ExecError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ExecError::setup("pipe"))?;
    Ok((File::from(r), File::from(w)))
}

/// Forks the process into the container and returns its host pid once it exec'd (or why it
/// could not). `child_mask`: the signal mask the children start with (the caller may block
/// signals it waits for). The caller must be single-threaded.
pub fn spawn(plan: &Plan, child_mask: Option<&SigSet>) -> Result<i32, ExecError> {
    let (mut pid_r, pid_w) = pipe()?;
    let (mut err_r, err_w) = pipe()?;
    // SAFETY: the caller is single-threaded, so the child may do anything the parent could.
    let middle = match unsafe { fork() }.map_err(ExecError::setup("fork"))? {
        ForkResult::Child => {
            if let Some(mask) = child_mask {
                let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
            }
            drop((pid_r, err_r));
            let code = middle_child(plan, pid_w, err_w);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((pid_w, err_w));
    let _ = waitpid(middle, None);
    let mut buf = [0u8; 4];
    let got_pid = pid_r.read_exact(&mut buf).is_ok();
    let mut err = String::new();
    let _ = err_r.read_to_string(&mut err);
    if !err.is_empty() || !got_pid {
        let (code, message) = match err.split_once('\n') {
            Some((c, m)) => (c.parse().unwrap_or(1), m.to_string()),
            None => (1, "exec: the process could not be started".to_string()),
        };
        return Err(ExecError::Child { code, message });
    }
    Ok(i32::from_ne_bytes(buf))
}

/// Signals forwarded to the process while its caller waits for it.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Before [`spawn`] by a caller that waits: makes it a subreaper (the process is its
/// grandchild and comes to it when the middle child exits) and blocks SIGCHLD and the forwarded
/// signals for [`wait_forwarding`]. Returns the mask the children should get back.
pub fn prepare_wait() -> Result<(SigSet, SigSet), ExecError> {
    // SAFETY: prctl with integers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(ExecError::Setup { step: "becoming a subreaper", source: std::io::Error::last_os_error() });
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(*s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
        .map_err(ExecError::setup("blocking signals"))?;
    Ok((mask, old))
}

/// Waits for `pid` (a child or, as subreaper, an adopted grandchild), forwarding the signals of
/// `mask` to it; its exit code (128+N when killed by signal N).
pub fn wait_forwarding(pid: i32, mask: &SigSet) -> Result<i32, ExecError> {
    let pid = Pid::from_raw(pid);
    loop {
        let sig = mask.wait().map_err(ExecError::setup("waiting for signals"))?;
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                    Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return Ok(exit::SIGNAL_BASE + s as i32),
                    Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => break,
                    Ok(_) => continue,
                    Err(e) => return Err(ExecError::setup("waiting for the process")(e)),
                }
            }
        } else {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }
}

/// The middle child: cgroups, namespaces, then the fork that lands in the pid namespace.
fn middle_child(plan: &Plan, mut pid_w: File, mut err_w: File) -> i32 {
    let fail = |err_w: &mut File, msg: String| {
        report(err_w, 1, &msg);
        1
    };
    // The cgroups first, by their host paths, before the mount namespace hides them.
    let me = std::process::id().to_string();
    for dir in &plan.cgroups {
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), &me) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return fail(&mut err_w, format!("exec: joining the cgroup {}: {e}", dir.display()));
            }
        }
    }
    if let Err(msg) = join_namespaces(&plan.ns) {
        return fail(&mut err_w, format!("exec: {msg}"));
    }
    // SAFETY: still single-threaded.
    match unsafe { fork() } {
        Err(e) => fail(&mut err_w, format!("exec: fork into the pid namespace: {e}")),
        Ok(ForkResult::Child) => {
            drop(pid_w);
            let (code, msg) = exec_process(plan);
            report(&mut err_w, code, &msg);
            // SAFETY: the forked grandchild leaves without the parent's destructors.
            unsafe { libc::_exit(exit::NOT_FOUND) }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = pid_w.write_all(&child.as_raw().to_ne_bytes());
            0
        }
    }
}

/// A child's failure on the error pipe: the exit code the caller should end with, a newline, why.
fn report(err_w: &mut File, code: i32, msg: &str) {
    let _ = err_w.write_all(format!("{code}\n{msg}").as_bytes());
}

/// In the container: stdio, the process's attributes, exec. Returns only on failure: the exit
/// code (127 not found, 126 not executable, else 1) and why.
fn exec_process(plan: &Plan) -> (i32, String) {
    match exec_process_inner(plan) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn exec_process_inner(plan: &Plan) -> Result<std::convert::Infallible, (i32, String)> {
    let p = &plan.process;
    if let Some(socket) = &plan.console {
        // In the container's mount namespace now: the pty comes from its own /dev/ptmx, so it
        // has a name in its /dev/pts (a host pty would be "not a tty" to ttyname() there).
        let size = p.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16));
        super::console::attach(socket.as_fd(), size)
            .map_err(|e| (1, format!("exec: process.terminal: the container's pty from /dev/ptmx: {e}")))?;
        // Its own session with the pty as controlling terminal: `init::exec` below.
    }
    // Every inherited fd beyond stdio and the preserved ones closes at exec (the class of leak
    // behind CVE-2024-21626); ours are close-on-exec already, the caller's may not be.
    let first = 3 + plan.preserve_fds;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    super::process::apply(p, plan.linux.as_ref(), None).map_err(|e| (1, format!("exec: {e}")))?;
    // The init's own lookup (the container's PATH, execvp's rules) and exec (default signal
    // dispositions, the terminal's session), so both enter a container the same way.
    let fail = |e: super::CoreError| (e.exit_code(), format!("exec: {e}"));
    let program = super::init::resolve_program(p).map_err(fail)?;
    Err(fail(super::init::exec(&program, p)))
}

/// What a threaded caller asks the `engine-exec` helper to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelperPlan {
    /// The container's init (host pid) and its start time (/proc/PID/stat field 22), checked
    /// after its namespaces are open: they are the container's, not a pid reuser's.
    pub pid: i32,
    pub pid_start_ticks: Option<u64>,
    pub process: Process,
    pub linux: Option<Linux>,
    pub cgroups: Vec<PathBuf>,
    /// process.terminal: the helper has the console socket at fd 5 and the process gets a pty
    /// from the container's /dev/ptmx, its master sent there (the same path as `engine-oci exec
    /// --console-socket`).
    #[serde(default)]
    pub console: bool,
}

/// How the helper's process ended, written on fd 3.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelperResult {
    Exited { code: i32 },
    Failed { code: i32, message: String },
}

/// Starts the helper for `plan` with the given stdio (no fd of the caller's but these and the
/// result pipe reaches it: every fd of engine's is close-on-exec), and the connected console
/// socket when `plan.console`. Returns the read end of the result pipe: read it with
/// [`helper_result`]. The helper is not waited for here: the caller's reaper collects it.
pub fn spawn_helper(
    plan: &HelperPlan,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    console: Option<OwnedFd>,
) -> Result<(File, std::process::Child), ExecError> {
    let json = serde_json::to_string(plan)
        .map_err(|e| ExecError::Setup { step: "encoding the plan", source: std::io::Error::other(e) })?;
    let (result_r, result_w) = pipe()?;
    let (plan_r, mut plan_w) = pipe()?;
    // Both ends the child keeps, above the numbers they go to, so the dup2s cannot collide.
    let high = |f: std::os::fd::BorrowedFd<'_>| -> Result<OwnedFd, ExecError> {
        f.try_clone_to_owned()
            .and_then(|fd| {
                // SAFETY: F_DUPFD_CLOEXEC on an fd we own; the result is a new fd we own.
                let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: n is a fresh fd from fcntl.
                Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
            })
            .map_err(|source| ExecError::Setup { step: "placing the helper's fds", source })
    };
    let (result_fd, plan_fd) = (high(result_w.as_fd())?, high(plan_r.as_fd())?);
    drop((result_w, plan_r));
    let console_fd = console.as_ref().map(|socket| high(socket.as_fd())).transpose()?;
    drop(console);
    let (result_raw, plan_raw) = (result_fd.as_raw_fd(), plan_fd.as_raw_fd());
    let console_raw = console_fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0(HELPER_ARGV0)
        .env_clear()
        .stdin(std::process::Stdio::from(stdin))
        .stdout(std::process::Stdio::from(stdout))
        .stderr(std::process::Stdio::from(stderr));
    // SAFETY: between fork and execve only dup2, async-signal-safe, on fd numbers taken
    // beforehand: the caller is threaded and another thread may hold a lock. dup2 clears
    // close-on-exec on the target.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(result_raw, HELPER_RESULT_FD) == -1 || libc::dup2(plan_raw, HELPER_PLAN_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if console_raw >= 0 && libc::dup2(console_raw, HELPER_CONSOLE_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| ExecError::Setup { step: "starting the engine-exec helper", source })?;
    drop((result_fd, plan_fd, console_fd));
    // A failed write (the helper died at once) shows as its missing result.
    let _ = plan_w.write_all(json.as_bytes());
    drop(plan_w);
    Ok((result_r, child))
}

/// Reads the helper's result (blocks until it has ended): the process's exit code, or why it
/// did not run.
pub fn helper_result(mut pipe: File) -> Result<i32, ExecError> {
    let mut text = String::new();
    pipe.read_to_string(&mut text)
        .map_err(|source| ExecError::Setup { step: "reading the helper's result", source })?;
    match serde_json::from_str::<HelperResult>(&text) {
        Ok(HelperResult::Exited { code }) => Ok(code),
        Ok(HelperResult::Failed { code, message }) => Err(ExecError::Child { code, message }),
        Err(_) => Err(ExecError::Child {
            code: exit::ENGINE_ERROR,
            message: "exec: the engine-exec helper ended without a result".into(),
        }),
    }
}

/// `engine-exec`: the helper's main (a fresh, single-threaded process). Its plan is on fd 4.
pub fn helper_main() -> i32 {
    // SAFETY: fd 3 was set up by spawn_helper for this process alone.
    let mut out = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(HELPER_RESULT_FD) };
    // Anything else inherited closes at the exec of the process (CVE-2024-21626's class).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe { libc::syscall(libc::SYS_close_range, HELPER_RESULT_FD as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    let result = match helper_run() {
        Ok(code) => HelperResult::Exited { code },
        Err(e) => HelperResult::Failed { code: e.exit_code(), message: e.to_string() },
    };
    let code = match &result {
        HelperResult::Exited { code } | HelperResult::Failed { code, .. } => *code,
    };
    if let Ok(text) = serde_json::to_string(&result) {
        let _ = out.write_all(text.as_bytes());
    }
    code
}

fn helper_run() -> Result<i32, ExecError> {
    let mut arg = String::new();
    // SAFETY: fd 4 was set up by spawn_helper for this process alone.
    let mut plan_in = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(HELPER_PLAN_FD) };
    plan_in.read_to_string(&mut arg).map_err(|source| ExecError::Setup { step: "reading the plan", source })?;
    drop(plan_in);
    let plan: HelperPlan = serde_json::from_str(&arg)
        .map_err(|e| ExecError::Setup { step: "reading the plan", source: std::io::Error::other(e) })?;
    let ns = open_namespaces(plan.pid)?;
    if let Some(ticks) = plan.pid_start_ticks {
        if super::pidfd::live_start_ticks(plan.pid) != Some(ticks) {
            return Err(ExecError::Gone { pid: plan.pid });
        }
    }
    let console = match plan.console {
        // SAFETY: spawn_helper placed the console socket at fd 5 for this plan (close-on-exec
        // since helper_main's close_range).
        true => Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(HELPER_CONSOLE_FD) }),
        false => None,
    };
    let (mask, old) = prepare_wait()?;
    let plan = Plan { process: plan.process, linux: plan.linux, ns, cgroups: plan.cgroups, console, preserve_fds: 0 };
    let pid = spawn(&plan, Some(&old))?;
    drop(plan);
    wait_forwarding(pid, &mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespaces_are_skipped() {
        let me = std::process::id() as i32;
        assert!(open_namespaces(me).unwrap().is_empty());
    }
}

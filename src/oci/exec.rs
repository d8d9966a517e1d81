//! `exec [--process FILE | ARGS...] ID`: a new process in a running container.
//!
//! engine-oci forks a child that first joins the container's cgroups (their host paths, while it
//! still sees the host's mounts), then its namespaces by the fds of /proc/PID/ns/* opened before
//! anything else (the user namespace first when it differs, then ipc, uts, net, cgroup, pid and
//! mnt); joining a pid namespace only places the children, so that child forks once more and the
//! grandchild applies the process and execs it. The grandchild's pid comes back on a pipe; a
//! second pipe, close-on-exec, carries an error if the exec fails (EOF means it succeeded), which
//! is how `--detach` knows when to return.
//!
//! Without --detach engine-oci waits for the process as its subreaper (its parent, the middle
//! child, has exited) and forwards the signals it receives, then exits with the process's code
//! (128+N when killed by signal N).
//!
//! All of this relies on engine-oci being single-threaded: setns into a user or mount namespace
//! is refused to a threaded process, and a fork child of a single-threaded parent may allocate.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{Capability, Process};

use super::error::{OciError, Result};
use super::state::{self, Status};
use super::{console, Ctx};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A runtime-spec `process` JSON file; the other process options are then ignored.
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// KEY=VALUE, added to the container's environment.
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID].
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// A capability added to the process's sets.
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass fds 3 .. 3+N-1 of engine-oci on to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    #[arg(long)]
    cgroup: Option<String>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
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
pub fn open_namespaces(pid: i32) -> Result<Vec<NsFd>> {
    let mut out = Vec::new();
    for &(name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let f = match File::open(&theirs) {
            Ok(f) => f,
            // A kernel without this namespace type.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(OciError::io(format!("exec: opening {theirs}"))(e)),
        };
        let a = f.metadata().map_err(OciError::io(format!("exec: stat {theirs}")))?;
        if let Ok(b) = std::fs::metadata(format!("/proc/self/ns/{name}")) {
            if a.ino() == b.ino() && a.dev() == b.dev() {
                continue;
            }
        }
        out.push(NsFd { name, flag, fd: f.into() });
    }
    Ok(out)
}

/// Joins them in order (in the calling, single-threaded process).
pub fn join_namespaces(ns: &[NsFd]) -> std::result::Result<(), String> {
    for n in ns {
        nix::sched::setns(n.fd.as_fd(), n.flag)
            .map_err(|e| format!("joining the container's {} namespace: {e}", n.name))?;
    }
    Ok(())
}

/// The process to run: `--process FILE`, or the container's own process (from its config.json)
/// with the command and options of this call, as runc builds it.
fn build_process(a: &Args, bundle: &Path) -> Result<(Process, Option<oci_spec::runtime::Linux>)> {
    let config = super::config::load(bundle).ok();
    let linux = config.as_ref().and_then(|b| b.spec.linux().clone());
    Ok((build_process_only(a, config.as_ref())?, linux))
}

fn build_process_only(a: &Args, config: Option<&super::config::Bundle>) -> Result<Process> {
    if let Some(p) = &a.process {
        let text = std::fs::read(p).map_err(OciError::io(format!("exec: reading {}", p.display())))?;
        let process: Process = serde_json::from_slice(&text).map_err(|e| {
            let field = super::config::json_path_at(&text, e.line(), e.column());
            OciError::Other(format!("exec: {}: {field}: {e}", p.display()))
        })?;
        if process.args().as_ref().is_none_or(|v| v.is_empty()) {
            return Err(OciError::Other(format!("exec: {}: args: must hold at least the program", p.display())));
        }
        return Ok(process);
    }
    if a.command.is_empty() {
        return Err(OciError::Other("exec: no command given (ARGS... or --process FILE)".into()));
    }
    let mut p = config.and_then(|b| b.spec.process().clone()).unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let bad = || OciError::Other(format!("exec: --user {u:?}: expected UID[:GID] as numbers"));
        let (uid, gid) = u.split_once(':').map_or((u.as_str(), None), |(a, b)| (a, Some(b)));
        let mut user = p.user().clone();
        user.set_uid(uid.parse().map_err(|_| bad())?);
        if let Some(g) = gid {
            user.set_gid(g.parse().map_err(|_| bad())?);
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: Capability = serde_json::from_value(serde_json::json!(name))
                .map_err(|_| OciError::Other(format!("exec: --cap {name:?}: unknown capability")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    for (set, flag) in [(args.process_label.is_some(), "--process-label"), (args.apparmor.is_some(), "--apparmor")] {
        if set {
            return Err(OciError::Unsupported(format!("exec: {flag}: no SELinux or AppArmor support in engine-oci")));
        }
    }
    if args.cgroup.is_some() {
        return Err(OciError::Unsupported("exec: --cgroup: sub-cgroups for exec are not supported".into()));
    }
    let c = ctx.root.open(&args.id)?;
    let rec = c.record()?.clone();
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        s => return Err(OciError::Status { id: args.id, status: s.as_str(), verb: "exec", wanted: "running" }),
    }
    let (process, linux) = build_process(&args, &rec.bundle)?;
    let ns = open_namespaces(rec.pid)?;
    // Checked after the opens: the fds are the container's, not those of a process that took its pid.
    if !state::process_is(rec.pid, rec.pid_start) {
        return Err(OciError::Status { id: args.id, status: "stopped", verb: "exec", wanted: "running" });
    }
    // Done with the state: a long exec must not hold up `delete` or `kill` of this container.
    drop(c);

    let terminal = process.terminal().unwrap_or(false);
    // Connected here, in engine-oci's namespaces; the pty is opened by the process itself once
    // it is in the container's (exec_process_inner).
    let console = match (terminal, &args.console_socket) {
        (true, Some(sock)) => Some(console::connect(sock)?),
        (true, None) => return Err(console::ConsoleError::NoSocket.into()),
        (false, Some(_)) => return Err(console::ConsoleError::NotTerminal.into()),
        (false, None) => None,
    };
    let plan = Plan { process, linux, ns, cgroups: rec.cgroup_paths.clone(), console, preserve_fds: args.preserve_fds };
    spawn(&plan, args.detach, args.pid_file.as_deref())
}

/// Everything the children need, prepared before the fork.
struct Plan {
    process: Process,
    /// The container's `linux` section: its seccomp profile applies to the new process too.
    linux: Option<oci_spec::runtime::Linux>,
    ns: Vec<NsFd>,
    cgroups: Vec<PathBuf>,
    /// process.terminal: the connected console socket, for the container's pty.
    console: Option<OwnedFd>,
    preserve_fds: u32,
}

/// Signals forwarded to the process while engine-oci waits for it.
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

fn pipe() -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(OciError::nix("exec: pipe"))?;
    Ok((File::from(r), File::from(w)))
}

fn spawn(plan: &Plan, detach: bool, pid_file: Option<&Path>) -> Result<i32> {
    let (mut pid_r, pid_w) = pipe()?;
    let (mut err_r, err_w) = pipe()?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(*s);
    }
    let mut old = SigSet::empty();
    if !detach {
        // Subreaper: the process is our grandchild and comes to us when its parent exits.
        // SAFETY: prctl with integers.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(OciError::io("exec: becoming a subreaper")(std::io::Error::last_os_error()));
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .map_err(OciError::nix("exec: blocking signals"))?;
    }
    // SAFETY: engine-oci is single-threaded, so the child may do anything the parent could.
    let middle = match unsafe { fork() }.map_err(OciError::nix("exec: fork"))? {
        ForkResult::Child => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
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
        let (code, msg) = match err.split_once('\n') {
            Some((c, m)) => (c.parse().unwrap_or(1), m.to_string()),
            None => (1, "exec: the process could not be started".to_string()),
        };
        return Err(OciError::Exec { code, msg });
    }
    let pid = i32::from_ne_bytes(buf);
    if let Some(p) = pid_file {
        write_pid_file(p, pid)?;
    }
    if detach {
        return Ok(0);
    }
    wait_forwarding(Pid::from_raw(pid), &mask)
}

/// Writes the pid file atomically (temp + rename), as runc: a reader never sees it half-written.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let step = || format!("writing the pid file {}", path.display());
    std::fs::write(&tmp, pid.to_string()).map_err(OciError::io(step()))?;
    std::fs::rename(&tmp, path).map_err(OciError::io(step()))
}

fn wait_forwarding(pid: Pid, mask: &SigSet) -> Result<i32> {
    loop {
        let sig = mask.wait().map_err(OciError::nix("exec: waiting for signals"))?;
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                    Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return Ok(128 + s as i32),
                    Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => break,
                    Ok(_) => continue,
                    Err(e) => return Err(OciError::nix("exec: waiting for the process")(e)),
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
            unsafe { libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = pid_w.write_all(&child.as_raw().to_ne_bytes());
            0
        }
    }
}

/// A child's failure on the error pipe: the exit code engine-oci should end with, a newline, why.
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

fn exec_process_inner(plan: &Plan) -> std::result::Result<std::convert::Infallible, (i32, String)> {
    let p = &plan.process;
    if let Some(socket) = &plan.console {
        // In the container's mount namespace now: the pty comes from its own /dev/ptmx, so it
        // has a name in its /dev/pts (a host pty would be "not a tty" to ttyname() there).
        let size = p.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16));
        crate::container::console::attach(socket.as_fd(), size)
            .map_err(|e| (1, format!("exec: process.terminal: the container's pty from /dev/ptmx: {e}")))?;
        // Its own session with the pty as controlling terminal: `init::exec` below.
    }
    // Every inherited fd beyond stdio and the preserved ones closes at exec (the class of leak
    // behind CVE-2024-21626); ours are close-on-exec already, the caller's may not be.
    let first = 3 + plan.preserve_fds;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    apply_process(p, plan.linux.as_ref()).map_err(|e| (1, format!("exec: {e}")))?;
    // The init's own lookup (the container's PATH, execvp's rules) and exec (default signal
    // dispositions, the terminal's session), so both enter a container the same way.
    let fail = |e: crate::container::CoreError| (e.exit_code(), format!("exec: {e}"));
    let program = crate::container::init::resolve_program(p).map_err(fail)?;
    Err(fail(crate::container::init::exec(&program, p)))
}

fn apply_process(p: &Process, linux: Option<&oci_spec::runtime::Linux>) -> std::result::Result<(), String> {
    crate::container::process::apply(p, linux).map_err(|e| e.to_string())
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

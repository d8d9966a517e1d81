//! `engine exec`: a command in a running container, entered by the core's exec
//! (`container::exec`) in an `engine-exec` helper process.
//!
//! The supervisor is threaded, so it never forks to setns itself (setns into a mount namespace
//! is refused to a threaded process, and a fork child of one may not allocate): the helper is
//! the engine binary re-exec'd, and between its fork and execve only a dup2 runs.
//!
//! The process is the container's own (its Spec's capabilities, seccomp profile,
//! no_new_privs, environment, user and working directory, as `to_oci` builds them for the
//! start) with this call's command, `-e` entries over the environment by key, `-w` and `-u`. A
//! user name is looked up in the container's /etc/passwd as the container sees it now (through
//! /proc/PID/root, every path resolved inside it). Its stdout and stderr are the client's own,
//! received over the socket (SCM_RIGHTS), so the output reaches the client directly, as
//! `docker exec` shows it, and is not in the container's log; stdin is /dev/null, or the
//! client's own with `-i`. With `-t` the process gets a pty from the container's /dev/ptmx
//! through the core's console path, served by `console::serve_exec`.
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use super::failure::Failure;
use super::record::State;
use super::Supervisor;
use crate::container::exec::{helper_result, spawn_helper, HelperPlan};
use crate::protocol::{write_frame, Response, EXEC_FDS_BYTE};

/// This call's options over the container's own process.
pub struct Options {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `-t`: a pty from the container's /dev/ptmx (see `console::serve_exec`).
    pub tty: bool,
    /// `-i`: stdin too (the client's own fd without `-t`, Input frames with it).
    pub interactive: bool,
}

pub fn exec(sup: &Supervisor, conn: &mut UnixStream, name: &str, opts: Options) -> Result<(), Failure> {
    // `-t`: no fds follow the request (the pty is the process's stdio).
    let stdio = if opts.tty { None } else { Some(receive_stdio(conn, opts.interactive)?) };
    if opts.command.is_empty() {
        return Err(Failure::engine("exec: no command given"));
    }
    let record = sup.registry.get(name)?;
    let (State::Running, Some(pid)) = (&record.state, record.pid) else {
        return Err(Failure::engine(format!("container {name} is not running ({})", record.state_text())));
    };
    let mut spec = record.spec.clone();
    spec.command = opts.command;
    spec.entrypoint = None;
    // The container's own `-t` is not this process's.
    spec.tty = opts.tty;
    spec.env.extend(opts.env);
    if opts.workdir.is_some() {
        spec.workdir = opts.workdir;
    }
    if opts.user.is_some() {
        spec.user = opts.user;
    }
    spec.validate().map_err(|e| Failure::engine(format!("exec: {e}")))?;
    // The container's root as it sees it now (users added since the start count); the trailing
    // slash follows the magic link to it, and every path below is resolved within it.
    let root = vec![PathBuf::from(format!("/proc/{pid}/root/"))];
    let user = crate::image::user::resolve_user(spec.user.as_deref().unwrap_or(""), &root)
        .map_err(|e| Failure::engine(format!("cannot exec in {name}: {e}")))?;
    let host =
        super::to_oci::Host { monitor: sup.monitor.is_some(), volumes_dir: super::volumes::volumes_dir(&sup.root) };
    let oci = super::to_oci::translate(&spec, &host, &format!("{}/{name}", sup.cgroup_parent), &user)?;
    let Some(process) = oci.process().clone() else {
        return Err(Failure::engine("exec: the container's Spec has no process"));
    };
    let plan = HelperPlan {
        pid,
        pid_start_ticks: record.pid_start_ticks,
        process,
        linux: oci.linux().clone(),
        cgroups: record.cgroup.clone(),
        console: opts.tty,
    };
    let devnull = || -> Result<OwnedFd, Failure> {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| Failure::engine(format!("exec: opening /dev/null: {e}")))
    };
    let (stdin, stdout, stderr, console) = match stdio {
        Some((stdin, stdout, stderr)) => (stdin.map_or_else(devnull, Ok)?, stdout, stderr, None),
        None => {
            let (ours, theirs) =
                UnixStream::pair().map_err(|e| Failure::engine(format!("exec: creating the console socket: {e}")))?;
            (devnull()?, devnull()?, devnull()?, Some((ours, OwnedFd::from(theirs))))
        }
    };
    let (console, theirs) = console.map_or((None, None), |(o, t)| (Some(o), Some(t)));
    let (result, _helper) =
        spawn_helper(&plan, stdin, stdout, stderr, theirs).map_err(|e| Failure::with_code(e.exit_code(), e))?;
    // The helper is not waited for here: the reaper collects it (and ignores it).
    // A step of the child that failed before the exec (its code 1, runc's) is the engine's 125;
    // 126/127 (not executable, not found) stay, as Docker's.
    let code = move || {
        helper_result(result).map_err(|e| match e.exit_code() {
            1 => Failure::engine(e),
            code => Failure::with_code(code, e),
        })
    };
    if let Some(socket) = console {
        return super::console::serve_exec(conn, socket, opts.interactive, code);
    }
    let code = code()?;
    write_frame(conn, &Response::Exited { code }, b"").map_err(|e| Failure::engine(format!("client went away: {e}")))
}

/// The byte after the request, carrying the client's stdout and stderr (after its stdin, with
/// `-i`); close-on-exec here, so only the helper they are given to gets them.
type ClientStdio = (Option<OwnedFd>, OwnedFd, OwnedFd);

fn receive_stdio(conn: &UnixStream, with_stdin: bool) -> Result<ClientStdio, Failure> {
    let fail = |why: String| Failure::engine(format!("exec: receiving the client's stdio: {why}"));
    let expected = if with_stdin { 3 } else { 2 };
    conn.set_read_timeout(Some(super::server::REQUEST_TIMEOUT)).map_err(|e| fail(e.to_string()))?;
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let msg = recvmsg::<UnixAddr>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| fail(e.to_string()))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs().map_err(|e| fail(e.to_string()))? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: fds the kernel just installed in this process for us alone.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let bytes = msg.bytes;
    let _ = conn.set_read_timeout(None);
    if bytes != 1 || byte[0] != EXEC_FDS_BYTE || truncated || fds.len() != expected {
        return Err(fail(format!("expected one byte with {expected} fds, got {bytes} bytes and {} fds", fds.len())));
    }
    let stderr = fds.pop();
    let stdout = fds.pop();
    let stdin = fds.pop();
    match (stdout, stderr) {
        (Some(o), Some(e)) => Ok((stdin, o, e)),
        _ => Err(fail("missing fds".into())),
    }
}

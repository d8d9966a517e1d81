//! The parent side of container creation: clone() into new namespaces and re-exec engine as the
//! container's init.
//!
//! The supervisor is multi-threaded, so between clone() and execve() the child only calls
//! async-signal-safe functions (dup2, fcntl, execve) on values prepared beforehand: another thread
//! may hold the allocator's lock at the moment of the clone. Everything else (mounts, pivot_root,
//! exec of the command) happens in the freshly exec'd, single-threaded `engine-init`
//! (see `init.rs`), which then stays as PID 1 of the container to reap orphans.
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{pipe2, Pid};

use super::channel::InitChannel;

/// argv[0] of the re-exec'd engine; `main` dispatches on it, and `ps` in the container shows it.
pub const INIT_ARGV0: &str = "engine-init";
/// The fd number on which the init finds its end of the [`InitChannel`].
pub const INIT_CHANNEL_FD: RawFd = 3;
/// Exit code of a child that could not even exec the init (Docker's "engine error").
const EXIT_SPAWN_FAILED: i32 = 125;
const CHILD_STACK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("creating the {what} for the container: {source}")]
    Setup { what: &'static str, source: nix::Error },
    #[error("clone() into new namespaces: {0}")]
    Clone(nix::Error),
}

/// A just-cloned container init, blocked until it is sent `ToInit::Go`.
pub struct Spawned {
    pub pid: Pid,
    pub channel: InitChannel,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

pub fn clone_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
}

pub fn spawn_init() -> Result<Spawned, SpawnError> {
    let setup = |what| move |source| SpawnError::Setup { what, source };
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(setup("stdout pipe"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(setup("stderr pipe"))?;
    let devnull = open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(setup("stdin"))?;
    let (parent_chan, child_chan) =
        InitChannel::pair().map_err(|e| SpawnError::Setup { what: "init channel", source: io_to_nix(e) })?;
    // SAFETY (of the fd: devnull from open() is a fresh fd owned here)
    let devnull = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(devnull) };

    // Prepared before clone(): the child must not allocate.
    let exe: &'static CStr = c"/proc/self/exe";
    let argv0: &'static CStr = c"engine-init";
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let stdio = [devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    let chan = child_chan.as_raw_fd();
    let mut stack = vec![0u8; CHILD_STACK];

    let child = Box::new(move || -> isize {
        // SAFETY: only async-signal-safe calls on fds and pointers prepared above.
        unsafe { exec_init(stdio, chan, exe, &argv, &envp) }
    });
    // SAFETY: the callback runs in a copy of this address space and ends in execve or _exit.
    let pid = unsafe { nix::sched::clone(child, &mut stack, clone_flags(), Some(libc::SIGCHLD)) }
        .map_err(SpawnError::Clone)?;
    // The child's copies of devnull, out_w, err_w and child_chan are its own; ours close here,
    // so the pipes see EOF once every process of the container is gone.
    drop((devnull, out_w, err_w, child_chan));
    Ok(Spawned { pid, channel: parent_chan, stdout: out_r, stderr: err_r })
}

/// Runs in the cloned child: wire fds 0-3 and exec `engine-init`. fds 0-2 of the supervisor are
/// always open, so every source fd here is >= 3 and dup2 onto 0-2 cannot clobber one another.
unsafe fn exec_init(
    stdio: [RawFd; 3],
    chan: RawFd,
    exe: &CStr,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
) -> isize {
    for (target, fd) in stdio.iter().enumerate() {
        if libc::dup2(*fd, target as RawFd) < 0 {
            libc::_exit(EXIT_SPAWN_FAILED);
        }
    }
    // dup2 onto itself would keep FD_CLOEXEC; clear it instead.
    let ok = if chan == INIT_CHANNEL_FD {
        libc::fcntl(chan, libc::F_SETFD, 0) == 0
    } else {
        libc::dup2(chan, INIT_CHANNEL_FD) >= 0
    };
    if ok {
        libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    libc::_exit(EXIT_SPAWN_FAILED)
}

fn io_to_nix(e: std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

//! The parent side of container creation: clone() into the Spec's namespaces and re-exec engine
//! as the container's init.
//!
//! The caller may be multi-threaded (the supervisor is), so between clone() and execve() the
//! child only calls async-signal-safe functions (dup2, fcntl, execve) on values prepared
//! beforehand: another thread may hold the allocator's lock at the moment of the clone.
//! Everything else (mounts, pivot_root, the process's settings, exec of the command) happens in
//! the freshly exec'd, single-threaded `engine-init` (see `init.rs`).
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::pipe2;
use oci_spec::runtime::LinuxNamespaceType;

use super::channel::InitChannel;
use super::error::CoreError;
use super::lifecycle::Stdio;
use super::{exit, Spec};

/// argv[0] of the re-exec'd engine; `main` dispatches on it, and `ps` in the container shows it.
pub const INIT_ARGV0: &str = "engine-init";
/// The fd number on which the init finds its end of the [`InitChannel`].
pub const INIT_CHANNEL_FD: RawFd = 3;
const CHILD_STACK: usize = 256 * 1024;

/// A just-cloned init, blocked until it gets its Setup.
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub channel: InitChannel,
    /// Read ends of stdout and stderr (Stdio::Pipes).
    pub output: Option<(OwnedFd, OwnedFd)>,
}

/// The namespaces the clone makes: every one the Spec lists without a path.
pub fn clone_flags(spec: &Spec) -> Result<CloneFlags, CoreError> {
    let mut flags = CloneFlags::empty();
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    for ns in namespaces.into_iter().flatten() {
        if ns.path().is_some() {
            return Err(CoreError::spec(
                "linux.namespaces",
                format!("joining a {} namespace by path is not supported yet", ns.typ()),
            ));
        }
        flags |= match ns.typ() {
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            // Unshared by the init once it is in its cgroup: the namespace's root is that group.
            LinuxNamespaceType::Cgroup => CloneFlags::empty(),
            other => {
                return Err(CoreError::spec(
                    "linux.namespaces",
                    format!("a new {other} namespace is not supported yet"),
                ))
            }
        };
    }
    if !flags.contains(CloneFlags::CLONE_NEWNS) {
        // The init mounts the root: outside a mount namespace of its own that is the host's tree.
        return Err(CoreError::spec("linux.namespaces", "a new mount namespace is required"));
    }
    Ok(flags)
}

pub fn spawn_init(flags: CloneFlags, stdio: Stdio) -> Result<Child, CoreError> {
    let setup = |what| move |e: nix::Error| CoreError::Resource { what, source: e.into() };
    let (stdio_fds, output): ([OwnedFd; 3], _) = match stdio {
        Stdio::Pipes => {
            let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(setup("stdout pipe"))?;
            let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(setup("stderr pipe"))?;
            let devnull =
                open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(setup("stdin"))?;
            // SAFETY: devnull from open() is a fresh fd owned here.
            let devnull = unsafe { OwnedFd::from_raw_fd(devnull) };
            ([devnull, out_w, err_w], Some((out_r, err_r)))
        }
        Stdio::Fds(fds) => (fds, None),
    };
    let (parent_chan, child_chan) =
        InitChannel::pair().map_err(|e| CoreError::Resource { what: "init channel", source: e })?;

    // Prepared before clone(): the child must not allocate.
    let exe: &'static CStr = c"/proc/self/exe";
    let argv0: &'static CStr = c"engine-init";
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let raw = [stdio_fds[0].as_raw_fd(), stdio_fds[1].as_raw_fd(), stdio_fds[2].as_raw_fd()];
    let chan = child_chan.as_raw_fd();
    let mut stack = vec![0u8; CHILD_STACK];

    let child = Box::new(move || -> isize {
        // SAFETY: only async-signal-safe calls on fds and pointers prepared above.
        unsafe { exec_init(raw, chan, exe, &argv, &envp) }
    });
    // SAFETY: the callback runs in a copy of this address space and ends in execve or _exit.
    let pid = unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| CoreError::Clone(e.into()))?;
    // The child's copies of the stdio fds and child_chan are its own; ours close here, so the
    // pipes see EOF once every process of the container is gone.
    drop((stdio_fds, child_chan));
    // Before anything can reap it: the child is blocked on its channel until Setup.
    let pidfd = match super::pidfd::pidfd_open(pid.as_raw()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            return Err(CoreError::Resource { what: "pidfd", source: e });
        }
    };
    Ok(Child { pid: pid.as_raw(), pidfd, channel: parent_chan, output })
}

/// Runs in the cloned child: wire fds 0-3 and exec `engine-init`. The sources are dup'd above
/// 3 first, so a caller's fd 0-3 given as a source cannot be clobbered by another dup2.
unsafe fn exec_init(
    stdio: [RawFd; 3],
    chan: RawFd,
    exe: &CStr,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
) -> isize {
    let mut high = [0 as RawFd; 4];
    for (slot, fd) in high.iter_mut().zip(stdio.iter().chain(std::iter::once(&chan))) {
        *slot = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
        if *slot < 0 {
            libc::_exit(exit::ENGINE_ERROR);
        }
    }
    for (target, fd) in high.iter().enumerate() {
        // dup2 clears FD_CLOEXEC on the new fd.
        if libc::dup2(*fd, target as RawFd) < 0 {
            libc::_exit(exit::ENGINE_ERROR);
        }
    }
    libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
    libc::_exit(exit::ENGINE_ERROR)
}

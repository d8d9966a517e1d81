//! The parent side of container creation: clone() into the Spec's namespaces and re-exec engine
//! as the container's init.
//!
//! The caller may be multi-threaded (the supervisor is), so between clone() and execve() the
//! child only calls async-signal-safe functions (dup2, fcntl, execve) on values prepared
//! beforehand: another thread may hold the allocator's lock at the moment of the clone.
//! Everything else (mounts, pivot_root, the process's settings, exec of the command) happens in
//! the freshly exec'd, single-threaded `engine-init` (see `init.rs`).
//!
//! A caller that is single-threaded for its whole life (the OCI binary says so with
//! [`allow_init_without_exec`]) has no other thread that could hold a lock at the clone: there the
//! clone runs `init::main` itself, as crun's child does, without the execve of the 6 MB
//! dynamically linked binary (unmapping the parent's copy, mapping and relocating the new one, the
//! loader's CPU probing: about a third of the CPU time of an OCI `run`). The init's first step is
//! the same either way: close every fd above its channel.
//!
//! A multi-threaded caller that started the [`spawner`](super::spawner) while it was still
//! single-threaded (the supervisor) has its inits cloned there instead, without the execve.
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
/// The fd number of the console socket (Stdio::Console); the init closes it unless its plan
/// says it has one.
pub const INIT_CONSOLE_FD: RawFd = 4;
const CHILD_STACK: usize = 256 * 1024;
/// The stack of a clone that runs the init itself (serde, seccomp, the mounts): mapped lazily,
/// only the pages it touches cost.
pub(crate) const INIT_STACK: usize = 8 * 1024 * 1024;

static INIT_WITHOUT_EXEC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

std::thread_local! {
    /// Set while this thread's next children go to a pid namespace joined by path
    /// ([`in_pid_namespace`]): the spawner, another process, cannot clone there.
    static IN_JOINED_PID_NS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Declares the process single-threaded for good, so its clones may run the init without an
/// execve. Checked again at each spawn (a second thread found means the exec is kept).
pub fn allow_init_without_exec() {
    INIT_WITHOUT_EXEC.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this clone may run the init without exec: allowed, and one thread (/proc/self/stat
/// field 20). An explicit init binary (a library user that is not engine) keeps the exec.
fn init_without_exec(binary: Option<&std::path::Path>) -> bool {
    if binary.is_some() || !INIT_WITHOUT_EXEC.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return false };
    let threads = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_ascii_whitespace().nth(17));
    threads == Some("1")
}

/// A just-cloned init, blocked until it gets its Setup.
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub channel: InitChannel,
    /// Read ends of stdout and stderr (Stdio::Pipes).
    pub output: Option<(OwnedFd, OwnedFd)>,
    /// New user namespace: the child waits on this pipe until its id maps are written
    /// ([`release`]), then becomes the namespace's root before its exec (an exec as an unmapped
    /// or non-root uid would drop every capability it has there).
    pub user_ns_gate: Option<OwnedFd>,
}

/// Lets a child waiting in a new user namespace go on (its maps are written).
pub fn release(gate: OwnedFd) -> Result<(), CoreError> {
    nix::unistd::write(&gate, b"1").map(drop).map_err(|e| CoreError::IdMap { what: "release", source: e.into() })
}

/// The namespaces the clone makes (every one the Spec lists without a path), and the pid
/// namespace to create the init in when the Spec joins one by path (only a clone can enter one).
/// The other namespaces given by path are joined by the init itself (`init::join_namespaces`).
pub fn clone_flags(spec: &Spec) -> Result<(CloneFlags, Option<std::path::PathBuf>), CoreError> {
    let mut flags = CloneFlags::empty();
    let mut pid_ns = None;
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    for ns in namespaces.into_iter().flatten() {
        if let Some(path) = ns.path() {
            match ns.typ() {
                LinuxNamespaceType::Pid => pid_ns = Some(path.clone()),
                LinuxNamespaceType::Mount
                | LinuxNamespaceType::Network
                | LinuxNamespaceType::Ipc
                | LinuxNamespaceType::Uts
                | LinuxNamespaceType::Cgroup => {}
                other => {
                    return Err(CoreError::spec(
                        "linux.namespaces",
                        format!("joining a {other} namespace by path is not supported"),
                    ))
                }
            }
            continue;
        }
        flags |= match ns.typ() {
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
            // Unshared by the init once it is in its cgroup: the namespace's root is that group.
            LinuxNamespaceType::Cgroup => CloneFlags::empty(),
            other => {
                return Err(CoreError::spec("linux.namespaces", format!("a new {other} namespace is not supported")))
            }
        };
    }
    // Without a mount namespace (new or joined) the init builds the root in the caller's, on a
    // private bind of the root only, and chroots (rootfs::HostRoot).
    Ok((flags, pid_ns))
}

/// Runs `clone` with the calling thread's children created in the pid namespace at `path`, and
/// puts the thread back in its own afterwards (setns of a pid namespace changes only where the
/// thread's next children go, so a multi-threaded caller is not disturbed).
pub fn in_pid_namespace<T>(
    path: &std::path::Path,
    clone: impl FnOnce() -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    let err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |e: nix::Error| CoreError::Namespace { kind: "pid".into(), path, source: e.into() }
    };
    let own = std::path::Path::new("/proc/thread-self/ns/pid");
    let back = open(own, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err(own))?;
    // SAFETY: fresh fds owned here.
    let back = unsafe { OwnedFd::from_raw_fd(back) };
    let target = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(err(path))?;
    let target = unsafe { OwnedFd::from_raw_fd(target) };
    nix::sched::setns(&target, CloneFlags::CLONE_NEWPID).map_err(err(path))?;
    IN_JOINED_PID_NS.with(|f| f.set(true));
    let made = clone();
    IN_JOINED_PID_NS.with(|f| f.set(false));
    let restored = nix::sched::setns(&back, CloneFlags::CLONE_NEWPID).map_err(err(own));
    let made = made?;
    restored?;
    Ok(made)
}

/// Writes the user namespace's uid and gid maps of the just-cloned init `pid` (before its Setup:
/// the init starts by becoming root of the namespace).
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<(), CoreError> {
    let linux = spec.linux().as_ref();
    for (what, file, maps) in [
        ("uid map", "uid_map", linux.and_then(|l| l.uid_mappings().as_ref())),
        ("gid map", "gid_map", linux.and_then(|l| l.gid_mappings().as_ref())),
    ] {
        let Some(maps) = maps.filter(|m| !m.is_empty()) else {
            return Err(CoreError::spec(
                format!("linux.{}Mappings", &file[..3]),
                "a new user namespace needs mappings",
            ));
        };
        let text: String =
            maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect();
        // One write, as the kernel requires.
        std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|source| CoreError::IdMap { what, source })?;
    }
    Ok(())
}

pub fn spawn_init(flags: CloneFlags, stdio: Stdio, binary: Option<&std::path::Path>) -> Result<Child, CoreError> {
    spawn_init_overlapped(flags, stdio, binary, false, false, &mut || {})
}

/// [`spawn_init`], running `meanwhile` while the init is being cloned (the spawner's clone of a
/// new network namespace and the caller's cgroup directories overlap) or, without the spawner,
/// right after the clone. It may be called more than once if the spawner fails midway: the
/// caller makes it do its work once. `kit_fits`: the Spec fits the mounts an init made ahead
/// has (`kit::fits`); `bridged`: its network namespace goes on the bridge (its veth pair may
/// come made ahead with it, `net::ahead`).
pub fn spawn_init_overlapped(
    flags: CloneFlags,
    stdio: Stdio,
    binary: Option<&std::path::Path>,
    kit_fits: bool,
    bridged: bool,
    meanwhile: &mut dyn FnMut(),
) -> Result<Child, CoreError> {
    let setup = |what| move |e: nix::Error| CoreError::Resource { what, source: e.into() };
    // The spawner's clone (no execve; see `spawner`) where it can make this init: not for a new
    // user namespace (its gate), a pid namespace joined by path, or an explicit init binary.
    let by_spawner = !flags.contains(CloneFlags::CLONE_NEWUSER)
        && binary.is_none()
        && !IN_JOINED_PID_NS.with(|f| f.get())
        && super::spawner::running();
    // Output to pipes: the spawner's own, with an init it may have cloned ahead.
    if by_spawner && matches!(stdio, Stdio::Pipes) {
        if let Some(spawned) = super::spawner::spawn_with_pipes(flags, kit_fits, bridged, meanwhile) {
            let (pid, [chan, out_r, err_r]) = spawned.map_err(CoreError::Clone)?;
            // SAFETY: the spawner made it with InitChannel::pair's type (SOCK_SEQPACKET); ours alone.
            let chan = unsafe { InitChannel::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(chan)) };
            return finish_spawn(nix::unistd::Pid::from_raw(pid), chan, Some((out_r, err_r)), None);
        }
    }
    let mut console = None;
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
        Stdio::Console(sock) => {
            // Until the init has the container's pty: nothing to read, writes discarded.
            let devnull =
                open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).map_err(setup("stdio /dev/null"))?;
            // SAFETY: devnull from open() is a fresh fd owned here.
            let devnull = unsafe { OwnedFd::from_raw_fd(devnull) };
            let dup =
                |fd: &OwnedFd| fd.try_clone().map_err(|e| CoreError::Resource { what: "stdio /dev/null", source: e });
            console = Some(sock);
            ([dup(&devnull)?, dup(&devnull)?, devnull], None)
        }
    };
    let (parent_chan, child_chan) =
        InitChannel::pair().map_err(|e| CoreError::Resource { what: "init channel", source: e })?;
    let gate = if flags.contains(CloneFlags::CLONE_NEWUSER) {
        Some(pipe2(OFlag::O_CLOEXEC).map_err(setup("user namespace gate"))?)
    } else {
        None
    };
    let gate_fd = gate.as_ref().map_or(-1, |(r, _)| r.as_raw_fd());
    if by_spawner {
        let mut fds = vec![stdio_fds[0].as_raw_fd(), stdio_fds[1].as_raw_fd(), stdio_fds[2].as_raw_fd()];
        fds.push(child_chan.as_raw_fd());
        fds.extend(console.as_ref().map(|c| c.as_raw_fd()));
        if let Some(spawned) = super::spawner::spawn(flags, &fds, bridged, meanwhile) {
            let pid = nix::unistd::Pid::from_raw(spawned.map_err(CoreError::Clone)?);
            drop((stdio_fds, child_chan, console));
            return finish_spawn(pid, parent_chan, output, None);
        }
    }

    // Prepared before clone(): the child must not allocate.
    let exe = match binary {
        Some(path) => std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| CoreError::spec("init binary", "the path contains a NUL byte"))?,
        None => c"/proc/self/exe".to_owned(),
    };
    let exe = exe.as_c_str();
    let argv0: &'static CStr = c"engine-init";
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let raw = [stdio_fds[0].as_raw_fd(), stdio_fds[1].as_raw_fd(), stdio_fds[2].as_raw_fd()];
    let chan = child_chan.as_raw_fd();
    let console_fd = console.as_ref().map_or(-1, |c| c.as_raw_fd());
    let no_exec = init_without_exec(binary);
    let mut stack = vec![0u8; if no_exec { INIT_STACK } else { CHILD_STACK }];

    let child = Box::new(move || -> isize {
        // SAFETY: only async-signal-safe calls on fds and pointers prepared above; without exec
        // the caller is single-threaded (checked), so the init may run here as in a fork.
        unsafe {
            if no_exec {
                wire_fds(raw, chan, console_fd, gate_fd);
                // _exit: no destructor or buffered output of the parent's may run twice.
                libc::_exit(super::init::main())
            }
            exec_init(raw, chan, console_fd, gate_fd, exe, &argv, &envp)
        }
    });
    // SAFETY: the callback runs in a copy of this address space and ends in execve or _exit.
    let pid = unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| CoreError::Clone(e.into()))?;
    meanwhile();
    // The child's copies of the stdio fds and child_chan are its own; ours close here, so the
    // pipes see EOF once every process of the container is gone.
    let user_ns_gate = gate.map(|(r, w)| {
        drop(r);
        w
    });
    drop((stdio_fds, child_chan, console));
    finish_spawn(pid, parent_chan, output, user_ns_gate)
}

/// The pidfd of the just-made init, and the parent's ends.
fn finish_spawn(
    pid: nix::unistd::Pid,
    parent_chan: InitChannel,
    output: Option<(OwnedFd, OwnedFd)>,
    user_ns_gate: Option<OwnedFd>,
) -> Result<Child, CoreError> {
    // Before anything can reap it: the child is blocked on its channel until Setup.
    let pidfd = match super::pidfd::pidfd_open(pid.as_raw()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            return Err(CoreError::Resource { what: "pidfd", source: e });
        }
    };
    Ok(Child { pid: pid.as_raw(), pidfd, channel: parent_chan, output, user_ns_gate })
}

/// Runs in the cloned child: wire fds 0-3 (and 4, the console socket, when given) and exec
/// `engine-init`. The sources are dup'd above 4 first, so a caller's fd 0-4 given as a source
/// cannot be clobbered by another dup2.
unsafe fn exec_init(
    stdio: [RawFd; 3],
    chan: RawFd,
    console: RawFd,
    user_ns_gate: RawFd,
    exe: &CStr,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
) -> isize {
    wire_fds(stdio, chan, console, user_ns_gate);
    libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
    libc::_exit(exit::ENGINE_ERROR)
}

/// Waits for the id maps (new user namespace) and becomes its root, then puts stdio on 0-2 and
/// the channel on 3 and the console socket (if any) on 4, without FD_CLOEXEC. Exits the child on any failure.
pub(crate) unsafe fn wire_fds(stdio: [RawFd; 3], chan: RawFd, console: RawFd, user_ns_gate: RawFd) {
    if user_ns_gate >= 0 {
        let mut byte = 0u8;
        if libc::read(user_ns_gate, (&mut byte as *mut u8).cast(), 1) != 1 {
            libc::_exit(exit::ENGINE_ERROR);
        }
        // Raw system calls: glibc's setresuid would signal the threads the parent had.
        if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0 || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0 {
            libc::_exit(exit::ENGINE_ERROR);
        }
    }
    // Target fd = index; -1: none (no console socket).
    let mut high = [stdio[0], stdio[1], stdio[2], chan, console];
    for slot in high.iter_mut().filter(|fd| **fd >= 0) {
        *slot = libc::fcntl(*slot, libc::F_DUPFD_CLOEXEC, 10);
        if *slot < 0 {
            libc::_exit(exit::ENGINE_ERROR);
        }
    }
    for (target, fd) in high.iter().enumerate().filter(|(_, fd)| **fd >= 0) {
        // dup2 clears FD_CLOEXEC on the new fd.
        if libc::dup2(*fd, target as RawFd) < 0 {
            libc::_exit(exit::ENGINE_ERROR);
        }
    }
    // No console: whatever the caller had at 4 goes now. An init cloned without an execve
    // shares the caller's fds, and 4 may be the parent's end of this very channel, which would
    // keep wait_setup from ever seeing the parent give up.
    if console < 0 {
        libc::close(INIT_CONSOLE_FD);
    }
}

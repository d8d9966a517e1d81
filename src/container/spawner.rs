//! The spawner: a single-threaded copy of a multi-threaded caller (the supervisor), forked once
//! before its first thread, that clones container inits on request, so an init runs
//! `init::main` straight after its clone instead of re-executing the engine binary.
//!
//! Why: a multi-threaded process may not run the init in its own clone (another thread may hold
//! the allocator's lock at that moment, see `spawn`), so it used to exec the 14 MB dynamically
//! linked engine binary per container: the clone copied the supervisor's page tables, the exec
//! threw them away, and the loader mapped and relocated the binary again (23,600 relocations)
//! before the init's first line. The spawner has one thread for good, a small address space
//! (that of the supervisor before it started), and clones with CLONE_PARENT: the init is the
//! supervisor's child, as before, reaped and signalled through its pidfd as before.
//!
//! What the init must not inherit from the spawner, it does not: the fds (the init closes all
//! above its channel first, as after an exec), the supervisor's argv and environment (blanked in
//! the spawner's memory at its start, so `/proc/<init>/cmdline` and `environ` show nothing of
//! the supervisor), its signal dispositions (reset by the init for the command, as after an
//! exec). A new user namespace or a pid namespace joined by path keeps the exec path.
//!
//! The spawner also has each init's network namespace made ahead of time ([`NetnsPool`]):
//! creating one is most of an init's clone (0.55 of 0.78 ms here, the kernel's per-namespace
//! setup of every protocol), so once a start is answered its maker process makes the next one;
//! the next init is cloned inside it.
//!
//! And an init whose output goes to pipes (every supervisor container without a terminal) is
//! cloned ahead too ([`ReadyInit`]): with the namespaces the last such request asked for, its
//! stdio pipes and channel made here; a request with those namespaces gets it, with the pipes'
//! read ends and the channel's other end, instead of waiting for a clone (0.3 ms). It waits for
//! its Setup like any init, outside every container cgroup; a ready init that no request takes
//! ends when the spawner lets go of its channel (another request's namespaces, the spawner's
//! end).
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use nix::sched::CloneFlags;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use parking_lot::Mutex;

use super::netns_pool::NetnsPool;

/// The supervisor's end of the spawner's socket (one request at a time).
static SPAWNER: OnceLock<Mutex<OwnedFd>> = OnceLock::new();
/// The spawner's argv area (start, end), where each init writes its own name.
static ARGS: OnceLock<(usize, usize)> = OnceLock::new();

/// stdin, stdout, stderr, the init's channel, and the console socket when there is one.
const MAX_FDS: usize = 5;
/// The request: clone flags (u64, native endian), what comes with it ([`Stdio`]), and whether
/// the init's network namespace goes on the bridge (1: a pair made ahead may come with it).
const REQUEST_LEN: usize = 10;

/// The request's last byte: whose fds the init gets.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stdio {
    /// The caller's: stdin, stdout, stderr, the channel (four fds with the request).
    Given = 0,
    /// The caller's and a console socket (five).
    GivenWithConsole = 1,
    /// The spawner's: /dev/null, two pipes, a channel (none with the request; the reply
    /// carries the channel's other end and the pipes' read ends, [`MADE_FDS`]).
    Made = 2,
    /// As `Made`, for a Spec the mounts made ahead fit ([`super::kit::fits`]): an init made
    /// ahead with them may be given.
    MadeKitFits = 3,
    /// Not a clone: the directory to make the holding namespace of inits made ahead with their
    /// mounts over (the path follows; [`super::kit::Holding`]).
    KitDir = 4,
    /// Not a clone: the supervisor has answered a start; the work ahead for the next one may
    /// begin now, instead of after [`REFILL_AFTER`] without a request. When that start was
    /// bridged the reply carries the namespace the next init will be cloned in, for the
    /// supervisor to make its veth pair in (`crate::net::ahead`).
    Refill = 5,
}

/// The longest request: a [`Stdio::KitDir`] with its path.
const MAX_REQUEST: usize = REQUEST_LEN + libc::PATH_MAX as usize;

/// The fds a [`Stdio::Made`] reply carries: the channel, stdout's and stderr's read ends.
const MADE_FDS: usize = 3;

/// Forks the spawner. Call only while the process has a single thread (before any thread is
/// started): the fork copies the calling thread alone, and the spawner must find every lock
/// free. A failure leaves the exec path in use; it is returned to be reported.
pub fn start() -> std::io::Result<()> {
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let parent = std::process::id() as i32;
    // SAFETY: single-threaded (the caller's promise); the child only runs `serve`, which exits.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            serve(theirs, parent)
        }
        nix::unistd::ForkResult::Parent { .. } => {
            drop(theirs);
            // A second start keeps the first spawner (this one exits: its socket closes).
            let _ = SPAWNER.set(Mutex::new(ours));
            Ok(())
        }
    }
}

/// Whether inits are cloned by the spawner.
pub fn running() -> bool {
    SPAWNER.get().is_some()
}

/// Asks the spawner for an init cloned with `flags` (plus CLONE_PARENT: the caller's child)
/// whose fds 0-4 are `fds` (the fifth a console socket, if given); its pid. `None`: the spawner
/// is not running or has gone (the caller takes the exec path); an error: the clone failed.
/// `meanwhile` runs while the spawner clones (once the request is sent), on the caller's thread.
pub fn spawn(
    flags: CloneFlags,
    fds: &[RawFd],
    bridged: bool,
    meanwhile: &mut dyn FnMut(),
) -> Option<std::io::Result<i32>> {
    let sock = SPAWNER.get()?.lock();
    let mut request = [0u8; REQUEST_LEN];
    request[..8].copy_from_slice(&(flags.bits() as u64).to_ne_bytes());
    request[8] = if fds.len() == MAX_FDS { Stdio::GivenWithConsole } else { Stdio::Given } as u8;
    request[9] = bridged as u8;
    let rights = [ControlMessage::ScmRights(fds)];
    if sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(&request)], &rights, MsgFlags::MSG_NOSIGNAL, None).is_err() {
        return None;
    }
    meanwhile();
    receive_reply(&sock).map(|r| r.map(|(pid, _)| pid))
}

/// An init cloned with `flags` (plus CLONE_PARENT) whose stdin is /dev/null and whose stdout and
/// stderr are pipes, made by the spawner (ahead of this request when the last one asked for the
/// same namespaces): its pid, its channel's other end, and the pipes' read ends. `None` and
/// `meanwhile` as for [`spawn`].
pub fn spawn_with_pipes(
    flags: CloneFlags,
    kit_fits: bool,
    bridged: bool,
    meanwhile: &mut dyn FnMut(),
) -> Option<std::io::Result<(i32, [OwnedFd; 3])>> {
    let sock = SPAWNER.get()?.lock();
    let mut request = [0u8; REQUEST_LEN];
    request[..8].copy_from_slice(&(flags.bits() as u64).to_ne_bytes());
    request[8] = if kit_fits { Stdio::MadeKitFits } else { Stdio::Made } as u8;
    request[9] = bridged as u8;
    if nix::sys::socket::send(sock.as_raw_fd(), &request, MsgFlags::MSG_NOSIGNAL).is_err() {
        return None;
    }
    meanwhile();
    let (pid, fds) = match receive_reply(&sock)? {
        Ok(reply) => reply,
        Err(e) => return Some(Err(e)),
    };
    match <[OwnedFd; MADE_FDS]>::try_from(fds) {
        Ok(fds) => Some(Ok((pid, fds))),
        // A reply without its fds: the init is ours to end (it ends once its channel is gone).
        Err(_) => Some(Err(std::io::Error::other("the spawner's reply came without its fds"))),
    }
}

/// Tells the spawner where to make the namespace the inits with the mounts every container gets
/// are cloned in ([`super::kit::Holding`]): `dir`, an empty directory of the supervisor's (the
/// spawner mounts a tmpfs there in a mount namespace of its own). Without it (or a spawner)
/// none are made ahead.
pub fn set_kit_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let made = ask_for_kits(dir);
    KITS.store(made.is_ok(), std::sync::atomic::Ordering::Relaxed);
    made
}

/// Whether the spawner makes inits with a kit (its holding namespace is made): only then is a
/// start prepared for one (`lifecycle::create`: its root sent as a mount).
pub fn makes_kits() -> bool {
    KITS.load(std::sync::atomic::Ordering::Relaxed)
}

static KITS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn ask_for_kits(dir: &std::path::Path) -> std::io::Result<()> {
    let Some(sock) = SPAWNER.get() else { return Ok(()) };
    let sock = sock.lock();
    let mut request = vec![0u8; REQUEST_LEN];
    request[8] = Stdio::KitDir as u8;
    request.extend_from_slice(dir.as_os_str().as_encoded_bytes());
    if request.len() > MAX_REQUEST {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    nix::sys::socket::send(sock.as_raw_fd(), &request, MsgFlags::MSG_NOSIGNAL)?;
    // The reply is 0 (taken) or -errno, read as a clone's.
    match receive_reply(&sock) {
        Some(Err(e)) if e.raw_os_error() == Some(0) => Ok(()),
        Some(reply) => reply.map(drop),
        None => Err(std::io::Error::from_raw_os_error(libc::EPIPE)),
    }
}

/// The spawner's reply: the init's pid and the fds that came with it, or the clone's error;
/// `None` if the spawner has gone.
fn receive_reply(sock: &OwnedFd) -> Option<std::io::Result<(i32, Vec<OwnedFd>)>> {
    let (pid, fds) = receive_raw(sock)?;
    Some(if pid > 0 { Ok((pid, fds)) } else { Err(std::io::Error::from_raw_os_error(-pid)) })
}

/// A reply as it came: its number (a pid, 0, or -errno) and its fds; `None` if the spawner has
/// gone.
fn receive_raw(sock: &OwnedFd) -> Option<(i32, Vec<OwnedFd>)> {
    let mut reply = [0u8; 4];
    let mut cmsg = nix::cmsg_space!([RawFd; MADE_FDS]);
    let mut iov = [IoSliceMut::new(&mut reply)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    let (bytes, fds) = (msg.bytes, received_fds(&msg));
    if bytes != 4 {
        return None;
    }
    Some((i32::from_ne_bytes(reply), fds))
}

/// The fds an SCM_RIGHTS message installed in this process, owned.
pub(super) fn received_fds(msg: &nix::sys::socket::RecvMsg<'_, '_, ()>) -> Vec<OwnedFd> {
    msg.cmsgs()
        .into_iter()
        .flatten()
        .filter_map(|c| match c {
            // SAFETY: fds the kernel just installed in this process for us.
            ControlMessageOwned::ScmRights(fds) => Some(fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The spawner's life: blank what the init must not show, then one clone per request until the
/// supervisor's end closes (or the supervisor dies: SIGKILL by PDEATHSIG).
fn serve(sock: OwnedFd, parent: i32) -> ! {
    // SAFETY: prctl and getppid on this process only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        libc::prctl(libc::PR_SET_NAME, c"engine-spawner".as_ptr() as libc::c_ulong);
        // Nothing of the supervisor's stays open here but the socket and stderr: a pipe a
        // waiting reader expects to close (`--detach`'s status pipe, a caller's stdout) closes
        // when the supervisor's copy does.
        let keep = sock.as_raw_fd() as libc::c_uint;
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
        }
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
    }
    blank_args_and_environment();
    let mut netns = NetnsPool::open();
    netns.fill();
    let mut ready: Option<ReadyInit> = None;
    // The namespace inits with a kit are cloned in, once the supervisor names its directory.
    let mut holding: Option<super::kit::Holding> = None;
    // The namespaces of the last request with pipes of ours: those of the next init made ahead.
    let mut last_made: Option<CloneFlags> = None;
    // Whether that request's Spec fitted the mounts made ahead: the next init makes them only
    // then (a run of Specs they do not fit keeps getting inits made ahead without them).
    let mut last_fitted = false;
    // Whether the last clone request's init went on the bridge: its answer's refill then gives
    // the supervisor the next init's namespace to make a veth pair in (`crate::net::ahead`).
    let mut last_bridged = false;
    // The supervisor has answered the last start (`Stdio::Refill`): work ahead without waiting.
    let mut refill_now = false;
    loop {
        // Work ahead only once the last start is answered (or no request has come for a while):
        // an init (in the namespace made ahead), then the next namespace unless a request came
        // meanwhile. Tried once per request (a failure is not retried in a loop).
        let init_wanted = ready.is_none() && last_made.is_some();
        let wait = if refill_now { 0 } else { REFILL_AFTER.as_millis() as libc::c_int };
        refill_now = false;
        if (init_wanted || netns.wanted()) && !netns.request_within(&sock, wait) {
            if let (true, Some(flags)) = (init_wanted, last_made) {
                let kit = holding.as_ref().filter(|_| last_fitted);
                ready = ReadyInit::make(flags, &mut netns, Some(kit), last_bridged).ok();
                if ready.is_none() {
                    // Not again until another request asks (a clone that failed fails again).
                    last_made = None;
                }
            }
            if !netns.request_within(&sock, 0) {
                netns.fill();
            }
        }
        // The namespace asked of the maker is taken as it comes, while no request does.
        netns.request_within(&sock, -1);
        let mut request = [0u8; MAX_REQUEST];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut request)];
        let (len, fds) = match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => (msg.bytes, received_fds(&msg)),
            Err(nix::Error::EINTR) => continue,
            // 0 bytes (below) or an error: the supervisor is gone.
            Err(_) => (0, Vec::new()),
        };
        if len == 0 {
            // SAFETY: ends this single-threaded process.
            unsafe { libc::_exit(0) }
        }
        let mut bits = [0u8; 8];
        bits.copy_from_slice(&request[..8]);
        let flags = CloneFlags::from_bits(u64::from_ne_bytes(bits) as libc::c_int);
        let (given, with_console) = (Stdio::Given as u8, Stdio::GivenWithConsole as u8);
        let (made, made_fits, kit) = (Stdio::Made as u8, Stdio::MadeKitFits as u8, Stdio::KitDir as u8);
        let refill = Stdio::Refill as u8;
        let bridged = request[9] == 1;
        if len == REQUEST_LEN && [given, with_console, made, made_fits].contains(&request[8]) {
            last_bridged = bridged;
        }
        let (pid, made_fds) = match (len, fds.len(), request[8], flags) {
            (REQUEST_LEN, 4, s, Some(flags)) if s == given => {
                (clone_init(flags, &fds, &mut netns, None, bridged).0, Vec::new())
            }
            (REQUEST_LEN, 5, s, Some(flags)) if s == with_console => {
                (clone_init(flags, &fds, &mut netns, None, bridged).0, Vec::new())
            }
            (REQUEST_LEN, 0, s, Some(flags)) if s == made || s == made_fits => {
                last_made = Some(flags);
                last_fitted = s == made_fits;
                // Made ahead for these namespaces (with mounts ahead only for a Spec they fit, in
                // a namespace given for a veth pair only for a bridged one), or now; one made for
                // others is let go.
                let taken =
                    ready.take().filter(|r| r.flags == flags && (s == made_fits || !r.kit) && (bridged || !r.paired));
                match taken.map_or_else(|| ReadyInit::make(flags, &mut netns, None, bridged), Ok) {
                    Ok(init) => (init.pid, Vec::from(init.theirs)),
                    Err(e) => (e, Vec::new()),
                }
            }
            (REQUEST_LEN, 0, s, _) if s == refill => {
                refill_now = true;
                // The namespace the next init is cloned in, to be paired by the supervisor: only a
                // bridged init may be given it from now on.
                // That is the ready init's if one is made (the 10 ms fallback may have made it
                // before this answer), else the pool's.
                let ns = match ready.as_mut() {
                    Some(r) => r.give_for_pair(last_bridged),
                    None => netns.give_for_pair(last_bridged),
                };
                (0, ns.into_iter().collect())
            }
            (len, 0, s, _) if s == kit && len > REQUEST_LEN => {
                let dir = std::ffi::OsStr::from_bytes(&request[REQUEST_LEN..len]);
                let made = match holding {
                    Some(_) => Ok(()),
                    None => super::kit::Holding::make(std::path::Path::new(dir)).map(|h| holding = Some(h)),
                };
                (made.map_or_else(|e| -e.raw_os_error().unwrap_or(libc::EIO), |()| 0), Vec::new())
            }
            _ => (-libc::EINVAL, Vec::new()),
        };
        drop(fds);
        let raw: Vec<RawFd> = made_fds.iter().map(AsRawFd::as_raw_fd).collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let rights: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let reply = pid.to_ne_bytes();
        if sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(&reply)], rights, MsgFlags::MSG_NOSIGNAL, None).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(0) }
        }
        // Our copies go; the supervisor has its own now.
        drop(made_fds);
    }
}

/// An init cloned before its request, with stdio and a channel the spawner made.
struct ReadyInit {
    flags: CloneFlags,
    /// Whether it makes the mounts every container gets ahead ([`super::kit`]).
    kit: bool,
    /// Whether its network namespace was given to the supervisor for a veth pair
    /// (`crate::net::ahead`): only a bridged request may take it.
    paired: bool,
    pid: i32,
    /// The channel's other end, stdout's and stderr's read ends: the supervisor's once handed.
    theirs: [OwnedFd; MADE_FDS],
}

impl ReadyInit {
    /// Its network namespace, for the supervisor to make a veth pair in, if `bridged` (the last
    /// start was) and it has a new one not given yet; it is marked as paired.
    fn give_for_pair(&mut self, bridged: bool) -> Option<OwnedFd> {
        if !bridged || self.paired || !self.flags.contains(CloneFlags::CLONE_NEWNET) {
            return None;
        }
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.pid)).ok()?;
        self.paired = true;
        Some(OwnedFd::from(ns))
    }

    /// Clones an init with `flags`: stdin /dev/null, stdout and stderr pipes. `ahead`: made
    /// before any request asked (`Some`: the init warms up while it waits), in the holding
    /// namespace with a kit if one is given and the namespaces fit. Err: -errno.
    fn make(
        flags: CloneFlags,
        netns: &mut NetnsPool,
        ahead: Option<Option<&super::kit::Holding>>,
        bridged: bool,
    ) -> Result<ReadyInit, i32> {
        let errno = |e: nix::Error| -(e as i32);
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno)?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno)?;
        let null = std::fs::File::open("/dev/null").map_err(|e| -e.raw_os_error().unwrap_or(libc::EIO))?;
        let (chan, init_chan) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(errno)?;
        // In the holding namespace for the clone (an init that cannot be made there gets no kit).
        let holding = ahead.flatten().filter(|_| super::kit::flags_fit(flags)).filter(|h| h.enter().is_ok());
        let fds = [OwnedFd::from(null), out_w, err_w, init_chan];
        let (pid, paired) = clone_init(flags, &fds, netns, ahead.map(|_| holding.is_some()), bridged);
        if let Some(h) = holding {
            h.back_home();
        }
        match pid {
            pid if pid > 0 => {
                Ok(ReadyInit { flags, kit: holding.is_some(), paired, pid, theirs: [chan, out_r, err_r] })
            }
            e => Err(e),
        }
    }
}

/// How long the spawner waits, idle, before making the next init and asking its maker for the
/// next network namespace, unless the supervisor says its start is answered first ([`refill`]).
/// That work began 1 ms after each request until the tenth session, while the request's own
/// container was still starting: on two CPUs it took ~1 ms from it (step trace of idle runs). A
/// start's answer is the moment to begin; this is for a start never answered (a `run` whose
/// command runs on, a failure).
const REFILL_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// The supervisor has answered a start: the spawner may make the next init and network
/// namespace now. Best effort: without a spawner, or if it is gone, nothing is to be done. When
/// that start was bridged: the namespace the next init will be cloned in, for the caller to make
/// its veth pair in (`crate::net::ahead`).
pub fn refill() -> Option<OwnedFd> {
    let sock = SPAWNER.get()?.lock();
    let mut request = [0u8; REQUEST_LEN];
    request[8] = Stdio::Refill as u8;
    nix::sys::socket::send(sock.as_raw_fd(), &request, MsgFlags::MSG_NOSIGNAL).ok()?;
    receive_raw(&sock)?.1.into_iter().next()
}

/// One init: cloned into the requested namespaces as the supervisor's child, fds wired, then
/// `init::main`. Its pid, or -errno.
/// `ahead`: as for [`ReadyInit::make`] (`None`: cloned for its request). With it, whether the
/// init's namespace (one made ahead) has a veth pair (only if `bridged`).
fn clone_init(
    mut flags: CloneFlags,
    fds: &[OwnedFd],
    netns: &mut NetnsPool,
    ahead: Option<bool>,
    bridged: bool,
) -> (i32, bool) {
    let made_netns = flags.contains(CloneFlags::CLONE_NEWNET).then(|| netns.enter(bridged)).flatten();
    if made_netns.is_some() {
        flags.remove(CloneFlags::CLONE_NEWNET);
    }
    let pid = clone_init_with(flags, fds, ahead);
    if made_netns.is_some() {
        netns.back_home();
    }
    (pid, made_netns.unwrap_or(false))
}

fn clone_init_with(flags: CloneFlags, fds: &[OwnedFd], ahead: Option<bool>) -> i32 {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let stdio = [raw[0], raw[1], raw[2]];
    let (chan, console) = (raw[3], raw.get(4).copied().unwrap_or(-1));
    // A fresh mapping per init, untouched here: the clone copies none of its pages and the init
    // faults in only what it uses. (A Vec would come from the heap after the first free, and be
    // zeroed, 8 MB per init, and copied page by page into the clone.)
    // SAFETY: a new private anonymous mapping, unmapped below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            super::spawn::INIT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return -std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM);
    }
    // SAFETY: the mapping just made, INIT_STACK bytes, ours until the munmap below.
    let stack = unsafe { std::slice::from_raw_parts_mut(base.cast::<u8>(), super::spawn::INIT_STACK) };
    let child = Box::new(move || -> isize {
        // SAFETY: this process is single-threaded; the child runs the init as after a fork.
        unsafe {
            name_this_process(c"engine-init");
            super::spawn::wire_fds(stdio, chan, console, -1);
            libc::_exit(super::init::main_after_clone(ahead))
        }
    });
    // CLONE_PARENT: the supervisor's child (its reaper and pidfd see it); the exit signal is
    // then the spawner's own, SIGCHLD.
    // SAFETY: the callback ends in _exit; the stack outlives the call.
    let made = unsafe { nix::sched::clone(child, stack, flags | CloneFlags::CLONE_PARENT, Some(libc::SIGCHLD)) };
    // SAFETY: the child has its own copy (no CLONE_VM); nothing here uses the mapping any more.
    unsafe { libc::munmap(base, super::spawn::INIT_STACK) };
    match made {
        Ok(pid) => pid.as_raw(),
        Err(e) => -(e as i32),
    }
}

/// Zeroes the memory `/proc/self/cmdline` and `/proc/self/environ` read (the supervisor's argv
/// and environment, which an init cloned from here would otherwise show to the container), and
/// names the spawner in its argv area (each init writes its own name there).
fn blank_args_and_environment() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields 48-51 (arg_start, arg_end, env_start, env_end), counted after the `)` of comm.
    let fields: Vec<usize> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_ascii_whitespace().skip(45).take(4).filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    let [arg_start, arg_end, env_start, env_end] = fields[..] else { return };
    for (start, end) in [(arg_start, arg_end), (env_start, env_end)] {
        if start == 0 || end <= start {
            continue;
        }
        // SAFETY: the kernel's own bounds of this process's argv and environment strings, in
        // its stack mapping; nothing reads them any more (std's args and env are not used here).
        unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
    if arg_start != 0 && arg_end > arg_start {
        let _ = ARGS.set((arg_start, arg_end));
        // SAFETY: the argv area, bounds from the kernel.
        unsafe { write_name(arg_start, arg_end, b"engine-spawner") };
    }
}

/// Names a process forked or cloned from the spawner: its comm and its argv area (what `ps`
/// shows). Async-signal-safe (a prctl and plain stores).
pub(super) fn name_this_process(name: &std::ffi::CStr) {
    // SAFETY: prctl with a NUL-terminated name; ARGS holds this process's argv area (a copy of
    // the spawner's, from /proc/self/stat).
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong);
        if let Some(&(start, end)) = ARGS.get() {
            write_name(start, end, name.to_bytes());
        }
    }
}

/// Writes `name` and NULs over the argv area [start, end) (as much of it as fits, one NUL kept).
/// Async-signal-safe (plain stores): an init calls it between its clone and `init::main`.
///
/// # Safety
/// [start, end) must be this process's argv area (from /proc/self/stat).
unsafe fn write_name(start: usize, end: usize, name: &[u8]) {
    let len = end - start;
    std::ptr::write_bytes(start as *mut u8, 0, len);
    std::ptr::copy_nonoverlapping(name.as_ptr(), start as *mut u8, name.len().min(len - 1));
}

//! The network namespaces the spawner clones inits in, made ahead by a process of their own.
//!
//! Making one is most of an init's clone (the kernel's per-namespace setup of every protocol:
//! 0.4-0.5 ms of CPU here, 2-3 ms when both CPUs are busy). The spawner made them itself, once
//! a start was answered; but it serves one request at a time, and the next start's request
//! came while it was still in `unshare` (the step trace of back-to-back `run --rm`: the next
//! request waited 0.4-2.6 ms for its reply). The maker, a single-threaded child of the spawner
//! forked at its start, makes them now; the spawner only asks (one byte) and takes what comes
//! (the namespace's fd), between requests.
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::sys::socket::{recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};

/// How long a start waits for the namespace the maker is making (it began a start earlier, so it
/// is done before one the clone would make); after that the clone makes its own.
const MAKING_WAIT_MS: libc::c_int = 50;

/// One network namespace made ahead of the next init that asks for a new one: as the clone
/// would make it (owned by the host's user namespace, only `lo`), with `lo` already up and IPv6
/// off for links made later (eth0: engine's networks are IPv4 only). The spawner itself stays in
/// the host's namespace between requests: an init that asks for no new network namespace is
/// cloned there.
pub(super) struct NetnsPool {
    /// The spawner's own (the host's) network namespace; None: no pool (the clone makes each).
    host: Option<OwnedFd>,
    /// The maker; None: no maker (gone, or never made).
    maker: Option<Maker>,
    /// A namespace was asked of the maker and has not come yet.
    asked: bool,
    ready: Option<MadeNetns>,
}

/// The maker process (the spawner's only child of its own) and the spawner's end of its socket.
struct Maker {
    sock: OwnedFd,
    pid: libc::pid_t,
}

impl Drop for Maker {
    /// A maker let go (gone, or answering nonsense) is killed and reaped: the spawner lives on,
    /// and would otherwise keep its zombie.
    fn drop(&mut self) {
        // SAFETY: signals and reaps this process's own child, by the pid its fork returned.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A network namespace made ahead.
struct MadeNetns {
    ns: OwnedFd,
    /// Given to the supervisor to make a veth pair in (`crate::net::ahead`): for a bridged init
    /// only.
    paired: bool,
}

impl NetnsPool {
    /// The pool, with its maker forked now (the spawner is single-threaded).
    pub(super) fn open() -> NetnsPool {
        let host = std::fs::File::open("/proc/thread-self/ns/net").ok().map(OwnedFd::from);
        let maker = host.as_ref().and_then(|home| fork_maker(home).ok());
        NetnsPool { host, maker, asked: false, ready: None }
    }

    /// Asks the maker for the next namespace if there is none ready or coming. Does not wait: it
    /// comes while the spawner waits for requests ([`NetnsPool::request_within`]). A maker that
    /// is gone leaves the pool empty: each clone then makes its namespace, and reports an error.
    pub(super) fn fill(&mut self) {
        if !self.wanted() {
            return;
        }
        let Some(maker) = &self.maker else { return };
        match nix::unistd::write(&maker.sock, &[1]) {
            Ok(1) => self.asked = true,
            _ => self.maker = None,
        }
    }

    /// Whether a namespace is to be asked for (none ready or coming, and a maker to ask): once
    /// the supervisor has answered a start, or no request has come for a while (`REFILL_AFTER`).
    pub(super) fn wanted(&self) -> bool {
        self.ready.is_none() && !self.asked && self.maker.is_some()
    }

    /// Whether a request comes on `sock` within `ms` milliseconds (0: is one waiting now; -1:
    /// wait for one). The namespace asked of the maker is taken meanwhile, as it comes.
    pub(super) fn request_within(&mut self, sock: &OwnedFd, ms: libc::c_int) -> bool {
        let deadline = (ms > 0).then(|| std::time::Instant::now() + std::time::Duration::from_millis(ms as u64));
        loop {
            let maker = self.maker.as_ref().filter(|_| self.asked).map_or(-1, |m| m.sock.as_raw_fd());
            let mut fds = [
                libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: maker, events: libc::POLLIN, revents: 0 },
            ];
            let left = match deadline {
                Some(d) => d.saturating_duration_since(std::time::Instant::now()).as_millis() as libc::c_int,
                None => ms.min(0),
            };
            // SAFETY: two pollfds, valid for the call (a negative fd is skipped by poll).
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, left) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if fds[1].revents != 0 {
                self.take_made();
            }
            if n <= 0 || fds[0].revents != 0 {
                return n > 0 && fds[0].revents != 0;
            }
        }
    }

    /// The namespace the maker was asked for, if it is coming: waited for (briefly), since it
    /// began before the request that needs it.
    fn collect(&mut self) {
        let Some(maker) = self.maker.as_ref().filter(|_| self.asked && self.ready.is_none()) else { return };
        let mut fds = [libc::pollfd { fd: maker.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one pollfd, valid for the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, MAKING_WAIT_MS) } > 0 {
            self.take_made();
        }
    }

    /// Reads the maker's answer: a namespace, or its errno (the pool stays empty until asked
    /// again); a maker gone is not asked again.
    fn take_made(&mut self) {
        let Some(maker) = &self.maker else { return };
        let mut status = [0u8; 4];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut status)];
        let received = recvmsg::<()>(maker.sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
            .map(|msg| (msg.bytes, super::spawner::received_fds(&msg)));
        self.asked = false;
        match received {
            Ok((4, mut fds)) if fds.len() == 1 => self.ready = fds.pop().map(|ns| MadeNetns { ns, paired: false }),
            Ok((4, _)) => {}
            // 0 bytes: the maker is gone; anything else is not its answer.
            _ => self.maker = None,
        }
    }

    /// The ready namespace, for the supervisor to make a veth pair in, if `bridged` (the last
    /// start was) and one is ready: a copy of its fd; it is marked as paired.
    pub(super) fn give_for_pair(&mut self, bridged: bool) -> Option<OwnedFd> {
        if !bridged {
            return None;
        }
        self.collect();
        let made = self.ready.as_mut()?;
        let fd = made.ns.try_clone().ok()?;
        made.paired = true;
        Some(fd)
    }

    /// Enters the ready namespace (for the next clone), if the init asks for a new one and one
    /// is ready (one with a veth pair only for a `bridged` init; otherwise it is let go, and its
    /// pair with it): whether it did, and whether that namespace has a pair.
    pub(super) fn enter(&mut self, bridged: bool) -> Option<bool> {
        self.collect();
        let made = self.ready.take().filter(|m| bridged || !m.paired)?;
        nix::sched::setns(&made.ns, CloneFlags::CLONE_NEWNET).is_ok().then_some(made.paired)
    }

    /// Back to the host's namespace after [`NetnsPool::enter`]. The spawner may not stay
    /// anywhere else (an init for the host's network would be cloned there): if it cannot go
    /// back, it ends, and the supervisor takes the exec path.
    pub(super) fn back_home(&self) {
        let Some(host) = &self.host else { return };
        if nix::sched::setns(host, CloneFlags::CLONE_NEWNET).is_err() {
            // SAFETY: ends this single-threaded process.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Forks the maker (`engine-netns`). It keeps only its end of the socket and `home`, and dies
/// with the spawner.
fn fork_maker(home: &OwnedFd) -> std::io::Result<Maker> {
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the spawner is single-threaded: the child may run anything after the fork.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(ours);
            // SAFETY: prctl, getppid, dup2 and close_range on this process only.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                super::spawner::name_this_process(c"engine-netns");
                // Nothing else of the spawner's (its request socket above all: the supervisor must
                // see the spawner gone when it is).
                let (sock, home) = (theirs.as_raw_fd(), home.as_raw_fd());
                let mut from = 3;
                for keep in [sock.min(home), sock.max(home)] {
                    if keep > from {
                        libc::syscall(libc::SYS_close_range, from as u32, (keep - 1) as u32, 0u32);
                    }
                    from = keep + 1;
                }
                libc::syscall(libc::SYS_close_range, from as u32, u32::MAX, 0u32);
                make_on_request(sock, home)
            }
        }
        pid => Ok(Maker { sock: ours, pid }),
    }
}

/// The maker's loop: one namespace per byte read from `sock`, sent back (or its errno); ends
/// when the spawner's end closes.
fn make_on_request(sock: RawFd, home: RawFd) -> ! {
    loop {
        let mut byte = [0u8; 1];
        // SAFETY: reads into a local buffer.
        let n = unsafe { libc::read(sock, byte.as_mut_ptr().cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            // SAFETY: ends this single-threaded process.
            unsafe { libc::_exit(0) }
        }
        let made = make_one(home);
        let (status, fd) = match &made {
            Ok(ns) => (0i32, Some(ns.as_raw_fd())),
            Err(e) => (e.raw_os_error().unwrap_or(libc::EIO), None),
        };
        let raw: Vec<RawFd> = fd.into_iter().collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let rights: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let bytes = status.to_ne_bytes();
        if sendmsg::<()>(sock, &[IoSlice::new(&bytes)], rights, MsgFlags::MSG_NOSIGNAL, None).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(0) }
        }
    }
}

/// A new network namespace, `lo` up and IPv6 off for later links; the maker back in `home`
/// (or it ends: it may make each namespace only from the host's).
fn make_one(home: RawFd) -> std::io::Result<OwnedFd> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
    let made = std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from);
    if made.is_ok() {
        // A failure here only leaves the init to bring lo up itself, as it always tries.
        let _ = super::init::loopback_up();
        // eth0 (a bridged container's) is born without IPv6; a failure leaves the network's
        // attach to turn it off, as it checks.
        let _ = crate::net::disable_ipv6_by_default();
    }
    // SAFETY: setns on an fd this process holds open.
    if unsafe { libc::setns(home, libc::CLONE_NEWNET) } != 0 {
        // SAFETY: ends this single-threaded process.
        unsafe { libc::_exit(0) }
    }
    made
}

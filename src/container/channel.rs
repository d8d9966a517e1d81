//! The parent ↔ init handshake: typed messages over a SOCK_SEQPACKET pair, in phases.
//!
//! ```text
//! parent                                  init
//!   ── Setup(plan) ──────────────────────►  builds the root (mounts, pivot_root, hostname, lo)
//!   (moves it into its cgroup, the          checks the program, ...
//!    supervisor saves its record)
//!   ◄─────────────────────────── Ready ───  every step up to the start gate is done
//!   ── Start ────────────────────────────►  (StartGate::Channel; Fifo: `start_fifo` instead)
//!   ◄──────────────────── Started{pid} ───  the command runs (Exec mode: the channel closes
//!                                           at the exec instead)
//!   ◄──────────────── Exited(how) ────────  Reaper mode, when the command has ended
//!   ◄──── Failed{step, errno, exit_code} ─  at any point instead of the next message
//! ```
//! Each side waits for exactly the message of its phase: anything else, a closed peer, a message
//! too large or undecodable is an error naming what was awaited, never a hang or a guess.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::exit::Termination;
use super::lifecycle::{InitMode, RootSource, StartGate};
use super::Spec;

/// The largest message: a Spec with a full seccomp profile and a large environment is a few
/// hundred KiB at most. The send buffer is raised to fit (SO_SNDBUFFORCE).
pub const MAX_MESSAGE: usize = 1 << 20;
/// fds per SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253).
const FDS_PER_MESSAGE: usize = 250;

/// A message as [`InitChannel::send`] puts it on the channel.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ChannelError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| ChannelError::Io { what: "encoding", source: e.into() })?;
    if bytes.len() > MAX_MESSAGE {
        return Err(ChannelError::TooLarge { size: bytes.len() });
    }
    Ok(bytes)
}

/// `ToInit::Setup(plan)` as [`encode`] puts it on the channel (`{"Setup":{...}}`), from a
/// borrowed Plan: the parent encodes it ahead and keeps the Plan.
pub fn encode_setup(plan: &Plan) -> Result<Vec<u8>, ChannelError> {
    #[derive(Serialize)]
    struct SetupRef<'a> {
        #[serde(rename = "Setup")]
        setup: &'a Plan,
    }
    encode(&SetupRef { setup: plan })
}

/// What the init needs to build the container: everything the parent decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub spec: Spec,
    pub root: RootSource,
    pub files: Vec<EtcFile>,
    /// The /etc files come in a message of their own (`ToInit::Files`) after the Setup and its
    /// fds, and `files` is empty: the parent works them out (its `before_setup` hook) while the
    /// init wakes, reads its Setup and joins its cgroups, instead of before the Setup.
    #[serde(default)]
    pub files_follow: bool,
    pub mode: InitMode,
    pub gate: StartGate,
    /// The container's cgroup directories on the host (one on v2, one per hierarchy on v1): what
    /// a mount of type `cgroup` shows.
    #[serde(default)]
    pub cgroup_paths: Vec<std::path::PathBuf>,
    /// The v1 cgroup directories the init moves itself into (writes "0" to their `tasks`) as its
    /// first step, instead of the parent writing its pid to `cgroup.procs`: a thread moving only
    /// itself skips the kernel's global threadgroup lock, whose write side waits for an RCU grace
    /// period (4-20 ms measured here, the largest single cost of a start). Empty: the parent
    /// moves it (cgroup v2, or a new user namespace whose root may not write host files).
    #[serde(default)]
    pub cgroup_self_join: Vec<std::path::PathBuf>,
    /// The `tasks` file of each of `cgroup_self_join`, in its order, opened when the groups were
    /// made ahead, follows the Setup on the channel (after the root's mount, before any preserved
    /// fds): the init writes "0" to them instead of opening each by path on its path.
    #[serde(default)]
    pub cgroup_tasks_sent: bool,
    /// The OCI state JSON given on stdin to the Spec's createContainer and startContainer hooks,
    /// which the init runs (None: they are not run; the supervisor has none).
    #[serde(default)]
    pub hook_state: Option<String>,
    /// OCI `create --preserve-fds N`: N fds follow the Setup on the channel (`send_fds`); the
    /// command gets them as fds 3 .. 3+N-1 (Exec mode).
    #[serde(default)]
    pub preserve_fds: usize,
    /// process.terminal: the init finds the console socket at `spawn::INIT_CONSOLE_FD` and
    /// opens the container's pty itself (`console::attach`) once its root is built.
    #[serde(default)]
    pub console: bool,
    /// The root as a detached mount, which follows the Setup on the channel (`send_fds`, first):
    /// an overlay made ahead (see `supervisor::overlay_ahead`), moved onto `merged` instead of
    /// mounting the overlay, or a copy of a directory root's tree (`sys::clone_tree`) for a start
    /// an init with a kit could serve, moved onto the directory instead of a bind (`kit`).
    #[serde(default)]
    pub root_mount: bool,
    /// spec.linux.seccomp, compiled by the parent (`seccomp::compile_once`: once per profile in
    /// a supervisor); the init installs it as it is. The profile itself is not sent (`spec`
    /// has none then): its ~350 rules were most of the Setup's parse.
    #[serde(default)]
    pub seccomp: Option<super::seccomp::Filter>,
    /// The profile could kill the init for a madvise: it keeps the engine's code pages mapped
    /// once the profile is on (see `init::let_go_of_code_pages`).
    #[serde(default)]
    pub madvise_denied: bool,
    /// The kernel monitor counts the container's RSS against limits (`CreateOptions::rss_limited`).
    #[serde(default)]
    pub rss_limited: bool,
    /// ENGINE_STEP_TRACE: when the request came; the file the init appends its steps' times to
    /// follows on the channel (after the `tasks` files, before any preserved fds; see `trace`).
    #[serde(default)]
    pub trace: Option<super::trace::Origin>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// Build the container's root and stop at the start gate; answer `Ready`.
    Setup(Box<Plan>),
    /// The /etc files of a Setup with `files_follow`.
    Files(Vec<EtcFile>),
    /// The parent is done (cgroup, record): run the command.
    Start,
}

/// A file of this container's own (its /etc/hosts, /etc/hostname): the init writes `content` on a
/// small tmpfs and bind-mounts it over the root's own, so nothing of it lands on the host's disk
/// and containers sharing a rootfs each see theirs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcFile {
    /// Absolute path inside the container.
    pub target: String,
    pub content: String,
}

/// The init's report of a failed step: the sentence (naming the step), the errno if the cause
/// was a system call, and the exit code the user gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct InitFailure {
    pub step: String,
    pub message: String,
    pub errno: Option<i32>,
    pub exit_code: i32,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// Root built, program found: the init waits at its start gate.
    Ready,
    /// The command runs; its PID inside the container.
    Started {
        pid: i32,
    },
    Failed(InitFailure),
    /// Reaper mode: how the command ended.
    Exited(Termination),
}

impl ToInit {
    fn name(&self) -> &'static str {
        match self {
            ToInit::Setup(_) => "Setup",
            ToInit::Files(_) => "Files",
            ToInit::Start => "Start",
        }
    }
}

impl FromInit {
    fn name(&self) -> &'static str {
        match self {
            FromInit::Ready => "Ready",
            FromInit::Started { .. } => "Started",
            FromInit::Failed(_) => "Failed",
            FromInit::Exited(_) => "Exited",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the other end closed the channel while waiting for {awaited}")]
    Closed { awaited: &'static str },
    #[error("got {got} while waiting for {awaited}")]
    Unexpected { awaited: &'static str, got: &'static str },
    #[error("timed out waiting for {awaited}")]
    Timeout { awaited: &'static str },
    #[error("a message of {size} bytes is over the limit of {MAX_MESSAGE}")]
    TooLarge { size: usize },
    #[error("undecodable message while waiting for {awaited}: {source}")]
    Decode { awaited: &'static str, source: serde_json::Error },
    #[error("{what} on the init channel: {source}")]
    Io { what: &'static str, source: io::Error },
}

impl ChannelError {
    /// The errno behind it, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ChannelError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// What a wait on the parent side ends with when it is not the awaited message.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The init reported a failed step.
    #[error(transparent)]
    Failed(InitFailure),
}

pub struct InitChannel {
    fd: OwnedFd,
}

impl InitChannel {
    /// A connected pair (parent end, child end), both close-on-exec.
    pub fn pair() -> io::Result<(InitChannel, InitChannel)> {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        Ok((InitChannel { fd: a }, InitChannel { fd: b }))
    }

    /// # Safety
    /// `fd` must be an open SOCK_SEQPACKET socket owned by nobody else.
    pub unsafe fn from_raw_fd(fd: RawFd) -> InitChannel {
        InitChannel { fd: OwnedFd::from_raw_fd(fd) }
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> Result<(), ChannelError> {
        self.send_encoded(&encode(msg)?)
    }

    /// A message [`encode`] made (ahead of the moment it is sent).
    pub fn send_encoded(&self, bytes: &[u8]) -> Result<(), ChannelError> {
        // A datagram must fit the send buffer whole (208 KiB by default).
        if bytes.len() > 128 << 10 {
            let size = (bytes.len() * 2) as libc::c_int;
            // SAFETY: setsockopt with an int argument on our own socket.
            unsafe {
                let p = &size as *const libc::c_int as *const libc::c_void;
                let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                if libc::setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, p, len) != 0 {
                    libc::setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, p, len);
                }
            }
        }
        loop {
            match send(self.fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ChannelError::Io { what: "sending", source: e.into() }),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Passes `fds` to the other end (SCM_RIGHTS on one-byte datagrams, as many per datagram as
    /// the kernel takes); `recv_fds` takes them.
    pub fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        use nix::sys::socket::{sendmsg, ControlMessage};
        for chunk in fds.chunks(FDS_PER_MESSAGE) {
            let raw: Vec<RawFd> = chunk.iter().map(|f| f.as_raw_fd()).collect();
            let iov = [io::IoSlice::new(b"F")];
            let rights = [ControlMessage::ScmRights(&raw)];
            loop {
                match sendmsg::<()>(self.fd.as_raw_fd(), &iov, &rights, MsgFlags::MSG_NOSIGNAL, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(ChannelError::Io { what: "sending fds", source: e.into() }),
                    Ok(_) => break,
                }
            }
        }
        Ok(())
    }

    /// The `n` fds `send_fds` passed, in order, close-on-exec.
    pub fn recv_fds(&self, n: usize) -> Result<Vec<OwnedFd>, ChannelError> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned};
        const AWAITED: &str = "the preserved fds";
        let io = |e: nix::Error| ChannelError::Io { what: "receiving fds", source: e.into() };
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut byte = [0u8; 1];
            let mut iov = [io::IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE]);
            let msg = loop {
                match recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.map_err(io)?,
                }
            };
            let before = out.len();
            for c in msg.cmsgs().map_err(io)? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    // SAFETY: the kernel just installed these fds in our table for us.
                    out.extend(fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
            if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
                return Err(ChannelError::Io {
                    what: "receiving fds",
                    source: io::Error::from_raw_os_error(libc::EMFILE),
                });
            }
            if out.len() == before {
                return Err(match msg.bytes {
                    0 => ChannelError::Closed { awaited: AWAITED },
                    _ => ChannelError::Unexpected { awaited: AWAITED, got: "a message without fds" },
                });
            }
        }
        Ok(out)
    }

    /// A copy of the channel on the lowest free fd at or above `min` (close-on-exec): the init
    /// frees 3 and 4 for the preserved fds by dropping the old one.
    pub fn renumber(&self, min: RawFd) -> io::Result<InitChannel> {
        Ok(InitChannel { fd: dup_above(&self.fd, min)? })
    }

    /// The next message; `Ok(None)` when the other end is closed without one.
    pub fn recv<T: DeserializeOwned>(&self, awaited: &'static str) -> Result<Option<T>, ChannelError> {
        self.recv_flags(MsgFlags::empty(), awaited)
    }

    /// Like `recv`, but returns `Ok(None)` at once when nothing is queued.
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<Option<T>, ChannelError> {
        match self.recv_flags(MsgFlags::MSG_DONTWAIT, "any message") {
            Err(ChannelError::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => Ok(None),
            other => other,
        }
    }

    fn recv_flags<T: DeserializeOwned>(
        &self,
        flags: MsgFlags,
        awaited: &'static str,
    ) -> Result<Option<T>, ChannelError> {
        let io = |source: nix::Error| match source {
            nix::errno::Errno::EAGAIN if !flags.contains(MsgFlags::MSG_DONTWAIT) => ChannelError::Timeout { awaited },
            e => ChannelError::Io { what: "receiving", source: e.into() },
        };
        // The datagram's size first (MSG_TRUNC reports it whole), so the buffer fits it exactly.
        // A peer that closed with messages of ours unread resets us: the kernel reports that
        // once, before what the peer sent last (a Failed), which the next call reads.
        let mut reset_seen = false;
        let size = loop {
            match recv(self.fd.as_raw_fd(), &mut [], flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECONNRESET) if !reset_seen => reset_seen = true,
                other => break other.map_err(io)?,
            }
        };
        if size > MAX_MESSAGE {
            // Taken off the queue, so the next wait does not see it again.
            let _ = recv(self.fd.as_raw_fd(), &mut [], MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC);
            return Err(ChannelError::TooLarge { size });
        }
        let mut buf = vec![0u8; size];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, flags) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(io)?,
            }
        };
        if n == 0 {
            // A zero-length datagram cannot be sent by this code: it is the peer closing.
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n]).map(Some).map_err(|source| ChannelError::Decode { awaited, source })
    }

    /// Reads off every message waiting, without blocking (see `init::report_failure`).
    pub fn discard_unread(&self) {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
        while matches!(recv(self.fd.as_raw_fd(), &mut [], flags), Ok(n) if n > 0) {}
    }

    /// Bounds how long a wait may block, so a wedged peer cannot hang a request forever.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ChannelError> {
        let tv = nix::sys::time::TimeVal::from(libc::timeval {
            tv_sec: timeout.map_or(0, |t| t.as_secs() as libc::time_t),
            tv_usec: timeout.map_or(0, |t| t.subsec_micros() as libc::suseconds_t),
        });
        nix::sys::socket::setsockopt(&self.fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(|e| ChannelError::Io { what: "setting a timeout", source: e.into() })
    }

    // --- the init's waits ---

    /// The plan; anything else is an error.
    pub fn wait_setup(&self) -> Result<Plan, ChannelError> {
        const AWAITED: &str = "Setup";
        match self.recv::<ToInit>(AWAITED)? {
            Some(ToInit::Setup(plan)) => Ok(*plan),
            Some(other) => Err(ChannelError::Unexpected { awaited: AWAITED, got: other.name() }),
            None => Err(ChannelError::Closed { awaited: AWAITED }),
        }
    }

    pub fn wait_files(&self) -> Result<Vec<EtcFile>, ChannelError> {
        const AWAITED: &str = "Files";
        match self.recv::<ToInit>(AWAITED)? {
            Some(ToInit::Files(files)) => Ok(files),
            Some(other) => Err(ChannelError::Unexpected { awaited: AWAITED, got: other.name() }),
            None => Err(ChannelError::Closed { awaited: AWAITED }),
        }
    }

    pub fn wait_start(&self) -> Result<(), ChannelError> {
        const AWAITED: &str = "Start";
        match self.recv::<ToInit>(AWAITED)? {
            Some(ToInit::Start) => Ok(()),
            Some(other) => Err(ChannelError::Unexpected { awaited: AWAITED, got: other.name() }),
            None => Err(ChannelError::Closed { awaited: AWAITED }),
        }
    }

    // --- the parent's waits ---

    fn wait_from_init(&self, awaited: &'static str) -> Result<Option<FromInit>, WaitError> {
        match self.recv::<FromInit>(awaited)? {
            Some(FromInit::Failed(f)) => Err(WaitError::Failed(f)),
            other => Ok(other),
        }
    }

    pub fn wait_ready(&self) -> Result<(), WaitError> {
        const AWAITED: &str = "Ready";
        match self.wait_from_init(AWAITED)? {
            Some(FromInit::Ready) => Ok(()),
            Some(other) => Err(ChannelError::Unexpected { awaited: AWAITED, got: other.name() }.into()),
            None => Err(ChannelError::Closed { awaited: AWAITED }.into()),
        }
    }

    /// `Started`'s pid; in Exec mode the init's exec closes the channel (close-on-exec), which
    /// is the success: `Ok(None)`.
    pub fn wait_started(&self, mode: InitMode) -> Result<Option<i32>, WaitError> {
        const AWAITED: &str = "Started";
        match (self.wait_from_init(AWAITED)?, mode) {
            (Some(FromInit::Started { pid }), InitMode::Reaper) => Ok(Some(pid)),
            (None, InitMode::Exec) => Ok(None),
            (Some(other), _) => Err(ChannelError::Unexpected { awaited: AWAITED, got: other.name() }.into()),
            (None, InitMode::Reaper) => Err(ChannelError::Closed { awaited: AWAITED }.into()),
        }
    }

    /// Reaper mode: how the command ended.
    pub fn wait_exited(&self) -> Result<Termination, WaitError> {
        const AWAITED: &str = "Exited";
        match self.wait_from_init(AWAITED)? {
            Some(FromInit::Exited(how)) => Ok(how),
            Some(other) => Err(ChannelError::Unexpected { awaited: AWAITED, got: other.name() }.into()),
            None => Err(ChannelError::Closed { awaited: AWAITED }.into()),
        }
    }
}

/// A copy of `fd` on the lowest free number at or above `min` (close-on-exec).
pub(crate) fn dup_above(fd: &OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on an fd owned here.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

impl AsFd for InitChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for InitChannel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_waits_refuse_an_unexpected_message() {
        let (parent, init) = InitChannel::pair().unwrap();
        init.send(&FromInit::Started { pid: 1 }).unwrap();
        let e = parent.wait_ready().unwrap_err();
        assert!(matches!(e, WaitError::Channel(ChannelError::Unexpected { awaited: "Ready", got: "Started" })), "{e}");
        parent.send(&ToInit::Start).unwrap();
        let e = init.wait_setup().unwrap_err();
        assert!(matches!(e, ChannelError::Unexpected { awaited: "Setup", got: "Start" }), "{e}");
        init.send(&FromInit::Exited(Termination::Code(0))).unwrap();
        assert!(parent.wait_started(InitMode::Reaper).is_err());
        // Exec mode: a message instead of the close is still unexpected.
        init.send(&FromInit::Ready).unwrap();
        assert!(parent.wait_started(InitMode::Exec).is_err());
    }

    /// The Setup encoded ahead from a borrowed Plan is the bytes `send` makes of
    /// `ToInit::Setup`, and the init reads it, then the files that follow it.
    #[test]
    fn a_setup_encoded_ahead_is_a_setup_and_its_files_follow_it() {
        let files = vec![EtcFile { target: "/etc/hostname".into(), content: "x\n".into() }];
        let plan = Plan {
            id: "ahead".into(),
            spec: Spec::default(),
            root: RootSource::Dir("/nonexistent".into()),
            files: Vec::new(),
            files_follow: true,
            mode: InitMode::Reaper,
            gate: StartGate::Channel,
            cgroup_paths: vec!["/sys/fs/cgroup/x".into()],
            cgroup_self_join: Vec::new(),
            cgroup_tasks_sent: false,
            hook_state: None,
            preserve_fds: 0,
            console: false,
            root_mount: false,
            seccomp: None,
            madvise_denied: false,
            rss_limited: false,
            trace: None,
        };
        let ahead = encode_setup(&plan).unwrap();
        assert_eq!(ahead, encode(&ToInit::Setup(Box::new(plan.clone()))).unwrap());
        let (parent, init) = InitChannel::pair().unwrap();
        parent.send_encoded(&ahead).unwrap();
        parent.send(&ToInit::Files(files)).unwrap();
        let got = init.wait_setup().unwrap();
        assert_eq!((got.id.as_str(), got.files_follow), ("ahead", true));
        assert_eq!(init.wait_files().unwrap()[0].target, "/etc/hostname");
        // Files where a Setup is awaited (or the reverse) is refused, not taken for it.
        parent.send(&ToInit::Files(Vec::new())).unwrap();
        let e = init.wait_setup().unwrap_err();
        assert!(matches!(e, ChannelError::Unexpected { awaited: "Setup", got: "Files" }), "{e}");
    }

    #[test]
    fn a_failure_is_reported_at_any_phase() {
        let (parent, init) = InitChannel::pair().unwrap();
        let failure = InitFailure { step: "mount".into(), message: "m".into(), errno: Some(2), exit_code: 125 };
        for _ in 0..3 {
            init.send(&FromInit::Failed(failure.clone())).unwrap();
        }
        assert!(matches!(parent.wait_ready(), Err(WaitError::Failed(f)) if f == failure));
        assert!(matches!(parent.wait_started(InitMode::Reaper), Err(WaitError::Failed(_))));
        assert!(matches!(parent.wait_exited(), Err(WaitError::Failed(_))));
    }

    /// A Start sent ahead of Ready (`Pending::start_when_ready`) is unread when an init fails
    /// its root: its close resets the parent's end, and the report is still what is read.
    #[test]
    fn a_failure_sent_by_an_init_that_left_a_start_unread_is_read() {
        let (parent, init) = InitChannel::pair().unwrap();
        parent.send(&ToInit::Start).unwrap();
        let failure = InitFailure { step: "mount".into(), message: "m".into(), errno: Some(2), exit_code: 125 };
        init.send(&FromInit::Failed(failure.clone())).unwrap();
        drop(init);
        assert!(matches!(parent.wait_ready(), Err(WaitError::Failed(f)) if f == failure));
        assert!(matches!(parent.wait_started(InitMode::Reaper), Err(WaitError::Channel(ChannelError::Closed { .. }))));
        // The init's own way out reads the Start off first: no reset at all.
        let (parent, init) = InitChannel::pair().unwrap();
        parent.send(&ToInit::Start).unwrap();
        init.discard_unread();
        init.send(&FromInit::Failed(failure.clone())).unwrap();
        drop(init);
        // SAFETY: getsockopt of an int on our own socket.
        let err = unsafe {
            let (mut v, mut len) = (0 as libc::c_int, 4 as libc::socklen_t);
            let p = &mut v as *mut libc::c_int as *mut libc::c_void;
            libc::getsockopt(parent.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR, p, &mut len);
            v
        };
        assert_eq!(err, 0, "the parent's end was reset");
        assert!(matches!(parent.wait_ready(), Err(WaitError::Failed(f)) if f == failure));
    }

    #[test]
    fn a_closed_peer_ends_every_wait() {
        let (parent, init) = InitChannel::pair().unwrap();
        drop(init);
        assert!(matches!(parent.wait_ready(), Err(WaitError::Channel(ChannelError::Closed { awaited: "Ready" }))));
        assert!(matches!(parent.wait_started(InitMode::Reaper), Err(WaitError::Channel(ChannelError::Closed { .. }))));
        // Exec mode: the close is the exec.
        assert!(matches!(parent.wait_started(InitMode::Exec), Ok(None)));
        let (parent, init) = InitChannel::pair().unwrap();
        drop(parent);
        assert!(matches!(init.wait_setup(), Err(ChannelError::Closed { awaited: "Setup" })));
        assert!(init.send(&FromInit::Ready).is_err());
    }

    #[test]
    fn oversized_messages_are_refused_both_ways() {
        let (parent, init) = InitChannel::pair().unwrap();
        let big = EtcFile { target: "/x".into(), content: "x".repeat(MAX_MESSAGE) };
        assert!(matches!(parent.send(&big), Err(ChannelError::TooLarge { .. })));
        // One sent raw, past `send`'s check: refused on receipt, and gone from the queue.
        let size = (MAX_MESSAGE + 10) as libc::c_int;
        // SAFETY: setsockopt with an int on our own socket.
        unsafe {
            let p = &size as *const libc::c_int as *const libc::c_void;
            libc::setsockopt(parent.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, p, 4);
        }
        let raw = vec![b' '; MAX_MESSAGE + 1];
        send(parent.as_raw_fd(), &raw, MsgFlags::empty()).unwrap();
        parent.send(&ToInit::Start).unwrap();
        assert!(matches!(init.wait_start(), Err(ChannelError::TooLarge { size }) if size == MAX_MESSAGE + 1));
        init.wait_start().unwrap();
    }

    #[test]
    fn garbage_is_a_decode_error_and_a_timeout_is_named() {
        let (parent, init) = InitChannel::pair().unwrap();
        send(init.as_raw_fd(), b"{not json", MsgFlags::empty()).unwrap();
        assert!(matches!(parent.wait_ready(), Err(WaitError::Channel(ChannelError::Decode { awaited: "Ready", .. }))));
        parent.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(parent.wait_ready(), Err(WaitError::Channel(ChannelError::Timeout { awaited: "Ready" }))));
    }
}

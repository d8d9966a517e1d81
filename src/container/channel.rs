//! Typed messages between the supervisor and a container's init, over a SOCK_SEQPACKET pair.
//!
//! Ordering: the init blocks in [`InitChannel::recv`] until the parent has made its cgroups,
//! registered it with the monitor and wired its network, then gets `Prepare` and builds the
//! container's root while the parent moves it into its cgroups and saves the record; then
//! `Start`, and nothing of the user's runs before it. It answers `Started` once the command has
//! been exec'd, or `Failed` with the step and the Docker exit code (at any point), and finally
//! `Exited` with how the command ended (a namespace's init cannot die of its child's signal).
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::spec::ContainerSpec;
use super::state::Termination;

/// Room for the largest spec (`spec::MAX_SPEC_BYTES`) and what travels with it.
const MAX_MESSAGE: usize = 2 * super::spec::MAX_SPEC_BYTES;

#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// Build the container's root (overlay, mounts, pivot_root, host name, lo) and wait for
    /// `Start`. `overlay`: the container's directory holding its `upper`, `work` and `merged` dirs.
    Prepare { spec: Box<ContainerSpec>, files: Vec<EtcFile>, overlay: std::path::PathBuf },
    /// The init is in its cgroups and the record is on disk: finish (workdir, affinity, nice,
    /// seccomp, capabilities) and run the command.
    Start,
}

/// A file of this container's own (its /etc/hosts, /etc/hostname): the init writes `content` on a
/// small tmpfs and bind-mounts it over the root's own, so nothing of it lands on the supervisor's
/// disk and containers sharing a rootfs each see theirs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcFile {
    /// Absolute path inside the container.
    pub target: String,
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// The command runs; its PID inside the container.
    Started {
        pid: i32,
    },
    /// Setup or exec failed: what went wrong, and the exit code the user gets.
    Failed {
        message: String,
        exit_code: i32,
    },
    Exited(Termination),
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

    pub fn send<T: Serialize>(&self, msg: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        if bytes.len() > MAX_MESSAGE {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "init message too large"));
        }
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// The next message; `Ok(None)` when the other end is closed without one.
    pub fn recv<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        self.recv_flags(MsgFlags::empty())
    }

    /// Like `recv`, but returns `Ok(None)` at once when nothing is queued.
    pub fn try_recv<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        match self.recv_flags(MsgFlags::MSG_DONTWAIT) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            other => other,
        }
    }

    fn recv_flags<T: DeserializeOwned>(&self, flags: MsgFlags) -> io::Result<Option<T>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, flags) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad init message: {e}")))
    }

    /// Bounds how long `recv` may block, so a wedged init cannot hang a request forever.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let tv = nix::sys::time::TimeVal::from(libc::timeval {
            tv_sec: timeout.map_or(0, |t| t.as_secs() as libc::time_t),
            tv_usec: timeout.map_or(0, |t| t.subsec_micros() as libc::suseconds_t),
        });
        nix::sys::socket::setsockopt(&self.fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)?;
        Ok(())
    }
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

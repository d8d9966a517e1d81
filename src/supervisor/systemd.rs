//! The two systemd protocols the supervisor speaks, without linking libsystemd: readiness
//! notification (sd_notify(3): a datagram "READY=1" to $NOTIFY_SOCKET, for Type=notify) and
//! socket activation (sd_listen_fds(3): the listening socket of engine.socket as fd 3 with
//! LISTEN_FDS=1 and LISTEN_PID=our pid). Both are a few lines over std, and both work unchanged
//! when the supervisor is started by hand (neither variable set).
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};
use std::path::Path;

use anyhow::{bail, Context};

/// sd_listen_fds(3): passed fds start here.
const LISTEN_FDS_START: RawFd = 3;

/// What systemd handed over, read (and removed from the environment, so nothing started later
/// inherits them) before any thread exists.
pub struct Activation {
    notify_socket: Option<std::ffi::OsString>,
    listen_fds: Option<(u32, Option<u32>)>,
}

impl Activation {
    /// Must run while the process is single-threaded: it edits the environment.
    pub fn take_from_env() -> Activation {
        let notify_socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        let listen_fds = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| (n, std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok())));
        for var in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        Activation { notify_socket, listen_fds }
    }

    /// The listening socket passed by socket activation, if any: one UNIX stream socket in
    /// listening state. `socket` is the path clients use; a passed socket bound elsewhere is
    /// refused, since clients would never find it.
    pub fn listener(&self, socket: &Path) -> anyhow::Result<Option<UnixListener>> {
        let Some((count, pid)) = self.listen_fds else { return Ok(None) };
        // Meant for another process (a parent that did not clear its environment).
        if pid != Some(std::process::id()) || count == 0 {
            return Ok(None);
        }
        if count != 1 {
            bail!("socket activation passed {count} sockets; engine.socket must listen on exactly one");
        }
        let fd = LISTEN_FDS_START;
        let is_listening_unix_stream = {
            use nix::sys::socket::{getsockopt, sockopt};
            // SAFETY: fd 3 was handed to us by the activator; borrowed only for these checks.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let unix = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(fd).is_ok();
            unix && getsockopt(&borrowed, sockopt::SockType).is_ok_and(|t| t == nix::sys::socket::SockType::Stream)
                && getsockopt(&borrowed, sockopt::AcceptConn).unwrap_or(false)
        };
        if !is_listening_unix_stream {
            bail!("socket activation: fd 3 is not a listening UNIX stream socket");
        }
        // SAFETY: fd 3 is ours from here on (checked above to be a listening socket).
        let listener = unsafe { UnixListener::from_raw_fd(fd) };
        let addr = listener.local_addr().context("socket activation: reading the passed socket's address")?;
        if addr.as_pathname() != Some(socket) {
            bail!(
                "socket activation passed a socket bound to {:?}, but clients use {}: make ListenStream= and --socket agree",
                addr.as_pathname().unwrap_or(Path::new("(unnamed)")),
                socket.display()
            );
        }
        Ok(Some(listener))
    }

    /// sd_notify(3): sends `state` ("READY=1", "STOPPING=1") when started by systemd with
    /// Type=notify; otherwise does nothing. Failures are reported, not fatal: the unit's start
    /// timeout will say the rest.
    pub fn notify(&self, state: &str) {
        let Some(path) = &self.notify_socket else { return };
        if let Err(e) = send_notify(path, state) {
            crate::warn!("notifying systemd ({state:?} to {path:?}): {e}");
        }
    }
}

fn send_notify(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let bytes = path.as_encoded_bytes();
    // A leading '@' names an abstract socket.
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    let sock = UnixDatagram::unbound()?;
    let message = format!("{state}\nMAINPID={}", std::process::id());
    sock.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

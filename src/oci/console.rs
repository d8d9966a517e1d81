//! `process.terminal` with `--console-socket`: a pty whose master goes to the caller (podman's
//! conmon, the containerd shim) over a unix socket with SCM_RIGHTS, and whose slave becomes the
//! container's stdio. The message carries the name `/dev/ptmx` as its data, as runc's
//! utils/cmsg.go sends it (receivers read it as the console's name).
//!
//! The pty is opened here, in the runtime's namespaces, and handed to the core as plain fds: both
//! ends close-on-exec, so neither reaches the container except as the stdio the core dup2s.
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::{openpty, Winsize};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// The name sent with the master, as runc sends it.
pub const CONSOLE_NAME: &str = "/dev/ptmx";

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: opening a pty: {0}")]
    Open(nix::Error),
    #[error("console: connecting to the console socket {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("console: sending the pty master over {path}: {source}")]
    Send { path: PathBuf, source: nix::Error },
    #[error("console: process.terminal is true but no --console-socket was given")]
    NoSocket,
    #[error("console: --console-socket was given but process.terminal is false")]
    NotTerminal,
}

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// A new pty, both ends close-on-exec, sized `size` (rows, columns) when given.
pub fn open(size: Option<(u16, u16)>) -> Result<Pty, ConsoleError> {
    let ws = size.map(|(rows, cols)| Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 });
    let p = openpty(ws.as_ref(), None).map_err(ConsoleError::Open)?;
    for fd in [&p.master, &p.slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(ConsoleError::Open)?;
    }
    Ok(Pty { master: p.master, slave: p.slave })
}

/// Connects to `socket` and sends `master` on it.
pub fn send_master(socket: &Path, master: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let stream =
        UnixStream::connect(socket).map_err(|source| ConsoleError::Connect { path: socket.to_path_buf(), source })?;
    send_fd(stream.as_raw_fd(), master).map_err(|source| ConsoleError::Send { path: socket.to_path_buf(), source })
}

/// One message: the console's name as data, the fd as SCM_RIGHTS.
pub fn send_fd(sock: RawFd, fd: BorrowedFd<'_>) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(CONSOLE_NAME.as_bytes())];
    sendmsg::<()>(sock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)?;
    Ok(())
}

/// The receiving side (tests, and any caller written in Rust): the name and the fd.
pub fn recv_fd(sock: RawFd) -> nix::Result<(String, OwnedFd)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this fd in our table for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                got.get_or_insert(owned);
            }
        }
    }
    let n = msg.bytes;
    let fd = got.ok_or(nix::Error::EBADMSG)?;
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn master_travels_over_a_socketpair_and_reads_what_the_slave_writes() {
        let pty = open(Some((24, 100))).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        send_fd(a.as_raw_fd(), pty.master.as_fd()).unwrap();
        drop(pty.master);
        let (name, master) = recv_fd(b.as_raw_fd()).unwrap();
        assert_eq!(name, "/dev/ptmx");
        // The size set at open is the terminal's.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) }, 0);
        assert_eq!((ws.ws_row, ws.ws_col), (24, 100));
        let mut slave = std::fs::File::from(pty.slave);
        slave.write_all(b"hello\n").unwrap();
        let mut m = std::fs::File::from(master);
        let mut buf = [0u8; 64];
        let n = m.read(&mut buf).unwrap();
        // The line discipline turns \n into \r\n.
        assert_eq!(&buf[..n], b"hello\r\n");
        let flags = fcntl(m.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn connect_failure_names_the_socket() {
        let pty = open(None).unwrap();
        let err = send_master(Path::new("/nonexistent/console.sock"), pty.master.as_fd()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/console.sock"), "{err}");
    }
}

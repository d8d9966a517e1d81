//! process.terminal: the container's pty, opened INSIDE the container (from its own /dev/ptmx,
//! after its root is built, or after an exec joined its mount namespace), as runc and crun do.
//!
//! Why inside: a container mounts a devpts instance of its own (`newinstance`), and a pty of the
//! runtime's instance, though a terminal to isatty(), has no name there: ttyname() fails, so
//! `tty` says "not a tty" and shells and job control misbehave (podman's `exec -it` showed it).
//! The master goes to the caller (conmon, the containerd shim) over the connected console
//! socket with SCM_RIGHTS; the message's data is the name `/dev/ptmx`, as runc's utils/cmsg.go
//! sends it.
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::check;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// The name sent with the master, as runc sends it.
pub const CONSOLE_NAME: &str = "/dev/ptmx";

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// A new pty from `/dev/ptmx` as this process resolves it (in the container: its root, its
/// devpts), both ends close-on-exec, sized `size` (rows, columns) when given. The slave comes
/// from the master (TIOCGPTPEER), with no lookup of /dev/pts/N a container could swap.
pub fn open_ptmx(size: Option<(u16, u16)>) -> io::Result<Pty> {
    // SAFETY: open/fstat/ioctl on a C string literal and fds owned here.
    unsafe {
        let fd = check(libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC))?;
        let master = OwnedFd::from_raw_fd(fd);
        // The container owns its /dev: whatever sits at /dev/ptmx must be the ptmx device (5:2)
        // before its master is handed to the host side.
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd, &mut st))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(5, 2) {
            return Err(io::Error::other("/dev/ptmx is not the ptmx device (5:2)"));
        }
        let unlock: libc::c_int = 0;
        check(libc::ioctl(fd, libc::TIOCSPTLCK, &unlock))?;
        let slave = check(libc::ioctl(fd, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC))?;
        let slave = OwnedFd::from_raw_fd(slave);
        if let Some((rows, cols)) = size {
            let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
            check(libc::ioctl(fd, libc::TIOCSWINSZ, &ws))?;
        }
        Ok(Pty { master, slave })
    }
}

/// One message on the connected console socket: the console's name as data, the fd as SCM_RIGHTS.
pub fn send_fd(sock: RawFd, fd: BorrowedFd<'_>) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(CONSOLE_NAME.as_bytes())];
    sendmsg::<()>(sock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// The whole step, in the container: a pty from its /dev/ptmx, the master sent on `socket`, the
/// slave made fds 0, 1 and 2 (it becomes the controlling terminal at the exec). Both pty fds
/// are closed on return, so only the stdio copies stay.
pub fn attach(socket: BorrowedFd<'_>, size: Option<(u16, u16)>) -> io::Result<()> {
    let pty = open_ptmx(size)?;
    send_fd(socket.as_raw_fd(), pty.master.as_fd()).map_err(io::Error::from)?;
    for target in 0..3 {
        // SAFETY: dup2 of an fd owned here onto the stdio numbers (clears FD_CLOEXEC on them).
        check(unsafe { libc::dup2(pty.slave.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// The receiving side (tests, and any caller written in Rust): the name and the fd.
pub fn recv_fd(sock: RawFd) -> nix::Result<(String, OwnedFd)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
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
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_pty_from_dev_ptmx_is_sized_and_its_master_reads_the_slave() {
        let pty = open_ptmx(Some((24, 100))).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        send_fd(a.as_raw_fd(), pty.master.as_fd()).unwrap();
        drop(pty.master);
        let (name, master) = recv_fd(b.as_raw_fd()).unwrap();
        assert_eq!(name, "/dev/ptmx");
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
        let flags = unsafe { libc::fcntl(m.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0);
    }
}

//! The client's terminal for `-t`: raw mode (restored by a guard on every way out), its size,
//! and Docker's detach keys (Ctrl-P Ctrl-Q) found in the input stream.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Ctrl-P, Ctrl-Q: Docker's default detach sequence.
pub const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// The terminal in raw mode while this lives: bytes go to the container as typed (Ctrl-C,
/// Ctrl-D, Ctrl-Z reach its pty's line discipline), nothing is echoed here. Drop restores it.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, if stdin is a terminal (None otherwise).
    pub fn enter() -> io::Result<Option<RawMode>> {
        let stdin = stdin_fd();
        if !is_terminal(stdin) {
            return Ok(None);
        }
        let saved = tcgetattr(stdin)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin, SetArg::TCSADRAIN, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(stdin_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd.as_raw_fd()).unwrap_or(false)
}

/// The size (rows, columns) of the client's terminal: stdin's, else stdout's (Docker asks
/// stdout); None without a terminal.
pub fn size() -> Option<(u16, u16)> {
    [0, 1].into_iter().find_map(|fd| {
        let mut ws: libc::winsize = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes a winsize into a valid pointer; a non-terminal fd fails.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        (rc == 0 && (ws.ws_row, ws.ws_col) != (0, 0)).then_some((ws.ws_row, ws.ws_col))
    })
}

/// Finds the detach sequence in the input across reads: a Ctrl-P is held back until the next
/// byte shows whether it starts the sequence (Docker does the same).
#[derive(Default)]
pub struct DetachScanner {
    held: bool,
}

impl DetachScanner {
    /// The bytes to forward from `input`, and whether the sequence was typed (bytes after it
    /// are dropped: the client is leaving).
    pub fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + 1);
        for &b in input {
            if self.held {
                self.held = false;
                if b == DETACH_KEYS[1] {
                    return (out, true);
                }
                out.push(DETACH_KEYS[0]);
            }
            if b == DETACH_KEYS[0] {
                self.held = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_even_across_reads_and_a_lone_ctrl_p_passes() {
        let mut s = DetachScanner::default();
        assert_eq!(s.scan(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(s.scan(&[b'a', 0x10]), (b"a".to_vec(), false));
        assert_eq!(s.scan(&[0x11, b'z']), (Vec::new(), true));
        let mut s = DetachScanner::default();
        assert_eq!(s.scan(&[0x10, b'x', 0x10, 0x10, 0x11]), (vec![0x10, b'x', 0x10], true));
    }
}

//! One poll loop reading every container's stdout and stderr pipes.
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{pipe2, read, write};

use super::{LogFile, LogMsg};
use crate::protocol::Stream;

/// Most a pipe is drained per wake-up: one chunk of up to this size goes to the channel, so a
/// container writing in small pieces still costs few wake-ups and messages.
const READ_CHUNK: usize = 256 * 1024;

struct Source {
    fd: OwnedFd,
    log: Arc<LogFile>,
    stream: Stream,
}

/// Adds pipes to the running loop: a queue plus a self-pipe that wakes its poll().
pub struct Handle {
    queue: Sender<[Source; 2]>,
    wake: OwnedFd,
}

impl Handle {
    /// Both pipes of a container arrive together, so the loop never sees one EOF while the
    /// other pipe is still queued and mistakes it for the end of the container's output.
    pub fn add(&self, log: Arc<LogFile>, stdout: OwnedFd, stderr: OwnedFd) -> io::Result<()> {
        for fd in [&stdout, &stderr] {
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
        let pair = [
            Source { fd: stdout, log: log.clone(), stream: Stream::Stdout },
            Source { fd: stderr, log, stream: Stream::Stderr },
        ];
        self.queue.send(pair).map_err(|_| io::Error::other("log reader has stopped"))?;
        match write(&self.wake, &[1]) {
            // A full wake pipe already guarantees a wake-up.
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

pub fn spawn(tx: Sender<LogMsg>) -> io::Result<Handle> {
    let (wake_r, wake_w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (queue, incoming) = unbounded();
    std::thread::Builder::new().name("log-reader".into()).spawn(move || run(wake_r, incoming, tx))?;
    Ok(Handle { queue, wake: wake_w })
}

/// Reads what the pipe holds, up to `buf.len()`: (bytes read, whether the pipe is finished).
fn drain(fd: &OwnedFd, buf: &mut [u8]) -> (usize, bool) {
    let mut filled = 0;
    while filled < buf.len() {
        match read(fd.as_raw_fd(), &mut buf[filled..]) {
            Ok(0) => return (filled, true),
            Ok(n) => filled += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(_) => return (filled, true),
        }
    }
    (filled, false)
}

fn run(wake: OwnedFd, incoming: Receiver<[Source; 2]>, tx: Sender<LogMsg>) {
    let mut sources: Vec<Source> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        sources.extend(incoming.try_iter().flatten());
        let ready: Vec<bool> = {
            let mut fds = Vec::with_capacity(sources.len() + 1);
            fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
            fds.extend(sources.iter().map(|s| PollFd::new(s.fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("log reader poll failed: {e}"),
            }
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
        };
        if ready[0] {
            while read(wake.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
        }
        let mut closed = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            let (n, eof) = drain(&src.fd, &mut buf);
            // Blocks while the channel is full: this is the backpressure.
            if n > 0 && tx.send(LogMsg::Data(src.log.clone(), src.stream, buf[..n].to_vec())).is_err() {
                return;
            }
            if eof {
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            let src = sources.swap_remove(i);
            // The writer hears one Eof per container, once both of its pipes are closed.
            let other_open = sources.iter().any(|s| Arc::ptr_eq(&s.log, &src.log));
            if !other_open && tx.send(LogMsg::Eof(src.log)).is_err() {
                return;
            }
        }
    }
}

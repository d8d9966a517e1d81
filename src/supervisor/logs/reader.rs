//! One poll loop reading every container's stdout and stderr pipes.
//!
//! It never closes a pipe before its EOF and never exits: a container whose pipe were closed
//! early would die of SIGPIPE on its next write.
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{pipe2, read, write};

use super::{cri, LogFile, LogMsg, MAX_IN_FLIGHT};
use crate::protocol::Stream;

/// Most a pipe is drained per wake-up: one chunk of up to this size goes to the channel, so a
/// container writing in small pieces still costs few wake-ups and messages.
const READ_CHUNK: usize = 256 * 1024;

/// The capacity asked for each pipe (Linux' default is 64 KiB, 1 MiB is the unprivileged
/// maximum): a flooding container fills it in fewer, larger writes and we drain it in fewer
/// reads, so both sides wake up less often. Memory is only taken as the pipe fills.
const PIPE_SIZE: i32 = 1 << 20;

struct Source {
    fd: OwnedFd,
    log: Arc<LogFile>,
    stream: Stream,
}

/// Wakes the loop's poll(): after new pipes are queued, or when a held-back log has room again.
#[derive(Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    pub fn wake(&self) -> io::Result<()> {
        match write(&*self.0, &[1]) {
            // A full wake pipe already guarantees a wake-up.
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The loop's self-pipe: its read end and the [`Waker`] on its write end.
pub fn wake_pipe() -> io::Result<(OwnedFd, Waker)> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    Ok((r, Waker(Arc::new(w))))
}

/// Adds pipes to the running loop.
pub struct Handle {
    queue: Sender<[Source; 2]>,
    waker: Waker,
}

impl Handle {
    /// Both pipes of a container arrive together, so the loop never sees one EOF while the
    /// other pipe is still queued and mistakes it for the end of the container's output.
    pub fn add(&self, log: Arc<LogFile>, stdout: OwnedFd, stderr: OwnedFd) -> io::Result<()> {
        for fd in [&stdout, &stderr] {
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            // Only an optimisation: a pty (`-t`) refuses it, a host's lowered pipe-max-size or
            // an exhausted pipe-user-pages-soft too; the default size then does.
            let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        }
        let pair = [
            Source { fd: stdout, log: log.clone(), stream: Stream::Stdout },
            Source { fd: stderr, log, stream: Stream::Stderr },
        ];
        self.queue.send(pair).map_err(|_| io::Error::other("log reader has stopped"))?;
        self.waker.wake()
    }
}

/// `spare`: emptied buffers the writer hands back, so the records of the next chunk are encoded
/// into memory already mapped and warm instead of freshly allocated (and page-faulted) memory.
pub fn spawn(tx: Sender<LogMsg>, spare: Receiver<Vec<u8>>, wake: OwnedFd, waker: Waker) -> io::Result<Handle> {
    let (queue, incoming) = unbounded();
    std::thread::Builder::new().name("log-reader".into()).spawn(move || run(wake, incoming, tx, spare))?;
    Ok(Handle { queue, waker })
}

enum Drained {
    Open,
    Eof,
    /// A read error other than EAGAIN/EINTR: the pipe is kept (closing it would SIGPIPE the
    /// container) and tried again on a later round.
    Failed(Errno),
}

/// Reads what the pipe holds, up to `buf.len()`: the bytes read and the pipe's state.
fn drain(fd: &OwnedFd, buf: &mut [u8]) -> (usize, Drained) {
    let mut filled = 0;
    while filled < buf.len() {
        match read(fd.as_raw_fd(), &mut buf[filled..]) {
            Ok(0) => return (filled, Drained::Eof),
            // A pty master (`-t`) reads EIO once every slave fd is closed: its end of output.
            Err(Errno::EIO) => return (filled, Drained::Eof),
            Ok(n) => filled += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => break,
            Err(e) => return (filled, Drained::Failed(e)),
        }
    }
    (filled, Drained::Open)
}

/// Whether the loop may read this log's pipes now. A log at [`MAX_IN_FLIGHT`] is marked
/// throttled for the writer to wake us; the second look closes the race with a writer that made
/// room between the first look and the mark.
fn has_room(log: &LogFile) -> bool {
    if log.is_discarded() || log.in_flight.load(Ordering::SeqCst) < MAX_IN_FLIGHT {
        return true;
    }
    log.throttled.store(true, Ordering::SeqCst);
    log.in_flight.load(Ordering::SeqCst) < MAX_IN_FLIGHT
}

fn run(wake: OwnedFd, incoming: Receiver<[Source; 2]>, tx: Sender<LogMsg>, spare: Receiver<Vec<u8>>) {
    let mut sources: Vec<Source> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut writer_gone = false;
    loop {
        sources.extend(incoming.try_iter().flatten());
        // A held-back log's pipes are left out of the poll: a closed one would report POLLHUP
        // on every round and spin.
        let polled: Vec<usize> = (0..sources.len()).filter(|&i| has_room(&sources[i].log)).collect();
        let ready: Vec<bool> = {
            let mut fds = Vec::with_capacity(polled.len() + 1);
            fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
            fds.extend(polled.iter().map(|&i| PollFd::new(sources[i].fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    crate::warn!("log reader: poll failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
        };
        if ready.first() == Some(&true) {
            while read(wake.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
        }
        let mut closed = Vec::new();
        let mut failed = false;
        for (&i, _) in polled.iter().zip(ready.iter().skip(1)).filter(|(_, &r)| r) {
            let src = &sources[i];
            let (n, state) = drain(&src.fd, &mut buf);
            if n > 0 && !src.log.is_discarded() && !writer_gone {
                // Encoded here, not in the writer: the two threads then share the work of a
                // flood about evenly (read and encode here, write there) on two cores, and the
                // chunk is copied once, straight into its records. The timestamp is when the
                // output was read.
                let mut records = spare.try_recv().unwrap_or_default();
                cri::encode(&mut records, &cri::timestamp_now(), src.stream, &buf[..n]);
                src.log.in_flight.fetch_add(records.len(), Ordering::SeqCst);
                if tx.send(LogMsg::Data(src.log.clone(), records)).is_err() {
                    // Cannot happen while the writer lives; keep draining so no container blocks.
                    crate::warn!("log writer has stopped: container output is dropped from now on");
                    writer_gone = true;
                }
            }
            match state {
                Drained::Open => {}
                Drained::Eof => closed.push(i),
                Drained::Failed(e) => {
                    crate::warn!("reading the {} of {}: {e}", src.stream.as_str(), src.log.path.display());
                    failed = true;
                }
            }
        }
        // Closed in descending order, so swap_remove leaves the indices still to close valid.
        closed.sort_unstable();
        for i in closed.into_iter().rev() {
            let src = sources.swap_remove(i);
            // The writer hears one Eof per container, once both of its pipes are closed.
            let other_open = sources.iter().any(|s| Arc::ptr_eq(&s.log, &src.log));
            if !other_open && !writer_gone && tx.send(LogMsg::Eof(src.log)).is_err() {
                writer_gone = true;
            }
        }
        if failed {
            // Do not spin on a pipe that keeps failing.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

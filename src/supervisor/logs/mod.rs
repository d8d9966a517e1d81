//! Container output: pipe → reader (one poll loop for all containers) → channel → writer (one
//! thread) → `<root>/logs/<name>.log` in the CRI format.
//!
//! The reader encodes what it reads into CRI records (see `reader`); the writer only writes them.
//!
//! Backpressure, never loss: each log may have at most [`MAX_IN_FLIGHT`] bytes of records read
//! from its pipes but not yet on disk. Past that the reader stops reading that container's pipes, they fill, and
//! the container's own writes block until its log catches up. A log that cannot be written (a full
//! disk) holds back only its own container: the writer keeps the unwritten records, retries, and
//! resumes when space returns; every other log and request carries on.
pub mod cri;
pub mod follow;
mod reader;
pub mod rotate;
mod writer;

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Sender};
use parking_lot::{Condvar, Mutex};

/// Bytes of records per log encoded but not yet written: bounds the memory a log that cannot be
/// written holds (past it by at most one read's records), and is the point where its container
/// is held back. Counted in records, not payload, because records are what is held: a chunk of
/// empty lines is many times its payload. 2 MiB is about 1.4 MiB of ordinary lines, four reads.
pub const MAX_IN_FLIGHT: usize = 2 << 20;

/// How long [`LogFile::wait_done`] waits on a log whose writes keep failing before giving up.
pub const STUCK_GRACE: Duration = Duration::from_secs(3);

/// Emptied record buffers the writer keeps for the reader to fill again.
const SPARE_BUFFERS: usize = 4;

/// One container's log file, as followers see it: how much of it is complete on disk, and whether
/// the container's output has ended.
pub struct LogFile {
    pub path: PathBuf,
    rotation: rotate::Rotation,
    progress: Mutex<Progress>,
    changed: Condvar,
    /// Bytes of records the reader has made from its pipes that the writer has not yet put on disk.
    in_flight: AtomicUsize,
    /// Set by the reader when it stopped reading this log's pipes at [`MAX_IN_FLIGHT`]: the writer
    /// wakes it once the log has room again.
    throttled: AtomicBool,
    /// The log file was deleted (`engine rm`): its output is read and dropped, no longer written.
    discarded: AtomicBool,
}

#[derive(Clone, Default)]
struct Progress {
    /// How many times the log was rotated: the file now at `path` holds this generation, and
    /// generation `generation - k` is at `path.k` while k < max-file.
    generation: u64,
    /// Bytes of whole records written to the current file.
    published: u64,
    /// Both pipes reached EOF and everything was written.
    done: bool,
    /// The last write failed (and why), and since when: cleared by the next one that succeeds.
    failing: Option<(String, Instant)>,
}

/// The output of a container could not all be written: what failed.
#[derive(Debug)]
pub struct LogStuck(pub String);

impl std::fmt::Display for LogStuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl LogFile {
    pub fn new(path: PathBuf) -> Arc<LogFile> {
        LogFile::rotating(path, rotate::Rotation::UNLIMITED)
    }

    pub fn rotating(path: PathBuf, rotation: rotate::Rotation) -> Arc<LogFile> {
        Arc::new(LogFile {
            path,
            rotation,
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
            in_flight: AtomicUsize::new(0),
            throttled: AtomicBool::new(false),
            discarded: AtomicBool::new(false),
        })
    }

    fn publish(&self, published: u64, done: bool) {
        let mut p = self.progress.lock();
        p.published = published;
        p.done |= done;
        p.failing = None;
        self.changed.notify_all();
    }

    /// The writer's rotation: the current file becomes `.1` (older ones shift up, the one past
    /// max-file is replaced) and a new file is current, under the lock followers open files
    /// under, so a generation's number always names the right file. Returns the new file.
    fn rotate(&self) -> io::Result<File> {
        let next = rotate::next_path(&self.path);
        // Made first: a failure here (ENOSPC, EMFILE) leaves every file where it was.
        let file = create_log(&next)?;
        let mut p = self.progress.lock();
        let max = u64::from(self.rotation.max_file);
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        if max == 1 {
            std::fs::remove_file(&self.path).or_else(|e| if gone(&e) { Ok(()) } else { Err(e) })?;
        }
        for k in (1..max).rev() {
            let moved = std::fs::rename(rotate::rotated_path(&self.path, k - 1), rotate::rotated_path(&self.path, k));
            moved.or_else(|e| if gone(&e) { Ok(()) } else { Err(e) })?;
        }
        std::fs::rename(&next, &self.path)?;
        p.generation += 1;
        p.published = 0;
        self.changed.notify_all();
        Ok(file)
    }

    /// Opens the existing log to go on writing it: followers see the files already there, the
    /// rotated ones included, and the writer starts after the last byte (see `writer`).
    fn reopen(&self) -> io::Result<File> {
        let file = std::os::unix::fs::OpenOptionsExt::mode(File::options().write(true).create(true), 0o600)
            .open(&self.path)?;
        let len = file.metadata()?.len();
        let max = u64::from(self.rotation.max_file);
        let rotated = (1..max).take_while(|k| rotate::rotated_path(&self.path, *k).exists()).count() as u64;
        let mut p = self.progress.lock();
        p.generation = rotated;
        p.published = len;
        Ok(file)
    }

    fn set_failing(&self, error: String) {
        let mut p = self.progress.lock();
        if p.failing.is_none() {
            p.failing = Some((error, Instant::now()));
            self.changed.notify_all();
        }
    }

    /// Blocks until generation `generation` has more than `offset` bytes published, a newer
    /// generation started, or the log is done; returns (generation, published, done).
    pub fn wait_beyond(&self, generation: u64, offset: u64) -> (u64, u64, bool) {
        let mut p = self.progress.lock();
        while p.generation == generation && p.published <= offset && !p.done {
            self.changed.wait(&mut p);
        }
        (p.generation, p.published, p.done)
    }

    /// Opens every file of the log that exists, oldest first, under the lock the writer rotates
    /// under, so the set is consistent; also the newest file's generation, its published length
    /// and whether the log is done. An open file stays readable after rotation removes it.
    pub fn open_all(&self) -> io::Result<(Vec<File>, u64, u64, bool)> {
        let p = self.progress.lock();
        let keep = p.generation.min(u64::from(self.rotation.max_file) - 1);
        let mut files = Vec::new();
        for k in (0..=keep).rev() {
            match File::open(rotate::rotated_path(&self.path, k)) {
                Ok(f) => files.push(f),
                // Not yet made (a log whose output never started) or removed by `rm`.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok((files, p.generation, p.published, p.done))
    }

    /// Opens the file of `generation`, or of the oldest one still kept if it was rotated away:
    /// the generation opened and its file.
    pub fn open_generation(&self, generation: u64) -> io::Result<(u64, File)> {
        let p = self.progress.lock();
        let oldest_kept = p.generation.saturating_sub(u64::from(self.rotation.max_file) - 1);
        let generation = generation.clamp(oldest_kept, p.generation);
        Ok((generation, File::open(rotate::rotated_path(&self.path, p.generation - generation))?))
    }

    /// Blocks until the output has ended and is on disk. Gives up, with the reason, once the
    /// log's writes have kept failing for [`STUCK_GRACE`]: a caller whose container has ended
    /// (`stop`, `wait`) must not hang on a full disk. The unwritten tail stays queued and is
    /// written if space returns while the supervisor runs.
    pub fn wait_done(&self) -> Result<(), LogStuck> {
        let mut p = self.progress.lock();
        while !p.done {
            if let Some((error, since)) = &p.failing {
                let give_up = *since + STUCK_GRACE;
                if Instant::now() >= give_up {
                    return Err(LogStuck(format!("the end of {} could not be written: {error}", self.path.display())));
                }
                self.changed.wait_until(&mut p, give_up);
            } else {
                self.changed.wait(&mut p);
            }
        }
        Ok(())
    }

    /// The log file is gone (`engine rm`): stop writing it, drain and drop the rest of the output.
    pub fn discard(&self) {
        self.discarded.store(true, Ordering::SeqCst);
    }

    fn is_discarded(&self) -> bool {
        self.discarded.load(Ordering::SeqCst)
    }
}

enum LogMsg {
    Open(Arc<LogFile>, File),
    /// Whole CRI records, one chunk of output.
    Data(Arc<LogFile>, Vec<u8>),
    Eof(Arc<LogFile>),
}

/// Handle on the reader and writer threads.
pub struct LogPipeline {
    tx: Sender<LogMsg>,
    reader: reader::Handle,
}

impl LogPipeline {
    /// The channel is unbounded: [`MAX_IN_FLIGHT`] per log bounds what it holds, and the reader
    /// never blocks on it, so one log that cannot be written never stalls the others.
    pub fn start() -> io::Result<LogPipeline> {
        let (tx, rx) = unbounded();
        // A few buffers go round between the threads; more than that are freed.
        let (spare_tx, spare_rx) = bounded(SPARE_BUFFERS);
        let (wake_rx, waker) = reader::wake_pipe()?;
        writer::spawn(rx, spare_tx, waker.clone())?;
        let reader = reader::spawn(tx.clone(), spare_rx, wake_rx, waker)?;
        Ok(LogPipeline { tx, reader })
    }

    /// Creates (truncates) the log file, or with `append` (a container started again) goes on
    /// after what its files hold, and starts capturing the two pipes into it.
    pub fn attach(&self, log: &Arc<LogFile>, stdout: OwnedFd, stderr: OwnedFd, append: bool) -> io::Result<()> {
        let file = if append { log.reopen()? } else { create_log(&log.path)? };
        // Through the same FIFO as the data, so the writer has the file before the first chunk.
        self.tx.send(LogMsg::Open(log.clone(), file)).map_err(|_| io::Error::other("log writer has stopped"))?;
        self.reader.add(log.clone(), stdout, stderr)
    }
}

fn create_log(path: &std::path::Path) -> io::Result<File> {
    std::os::unix::fs::OpenOptionsExt::mode(File::options().write(true).create(true).truncate(true), 0o600).open(path)
}

//! Container output: pipe → reader (one poll loop for all containers) → bounded channel →
//! writer (one thread) → `<root>/logs/<name>.log` in the CRI format.
//!
//! Backpressure, never loss: when the writer lags the channel fills, the reader blocks on send,
//! the pipes fill, and the containers' own writes block until the disk catches up.
pub mod cri;
pub mod follow;
mod reader;
mod writer;

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender};
use parking_lot::{Condvar, Mutex};

use crate::protocol::Stream;

/// Chunks in flight between the reader and the writer: at most CHANNEL_CHUNKS × 256 KiB buffered.
const CHANNEL_CHUNKS: usize = 32;

/// One container's log file, as followers see it: how much of it is complete on disk, and whether
/// the container's output has ended.
pub struct LogFile {
    pub path: PathBuf,
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Clone, Copy, Default)]
struct Progress {
    /// Bytes of whole records flushed to the file.
    published: u64,
    /// Both pipes reached EOF and everything was written.
    done: bool,
}

impl LogFile {
    pub fn new(path: PathBuf) -> Arc<LogFile> {
        Arc::new(LogFile { path, progress: Mutex::new(Progress::default()), changed: Condvar::new() })
    }

    fn publish(&self, published: u64, done: bool) {
        let mut p = self.progress.lock();
        p.published = published;
        p.done |= done;
        self.changed.notify_all();
    }

    /// Blocks until more than `offset` bytes are published or the log is done; returns both.
    pub fn wait_beyond(&self, offset: u64) -> (u64, bool) {
        let mut p = self.progress.lock();
        while p.published <= offset && !p.done {
            self.changed.wait(&mut p);
        }
        (p.published, p.done)
    }

    pub fn snapshot(&self) -> (u64, bool) {
        let p = self.progress.lock();
        (p.published, p.done)
    }

    /// Blocks until the output has ended and is on disk.
    pub fn wait_done(&self) {
        let mut p = self.progress.lock();
        while !p.done {
            self.changed.wait(&mut p);
        }
    }
}

enum LogMsg {
    Open(Arc<LogFile>, File),
    Data(Arc<LogFile>, Stream, Vec<u8>),
    Eof(Arc<LogFile>),
}

/// Handle on the reader and writer threads.
pub struct LogPipeline {
    tx: Sender<LogMsg>,
    reader: reader::Handle,
}

impl LogPipeline {
    pub fn start() -> io::Result<LogPipeline> {
        let (tx, rx) = bounded(CHANNEL_CHUNKS);
        writer::spawn(rx)?;
        let reader = reader::spawn(tx.clone())?;
        Ok(LogPipeline { tx, reader })
    }

    /// Creates (truncates) the log file and starts capturing the two pipes into it.
    pub fn attach(&self, log: &Arc<LogFile>, stdout: OwnedFd, stderr: OwnedFd) -> io::Result<()> {
        let file =
            std::os::unix::fs::OpenOptionsExt::mode(File::options().write(true).create(true).truncate(true), 0o600)
                .open(&log.path)?;
        // Through the same FIFO as the data, so the writer has the file before the first chunk.
        self.tx.send(LogMsg::Open(log.clone(), file)).map_err(|_| io::Error::other("log writer has stopped"))?;
        self.reader.add(log.clone(), stdout, stderr)
    }
}

//! The one thread that puts the reader's CRI records on disk and tells followers about them.
//!
//! Records reach the file whole or not at all: each batch is written at the offset where the last
//! whole record ended, and a write that fails partway (ENOSPC) is cut back to that offset. The
//! batch stays queued and is retried every [`RETRY`], so the log resumes, complete, once the disk
//! has room again. Meanwhile its container is held back by the reader (see the module docs).
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::reader::Waker;
use super::{LogFile, LogMsg};

/// Queued bytes after which a busy log is written even though more chunks are coming, and the
/// size small chunks are gathered up to into one write.
const BATCH: usize = 256 * 1024;
/// Buffers larger than this (a chunk of nearly empty lines) are freed rather than kept for reuse.
const SPARE_MAX: usize = 1 << 20;
/// How often a log whose last write failed is tried again.
const RETRY: Duration = Duration::from_millis(250);

struct OpenLog {
    log: Arc<LogFile>,
    file: File,
    /// File length up to the end of the last whole record.
    durable: u64,
    /// The file may extend past `durable` (cutting back a failed write failed too).
    torn: bool,
    /// Chunks of records from the reader, not yet in the batch.
    queued: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Records being written (what rotation has not yet put on disk of them), and the size
    /// they had when taken from the queue: what is freed from `in_flight` once all are written.
    batch: Vec<u8>,
    batch_bytes: usize,
    /// Both pipes are closed: the log is done once the queue is written.
    eof: bool,
    /// Set while writes fail: when to try again.
    retry_at: Option<Instant>,
}

impl OpenLog {
    fn pending(&self) -> bool {
        !self.batch.is_empty() || !self.queued.is_empty()
    }

    /// Writes every queued chunk in whole-record batches; on failure the file ends at its last
    /// whole record and the rest stays queued.
    fn write_out(&mut self, waker: &Waker, spare: &Sender<Vec<u8>>) -> io::Result<()> {
        loop {
            if self.batch.is_empty() {
                // A busy log's chunk is large: it becomes the batch as it is, without a copy.
                // Small ones (a trickle of lines) are gathered behind it into one write.
                let Some(first) = self.queued.pop_front() else { return Ok(()) };
                recycle(spare, std::mem::replace(&mut self.batch, first));
                while self.batch.len() < BATCH {
                    let Some(next) = self.queued.pop_front() else { break };
                    self.batch.extend_from_slice(&next);
                    recycle(spare, next);
                }
                self.batch_bytes = self.batch.len();
                self.queued_bytes -= self.batch_bytes;
                if self.batch.is_empty() {
                    continue;
                }
            }
            if self.torn {
                self.file.set_len(self.durable)?;
                self.torn = false;
            }
            let len = match self.fitting_len() {
                Some(len) => len,
                None => {
                    self.file = self.log.rotate()?;
                    self.durable = 0;
                    continue;
                }
            };
            if let Err(e) = self.file.write_all_at(&self.batch[..len], self.durable) {
                self.torn = self.file.set_len(self.durable).is_err();
                return Err(e);
            }
            self.durable += len as u64;
            if len < self.batch.len() {
                // The rest goes to the next file.
                self.batch.drain(..len);
                continue;
            }
            // Back to the reader: an idle log holds no buffer.
            self.batch.clear();
            recycle(spare, std::mem::take(&mut self.batch));
            let freed = std::mem::take(&mut self.batch_bytes);
            self.log.in_flight.fetch_sub(freed, Ordering::SeqCst);
            if self.log.throttled.swap(false, Ordering::SeqCst) {
                if let Err(e) = waker.wake() {
                    crate::warn!("waking the log reader: {e}");
                }
            }
        }
    }

    /// How much of the batch goes into the current file: the whole records that fit under
    /// max-size, or the first record alone into an empty file (a record is never split). None:
    /// nothing fits, rotate first.
    fn fitting_len(&self) -> Option<usize> {
        let room = self.log.rotation.max_size.saturating_sub(self.durable);
        if self.batch.len() as u64 <= room {
            return Some(self.batch.len());
        }
        // room < batch.len(), so it fits in usize.
        let fit = self.batch[..room as usize].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        match fit {
            0 if self.durable == 0 => {
                Some(self.batch.iter().position(|&b| b == b'\n').map_or(self.batch.len(), |i| i + 1))
            }
            0 => None,
            n => Some(n),
        }
    }

    /// Writes what is queued unless a failed log's retry is not due; publishes what is on disk.
    /// True once the log is finished (done, or its file deleted) and can be dropped.
    fn flush(&mut self, waker: &Waker, spare: &Sender<Vec<u8>>, now: Instant) -> bool {
        if self.retry_at.is_some_and(|t| now < t) {
            return false;
        }
        match self.write_out(waker, spare) {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    crate::warn!("writing {} again", self.log.path.display());
                }
                self.log.publish(self.durable, self.eof);
                self.eof
            }
            Err(e) => {
                if self.file.metadata().is_ok_and(|m| m.nlink() == 0) {
                    // Deleted by `engine rm`: drop its output so the space is freed.
                    self.log.discard();
                    self.log.publish(self.durable, true);
                    return true;
                }
                if self.retry_at.is_none() {
                    crate::warn!(
                        "writing {}: {e}; holding the container's output until it can be written",
                        self.log.path.display()
                    );
                }
                self.retry_at = Some(now + RETRY);
                self.log.set_failing(e.to_string());
                false
            }
        }
    }
}

pub fn spawn(rx: Receiver<LogMsg>, spare: Sender<Vec<u8>>, waker: Waker) -> io::Result<()> {
    std::thread::Builder::new().name("log-writer".into()).spawn(move || run(rx, spare, waker))?;
    Ok(())
}

/// Offers an emptied buffer to the reader; dropped if the reader has enough or it is oversized.
fn recycle(spare: &Sender<Vec<u8>>, mut buf: Vec<u8>) {
    if buf.capacity() > 0 && buf.capacity() <= SPARE_MAX {
        buf.clear();
        let _ = spare.try_send(buf);
    }
}

fn key(log: &Arc<LogFile>) -> usize {
    Arc::as_ptr(log) as usize
}

fn run(rx: Receiver<LogMsg>, spare: Sender<Vec<u8>>, waker: Waker) {
    let mut open: HashMap<usize, OpenLog> = HashMap::new();
    loop {
        let next_retry = open.values().filter_map(|e| e.retry_at).min();
        let msg = match next_retry {
            Some(t) => rx.recv_deadline(t),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        match msg {
            Ok(LogMsg::Open(log, file)) => {
                // Past what is there: a container started again appends to its log.
                let durable = file.metadata().map_or(0, |m| m.len());
                let entry = OpenLog {
                    log,
                    file,
                    durable,
                    torn: false,
                    queued: VecDeque::new(),
                    queued_bytes: 0,
                    batch: Vec::new(),
                    batch_bytes: 0,
                    eof: false,
                    retry_at: None,
                };
                open.insert(key(&entry.log), entry);
            }
            Ok(LogMsg::Data(log, records)) => {
                let k = key(&log);
                if let Some(entry) = open.get_mut(&k) {
                    entry.queued_bytes += records.len();
                    entry.queued.push_back(records);
                    if entry.queued_bytes >= BATCH && entry.flush(&waker, &spare, now) {
                        open.remove(&k);
                    }
                }
            }
            Ok(LogMsg::Eof(log)) => {
                let k = key(&log);
                if let Some(entry) = open.get_mut(&k) {
                    entry.eof = true;
                    if entry.flush(&waker, &spare, now) {
                        open.remove(&k);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Idle for a moment, or a retry is due: make everything written visible to followers.
        if rx.is_empty() || next_retry.is_some_and(|t| now >= t) {
            open.retain(|_, e| !(e.pending() || e.retry_at.is_some()) || !e.flush(&waker, &spare, now));
        }
    }
}

//! The one thread that turns chunks into CRI records on disk and tells followers about them.
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::{cri, LogFile, LogMsg};

/// Unpublished bytes after which a busy log is flushed even though more chunks are queued,
/// so `logs -f` keeps up with a container that writes without pause.
const PUBLISH_EVERY: u64 = 1 << 20;

struct OpenLog {
    log: Arc<LogFile>,
    file: io::BufWriter<File>,
    written: u64,
    published: u64,
}

impl OpenLog {
    fn publish(&mut self, done: bool) {
        if let Err(e) = self.file.flush() {
            crate::warn!("writing {}: {e}", self.log.path.display());
        }
        self.published = self.written;
        self.log.publish(self.published, done);
    }
}

pub fn spawn(rx: Receiver<LogMsg>) -> io::Result<()> {
    std::thread::Builder::new().name("log-writer".into()).spawn(move || run(rx))?;
    Ok(())
}

fn key(log: &Arc<LogFile>) -> usize {
    Arc::as_ptr(log) as usize
}

fn run(rx: Receiver<LogMsg>) {
    let mut open: HashMap<usize, OpenLog> = HashMap::new();
    let mut record = Vec::with_capacity(128 * 1024);
    for msg in rx.iter() {
        match msg {
            LogMsg::Open(log, file) => {
                let file = io::BufWriter::with_capacity(256 * 1024, file);
                open.insert(key(&log), OpenLog { log, file, written: 0, published: 0 });
            }
            LogMsg::Data(log, stream, chunk) => {
                let Some(entry) = open.get_mut(&key(&log)) else { continue };
                record.clear();
                cri::encode(&mut record, &cri::timestamp_now(), stream, &chunk);
                if let Err(e) = entry.file.write_all(&record) {
                    crate::warn!("writing {}: {e}", log.path.display());
                }
                entry.written += record.len() as u64;
                if entry.written - entry.published >= PUBLISH_EVERY {
                    entry.publish(false);
                }
            }
            LogMsg::Eof(log) => {
                if let Some(mut entry) = open.remove(&key(&log)) {
                    entry.publish(true);
                }
            }
        }
        // Idle for a moment: make everything written visible to followers.
        if rx.is_empty() {
            for entry in open.values_mut().filter(|e| e.written != e.published) {
                entry.publish(false);
            }
        }
    }
}

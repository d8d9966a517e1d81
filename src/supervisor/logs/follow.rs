//! Reading a log back as the container's output: `engine logs [-f] [--timestamps] [--tail N]`
//! and the live output of `engine run`.
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{cri, LogFile};
use crate::protocol::Stream;

const READ_BLOCK: usize = 1 << 20;
/// Payload bytes of one stream gathered before they are handed to the sink.
const BATCH: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub follow: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
}

pub type Sink<'a> = dyn FnMut(Stream, &[u8]) -> io::Result<()> + 'a;

/// Streams the payload of the log at `path` (its rotated files first, oldest first) to `sink`.
/// With a `live` log it reads only what the writer has published, and with `follow` it waits for
/// more, across rotations, until the container's output ends.
pub fn stream(path: &Path, live: Option<&LogFile>, opts: Options, sink: &mut Sink<'_>) -> io::Result<()> {
    // Every file is opened before any is read: a rotation meanwhile cannot make one vanish, and
    // records are never split across files, so the files read in order are one log.
    let (files, mut generation, published, done) = match live {
        Some(l) => l.open_all()?,
        None => {
            let mut files = Vec::new();
            for p in super::rotate::existing_rotated(path).iter().map(PathBuf::as_path).chain([path]) {
                match File::open(p) {
                    Ok(f) => files.push(f),
                    // A container whose output never started has no log yet: no output, not an error.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            (files, 0, 0, true)
        }
    };
    let mut segments = Vec::with_capacity(files.len());
    let last = files.len().saturating_sub(1);
    for (i, file) in files.into_iter().enumerate() {
        // The newest file of a live log holds whole records only up to what was published.
        let end = if i == last && live.is_some() { published } else { file.metadata()?.len() };
        segments.push((file, end));
    }
    let (first, mut offset) = match opts.tail {
        Some(n) => tail_start(&mut segments, n)?,
        None => (0, 0),
    };
    let mut batch = Batcher {
        sink,
        timestamps: opts.timestamps,
        stream: Stream::Stdout,
        buf: Vec::new(),
        at_line_start: [true; 2],
    };
    let mut current = None;
    for (i, (mut file, end)) in segments.into_iter().enumerate().skip(first) {
        let start = if i == first { offset } else { 0 };
        for_each_record(&mut file, start, end, |rec, _| batch.push(&rec))?;
        offset = end;
        current = Some(file);
    }
    let (Some(live), Some(mut file), true, false) = (live, current, opts.follow, done) else {
        return batch.flush();
    };
    loop {
        batch.flush()?;
        let (newest, end, done) = live.wait_beyond(generation, offset);
        if newest > generation {
            // This generation is complete: the rest of its file, then the next one.
            let end = file.metadata()?.len();
            for_each_record(&mut file, offset, end, |rec, _| batch.push(&rec))?;
            let (next, next_file) = live.open_generation(generation + 1)?;
            if next > generation + 1 {
                crate::warn!("{}: a follower fell {} files behind rotation", path.display(), next - generation - 1);
            }
            (generation, file, offset) = (next, next_file, 0);
            continue;
        }
        for_each_record(&mut file, offset, end, |rec, _| batch.push(&rec))?;
        offset = end;
        if done {
            return batch.flush();
        }
    }
}

/// Calls `f(record, end_offset)` for every whole record in `[start, end)`.
fn for_each_record(
    file: &mut File,
    start: u64,
    end: u64,
    mut f: impl FnMut(cri::Record<'_>, u64) -> io::Result<()>,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(start))?;
    let mut pos = start;
    let mut pending: Vec<u8> = Vec::new();
    // No bigger than what is to be read: `engine run` reads each few bytes of live output
    // through here, and a 1 MiB zeroed block per call was most of its request thread's memset.
    let mut block = vec![0u8; (end.saturating_sub(start) as usize).min(READ_BLOCK)];
    while pos < end {
        let want = ((end - pos) as usize).min(READ_BLOCK);
        let n = file.read(&mut block[..want])?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        pending.extend_from_slice(&block[..n]);
        let mut consumed = 0;
        let base = pos - pending.len() as u64;
        while let Some(i) = pending[consumed..].iter().position(|&b| b == b'\n') {
            let line = &pending[consumed..consumed + i];
            consumed += i + 1;
            if let Some(rec) = cri::parse(line) {
                f(rec, base + consumed as u64)?;
            }
        }
        pending.drain(..consumed);
    }
    Ok(())
}

/// File and offset where the last `n` lines of output begin. A line ends with an `F` record; a
/// trailing partial line (only `P` records) counts as one.
fn tail_start(segments: &mut [(File, u64)], n: usize) -> io::Result<(usize, u64)> {
    if n == 0 {
        // From the end of the newest file: nothing now, and `-f` follows on from there.
        return Ok(segments.last().map_or((0, 0), |(_, end)| (segments.len() - 1, *end)));
    }
    // `n` comes from the client: a huge one must neither overflow nor allocate up front.
    let mut line_ends: VecDeque<(usize, u64)> = VecDeque::with_capacity(n.saturating_add(2).min(4096));
    let mut last_partial = false;
    for (i, (file, end)) in segments.iter_mut().enumerate() {
        for_each_record(file, 0, *end, |rec, rec_end| {
            last_partial = !rec.line_ends;
            if rec.line_ends {
                line_ends.push_back((i, rec_end));
                if line_ends.len() > n.saturating_add(1) {
                    line_ends.pop_front();
                }
            }
            Ok(())
        })?;
    }
    // Lines that end before the tail starts: drop one more if a partial line is part of the tail.
    let keep = if last_partial { n.saturating_sub(1) } else { n };
    Ok(if line_ends.len() > keep { line_ends[line_ends.len() - keep - 1] } else { (0, 0) })
}

struct Batcher<'s, 'a> {
    sink: &'s mut Sink<'a>,
    timestamps: bool,
    stream: Stream,
    buf: Vec<u8>,
    at_line_start: [bool; 2],
}

impl Batcher<'_, '_> {
    fn push(&mut self, rec: &cri::Record<'_>) -> io::Result<()> {
        if rec.stream != self.stream || self.buf.len() >= BATCH {
            self.flush()?;
            self.stream = rec.stream;
        }
        let slot = &mut self.at_line_start[rec.stream as usize];
        rec.write_payload(&mut self.buf, self.timestamps, *slot);
        *slot = rec.line_ends;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (self.sink)(self.stream, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(log: &[u8], opts: Options) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        File::create(&path).unwrap().write_all(log).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        stream(&path, None, opts, &mut |s, b| {
            match s {
                Stream::Stdout => out.extend_from_slice(b),
                Stream::Stderr => err.extend_from_slice(b),
            }
            Ok(())
        })
        .unwrap();
        (out, err)
    }

    fn log_of(chunks: &[(Stream, &[u8])]) -> Vec<u8> {
        let mut log = Vec::new();
        for (s, c) in chunks {
            cri::encode(&mut log, "T", *s, c);
        }
        log
    }

    #[test]
    fn payload_is_split_by_stream() {
        let log = log_of(&[(Stream::Stdout, b"a\nb"), (Stream::Stderr, b"e\n"), (Stream::Stdout, b"c\n")]);
        let (out, err) = collect(&log, Options::default());
        assert_eq!(out, b"a\nbc\n");
        assert_eq!(err, b"e\n");
    }

    #[test]
    fn timestamps_prefix_each_line_once() {
        let log = log_of(&[(Stream::Stdout, b"ab"), (Stream::Stdout, b"c\nd\n")]);
        let (out, _) = collect(&log, Options { timestamps: true, ..Default::default() });
        assert_eq!(out, b"T abc\nT d\n");
    }

    #[test]
    fn tail_counts_lines_not_records() {
        let log = log_of(&[(Stream::Stdout, b"1\n2\n3"), (Stream::Stdout, b"x\n4\n")]);
        let tail = |n| collect(&log, Options { tail: Some(n), ..Default::default() }).0;
        assert_eq!(tail(1), b"4\n");
        assert_eq!(tail(2), b"3x\n4\n");
        assert_eq!(tail(10), b"1\n2\n3x\n4\n");
        assert_eq!(tail(0), b"");
        let partial = log_of(&[(Stream::Stdout, b"1\n2\nhalf")]);
        assert_eq!(collect(&partial, Options { tail: Some(2), ..Default::default() }).0, b"2\nhalf");
    }
}

//! The CRI log format (containerd, CRI-O): one record per line,
//! `RFC3339Nano-timestamp SP stream SP P|F SP text LF`. `F` ends a line of output; `P` is a
//! partial line whose text continues in the next record, so the payload is restored exactly:
//! F-text + "\n", P-text as is. Only `\n` is structural; every other byte is kept verbatim.
use crate::protocol::Stream;

pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Appends the records for one chunk of output to `out`. This is the log's hot path (a record per
/// line of output): the prefix is built once per chunk and each line is copied whole, newline
/// included, right after it.
pub fn encode(out: &mut Vec<u8>, timestamp: &str, stream: Stream, chunk: &[u8]) {
    let mut prefix = Vec::with_capacity(timestamp.len() + 10);
    prefix.extend_from_slice(timestamp.as_bytes());
    prefix.push(b' ');
    prefix.extend_from_slice(stream.as_str().as_bytes());
    prefix.extend_from_slice(b" F ");
    // Typical lines are far longer than the prefix: one reservation for most chunks.
    out.reserve(chunk.len() + chunk.len() / 2 + prefix.len() + 1);
    let mut rest = chunk;
    while let Some(i) = find_newline(rest) {
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&rest[..=i]);
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        let tag = prefix.len() - 2;
        prefix[tag] = b'P';
        out.extend_from_slice(&prefix);
        out.extend_from_slice(rest);
        out.push(b'\n');
    }
}

/// The index of the first `\n` in `s`. libc's memchr scans a word or a vector at a time, where a
/// byte loop made the newline search the largest cost of a flood.
fn find_newline(s: &[u8]) -> Option<usize> {
    // SAFETY: memchr reads at most s.len() bytes from s's start, all within the slice, and
    // returns null or a pointer into it.
    let hit = unsafe { libc::memchr(s.as_ptr().cast(), i32::from(b'\n'), s.len()) };
    (!hit.is_null()).then(|| hit as usize - s.as_ptr() as usize)
}

#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: &'a [u8],
    pub stream: Stream,
    /// False for `P`: the text continues in the next record of the stream.
    pub line_ends: bool,
    pub text: &'a [u8],
}

/// Parses one record (without its trailing `\n`); `None` for a malformed line.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let timestamp = parts.next()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let line_ends = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record { timestamp, stream, line_ends, text: parts.next().unwrap_or(b"") })
}

impl Record<'_> {
    /// The payload bytes this record stands for, optionally prefixed by its timestamp when it
    /// starts a line (`at_line_start`), as `engine logs --timestamps` shows them.
    pub fn write_payload(&self, out: &mut Vec<u8>, timestamps: bool, at_line_start: bool) {
        if timestamps && at_line_start {
            out.extend_from_slice(self.timestamp);
            out.push(b' ');
        }
        out.extend_from_slice(self.text);
        if self.line_ends {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(log: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            parse(line).unwrap().write_payload(&mut out, false, true);
        }
        out
    }

    #[test]
    fn round_trip_keeps_partial_lines_and_binary() {
        let mut log = Vec::new();
        let chunks: [&[u8]; 4] = [b"hello\nwor", b"ld\n", b"\n\n", b"\x00\xff\r tail"];
        for c in chunks {
            encode(&mut log, "2026-01-01T00:00:00.000000000Z", Stream::Stdout, c);
        }
        assert_eq!(payload(&log), chunks.concat());
        let text = String::from_utf8_lossy(&log);
        assert!(text.starts_with("2026-01-01T00:00:00.000000000Z stdout F hello\n"));
        assert!(text.contains(" stdout P wor\n"));
    }

    #[test]
    fn encode_matches_a_record_per_line() {
        let ts = "2026-01-01T00:00:00.000000000Z";
        let cases: [&[u8]; 7] = [b"", b"\n", b"a", b"a\n", b"\n\nx", b"one\ntwo\nthree", &[b'x'; 300]];
        for chunk in cases {
            let mut want = Vec::new();
            let mut rest = chunk;
            while !rest.is_empty() {
                let (text, tag, advance) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], "F", i + 1),
                    None => (rest, "P", rest.len()),
                };
                want.extend_from_slice(format!("{ts} stderr {tag} ").as_bytes());
                want.extend_from_slice(text);
                want.push(b'\n');
                rest = &rest[advance..];
            }
            let mut got = b"kept".to_vec();
            encode(&mut got, ts, Stream::Stderr, chunk);
            assert_eq!(got[4..], want[..], "{:?}", String::from_utf8_lossy(chunk));
        }
    }

    #[test]
    fn malformed_lines_are_rejected() {
        assert!(parse(b"ts stdin F x").is_none());
        assert!(parse(b"ts stdout X x").is_none());
        assert!(parse(b"garbage").is_none());
        assert_eq!(parse(b"ts stderr F ").unwrap().text, b"");
    }

    #[test]
    fn timestamp_is_rfc3339_nanos() {
        let ts = timestamp_now();
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000000000Z".len());
        assert!(chrono::DateTime::parse_from_rfc3339(&ts).is_ok());
    }
}

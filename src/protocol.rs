//! The wire format between the `engine` CLI and the supervisor.
//!
//! A frame is `u32 header_len | u32 payload_len | header (JSON) | payload (raw bytes)`, both lengths
//! big-endian. The header is a serde JSON [`Envelope`] (client → supervisor) or [`Response`]
//! (supervisor → client); the payload carries raw log bytes so binary output is not inflated by
//! JSON. Both lengths are checked against a cap, and a frame's memory grows only as its bytes
//! arrive: a peer that announces a large frame and stalls costs nothing.
use std::io::{self, Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::supervisor::record::ContainerRecord;
use crate::supervisor::spec::ContainerSpec;

/// Bumped whenever a request or response changes shape. Adding a request variant (as `info` and
/// `version` were added to version 1) does not bump it: an older supervisor answers an unknown
/// request with one error line.
pub const PROTOCOL_VERSION: u32 = 1;
/// This build's release and git commit (from build.rs), as `engine version` reports them.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const ENGINE_COMMIT: &str = env!("ENGINE_GIT_COMMIT");
/// The `op` of [`Request::Version`]. Its envelope (`{"version": N, "request": {"op": "version"}}`)
/// and its answer ([`Response::Version`]) never change shape, and the supervisor answers it
/// whatever N is, so a client of any protocol version can tell which versions it is talking to.
pub const VERSION_OP: &str = "version";
pub const MAX_HEADER: usize = 1 << 20;
pub const MAX_PAYLOAD: usize = 4 << 20;
/// Caps on a request (client → supervisor): a container spec is a few KiB, and requests carry no
/// payload.
pub const MAX_REQUEST_HEADER: usize = 256 << 10;
pub const MAX_REQUEST_PAYLOAD: usize = 0;
/// The byte after an [`Request::Exec`] frame that carries the client's stdout and stderr.
pub const EXEC_FDS_BYTE: u8 = b'F';
/// Bytes of records per `ps` frame: half of [`MAX_HEADER`], so one more record (a spec is capped
/// at [`MAX_REQUEST_HEADER`]) never pushes a page over the cap.
pub const LIST_PAGE_BYTES: usize = MAX_HEADER / 2;
/// Cap on the payload of an [`Input`] frame (client → supervisor, after a `-i`/`-t` request).
pub const MAX_INPUT_PAYLOAD: usize = 64 << 10;
/// Bytes a frame's buffer grows by per read.
const READ_STEP: usize = 64 << 10;

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub request: Request,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start a container and return once its command runs.
    Start {
        spec: ContainerSpec,
    },
    /// Start, stream the output, then return the exit code.
    Run {
        spec: ContainerSpec,
        remove: bool,
    },
    Stop {
        name: String,
        timeout_secs: u64,
    },
    /// Send a signal to the container's command (used by `run` to forward Ctrl-C).
    Kill {
        name: String,
        signal: i32,
    },
    /// `stats` reads each running container's cgroup (memory, CPU, pids) now.
    Ps {
        all: bool,
        #[serde(default)]
        stats: bool,
    },
    Logs {
        name: String,
        follow: bool,
        timestamps: bool,
        tail: Option<usize>,
    },
    Inspect {
        name: String,
    },
    Rm {
        name: String,
        force: bool,
    },
    Wait {
        name: String,
    },
    /// Run a command in a running container (`engine exec`). Right after this frame the client
    /// sends one byte carrying its stdout and stderr as SCM_RIGHTS ([`EXEC_FDS_BYTE`]): the
    /// process writes to them directly. Answered by [`Response::Exited`] once it ends. Added in
    /// protocol 1 without a bump (an older supervisor refuses it in one line).
    Exec {
        name: String,
        command: Vec<String>,
        /// `KEY=VALUE`, over the container's environment by key.
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        workdir: Option<String>,
        #[serde(default)]
        user: Option<String>,
        /// `-t`: the process gets a pty opened in the container (the supervisor holds the
        /// master); no fds follow the frame, its output comes back as [`Response::Output`]
        /// frames and the client sends [`Input`] frames.
        #[serde(default)]
        tty: bool,
        /// `-i`: without `-t`, the client's stdin travels too (three fds: stdin, stdout,
        /// stderr); with `-t`, [`Input`] frames are written to the pty.
        #[serde(default)]
        interactive: bool,
    },
    /// Attach to a running container (`engine attach`, `start -a`): answered by
    /// [`Response::Attached`], then its output as [`Response::Output`] frames (from the start of
    /// its log with `logs`, else from now on) and [`Response::Exited`]. The client may send
    /// [`Input`] frames for a container started with `-i` or `-t`; closing the connection
    /// detaches. Added in protocol 1 without a bump.
    Attach {
        name: String,
        #[serde(default)]
        logs: bool,
    },
    /// What the supervisor knows about itself and the host (`engine info`); answered by
    /// [`Response::Info`]. Added in protocol 1 without a bump.
    Info,
    /// The supervisor's versions; answered by [`Response::Version`] whatever the envelope's
    /// protocol version (see [`VERSION_OP`]). Added in protocol 1 without a bump.
    Version,
    /// One reading of the named containers' cgroups and network (all running ones when none is
    /// named), answered by [`Response::Stats`]; `engine stats` asks once a second. Added in
    /// protocol 1 without a bump.
    Stats {
        #[serde(default)]
        names: Vec<String>,
    },
    /// Lifecycle events as they happen ([`Response::Event`] each), replayed from `since`
    /// (nanoseconds since the epoch) out of the supervisor's ring; ends with [`Response::Done`]
    /// once `until` has passed, else when the client goes. Added in protocol 1 without a bump.
    Events {
        #[serde(default)]
        since: Option<i64>,
        #[serde(default)]
        until: Option<i64>,
        /// Only these containers (empty: all).
        #[serde(default)]
        containers: Vec<String>,
    },
    /// A command line as the user typed it, from the `engine` client (which parses none of it):
    /// the supervisor reads it as `engine-front` would, with relative paths from `cwd`, and
    /// answers as for the request it stands for, with its failures as stderr [`Response::Output`]
    /// and an [`Response::Exited`] code; or [`Response::HandOver`] (to `engine-front`), or
    /// [`Response::NoSuchImage`] (the client hands it to `engine-core`, which pulls). Added in protocol 1 without a
    /// bump: an older supervisor refuses it before doing anything, and the client then hands over.
    Cli {
        argv: Vec<String>,
        cwd: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// The request succeeded and has nothing more to say.
    Done,
    Started {
        name: String,
        pid: i32,
    },
    /// Log bytes of one stream; the bytes are the frame's payload.
    Output {
        stream: Stream,
    },
    /// The container ended: its exit code (128+N for signal N).
    Exited {
        code: i32,
    },
    /// The last (often only) page of `ps`'s records.
    List {
        containers: Vec<ContainerRecord>,
    },
    /// A page of `ps`'s records with more to follow: a list of thousands of records does not fit
    /// one frame, so it travels as `ListPage`s of up to [`LIST_PAGE_BYTES`] and a final `List`.
    ListPage {
        containers: Vec<ContainerRecord>,
    },
    Record {
        container: Box<ContainerRecord>,
    },
    Info {
        info: Box<SupervisorInfo>,
    },
    /// The answer to [`Request::Version`]: fixed shape, for every protocol version.
    Version {
        /// The supervisor's release (Cargo package version).
        version: String,
        /// The git commit it was built from, or "unknown".
        commit: String,
        /// The wire protocol it speaks.
        protocol: u32,
    },
    /// A start or run named an image the store lacks (and no directory of that name): the
    /// client pulls it into `store` and asks again, or prints `message` (exit 125).
    NoSuchImage {
        reference: String,
        store: std::path::PathBuf,
        message: String,
    },
    /// The answer to [`Request::Attach`]: whether the container has a pty (the client puts its
    /// terminal in raw mode) and an open stdin (the client forwards its own).
    Attached {
        tty: bool,
        stdin: bool,
    },
    Stats {
        stats: Vec<ContainerStats>,
    },
    Event {
        event: crate::supervisor::events::Event,
    },
    /// One line for the user and the process exit code the CLI should use.
    Error {
        message: String,
        exit_code: i32,
    },
    /// The answer to a [`Request::Cli`] whose command line the supervisor leaves to
    /// `engine-front` (a terminal or stdin to attach, `start -a`, a usage error): nothing was done.
    HandOver,
}

/// What a client sends after a `run`/`attach`/`exec` request with `-i` or `-t`, as frames
/// (header [`Input`], payload at most [`MAX_INPUT_PAYLOAD`]). Frames, not the client's terminal
/// fd: the client must see the detach keys and keep its terminal once detached, and a resize
/// needs a message anyway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// Bytes for the container's stdin (or its pty); they are the frame's payload.
    Stdin,
    /// The client's terminal size: TIOCSWINSZ on the pty master (the container gets SIGWINCH).
    Resize { rows: u16, cols: u16 },
    /// The client's stdin ended: the container's stdin pipe is closed (no effect on a pty).
    CloseStdin,
}

/// The supervisor's part of `engine info`: what only it knows (the client adds host facts).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub version: String,
    pub commit: String,
    pub protocol: u32,
    pub pid: i32,
    pub root: std::path::PathBuf,
    /// Bytes of the files under the root (records, logs, container layers).
    pub root_used_bytes: u64,
    /// Free bytes on the root's filesystem, for unprivileged users of it.
    pub root_free_bytes: u64,
    pub socket: std::path::PathBuf,
    pub cgroup_parent: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    /// Whether the supervisor opened /dev/container_monitor at start (it uses it only then).
    pub monitor: bool,
    /// Containers by state: created, running, exited, stopped, killed, lost.
    pub containers: std::collections::BTreeMap<String, usize>,
}

/// One reading of a container for `engine stats`: counters, which the client turns into rates
/// between two readings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerStats {
    pub name: String,
    /// As `ps` shows it; the counters are zero unless it runs.
    pub state: String,
    /// When this was read, nanoseconds since the epoch.
    pub read_at_nano: i64,
    /// CPU time of every process of the container, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use less the inactive page cache (what `docker stats` shows), and the limit:
    /// the cgroup's, or the host's memory when it has none.
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub pids: u64,
    /// Bytes received and sent by the container on the bridge (its veth's counters).
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    /// Bytes read and written to block devices (cgroup io/blkio accounting).
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
}

impl Response {
    pub fn error(message: impl Into<String>, exit_code: i32) -> Response {
        Response::Error { message: message.into(), exit_code }
    }
}

pub fn write_frame<W: Write, T: Serialize>(w: &mut W, header: &T, payload: &[u8]) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    write_json_frame(w, &json, payload)
}

/// `ps`'s answer: [`Response::ListPage`] frames of at most [`LIST_PAGE_BYTES`] of records, then a
/// final [`Response::List`]. Each record is serialized once: its JSON both sizes the page and
/// goes into the frame (pages are spliced from it in the shape serde gives the two variants).
pub fn write_list<W: Write>(w: &mut W, containers: impl IntoIterator<Item = ContainerRecord>) -> io::Result<()> {
    let page_frame = |kind: &str, items: &[Vec<u8>]| {
        let mut json = format!(r#"{{"kind":"{kind}","containers":["#).into_bytes();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(item);
        }
        json.extend_from_slice(b"]}");
        json
    };
    let (mut page, mut bytes) = (Vec::new(), 0);
    for c in containers {
        let json = serde_json::to_vec(&c).map_err(io::Error::other)?;
        if !page.is_empty() && bytes + json.len() > LIST_PAGE_BYTES {
            write_json_frame(w, &page_frame("list_page", &page), b"")?;
            page.clear();
            bytes = 0;
        }
        bytes += json.len() + 1;
        page.push(json);
    }
    write_json_frame(w, &page_frame("list", &page), b"")
}

fn write_json_frame<W: Write>(w: &mut W, json: &[u8], payload: &[u8]) -> io::Result<()> {
    if json.len() > MAX_HEADER || payload.len() > MAX_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame exceeds the protocol size cap"));
    }
    let mut buf = Vec::with_capacity(8 + json.len() + payload.len());
    buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(json);
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> io::Result<Option<(T, Vec<u8>)>> {
    read_frame_capped(r, MAX_HEADER, MAX_PAYLOAD)
}

/// [`read_frame`] with caps of its own (the supervisor reads requests with the request caps).
pub fn read_frame_capped<R: Read, T: DeserializeOwned>(
    r: &mut R,
    max_header: usize,
    max_payload: usize,
) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut lens = [0u8; 8];
    match r.read_exact(&mut lens) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let [h0, h1, h2, h3, p0, p1, p2, p3] = lens;
    let header_len = u32::from_be_bytes([h0, h1, h2, h3]) as usize;
    let payload_len = u32::from_be_bytes([p0, p1, p2, p3]) as usize;
    if header_len > max_header || payload_len > max_payload {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "frame of {header_len}+{payload_len} bytes exceeds the protocol size cap ({max_header}+{max_payload})"
            ),
        ));
    }
    let header = read_len(r, header_len)?;
    let payload = read_len(r, payload_len)?;
    let value = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed frame: {e}")))?;
    Ok(Some((value, payload)))
}

/// Reads exactly `len` bytes into a buffer that grows as they arrive, never ahead of them.
fn read_len<R: Read>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    while buf.len() < len {
        let start = buf.len();
        buf.resize(start + (len - start).min(READ_STEP), 0);
        match r.read(&mut buf[start..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the frame ends early")),
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_hold_every_record_once_within_the_cap() {
        let records: Vec<_> = (0..300)
            .map(|i| {
                let spec = ContainerSpec {
                    name: format!("c{i}"),
                    rootfs: "/".into(),
                    command: vec!["x".repeat(4000)],
                    ..Default::default()
                };
                ContainerRecord::new(spec, format!("/l/{i}").into(), "2026-12-02T00:00:00Z".into())
            })
            .collect();
        let mut buf = Vec::new();
        write_list(&mut buf, records.clone()).unwrap();
        let (mut r, mut names, mut pages) = (&buf[..], Vec::new(), 0);
        loop {
            let (resp, _): (Response, _) = read_frame(&mut r).unwrap().unwrap();
            pages += 1;
            match resp {
                Response::ListPage { containers } => names.extend(containers.into_iter().map(|c| c.spec.name)),
                Response::List { containers } => {
                    names.extend(containers.into_iter().map(|c| c.spec.name));
                    break;
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert!(r.is_empty() && pages > 1, "{pages} pages");
        assert_eq!(names, records.iter().map(|c| c.spec.name.clone()).collect::<Vec<_>>());
        // No records: one empty List.
        let mut buf = Vec::new();
        write_list(&mut buf, Vec::new()).unwrap();
        let (resp, _): (Response, _) = read_frame(&mut &buf[..]).unwrap().unwrap();
        assert!(matches!(resp, Response::List { containers } if containers.is_empty()));
    }

    #[test]
    fn frame_round_trip_keeps_binary_payload() {
        let mut buf = Vec::new();
        let payload = [0u8, 10, 255, 13];
        write_frame(&mut buf, &Response::Output { stream: Stream::Stderr }, &payload).unwrap();
        let (resp, got): (Response, _) = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert!(matches!(resp, Response::Output { stream: Stream::Stderr }));
        assert_eq!(got, payload);
    }

    #[test]
    fn oversized_frame_is_refused_before_allocating() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        let err = read_frame::<_, Response>(&mut buf.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_stalled_large_frame_allocates_only_what_arrived() {
        // Announces a 1 MiB header, sends 10 bytes, then the stream ends: the error comes from
        // the short read, and the reader never held more than one step of buffer.
        let mut buf = Vec::new();
        buf.extend_from_slice(&(MAX_HEADER as u32).to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(b"{\"kind\":\"d");
        let err = read_frame::<_, Response>(&mut buf.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let big = read_len(&mut [7u8; 100].as_slice(), 100).unwrap();
        assert_eq!(big, [7u8; 100]);
    }

    #[test]
    fn request_caps_refuse_a_payload() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Response::Done, b"x").unwrap();
        let err =
            read_frame_capped::<_, Response>(&mut buf.as_slice(), MAX_REQUEST_HEADER, MAX_REQUEST_PAYLOAD).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn input_frames_carry_stdin_bytes_and_sizes_under_their_own_cap() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Input::Stdin, b"\x03ls\r").unwrap();
        write_frame(&mut buf, &Input::Resize { rows: 24, cols: 80 }, b"").unwrap();
        write_frame(&mut buf, &Input::Stdin, &vec![0u8; MAX_INPUT_PAYLOAD + 1]).unwrap();
        let mut r = buf.as_slice();
        let mut next = || read_frame_capped::<_, Input>(&mut r, MAX_REQUEST_HEADER, MAX_INPUT_PAYLOAD);
        let (first, bytes) = next().unwrap().unwrap();
        assert!(matches!(first, Input::Stdin) && bytes == b"\x03ls\r");
        assert!(matches!(next().unwrap().unwrap().0, Input::Resize { rows: 24, cols: 80 }));
        assert_eq!(next().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn clean_eof_is_none_and_torn_frame_is_an_error() {
        assert!(read_frame::<_, Response>(&mut [].as_slice()).unwrap().is_none());
        let mut buf = Vec::new();
        write_frame(&mut buf, &Response::Done, b"").unwrap();
        buf.truncate(buf.len() - 1);
        assert!(read_frame::<_, Response>(&mut buf.as_slice()).is_err());
    }
}

//! The wire format between the `engine` CLI and the supervisor.
//!
//! A frame is `u32 header_len | u32 payload_len | header (JSON) | payload (raw bytes)`, both lengths
//! big-endian. The header is a serde JSON [`Envelope`] (client → supervisor) or [`Response`]
//! (supervisor → client); the payload carries raw log bytes so binary output is not inflated by
//! JSON. Both lengths are checked against a cap before anything is allocated.
use std::io::{self, Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::container::spec::ContainerSpec;
use crate::container::state::ContainerRecord;

/// Bumped whenever a request or response changes shape.
pub const PROTOCOL_VERSION: u32 = 1;
pub const MAX_HEADER: usize = 1 << 20;
pub const MAX_PAYLOAD: usize = 4 << 20;

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
    List {
        containers: Vec<ContainerRecord>,
    },
    Record {
        container: Box<ContainerRecord>,
    },
    /// One line for the user and the process exit code the CLI should use.
    Error {
        message: String,
        exit_code: i32,
    },
}

impl Response {
    pub fn error(message: impl Into<String>, exit_code: i32) -> Response {
        Response::Error { message: message.into(), exit_code }
    }
}

pub fn write_frame<W: Write, T: Serialize>(w: &mut W, header: &T, payload: &[u8]) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    if json.len() > MAX_HEADER || payload.len() > MAX_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame exceeds the protocol size cap"));
    }
    let mut buf = Vec::with_capacity(8 + json.len() + payload.len());
    buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&json);
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut lens = [0u8; 8];
    match r.read_exact(&mut lens) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let header_len = u32::from_be_bytes(lens[..4].try_into().unwrap()) as usize;
    let payload_len = u32::from_be_bytes(lens[4..].try_into().unwrap()) as usize;
    if header_len > MAX_HEADER || payload_len > MAX_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame exceeds the protocol size cap"));
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)?;
    let mut payload = vec![0u8; payload_len];
    r.read_exact(&mut payload)?;
    let value = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed frame: {e}")))?;
    Ok(Some((value, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn clean_eof_is_none_and_torn_frame_is_an_error() {
        assert!(read_frame::<_, Response>(&mut [].as_slice()).unwrap().is_none());
        let mut buf = Vec::new();
        write_frame(&mut buf, &Response::Done, b"").unwrap();
        buf.truncate(buf.len() - 1);
        assert!(read_frame::<_, Response>(&mut buf.as_slice()).is_err());
    }
}

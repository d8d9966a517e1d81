//! Accepts CLI connections and dispatches each request on a thread of its own, so a `logs -f` or
//! a `run` in progress never blocks `ps` or `start`.
//!
//! What a client can cost is bounded: at most [`MAX_CONNECTIONS`] connections are served at once
//! (one more is answered "busy" and closed), a request must arrive whole within
//! [`REQUEST_TIMEOUT`], and its memory grows only as its bytes arrive.
use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{handlers, Supervisor};
use crate::protocol::{
    read_frame_capped, write_frame, Envelope, Request, Response, MAX_REQUEST_HEADER, MAX_REQUEST_PAYLOAD,
    PROTOCOL_VERSION, VERSION_OP,
};

/// Connections served at once: each holds a thread.
pub const MAX_CONNECTIONS: usize = 128;
/// How long a client has to send its whole request (not the response: `logs -f` and `run`
/// stream for as long as they like).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Exit code of the CLI for a request the supervisor turned away.
use crate::container::exit::ENGINE_ERROR as EXIT_REFUSED;

/// Each request runs on a worker of its own (a new thread only when none is waiting).
static REQUESTS: super::workers::Workers = super::workers::Workers::new("request");

pub fn serve(sup: Arc<Supervisor>, listener: UnixListener) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and the like: give the fds a moment to come back instead of spinning.
                crate::warn!("accepting a connection: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            refuse(conn, format!("the supervisor is busy ({MAX_CONNECTIONS} requests in progress); try again"));
            continue;
        }
        let slot = Slot::take(&active);
        // A second handle on the socket, to answer the client if its thread cannot start.
        let answer = conn.try_clone();
        let sup = sup.clone();
        let handed = REQUESTS.run(Box::new(move || {
            let _slot = slot;
            serve_one(&sup, conn);
        }));
        if let Err((_, e)) = handed {
            crate::warn!("cannot start a request thread: {e}");
            if let Ok(conn) = answer {
                refuse(conn, format!("the supervisor cannot start a thread for this request: {e}"));
            }
        }
    }
}

/// One of the [`MAX_CONNECTIONS`], given back when the request's thread ends (or never starts).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        active.fetch_add(1, Ordering::SeqCst);
        Slot(active.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers with an error and closes, from the accept loop: never blocks on the client.
fn refuse(mut conn: UnixStream, message: String) {
    let _ = conn.set_nonblocking(true);
    let _ = write_frame(&mut conn, &Response::error(message, EXIT_REFUSED), b"");
}

/// Only the supervisor's own user (root) may drive it; the socket mode says so too, this makes
/// sure of it even if the socket's directory was made too open by hand.
fn peer_allowed(conn: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(conn, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw())
}

/// A socket whose reads can be bounded in time (the control socket, the metrics listener's).
pub(super) trait TimedSocket {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()>;
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl TimedSocket for UnixStream {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut &*self).read(buf)
    }
}

impl TimedSocket for std::net::TcpStream {
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut &*self).read(buf)
    }
}

/// Reads from the socket until a deadline for the whole request, however the bytes trickle in.
pub(super) struct Deadline<'a, S: TimedSocket> {
    pub conn: &'a S,
    pub until: Instant,
}

impl<S: TimedSocket> Read for Deadline<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the request did not arrive in time"));
        }
        self.conn.set_read_timeout(Some(left))?;
        match self.conn.read_some(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "the request did not arrive in time"))
            }
            other => other,
        }
    }
}

/// The request as JSON: its shape is checked only once its protocol version is known to match.
fn read_request(conn: &UnixStream) -> io::Result<Option<(serde_json::Value, Vec<u8>)>> {
    let mut reader = Deadline { conn, until: Instant::now() + REQUEST_TIMEOUT };
    let request = read_frame_capped(&mut reader, MAX_REQUEST_HEADER, MAX_REQUEST_PAYLOAD);
    conn.set_read_timeout(None)?;
    request
}

/// Checks the envelope's protocol version before parsing the request, so a client of another
/// version hears "protocol version N is not supported", not a parse error; `version` requests are
/// answered whatever the envelope's version (their shape never changes).
fn parse_envelope(header: serde_json::Value) -> Result<Request, String> {
    if header.pointer("/request/op").and_then(|op| op.as_str()) == Some(VERSION_OP) {
        return Ok(Request::Version);
    }
    let version = header.get("version").and_then(|v| v.as_u64());
    if version != Some(PROTOCOL_VERSION as u64) {
        let theirs = version.map_or_else(|| "(none)".to_string(), |v| v.to_string());
        return Err(format!("protocol version {theirs} is not supported (supervisor speaks {PROTOCOL_VERSION})"));
    }
    serde_json::from_value::<Envelope>(header).map(|env| env.request).map_err(|e| format!("bad request: {e}"))
}

fn serve_one(sup: &Supervisor, mut conn: UnixStream) {
    if !peer_allowed(&conn) {
        let _ = write_frame(
            &mut conn,
            &Response::error("permission denied: the engine socket is root-only", EXIT_REFUSED),
            b"",
        );
        return;
    }
    let request = match read_request(&conn) {
        Ok(Some((header, _))) => match parse_envelope(header) {
            Ok(request) => request,
            Err(msg) => {
                let _ = write_frame(&mut conn, &Response::error(msg, EXIT_REFUSED), b"");
                return;
            }
        },
        Ok(None) => return,
        Err(e) => {
            let _ = write_frame(&mut conn, &Response::error(format!("bad request: {e}"), EXIT_REFUSED), b"");
            return;
        }
    };
    // A start (or a command line that may be one) makes the spawner's work ahead for the next
    // start wanted once it is answered (`spawner::refill`).
    let a_start = matches!(request, Request::Start { .. } | Request::Run { .. } | Request::Cli { .. });
    let result = match request {
        Request::Start { spec } => handlers::start(sup, &mut conn, spec),
        Request::Run { spec, remove } => handlers::run(sup, &mut conn, spec, remove),
        Request::Cli { argv, cwd } => handlers::cli(sup, &mut conn, &argv, &cwd),
        Request::Stop { name, timeout_secs } => handlers::stop(sup, &mut conn, &name, timeout_secs),
        Request::Kill { name, signal } => handlers::kill(sup, &mut conn, &name, signal),
        Request::Ps { all, stats } => handlers::ps(sup, &mut conn, all, stats),
        Request::Logs { name, follow, timestamps, tail } => {
            handlers::logs(sup, &mut conn, &name, crate::supervisor::logs::follow::Options { follow, timestamps, tail })
        }
        Request::Inspect { name } => handlers::inspect(sup, &mut conn, &name),
        Request::Rm { name, force } => handlers::rm(sup, &mut conn, &name, force),
        Request::Wait { name } => handlers::wait(sup, &mut conn, &name),
        Request::Exec { name, command, env, workdir, user, tty, interactive } => {
            let opts = super::exec::Options { command, env, workdir, user, tty, interactive };
            super::exec::exec(sup, &mut conn, &name, opts)
        }
        Request::Attach { name, logs } => super::console::attach(sup, &mut conn, &name, logs),
        Request::Info => handlers::info(sup, &mut conn),
        Request::Version => handlers::version(&mut conn),
        Request::Stats { names } => super::stats::stats(sup, &mut conn, &names),
        Request::Events { since, until, containers } => {
            super::events::follow(sup, &mut conn, super::events::Filter { since, until, containers })
        }
    };
    if let Err(f) = result {
        let answer = match f.missing_image {
            Some(reference) => {
                Response::NoSuchImage { reference, store: crate::image::store_dir(&sup.root), message: f.message }
            }
            None => Response::error(f.message, f.exit_code),
        };
        let _ = write_frame(&mut conn, &answer, b"");
    }
    if a_start {
        drop(conn);
        // A bridged start's: the next init's namespace, to make its veth pair in now.
        if let Some(netns) = crate::container::spawner::refill() {
            crate::net::ahead::make(&sup.net, &std::fs::File::from(netns));
        }
    }
}

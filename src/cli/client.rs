//! The CLI's side of the socket: one connection per request, then the supervisor's responses.
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::protocol::{read_frame, write_frame, Envelope, Request, Response, Stream, PROTOCOL_VERSION};

pub struct Client {
    socket: PathBuf,
    missing_image: Option<MissingImage>,
}

/// What a `start`/`run` does when the supervisor's store lacks the image it names (`--pull
/// missing`): engine-core pulls it; the front hands the whole command line to engine-core. A
/// function pointer, so that the front's binary does not carry the image puller.
pub type MissingImage = fn(store: &Path, reference: &str) -> Result<(), CliError>;

pub struct Connection {
    stream: UnixStream,
}

impl Client {
    pub fn new(socket: PathBuf) -> Client {
        Client { socket, missing_image: None }
    }

    pub fn on_missing_image(self, missing_image: MissingImage) -> Client {
        Client { missing_image: Some(missing_image), ..self }
    }

    pub fn missing_image(&self) -> Option<MissingImage> {
        self.missing_image
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn send(&self, request: Request) -> Result<Connection, CliError> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| {
            CliError::from(format!(
                "cannot reach the supervisor at {} ({e}); is `engine supervisor` running?",
                self.socket.display()
            ))
        })?;
        // A supervisor that turns the request away (busy) may answer and close before reading
        // it: the write then fails, but its answer is still there to read.
        if let Err(e) = write_frame(&mut stream, &Envelope { version: PROTOCOL_VERSION, request }, b"") {
            return match read_frame::<_, Response>(&mut stream) {
                Ok(Some((Response::Error { message, exit_code }, _))) => Err(CliError { message, exit_code }),
                _ => Err(e.into()),
            };
        }
        Ok(Connection { stream })
    }

    /// A request answered by exactly one response; an `Error` response becomes a `CliError`.
    pub fn call(&self, request: Request) -> Result<Response, CliError> {
        self.send(request)?.next()
    }

    /// A request whose only answer is `Done`; prints `name` on success, as Docker does.
    pub fn call_done(&self, request: Request, name: &str) -> super::CliResult {
        match self.call(request)? {
            Response::Done => {
                println!("{name}");
                Ok(0)
            }
            other => Err(unexpected(other)),
        }
    }
}

impl Connection {
    /// Sends `byte` with `fds` attached (SCM_RIGHTS): `exec` gives the supervisor its stdio so.
    pub fn send_fds(&mut self, byte: &[u8], fds: &[i32]) -> Result<(), CliError> {
        super::exec::send_fds(&self.stream, byte, fds)
            .map(drop)
            .map_err(|e| CliError::from(format!("passing stdout and stderr to the supervisor: {e}")))
    }

    /// A second handle on the socket, for a thread that writes `Input` frames.
    pub fn try_clone_stream(&self) -> Result<UnixStream, CliError> {
        self.stream.try_clone().map_err(|e| CliError::from(format!("duplicating the supervisor connection: {e}")))
    }

    /// The next response; `Error` responses and a closed connection are errors.
    pub fn next(&mut self) -> Result<Response, CliError> {
        Ok(self.next_with_payload()?.0)
    }

    pub fn next_with_payload(&mut self) -> Result<(Response, Vec<u8>), CliError> {
        match read_frame::<_, Response>(&mut self.stream)? {
            Some((Response::Error { message, exit_code }, _)) => Err(CliError { message, exit_code }),
            Some(frame) => Ok(frame),
            None => Err("the supervisor closed the connection".into()),
        }
    }

    /// Copies `Output` frames to stdout/stderr until another response arrives, and returns it.
    pub fn print_output(&mut self) -> Result<Response, CliError> {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        loop {
            match self.next_with_payload()? {
                (Response::Output { stream }, bytes) => {
                    let w: &mut dyn Write = if stream == Stream::Stdout { &mut out } else { &mut err };
                    // A closed stdout (`engine logs x | head`) ends the command quietly.
                    if w.write_all(&bytes).and_then(|()| w.flush()).is_err() {
                        return Ok(Response::Done);
                    }
                }
                (other, _) => return Ok(other),
            }
        }
    }
}

pub fn unexpected(resp: Response) -> CliError {
    CliError::from(format!("unexpected response from the supervisor: {resp:?}"))
}

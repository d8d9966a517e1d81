//! `-i` and `-t`: the supervisor's side of a container's stdin and terminal.
//!
//! `-t`: the supervisor is the console-socket receiver of the core's one console path
//! (`container::console`, the same that serves `engine-oci create --console-socket`): the init
//! opens the pty from the container's own /dev/ptmx once its root is built and sends the master
//! here before Ready. The master is the container's stdout for the log reader (so the output
//! lands in the log, CRI stream stdout, and reaches `run`/`attach` clients by following it, as
//! all output does), and client input and window sizes are written to it. `-i` without `-t`:
//! stdin is a pipe whose write end is held here. `exec -t` gets the same pty through the
//! `engine-exec` helper; its output goes to the client only, as `docker exec` does.
//!
//! Client input arrives as [`Input`] frames on the request's connection, read by a thread of
//! its own per attached client ([`pump`]); it never blocks the log path: a container that does
//! not read its stdin only holds that thread.
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use parking_lot::Mutex;

use super::failure::Failure;
use super::logs::follow;
use super::logs::LogFile;
use super::spec::ContainerSpec;
use super::Supervisor;
use crate::container::Stdio;
use crate::protocol::{read_frame_capped, write_frame, Input, Response, Stream, MAX_INPUT_PAYLOAD, MAX_REQUEST_HEADER};

/// How long the init's (or the exec helper's) pty master may take to arrive once expected.
const MASTER_TIMEOUT: Duration = Duration::from_secs(30);
/// After an `exec -t` process ended, how long its output may still drain (a background job of
/// it may hold the pty open).
const EXEC_DRAIN: Duration = Duration::from_secs(2);

/// A container's (or an exec's) input side.
pub struct Console {
    /// The pty master (`-t`) or the stdin pipe's write end (`-i`); None once stdin was closed.
    input: Mutex<Option<Arc<File>>>,
    /// Whether clients' bytes are written (`-i`); a `-t` alone takes only window sizes.
    stdin_open: bool,
    tty: bool,
}

impl Console {
    fn new(input: File, tty: bool, stdin_open: bool) -> Arc<Console> {
        Arc::new(Console { input: Mutex::new(Some(Arc::new(input))), stdin_open, tty })
    }

    pub fn stdin_open(&self) -> bool {
        self.stdin_open && self.input.lock().is_some()
    }

    fn input(&self) -> Option<Arc<File>> {
        self.input.lock().clone()
    }

    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        match (self.stdin_open, self.input()) {
            (true, Some(input)) => write_all(&input, bytes),
            _ => Ok(()),
        }
    }

    fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        let (true, Some(master)) = (self.tty, self.input()) else { return Ok(()) };
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the fd is the pty master.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The client's stdin ended: the pipe closes (the command reads EOF). A pty stays: its EOF
    /// is the user's Ctrl-D, a byte like any other.
    fn close_stdin(&self) {
        if !self.tty {
            self.input.lock().take();
        }
    }
}

/// The consoles of running `-i`/`-t` containers, by name; removed when the container ends.
#[derive(Default)]
pub struct Consoles(Mutex<HashMap<String, Arc<Console>>>);

impl Consoles {
    pub fn get(&self, name: &str) -> Option<Arc<Console>> {
        self.0.lock().get(name).cloned()
    }

    pub fn remove(&self, name: &str) {
        self.0.lock().remove(name);
    }

    fn insert(&self, name: &str, console: Arc<Console>) {
        self.0.lock().insert(name.to_string(), console);
    }
}

/// What `launch` finishes for a `-i`/`-t` container once its init is Ready.
pub enum Setup {
    /// `-t`: our end of the console socket; the init has sent the master on it before Ready.
    Tty { socket: UnixStream, stdin_open: bool },
    /// `-i`: the write end of the command's stdin pipe.
    Stdin(OwnedFd),
}

fn engine(what: &str) -> impl Fn(io::Error) -> Failure + '_ {
    move |e| Failure::engine(format!("{what}: {e}"))
}

/// A `-i`/`-t` container's stdio for the core, and what `launch` does with it.
pub struct ConsoleStdio {
    pub stdio: Stdio,
    /// What to finish after Ready.
    pub setup: Setup,
    /// The stdout/stderr read ends for the log (`-i` alone; a pty's comes with its master).
    pub output: Option<(OwnedFd, OwnedFd)>,
}

/// The stdio of a `-i`/`-t` container; None: a plain one, whose path stays as it is.
pub fn stdio(spec: &ContainerSpec) -> Result<Option<ConsoleStdio>, Failure> {
    if spec.tty {
        let (ours, theirs) = UnixStream::pair().map_err(engine("creating the console socket"))?;
        let setup = Setup::Tty { socket: ours, stdin_open: spec.interactive };
        return Ok(Some(ConsoleStdio { stdio: Stdio::Console(theirs.into()), setup, output: None }));
    }
    if !spec.interactive {
        return Ok(None);
    }
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| engine("creating the stdio pipes")(e.into()));
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok(Some(ConsoleStdio {
        stdio: Stdio::Fds([in_r, out_w, err_w]),
        setup: Setup::Stdin(in_w),
        output: Some((out_r, err_r)),
    }))
}

/// After Ready: the pty master received and given to the log as stdout (with an empty stderr),
/// and the input side registered for clients. `again`: a restart, whose log is appended to.
pub fn finish(sup: &Supervisor, name: &str, log: &Arc<LogFile>, setup: Setup, again: bool) -> Result<(), Failure> {
    match setup {
        Setup::Stdin(w) => sup.consoles.insert(name, Console::new(File::from(w), false, true)),
        Setup::Tty { socket, stdin_open } => {
            let master = receive_master(&socket)?;
            let for_log = master.try_clone().map_err(engine("duplicating the pty master"))?;
            // The pty has one output stream: stderr is a pipe already at its end.
            let (no_stderr, _) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| engine("creating the stderr pipe")(io::Error::from(e)))?;
            sup.logs
                .attach(log, for_log, no_stderr, again)
                .map_err(|e| Failure::engine(format!("creating log {}: {e}", log.path.display())))?;
            sup.consoles.insert(name, Console::new(File::from(master), true, stdin_open));
        }
    }
    Ok(())
}

/// The master the init (or the exec helper's process) sent on the console socket.
fn receive_master(socket: &UnixStream) -> Result<OwnedFd, Failure> {
    socket.set_read_timeout(Some(MASTER_TIMEOUT)).map_err(engine("receiving the pty master"))?;
    crate::container::console::recv_fd(socket.as_raw_fd())
        .map(|(_, fd)| fd)
        .map_err(|e| Failure::engine(format!("receiving the pty master from the container: {e}")))
}

/// Writes all of `bytes`, waiting while the fd is full (the master is non-blocking: the log
/// reader's flag is on the open file it shares with this one).
fn write_all(fd: &File, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::from(1000u16)) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Shuts the connection's reading side when the request ends, which ends its input thread (the
/// request's last answer can still be written).
pub struct Pump(Option<UnixStream>);

impl Drop for Pump {
    fn drop(&mut self) {
        if let Some(conn) = &self.0 {
            let _ = conn.shutdown(std::net::Shutdown::Read);
        }
    }
}

/// Reads the client's [`Input`] frames into `console` on a thread of its own, until the client
/// closes the connection (a detach) or the request ends.
pub fn pump(conn: &UnixStream, console: Arc<Console>) -> Pump {
    let (mut reader, guard) = match (conn.try_clone(), conn.try_clone()) {
        (Ok(r), Ok(g)) => (r, g),
        (Err(e), _) | (_, Err(e)) => {
            crate::warn!("attaching stdin: duplicating the connection: {e}");
            return Pump(None);
        }
    };
    let spawned = std::thread::Builder::new().name("console-input".into()).spawn(move || loop {
        let frame = read_frame_capped::<_, Input>(&mut reader, MAX_REQUEST_HEADER, MAX_INPUT_PAYLOAD);
        let result = match frame {
            Ok(Some((Input::Stdin, bytes))) => console.write(&bytes),
            Ok(Some((Input::Resize { rows, cols }, _))) => console.resize(rows, cols),
            Ok(Some((Input::CloseStdin, _))) => {
                console.close_stdin();
                Ok(())
            }
            // The client went away (detached) or sent garbage: its input ends, the container goes on.
            Ok(None) | Err(_) => return,
        };
        if let Err(e) = result {
            // The container's side is gone (its pty or pipe closed): nothing more to deliver.
            if !matches!(e.raw_os_error(), Some(libc::EIO | libc::EPIPE)) {
                crate::warn!("writing a client's input to the container: {e}");
            }
            return;
        }
    });
    match spawned {
        Ok(_) => Pump(Some(guard)),
        Err(e) => {
            crate::warn!("attaching stdin: starting its thread: {e}");
            Pump(None)
        }
    }
}

/// Streams the container's output from its log (from the start with `from_start`, else from
/// now on) until it ends; its exit code. A client that goes away stops the stream, not the wait.
pub fn stream_until_exit(
    sup: &Supervisor,
    conn: &mut UnixStream,
    name: &str,
    from_start: bool,
) -> Result<(i32, bool), Failure> {
    let (path, live) = sup.registry.log_of(name)?;
    let opts = follow::Options { follow: true, tail: if from_start { None } else { Some(0) }, ..Default::default() };
    let streamed = follow::stream(&path, live.as_deref(), opts, &mut |stream, bytes| {
        write_frame(conn, &Response::Output { stream }, bytes)
    });
    let code = super::launch::wait_settled(sup, name)?;
    Ok((code, streamed.is_ok()))
}

/// `engine attach NAME` (and `start -a`): the container's output until it ends, its exit code,
/// and the client's input into its stdin or pty.
pub fn attach(sup: &Supervisor, conn: &mut UnixStream, name: &str, from_start: bool) -> Result<(), Failure> {
    let record = sup.registry.get(name)?;
    if record.state.is_terminal() {
        return Err(Failure::engine(format!("container {name} is not running ({})", record.state_text())));
    }
    let console = sup.consoles.get(name);
    let stdin = console.as_ref().is_some_and(|c| c.stdin_open());
    let reply = Response::Attached { tty: record.spec.tty, stdin };
    write_frame(conn, &reply, b"").map_err(engine("client went away"))?;
    let _input = console.map(|c| pump(conn, c));
    let (code, streamed) = stream_until_exit(sup, conn, name, from_start)?;
    if streamed {
        write_frame(conn, &Response::Exited { code }, b"").map_err(engine("client went away"))?;
    }
    Ok(())
}

/// `exec -t`: the master from the helper's process (or, when it never came, the helper's own
/// failure from `result`), its output to the client as Output frames, the client's input and
/// sizes into it, and the exit code once the process ended.
pub fn serve_exec(
    conn: &mut UnixStream,
    socket: UnixStream,
    stdin_open: bool,
    result: impl FnOnce() -> Result<i32, Failure>,
) -> Result<(), Failure> {
    let master = match receive_master(&socket) {
        Ok(m) => m,
        Err(e) => {
            // Its step that failed says more than the missing master.
            result()?;
            return Err(e);
        }
    };
    drop(socket);
    let mut output = File::from(master.try_clone().map_err(engine("duplicating the pty master"))?);
    // One writer at a time: the output thread's frames and the final Exited must not interleave.
    let writer = Arc::new(Mutex::new(conn.try_clone().map_err(engine("duplicating the connection"))?));
    let out_conn = writer.clone();
    // Set (under the writer's lock) once Exited is written: a background job of the exec that
    // still holds the pty must not keep this thread, the master and the connection for ever.
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let out_finished = finished.clone();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    std::thread::Builder::new()
        .name("exec-output".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while !out_finished.load(std::sync::atomic::Ordering::SeqCst) {
                let mut fds = [PollFd::new(output.as_fd(), PollFlags::POLLIN)];
                if let Ok(0) | Err(Errno::EINTR) = poll(&mut fds, PollTimeout::from(100u8)) {
                    continue;
                }
                match output.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let frame = Response::Output { stream: Stream::Stdout };
                        let mut conn = out_conn.lock();
                        if out_finished.load(std::sync::atomic::Ordering::SeqCst)
                            || write_frame(&mut *conn, &frame, &buf[..n]).is_err()
                        {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // EIO: every slave fd is closed, the process and its children are gone.
                    Err(_) => break,
                }
            }
            let _ = done_tx.send(());
        })
        .map_err(engine("starting the exec output thread"))?;
    let input = pump(conn, Console::new(File::from(master), true, stdin_open));
    let code = result();
    let _ = done_rx.recv_timeout(EXEC_DRAIN);
    let code = code?;
    let mut conn = writer.lock();
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    write_frame(&mut *conn, &Response::Exited { code }, b"").map_err(engine("client went away"))?;
    drop(conn);
    drop(input);
    Ok(())
}

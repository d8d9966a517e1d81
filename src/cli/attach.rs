//! `engine attach NAME`: the running container's output from now on, the client's input into
//! its stdin or pty (started with `-i`/`-t`), and its exit code when it ends. Ctrl-P Ctrl-Q
//! detaches and leaves it running. Also the client's half of `run -i/-t`, `start -a` and
//! `exec -t`: [`session`].
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::client::{unexpected, Connection};
use super::terminal::{self, DetachScanner, RawMode};
use super::{CliError, CliResult, Client};
use crate::protocol::{write_frame, Input, Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Do not forward this terminal's input (output only)
    #[arg(long)]
    no_stdin: bool,
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let conn = client.send(Request::Attach { name: args.name.clone(), logs: false })?;
    attached(conn, client, &args.name, !args.no_stdin)
}

/// After an [`Request::Attach`]: its answer, then the session. SIGINT and SIGTERM sent to this
/// client go to the container's command, as Docker's `--sig-proxy` does by default.
pub fn attached(mut conn: Connection, client: &Client, name: &str, forward_stdin: bool) -> CliResult {
    let (tty, stdin) = match conn.next()? {
        Response::Attached { tty, stdin } => (tty, stdin),
        other => return Err(unexpected(other)),
    };
    let stdin = stdin && forward_stdin;
    check_tty(tty, stdin)?;
    super::run::forward_signals(client.socket().to_path_buf(), name.to_string())?;
    session(conn, tty, stdin)
}

/// Docker's rule: `-i` with `-t` needs a terminal to read from.
pub fn check_tty(tty: bool, interactive: bool) -> Result<(), CliError> {
    // SAFETY: fd 0 stays open for the life of the process.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    if tty && interactive && !terminal::is_terminal(stdin) {
        return Err("the input device is not a TTY (-t with -i needs one; drop -t to pipe input)".into());
    }
    Ok(())
}

/// The client's half of an attached container or exec: with `tty` this terminal goes raw
/// (restored on every way out of here) and its size is sent now and on each SIGWINCH; with
/// `stdin` this process's stdin is forwarded as [`Input`] frames (its end closes the
/// container's stdin pipe), and on a terminal Ctrl-P Ctrl-Q detaches. Output is printed until
/// the exit code comes; a detach returns 0 and leaves the container running.
pub fn session(mut conn: Connection, tty: bool, stdin: bool) -> CliResult {
    let writer = Arc::new(Mutex::new(conn.try_clone_stream()?));
    let raw = if tty { RawMode::enter().map_err(|e| format!("putting the terminal in raw mode: {e}"))? } else { None };
    let detached = Arc::new(AtomicBool::new(false));
    if tty {
        send_size(&writer);
        let writer = writer.clone();
        let mut winch = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])?;
        std::thread::spawn(move || {
            for _ in winch.forever() {
                send_size(&writer);
            }
        });
    }
    if stdin {
        let (writer, detached) = (writer.clone(), detached.clone());
        // Detach keys are read only from a terminal, as Docker does.
        let scan = raw.is_some();
        std::thread::spawn(move || forward_stdin(&writer, &detached, scan));
    }
    let result = conn.print_output();
    drop(raw);
    match result {
        Ok(Response::Exited { code }) => Ok(code),
        _ if detached.load(Ordering::SeqCst) => Ok(0),
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    }
}

fn send_size(writer: &Mutex<UnixStream>) {
    if let Some((rows, cols)) = terminal::size() {
        let _ = write_frame(&mut *writer.lock(), &Input::Resize { rows, cols }, b"");
    }
}

/// Copies stdin to the connection until its end (then the container's stdin pipe closes) or
/// the detach keys (then the connection closes, which ends the output loop).
fn forward_stdin(writer: &Mutex<UnixStream>, detached: &AtomicBool, scan_detach: bool) {
    let mut scanner = DetachScanner::default();
    let mut buf = vec![0u8; 32 << 10];
    let mut input = std::io::stdin().lock();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = write_frame(&mut *writer.lock(), &Input::CloseStdin, b"");
                return;
            }
            Ok(n) => n,
        };
        let (bytes, detach) = if scan_detach { scanner.scan(&buf[..n]) } else { (buf[..n].to_vec(), false) };
        let mut w = writer.lock();
        if !bytes.is_empty() && write_frame(&mut *w, &Input::Stdin, &bytes).is_err() {
            return;
        }
        if detach {
            detached.store(true, Ordering::SeqCst);
            let _ = w.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

//! `engine run [--rm] [OPTIONS] NAME IMAGE|ROOTFS [CMD...]`: run in the foreground, stream the output
//! live, and exit with the container's exit code (128+N for signal N). Ctrl-C and SIGTERM are
//! passed on to the container's command, like `docker run`. With `-i`/`-t` the client's stdin and
//! terminal are attached too (see `attach::session`).
use signal_hook::consts::{SIGINT, SIGTERM};

use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Envelope, Request, Response, PROTOCOL_VERSION};

#[derive(clap::Args)]
pub struct Args {
    /// Remove the container and its log when it ends
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    container: super::start::Args,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let (spec, pull) = args.container.into_spec(std::path::Path::new(""))?;
    let name = spec.name.clone();
    let (tty, interactive) = (spec.tty, spec.interactive);
    super::attach::check_tty(tty, interactive)?;
    let remove = args.rm;
    let (mut conn, first) = super::start::send_pulling(client, spec, pull, |spec| Request::Run { spec, remove })?;
    match first {
        Response::Started { .. } => {}
        other => return Err(unexpected(other)),
    }
    forward_signals(client.socket().to_path_buf(), name)?;
    if tty || interactive {
        return super::attach::session(conn, tty, interactive);
    }
    match conn.print_output()? {
        Response::Exited { code } => Ok(code),
        other => Err(unexpected(other)),
    }
}

/// `run` as the `engine` client sent it (see `thin`): one that attaches the client's terminal
/// or stdin is the front's.
pub(super) fn sent(args: Args, cwd: &std::path::Path) -> super::thin::Sent {
    use super::thin::Sent;
    match args.container.into_spec(cwd) {
        Err(e) => Sent::Failed(e),
        Ok((spec, _)) if spec.tty || spec.interactive => Sent::HandOver,
        Ok((spec, _)) => Sent::Run { spec, remove: args.rm },
    }
}

/// SIGINT and SIGTERM go to the container's command, as `docker run`'s sig-proxy does: each
/// signal's Kill request is framed now, and the handler sends it on a connection of its own with
/// async-signal-safe calls only (socket, connect, write, close). No thread: a `run` starts fast.
pub(super) fn forward_signals(socket: std::path::PathBuf, name: String) -> Result<(), super::CliError> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    if path.len() >= addr.sun_path.len() {
        return Err(format!("socket path too long: {}", socket.display()).into());
    }
    for (dst, &b) in addr.sun_path.iter_mut().zip(path) {
        *dst = b as libc::c_char;
    }
    for signal in [SIGINT, SIGTERM] {
        let mut frame = Vec::new();
        let request = Request::Kill { name: name.clone(), signal };
        crate::protocol::write_frame(&mut frame, &Envelope { version: PROTOCOL_VERSION, request }, b"")?;
        // SAFETY: the action only makes async-signal-safe calls on data it owns.
        unsafe { signal_hook::low_level::register(signal, move || send_from_handler(&addr, &frame)) }?;
    }
    Ok(())
}

/// Sends `frame` to the supervisor at `addr` and closes; its answer is not read (as before, a
/// failure to pass a signal on is not reported). Async-signal-safe.
fn send_from_handler(addr: &libc::sockaddr_un, frame: &[u8]) {
    // SAFETY: plain system calls on an fd owned here and on `frame`'s bytes.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(fd, (addr as *const libc::sockaddr_un).cast(), len) == 0 {
            let mut sent = 0;
            while sent < frame.len() {
                let n = libc::write(fd, frame[sent..].as_ptr().cast(), frame.len() - sent);
                if n <= 0 {
                    break;
                }
                sent += n as usize;
            }
        }
        libc::close(fd);
    }
}

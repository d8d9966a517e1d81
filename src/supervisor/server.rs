//! Accepts CLI connections and dispatches each request on a thread of its own, so a `logs -f` or
//! a `run` in progress never blocks `ps` or `start`.
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

use super::{handlers, Supervisor};
use crate::protocol::{read_frame, write_frame, Envelope, Request, Response, PROTOCOL_VERSION};

pub fn serve(sup: Arc<Supervisor>, listener: UnixListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let sup = sup.clone();
        let spawned = std::thread::Builder::new().name("request".into()).spawn(move || serve_one(&sup, conn));
        if let Err(e) = spawned {
            crate::warn!("cannot start a request thread: {e}");
        }
    }
}

/// Only the supervisor's own user (root) may drive it; the socket mode says so too, this makes
/// sure of it even if the socket's directory was made too open by hand.
fn peer_allowed(conn: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(conn, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw())
}

fn serve_one(sup: &Supervisor, mut conn: UnixStream) {
    if !peer_allowed(&conn) {
        let _ = write_frame(&mut conn, &Response::error("permission denied: the engine socket is root-only", 125), b"");
        return;
    }
    let request = match read_frame::<_, Envelope>(&mut conn) {
        Ok(Some((env, _))) if env.version == PROTOCOL_VERSION => env.request,
        Ok(Some((env, _))) => {
            let msg =
                format!("protocol version {} is not supported (supervisor speaks {PROTOCOL_VERSION})", env.version);
            let _ = write_frame(&mut conn, &Response::error(msg, 125), b"");
            return;
        }
        Ok(None) => return,
        Err(e) => {
            let _ = write_frame(&mut conn, &Response::error(format!("bad request: {e}"), 125), b"");
            return;
        }
    };
    let result = match request {
        Request::Start { spec } => handlers::start(sup, &mut conn, spec),
        Request::Run { spec, remove } => handlers::run(sup, &mut conn, spec, remove),
        Request::Stop { name, timeout_secs } => handlers::stop(sup, &mut conn, &name, timeout_secs),
        Request::Kill { name, signal } => handlers::kill(sup, &mut conn, &name, signal),
        Request::Ps { all, stats } => handlers::ps(sup, &mut conn, all, stats),
        Request::Logs { name, follow, timestamps, tail } => {
            handlers::logs(sup, &mut conn, &name, crate::supervisor::logs::follow::Options { follow, timestamps, tail })
        }
        Request::Inspect { name } => handlers::inspect(sup, &mut conn, &name),
        Request::Rm { name, force } => handlers::rm(sup, &mut conn, &name, force),
        Request::Wait { name } => handlers::wait(sup, &mut conn, &name),
    };
    if let Err(f) = result {
        let _ = write_frame(&mut conn, &Response::error(f.message, f.exit_code), b"");
    }
}

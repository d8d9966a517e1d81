//! One function per request. Each writes its responses to the connection and returns a
//! [`Failure`] for the dispatcher to report.
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::launch::{self, Failure};
use super::logs::follow;
use super::spec::ContainerSpec;
use super::Supervisor;
use crate::protocol::{write_frame, Response, Stream};

type Reply = Result<(), Failure>;

fn send(conn: &mut UnixStream, resp: &Response) -> Reply {
    write_frame(conn, resp, b"").map_err(|e| Failure::engine(format!("client went away: {e}")))
}

pub fn start(sup: &Supervisor, conn: &mut UnixStream, spec: ContainerSpec) -> Reply {
    let name = spec.name.clone();
    let pid = launch::start(sup, spec)?;
    send(conn, &Response::Started { name, pid })
}

/// Start, stream the output live, then the exit code. The container outlives a client that goes
/// away; `--rm` still removes it when it ends.
pub fn run(sup: &Supervisor, conn: &mut UnixStream, spec: ContainerSpec, remove: bool) -> Reply {
    if remove && spec.restart != super::restart::RestartPolicy::No {
        return Err(Failure::engine(
            "--rm and --restart cannot be used together (a container removed when it ends cannot be restarted)",
        ));
    }
    let name = spec.name.clone();
    let interactive = spec.tty || spec.interactive;
    let layer = if remove { launch::Layer::Throwaway } else { launch::Layer::Kept };
    let pid = launch::start_with(sup, spec, layer)?;
    let _ = send(conn, &Response::Started { name: name.clone(), pid });
    // `-i`/`-t`: the client's input, on a thread of its own until this request ends.
    let _input = if interactive { sup.consoles.get(&name).map(|c| super::console::pump(conn, c)) } else { None };
    let (path, live) = sup.registry.log_of(&name)?;
    let opts = follow::Options { follow: true, ..Default::default() };
    let streamed = follow::stream(&path, live.as_deref(), opts, &mut |stream, bytes| {
        write_frame(conn, &Response::Output { stream }, bytes)
    });
    let code = if remove { launch::wait_reported(sup, &name)? } else { launch::wait_settled(sup, &name)? };
    crate::container::trace::step(&name, "wait settled");
    if remove {
        let record = sup.registry.remove_ended(&name)?;
        forget_container(sup, &name, record)?;
        crate::container::trace::step(&name, "removed");
    }
    if streamed.is_ok() {
        send(conn, &Response::Exited { code })?;
    }
    crate::container::trace::end(&name, "response sent");
    Ok(())
}

/// A command line the `engine` client sent as it is (`Request::Cli`): read as `engine-front`
/// reads it, answered as its request is, with a failure as the front prints it (a line on stderr,
/// an exit code) since the client has no words of its own; or handed back.
pub fn cli(sup: &Supervisor, conn: &mut UnixStream, argv: &[String], cwd: &std::path::Path) -> Reply {
    use crate::cli::thin::{read, Sent};
    let result = match read(argv, cwd) {
        Sent::HandOver => return send(conn, &Response::HandOver),
        Sent::Failed(e) => return failed(conn, &e.message, e.exit_code),
        Sent::Run { spec, remove } => run(sup, conn, spec, remove),
        Sent::Start { spec } => {
            let name = spec.name.clone();
            start(sup, conn, spec).and_then(|()| {
                write_frame(conn, &Response::Output { stream: Stream::Stdout }, format!("{name}\n").as_bytes())
                    .map_err(|e| Failure::engine(format!("client went away: {e}")))?;
                send(conn, &Response::Exited { code: 0 })
            })
        }
    };
    match result {
        // Nothing was made: answered as any start is (`NoSuchImage`); the client hands the command
        // line to engine-core, which pulls the image (or says why not) and asks again.
        Err(f) if f.missing_image.is_some() => Err(f),
        Err(f) => failed(conn, &f.message, f.exit_code),
        Ok(()) => Ok(()),
    }
}

/// A failure as `engine-front` prints it: "engine: MESSAGE" on stderr, then the exit code.
fn failed(conn: &mut UnixStream, message: &str, code: i32) -> Reply {
    write_frame(conn, &Response::Output { stream: Stream::Stderr }, format!("engine: {message}\n").as_bytes())
        .map_err(|e| Failure::engine(format!("client went away: {e}")))?;
    send(conn, &Response::Exited { code })
}

pub fn stop(sup: &Supervisor, conn: &mut UnixStream, name: &str, timeout_secs: u64) -> Reply {
    // Before the signal: the exit it causes must not be restarted.
    sup.registry.mark_user_stopped(name)?;
    launch::stop(sup, name, Duration::from_secs(timeout_secs))?;
    sup.registry.events.emit(name, "stop", &[]);
    send(conn, &Response::Done)
}

pub fn kill(sup: &Supervisor, conn: &mut UnixStream, name: &str, signal: i32) -> Reply {
    if nix::sys::signal::Signal::try_from(signal).is_err() {
        return Err(Failure::engine(format!("invalid signal {signal}")));
    }
    // Docker's rule: the stop signal or SIGKILL ends the container for good (no restart).
    if signal == libc::SIGKILL || signal == libc::SIGTERM {
        sup.registry.mark_user_stopped(name)?;
    }
    if !sup.registry.signal(name, signal, |_| {})? {
        return Err(Failure::engine(format!("container {name} is not running")));
    }
    send(conn, &Response::Done)
}

pub fn ps(sup: &Supervisor, conn: &mut UnixStream, all: bool, stats: bool) -> Reply {
    let mut containers: Vec<_> = sup.registry.list().into_iter().filter(|r| all || !r.state.is_terminal()).collect();
    if stats {
        for c in containers.iter_mut().filter(|c| !c.state.is_terminal()) {
            if let Ok(live) = super::stats::inspect(sup, c.name()) {
                *c = live;
            }
        }
    }
    crate::protocol::write_list(conn, containers).map_err(|e| Failure::engine(format!("client went away: {e}")))
}

pub fn logs(sup: &Supervisor, conn: &mut UnixStream, name: &str, opts: follow::Options) -> Reply {
    let (path, live) = sup.registry.log_of(name)?;
    follow::stream(&path, live.as_deref(), opts, &mut |stream, bytes| {
        write_frame(conn, &Response::Output { stream }, bytes)
    })
    .map_err(|e| Failure::engine(format!("reading log of {name}: {e}")))?;
    send(conn, &Response::Done)
}

pub fn inspect(sup: &Supervisor, conn: &mut UnixStream, name: &str) -> Reply {
    let container = Box::new(super::stats::inspect(sup, name)?);
    send(conn, &Response::Record { container })
}

pub fn rm(sup: &Supervisor, conn: &mut UnixStream, name: &str, force: bool) -> Reply {
    let record = sup.registry.get(name)?;
    if record.restarting && !force {
        return Err(Failure::engine(format!("container {name} is restarting: stop it first or use rm -f")));
    }
    if force {
        sup.registry.mark_user_stopped(name)?;
    }
    if force && !record.state.is_terminal() {
        launch::stop(sup, name, Duration::ZERO)?;
    }
    let record = sup.registry.remove(name)?;
    forget_container(sup, name, record)?;
    send(conn, &Response::Done)
}

/// What outlives a removed record: its restart back-off, its layer (deleted off the request's
/// path, or kept for the next spare overlay: see `launch::discard_overlay`), its log files.
fn forget_container(sup: &Supervisor, name: &str, record: super::record::ContainerRecord) -> Reply {
    sup.restarts.forget(name);
    launch::discard_overlay(sup, name);
    super::logs::rotate::remove_all(&record.log_path)
        .map_err(|e| Failure::engine(format!("removing the log files {}*: {e}", record.log_path.display())))
}

pub fn wait(sup: &Supervisor, conn: &mut UnixStream, name: &str) -> Reply {
    let code = launch::wait_settled(sup, name)?;
    send(conn, &Response::Exited { code })
}

/// `engine info`: the supervisor's side (the client adds what it can read from the host itself).
pub fn info(sup: &Supervisor, conn: &mut UnixStream) -> Reply {
    use super::record::State;
    let mut containers = std::collections::BTreeMap::new();
    for record in sup.registry.list() {
        let kind = match record.state {
            State::Created => "created",
            State::Running => "running",
            State::Exited { .. } => "exited",
            State::Stopped { .. } => "stopped",
            State::Killed { .. } => "killed",
            State::Lost => "lost",
        };
        *containers.entry(kind.to_string()).or_insert(0) += 1;
    }
    // fsblkcnt_t's width differs between libcs and architectures.
    #[allow(clippy::unnecessary_cast)]
    let root_free_bytes = nix::sys::statvfs::statvfs(&sup.root)
        .map(|s| s.blocks_available() as u64 * s.fragment_size() as u64)
        .unwrap_or(0);
    let info = crate::protocol::SupervisorInfo {
        version: crate::protocol::ENGINE_VERSION.into(),
        commit: crate::protocol::ENGINE_COMMIT.into(),
        protocol: crate::protocol::PROTOCOL_VERSION,
        pid: std::process::id() as i32,
        root: sup.root.clone(),
        root_used_bytes: disk_use(&sup.root),
        root_free_bytes,
        socket: sup.socket.clone(),
        cgroup_parent: sup.cgroup_parent.clone(),
        bridge: sup.net.bridge.clone(),
        subnet: sup.net.subnet.to_string(),
        gateway: sup.net.gateway.to_string(),
        monitor: sup.monitor.is_some(),
        containers,
    };
    send(conn, &Response::Info { info: Box::new(info) })
}

pub fn version(conn: &mut UnixStream) -> Reply {
    send(
        conn,
        &Response::Version {
            version: crate::protocol::ENGINE_VERSION.into(),
            commit: crate::protocol::ENGINE_COMMIT.into(),
            protocol: crate::protocol::PROTOCOL_VERSION,
        },
    )
}

/// Bytes allocated to the files under `dir`, as `du` counts them; symlinks are not followed, and
/// hard links are counted once. Unreadable entries (a container removing its files) are skipped.
fn disk_use(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

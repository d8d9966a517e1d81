//! The supervisor under systemd (issue 12), without systemd: the readiness notification
//! (Type=notify) received on a NOTIFY_SOCKET the test listens on, and socket activation with a
//! listening socket the test passes as fd 3 (LISTEN_FDS=1, LISTEN_PID).
mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{describe, Supervisor, ENGINE};

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A supervisor description (own root, socket, cgroup parent, bridge) that is not started yet;
/// its Drop stops what the test starts and cleans up.
fn unstarted() -> Supervisor {
    let dir = tempfile::Builder::new().prefix("engine-test-").tempdir_in("/tmp").unwrap();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let tag = format!("{}s{n}", std::process::id() % 100_000);
    Supervisor {
        root: dir.path().join("root"),
        socket: dir.path().join("run/engine.sock"),
        dir,
        child: None,
        cgroup_parent: format!("engine-test-{tag}"),
        bridge: format!("eb{tag}"),
        subnet_prefix: format!("10.204.{}", (std::process::id() + n) % 250),
    }
}

/// `supervisor --root ... --subnet ...` for this supervisor.
fn supervisor_args(sup: &Supervisor) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["supervisor".into(), "--root".into(), sup.root.clone().into()];
    args.extend(["--socket".into(), sup.socket.clone().into()]);
    for a in ["--cgroup-parent", &sup.cgroup_parent, "--bridge", &sup.bridge] {
        args.push(a.into());
    }
    args.extend(["--subnet".into(), format!("{}.0/24", sup.subnet_prefix).into()]);
    args
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn readiness(notify_socket: &str, listen: impl FnOnce() -> UnixDatagram) {
    let mut sup = unstarted();
    let notify = listen();
    notify.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let child = Command::new(ENGINE)
        .args(supervisor_args(&sup))
        .env("NOTIFY_SOCKET", notify_socket)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    sup.child = Some(child);
    let ready = recv(&notify);
    // Sent once requests are accepted: one right away succeeds.
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.lines().any(|l| l == format!("MAINPID={}", sup.pid())), "{ready:?}");
    let ps = sup.engine(&["ps"]);
    assert!(ps.status.success(), "{}", describe(&ps));
    // The variable is not passed on: a container does not see it.
    let (code, out, _) = sup.run("env", &["/bin/sh", "-c", "env"]);
    assert_eq!(code, 0);
    assert!(!out.contains("NOTIFY_SOCKET"), "{out}");
    sup.ok(&["rm", "env"]);
    let status = sup.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let stopping = recv(&notify);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

#[test]
fn supervisor_notifies_readiness_on_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    readiness(path.to_str().unwrap(), || UnixDatagram::bind(&path).unwrap());
}

#[test]
fn supervisor_notifies_readiness_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("engine-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    readiness(&format!("@{name}"), || UnixDatagram::bind_addr(&addr).unwrap());
}

/// Starts the supervisor as systemd would with engine.socket: `listener` as fd 3, LISTEN_FDS=1
/// and LISTEN_PID set to the supervisor's own pid (by a shell that then execs it).
fn activated(sup: &Supervisor, listener: &UnixListener) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#, ENGINE])
        .args(supervisor_args(sup))
        .stdin(Stdio::null());
    let fd = listener.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; fd 3 stays open across exec.
    unsafe {
        c.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn supervisor_serves_an_activated_socket_and_leaves_it_in_place() {
    let mut sup = unstarted();
    std::fs::create_dir_all(sup.socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(&sup.socket).unwrap();
    let before = inode(&sup.socket);
    let child = activated(&sup, &listener).spawn().unwrap();
    sup.child = Some(child);
    drop(listener); // the supervisor holds its copy
    let v: serde_json::Value = serde_json::from_str(&sup.ok(&["info", "--json"])).unwrap();
    assert_eq!(v["supervisor"]["pid"], sup.pid(), "{v}");
    let (code, out, _) = sup.run("act", &["/bin/echo", "through the activated socket"]);
    assert_eq!((code, out.as_str()), (0, "through the activated socket\n"));
    sup.ok(&["rm", "act"]);
    // Served on the socket it was given, not on one it bound again.
    assert_eq!(inode(&sup.socket), before);
    let status = sup.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    // systemd owns the socket file (and keeps listening for the next start).
    assert_eq!(inode(&sup.socket), before);
}

#[test]
fn an_activated_socket_bound_elsewhere_is_refused_in_one_line() {
    let sup = unstarted();
    let elsewhere = sup.dir.path().join("elsewhere.sock");
    let listener = UnixListener::bind(&elsewhere).unwrap();
    let mut child = activated(&sup, &listener).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A supervisor that binds a socket of its own instead runs on: stop it and fail.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let out = child.wait_with_output().unwrap();
            panic!("the supervisor did not refuse the socket: {}", describe(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains("kernel memory monitor")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("make ListenStream= and --socket agree"), "{stderr}");
    assert!(UnixStream::connect(&sup.socket).is_err());
}

//! The `engine` client (issue 14): a binary with no libc that sends `run` and `start` command
//! lines to the supervisor as they are, and hands everything else to engine-front or
//! engine-core beside it. Real supervisors, the real binaries; strace shows what the client
//! itself does.
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{describe, rootfs, Supervisor, ENGINE};

/// The client's system calls and the programs it execs, from `strace -f` of `engine ARGS`
/// against `sup`: (the process's output, the strace log).
fn traced(sup: &Supervisor, args: &[&str], cwd: &Path) -> (std::process::Output, String) {
    let log = sup.dir.path().join(format!("strace.{}", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg(ENGINE)
        .arg("--socket")
        .arg(&sup.socket)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("strace (make deps installs it)");
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    (out, text)
}

/// The binaries the client exec'd after its own start.
fn execs(strace: &str) -> Vec<String> {
    strace
        .lines()
        .filter(|l| l.contains("execve(\"") && !l.contains("= -1"))
        .filter_map(|l| l.split('"').nth(1).map(|p| Path::new(p).file_name().unwrap().to_string_lossy().into_owned()))
        .skip(1)
        .collect()
}

#[test]
fn the_client_is_a_static_executable_that_starts_no_libc() {
    let elf = Command::new("readelf").args(["-lW", ENGINE]).output().unwrap();
    let headers = String::from_utf8_lossy(&elf.stdout);
    assert!(elf.status.success(), "{}", describe(&elf));
    assert!(!headers.contains("INTERP") && !headers.contains("DYNAMIC"), "not a static executable:\n{headers}");
    let size = std::fs::metadata(ENGINE).unwrap().len();
    assert!(size < 200 << 10, "the client is {size} bytes");
    // glibc's start (static or not) sets up TLS, the thread id word and rseq, and the Rust
    // runtime reads its stack's bounds: none of that before the client's first own call.
    let sup = Supervisor::start();
    let (out, strace) =
        traced(&sup, &["run", "--rm", "--net", "none", "c1", rootfs().to_str().unwrap(), "/bin/true"], Path::new("/"));
    assert!(out.status.success(), "{}", describe(&out));
    let client = strace.lines().next().unwrap().split(' ').next().unwrap().to_string();
    let own: Vec<&str> = strace.lines().filter(|l| l.starts_with(&format!("{client} "))).collect();
    for libc_start in ["arch_prctl", "set_tid_address", "rseq(", "set_robust_list", "/proc/self/maps", "brk("] {
        assert!(!own.iter().any(|l| l.contains(libc_start)), "the client ran {libc_start}:\n{}", own.join("\n"));
    }
    let before_connect = own.iter().take_while(|l| !l.contains("connect(")).count();
    assert!(before_connect <= 4, "{before_connect} calls before the connect:\n{}", own.join("\n"));
}

#[test]
fn run_and_start_are_answered_by_the_supervisor_alone() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let r = rootfs.to_str().unwrap();
    let (out, strace) = traced(
        &sup,
        &["run", "--rm", "--net", "none", "c1", r, "/bin/sh", "-c", "echo out; echo err >&2; exit 7"],
        Path::new("/"),
    );
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(execs(&strace), Vec::<String>::new(), "the client handed `run` over");
    // `start` prints the name, as the front does.
    let (out, strace) = traced(&sup, &["start", "--net", "none", "c2", r, "/bin/sleep", "30"], Path::new("/"));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "c2\n");
    assert_eq!(execs(&strace), Vec::<String>::new(), "the client handed `start` over");
    assert_eq!(sup.status("c2"), "running");
    // A failure is the front's line and exit code, from the supervisor, without the front.
    let (out, strace) = traced(&sup, &["start", "c2", r, "/bin/true"], Path::new("/"));
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "engine: container name \"c2\" is already in use\n");
    assert_eq!(execs(&strace), Vec::<String>::new());
    let (out, _) = traced(&sup, &["run", "--rm", "c3", "/no/such/rootfs", "/bin/true"], Path::new("/"));
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "engine: rootfs /no/such/rootfs: No such file or directory (os error 2)\n"
    );
    sup.ok(&["rm", "-f", "c2"]);
}

#[test]
fn a_relative_rootfs_is_read_from_the_clients_directory() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let (parent, name) = (rootfs.parent().unwrap(), rootfs.file_name().unwrap().to_str().unwrap());
    let relative = format!("./{name}");
    let (out, strace) = traced(&sup, &["run", "--rm", "--net", "none", "c1", &relative, "/bin/echo", "rel"], parent);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rel\n");
    assert_eq!(execs(&strace), Vec::<String>::new());
    // The same words from another directory name another (missing) directory.
    let (out, _) = traced(&sup, &["run", "--rm", "--net", "none", "c1", &relative, "/bin/true"], Path::new("/"));
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(&format!("engine: rootfs {relative}: ")),
        "{}",
        describe(&out)
    );
}

#[test]
fn what_the_supervisor_does_not_answer_goes_to_the_front_or_the_core() {
    let sup = Supervisor::start();
    let r = rootfs();
    let r = r.to_str().unwrap();
    // A usage error: clap's own line, from the front.
    let (out, strace) = traced(&sup, &["run", "--bogus", "c1", r, "/bin/true"], Path::new("/"));
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("engine: unexpected argument '--bogus'"),
        "{}",
        describe(&out)
    );
    // (the front, in turn, leaves every usage error to the whole command)
    assert_eq!(execs(&strace), ["engine-front", "engine-core"]);
    // A verb the client does not send, and one the front does not run.
    let (out, strace) = traced(&sup, &["ps", "-a"], Path::new("/"));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(execs(&strace), ["engine-front"]);
    let (out, strace) = traced(&sup, &["--version"], Path::new("/"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("engine "), "{}", describe(&out));
    assert_eq!(execs(&strace), ["engine-core"]);
    // An image to pull (here refused by --pull never): engine-core's, which pulls.
    let (out, strace) =
        traced(&sup, &["run", "--rm", "--pull", "never", "c1", "no-such-image", "/bin/true"], Path::new("/"));
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such image"), "{}", describe(&out));
    assert_eq!(execs(&strace), ["engine-core"]);
    // A --socket after the verb could name another supervisor: the front reads that line.
    let socket = sup.socket.to_str().unwrap().to_string();
    let (out, strace) =
        traced(&sup, &["run", "--rm", "--net", "none", "--socket", &socket, "c1", r, "/bin/true"], Path::new("/"));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(execs(&strace), ["engine-front"]);
}

/// A supervisor that does not know the `cli` request (an older one) refuses it before doing
/// anything; the client then hands the command line to the front, which sends it as `run`.
#[test]
fn an_older_supervisor_gets_the_fronts_request() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("old.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let mut ops = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for round in 0..2 {
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    Err(_) => return ops,
                }
            };
            conn.set_nonblocking(false).unwrap();
            let mut lens = [0u8; 8];
            conn.read_exact(&mut lens).unwrap();
            let mut json = vec![0u8; u32::from_be_bytes(lens[..4].try_into().unwrap()) as usize];
            conn.read_exact(&mut json).unwrap();
            let request: serde_json::Value = serde_json::from_slice(&json).unwrap();
            ops.push(request["request"]["op"].as_str().unwrap().to_string());
            let answer = match round {
                0 => {
                    serde_json::json!({"kind": "error", "message": "bad request: unknown variant `cli`", "exit_code": 125})
                }
                _ => serde_json::json!({"kind": "error", "message": "old supervisor", "exit_code": 125}),
            };
            let body = serde_json::to_vec(&answer).unwrap();
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&0u32.to_be_bytes());
            frame.extend_from_slice(&body);
            conn.write_all(&frame).unwrap();
        }
        ops
    });
    let out = Command::new(ENGINE)
        .arg("--socket")
        .arg(&socket)
        .args(["run", "--rm", "c1", "/", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(server.join().unwrap(), ["cli", "run"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "engine: old supervisor\n");
}

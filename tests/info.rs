//! `engine info` and `engine version` (issue 12) against a real supervisor, and `version` across
//! wire protocol versions against fake supervisors that speak another one.
mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

use common::{describe, Supervisor, ENGINE};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

#[test]
fn info_reports_the_host_and_the_supervisor() {
    let sup = Supervisor::start();
    sup.start_container("inf-run", &["/bin/sleep", "60"]);
    let (code, _, _) = sup.run("inf-done", &["/bin/true"]);
    assert_eq!(code, 0);
    let (code, _, _) = sup.run("inf-done2", &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(code, 3);

    let out = sup.engine(&["info", "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let v = json(&out);
    let h = &v["host"];
    let uname = Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(h["kernel"], String::from_utf8_lossy(&uname.stdout).trim());
    let cgroup2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let unified_mem = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|s| s.split_whitespace().any(|c| c == "memory"));
    assert_eq!(h["cgroup_version"], if cgroup2 || unified_mem { "v2" } else { "v1" }, "{v}");
    assert!(h["cgroup_controllers"].as_array().unwrap().iter().any(|c| c == "memory"), "{v}");
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap();
    assert_eq!(h["overlay"], filesystems.contains("\toverlay\n"), "{v}");
    assert_eq!(h["seccomp"], true, "{v}");
    assert_eq!(h["monitor_device"], Path::new("/dev/container_monitor").exists(), "{v}");

    let s = &v["supervisor"];
    assert_eq!(s["root"], sup.root.canonicalize().unwrap().to_str().unwrap(), "{v}");
    assert_eq!(s["socket"], sup.socket.to_str().unwrap());
    assert_eq!(s["bridge"], sup.bridge.as_str());
    assert_eq!(s["subnet"], format!("{}.0/24", sup.subnet_prefix));
    assert_eq!(s["gateway"], format!("{}.1", sup.subnet_prefix));
    assert_eq!(s["cgroup_parent"], sup.cgroup_parent.as_str());
    assert_eq!(s["pid"], sup.pid());
    assert_eq!(s["protocol"], 1);
    assert_eq!(s["containers"], serde_json::json!({"running": 1, "exited": 2}), "{v}");
    // Two logs and three records at least.
    assert!(s["root_used_bytes"].as_u64().unwrap() >= 4096, "{v}");
    assert!(s["root_free_bytes"].as_u64().unwrap() > 0, "{v}");

    let text = sup.ok(&["info"]);
    for needle in [
        "Kernel:",
        "Cgroup version:",
        "Seccomp:",
        "Overlay:",
        "Kernel monitor:",
        &format!("Bridge:             {} {}.0/24", sup.bridge, sup.subnet_prefix),
        "Containers:         3 (2 exited, 1 running)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    sup.ok(&["rm", "-f", "inf-run"]);
}

#[test]
fn info_without_a_supervisor_prints_the_host_and_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(ENGINE).arg("--socket").arg(dir.path().join("none.sock")).arg("info").output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Kernel:") && !stdout.contains("Supervisor:"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach the supervisor"), "{stderr}");
}

#[test]
fn version_shows_client_supervisor_and_protocol() {
    let sup = Supervisor::start();
    let v = json(&sup.engine(&["version", "--json"]));
    let commit = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
    let commit = String::from_utf8_lossy(&commit.stdout).trim().to_string();
    for side in ["client", "supervisor"] {
        assert_eq!(v[side]["version"], env!("CARGO_PKG_VERSION"), "{v}");
        assert_eq!(v[side]["protocol"], 1, "{v}");
        if !commit.is_empty() {
            assert_eq!(v[side]["commit"], commit.as_str(), "{v}");
        }
    }
    let text = sup.ok(&["version"]);
    assert!(text.contains("Client:") && text.contains("Supervisor:") && text.contains("Protocol:  1"), "{text}");
    // `engine --version` is clap's one line.
    let out = Command::new(ENGINE).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("engine {}", env!("CARGO_PKG_VERSION"))));
}

/// Sends one raw request frame and returns the answer's JSON header.
fn raw(socket: &Path, header: &str) -> serde_json::Value {
    let mut conn = UnixStream::connect(socket).unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(header.as_bytes());
    conn.write_all(&frame).unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    let len = u32::from_be_bytes(reply[0..4].try_into().unwrap()) as usize;
    serde_json::from_slice(&reply[8..8 + len]).unwrap()
}

#[test]
fn the_version_request_is_answered_whatever_the_protocol_version() {
    let sup = Supervisor::start();
    for v in [0, 1, 2, 99] {
        let answer = raw(&sup.socket, &format!(r#"{{"version":{v},"request":{{"op":"version"}}}}"#));
        assert_eq!(answer["kind"], "version", "{answer}");
        assert_eq!(answer["protocol"], 1, "{answer}");
    }
    // Any other request of another version: one line naming both versions, even one this
    // supervisor does not know.
    let answer = raw(&sup.socket, r#"{"version":2,"request":{"op":"from_the_future","x":1}}"#);
    assert_eq!(answer["message"], "protocol version 2 is not supported (supervisor speaks 1)", "{answer}");
    let answer = raw(&sup.socket, r#"{"request":{"op":"ps","all":true}}"#);
    assert_eq!(answer["kind"], "error", "{answer}");
    sup.ok(&["ps"]);
}

/// A fake supervisor on a socket of its own that answers every request with `answer`.
fn fake_supervisor(answer: &'static str) -> (tempfile::TempDir, std::path::PathBuf, std::thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut lens = [0u8; 8];
        conn.read_exact(&mut lens).unwrap();
        let mut header = vec![0u8; u32::from_be_bytes(lens[0..4].try_into().unwrap()) as usize];
        conn.read_exact(&mut header).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["request"]["op"], "version", "{header}");
        let mut frame = Vec::new();
        frame.extend_from_slice(&(answer.len() as u32).to_be_bytes());
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(answer.as_bytes());
        conn.write_all(&frame).unwrap();
    });
    (dir, socket, handle)
}

#[test]
fn version_against_a_supervisor_of_another_protocol_says_so_in_one_line() {
    let (_dir, socket, fake) =
        fake_supervisor(r#"{"kind":"version","version":"9.0.0","commit":"abcdef","protocol":2,"new_field":true}"#);
    let out = Command::new(ENGINE).arg("--socket").arg(&socket).arg("version").output().unwrap();
    fake.join().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("9.0.0") && stdout.contains("Protocol:  2"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("wire protocol 2 and this client 1"), "{stderr}");
}

#[test]
fn version_against_a_supervisor_without_the_version_request_says_so_in_one_line() {
    // What a supervisor from before `version` answers: its parse error.
    let (_dir, socket, fake) = fake_supervisor(
        r#"{"kind":"error","message":"bad request: malformed frame: unknown variant `version`, expected one of `start`","exit_code":125}"#,
    );
    let out = Command::new(ENGINE).arg("--socket").arg(&socket).arg("version").output().unwrap();
    fake.join().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("older than this client"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Client:"));
}

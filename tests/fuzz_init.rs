//! The init channel under random messages: the supervisor's and the init's decoders never panic
//! and never hang, and a real `engine-init` handed garbage exits with 125 having done nothing.
//! A seeded generator keeps failures reproducible; ENGINE_FUZZ_ITERATIONS runs longer (`make fuzz`).
mod common;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Rng;
use engine::container::channel::{EtcFile, FromInit, InitChannel, InitFailure, Plan, ToInit};
use engine::container::{InitMode, RootSource, Spec, StartGate};

/// `Rng::below` for lengths and indices.
fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

fn iterations(default: usize) -> usize {
    std::env::var("ENGINE_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Well-formed messages of both directions, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let files = vec![EtcFile { target: "/etc/hosts".into(), content: "127.0.0.1 localhost\n".into() }];
    let plan = Plan {
        id: "fz".into(),
        spec: Spec::default(),
        root: RootSource::Overlay {
            lower: vec!["/nonexistent".into()],
            dir: "/nonexistent/overlay/fz".into(),
            throwaway: false,
        },
        files: files.clone(),
        files_follow: false,
        mode: InitMode::Reaper,
        gate: StartGate::Channel,
        cgroup_paths: vec!["/sys/fs/cgroup/x".into()],
        cgroup_self_join: vec!["/sys/fs/cgroup/x".into()],
        cgroup_tasks_sent: false,
        hook_state: Some("{\"id\":\"x\"}".into()),
        preserve_fds: 0,
        console: false,
        root_mount: false,
        seccomp: None,
        madvise_denied: false,
        rss_limited: true,
        trace: None,
    };
    let go = ToInit::Setup(Box::new(plan));
    let failed = InitFailure { step: "exec".into(), message: "x".into(), errno: Some(2), exit_code: 127 };
    vec![
        serde_json::to_vec(&go).unwrap(),
        serde_json::to_vec(&ToInit::Files(files)).unwrap(),
        serde_json::to_vec(&ToInit::Start).unwrap(),
        serde_json::to_vec(&FromInit::Started { pid: 2 }).unwrap(),
        serde_json::to_vec(&FromInit::Failed(failed)).unwrap(),
        serde_json::to_vec(&FromInit::Ready).unwrap(),
        br#"{"Exited":{"Signal":9}}"#.to_vec(),
        br#"{"Exited":{"Code":-2147483648}}"#.to_vec(),
    ]
}

/// A random message: pure noise, a truncated or bit-flipped seed, a seed with a number replaced
/// by an extreme one, or an oversized one.
fn message(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seeds[below(rng, seeds.len())].clone();
    match below(rng, 6) {
        0 => (0..below(rng, 512)).map(|_| rng.next() as u8).collect(),
        1 => {
            m.truncate(below(rng, m.len()));
            m
        }
        2 => {
            for _ in 0..=below(rng, 8) {
                let i = below(rng, m.len());
                m[i] ^= 1 << below(rng, 8);
            }
            m
        }
        3 => {
            let s = String::from_utf8_lossy(&m).into_owned();
            let extreme = ["18446744073709551616", "-1", "1e400", "null", "\"\"", "[]", "{}"][below(rng, 7)];
            s.replacen(|c: char| c.is_ascii_digit(), extreme, 1).into_bytes()
        }
        4 => vec![b'['; 70_000 + below(rng, 1000)],
        _ => m,
    }
}

fn raw_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two fds, which are then owned here.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn send_raw(fd: &OwnedFd, bytes: &[u8]) {
    // SAFETY: sends from a live buffer on an fd we own; a failure (EMSGSIZE) is part of the fuzz.
    unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
}

#[test]
fn random_messages_never_panic_either_decoder() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut decoded = [0usize; 2];
    for _ in 0..iterations(20_000) {
        let bytes = message(&mut rng, &seeds);
        let (raw, end) = raw_pair();
        // SAFETY: `end` is a SOCK_SEQPACKET socket handed over whole.
        let chan = unsafe { InitChannel::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(end)) };
        chan.set_timeout(Some(Duration::from_secs(1))).unwrap();
        send_raw(&raw, &bytes);
        send_raw(&raw, &bytes);
        drop(raw);
        // Whatever arrives is a message, an error or the end: never a panic or a hang.
        if let Ok(Some(_)) = chan.recv::<ToInit>("fuzz") {
            decoded[0] += 1;
        }
        if let Ok(Some(_)) = chan.recv::<FromInit>("fuzz") {
            decoded[1] += 1;
        }
        assert!(matches!(chan.recv::<FromInit>("fuzz"), Ok(None)), "a closed channel reads as its end");
    }
    // The mutations must also reach the decoders' accepting paths, or the fuzz proves little.
    assert!(decoded[0] > 0 && decoded[1] > 0, "no valid message survived: {decoded:?}");
}

/// A real init, not in any namespace: it must give up at the first bad message, before touching
/// mounts or anything else (so only messages that do not decode as `ToInit` are sent to it).
#[test]
fn a_real_init_handed_garbage_exits_125_at_once() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let mut sent = 0;
    while sent < iterations(150) / 10 + 15 {
        let bytes = message(&mut rng, &seeds);
        if serde_json::from_slice::<ToInit>(&bytes).is_ok() {
            continue;
        }
        sent += 1;
        let (ours, theirs) = raw_pair();
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(common::ENGINE);
        cmd.arg0("engine-init").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: dup2 into fd 3, clearing close-on-exec, is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || if libc::dup2(fd, 3) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
        }
        let mut child = cmd.spawn().unwrap();
        drop(theirs);
        send_raw(&ours, &bytes);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "init hung on {:?}", String::from_utf8_lossy(&bytes));
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            status.code(),
            Some(125),
            "message {:?}: {}",
            String::from_utf8_lossy(&bytes),
            common::describe(&out)
        );
        // It answered nothing on the channel either.
        // SAFETY: a non-blocking peek on an fd we own.
        let mut b = [0u8; 1];
        let n = unsafe { libc::recv(ours.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
        assert!(n <= 0, "init replied to garbage");
        let _ = std::io::stdout().flush();
    }
}

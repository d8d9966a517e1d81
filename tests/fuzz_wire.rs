//! Property/fuzz test of the wire format and the request handlers: random frames (random lengths
//! and bytes, truncated frames, valid-looking requests with random field values and huge numbers)
//! thrown at `read_frame` and at a real supervisor's socket. Every request must be answered or
//! closed, never panic the supervisor or hang it, and `ps` must still answer afterwards.
//!
//! `make test` runs a fixed number of iterations from a fixed seed; `make fuzz` runs for
//! `ENGINE_FUZZ_SECS` seconds (`ENGINE_FUZZ_SEED` picks another seed).
mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{rootfs, Rng, Supervisor};
use engine::protocol::{read_frame, read_frame_capped, Envelope, Response, MAX_REQUEST_HEADER};
use serde_json::{json, Value};

/// When to stop: a duration from ENGINE_FUZZ_SECS, else a fixed iteration count.
struct Budget {
    until: Option<Instant>,
    iterations: u64,
}

impl Budget {
    fn new(default_iterations: u64) -> Budget {
        let secs = std::env::var("ENGINE_FUZZ_SECS").ok().and_then(|s| s.parse::<u64>().ok());
        Budget { until: secs.map(|s| Instant::now() + Duration::from_secs(s)), iterations: default_iterations }
    }
    fn more(&self, done: u64) -> bool {
        match self.until {
            Some(t) => Instant::now() < t,
            None => done < self.iterations,
        }
    }
}

fn seed() -> u64 {
    let seed = std::env::var("ENGINE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_f00d);
    eprintln!("fuzz seed {seed} (ENGINE_FUZZ_SEED)");
    seed | 1
}

fn frame(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(header.len() as u32).to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(header);
    f.extend_from_slice(payload);
    f
}

fn huge_number(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!(u64::MAX),
        1 => json!(i64::MIN),
        2 => json!(1e300),
        3 => json!(-1),
        4 => json!(0),
        5 => json!(u32::MAX),
        6 => json!(rng.next()),
        _ => json!(rng.below(100)),
    }
}

fn random_string(rng: &mut Rng) -> Value {
    let choices = ["", "fz", "a", "-x", "../../etc", "/", "/nonexistent", "x\u{0}y", "é", "true"];
    match rng.below(4) {
        0 => json!(String::from_utf8_lossy(&rng.bytes(40))),
        1 => json!("n".repeat(rng.below(300) as usize)),
        _ => json!(rng.pick(&choices)),
    }
}

/// Any JSON value, sometimes of the wrong type for the field it lands in.
fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => huge_number(rng),
        3 | 4 => random_string(rng),
        5 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => Value::Object(
            (0..rng.below(4)).map(|_| (random_string(rng).to_string(), random_value(rng, depth + 1))).collect(),
        ),
    }
}

fn random_spec(rng: &mut Rng, empty_rootfs: &str) -> Value {
    let real = rootfs().to_string_lossy().into_owned();
    let rootfs = match rng.below(4) {
        0 => json!(real),
        1 => json!(empty_rootfs),
        _ => random_string(rng),
    };
    let name = if rng.chance(2) { json!(format!("fz{}", rng.below(20))) } else { random_string(rng) };
    let command = match rng.below(4) {
        0 => json!(["true"]),
        1 => json!(["echo", "fuzz"]),
        2 => json!([]),
        _ => json!([random_string(rng), random_string(rng)]),
    };
    let mut spec = json!({ "name": name, "rootfs": rootfs, "command": command, "net": "none" });
    let fields = [
        "hostname",
        "env",
        "workdir",
        "nice",
        "soft_mib",
        "hard_mib",
        "memory",
        "cpus",
        "pids_limit",
        "cpuset_cpus",
        "net",
        "ip",
        "no_new_privileges",
        "seccomp_unconfined",
    ];
    for _ in 0..rng.below(5) {
        let field = *rng.pick(&fields);
        let value = match field {
            "nice" | "soft_mib" | "hard_mib" | "memory" | "cpus" | "pids_limit" => huge_number(rng),
            "env" => json!([random_string(rng), "A=b"]),
            "net" => json!(rng.pick(&["none", "bridge", "host", ""])),
            "ip" => json!(rng.pick(&["10.0.0.1", "999.1.1.1", "", "::1"])),
            "cpuset_cpus" => json!(rng.pick(&["0", "0-1", "5-2", "0-99999999999", ",", ""])),
            _ => random_value(rng, 1),
        };
        spec[field] = value;
    }
    spec
}

/// A request the handlers accept the shape of, with random field values. Never touches a
/// running container other than its own (`fz*` names); never follows a running log.
fn random_request(rng: &mut Rng, empty_rootfs: &str) -> Value {
    let name = |rng: &mut Rng| if rng.chance(2) { json!("done") } else { random_string(rng) };
    let mut req = match rng.below(9) {
        0 => json!({ "op": "start", "spec": random_spec(rng, empty_rootfs) }),
        1 => json!({ "op": "run", "spec": random_spec(rng, empty_rootfs), "remove": rng.chance(2) }),
        2 => json!({ "op": "stop", "name": name(rng), "timeout_secs": huge_number(rng) }),
        3 => json!({ "op": "kill", "name": name(rng), "signal": huge_number(rng) }),
        4 => json!({ "op": "ps", "all": rng.chance(2), "stats": rng.chance(2) }),
        5 => json!({ "op": "logs", "name": name(rng), "follow": rng.chance(2), "timestamps": rng.chance(2),
                     "tail": if rng.chance(2) { huge_number(rng) } else { Value::Null } }),
        6 => json!({ "op": "inspect", "name": name(rng) }),
        7 => json!({ "op": "rm", "name": random_string(rng), "force": rng.chance(2) }),
        _ => json!({ "op": "wait", "name": name(rng) }),
    };
    if rng.chance(10) {
        // A field of the wrong type, or an unknown op.
        let keys: Vec<String> = req.as_object().unwrap().keys().cloned().collect();
        let key = rng.pick(&keys).clone();
        req[key] = random_value(rng, 0);
    }
    let version = if rng.chance(20) { huge_number(rng) } else { json!(engine::protocol::PROTOCOL_VERSION) };
    json!({ "version": version, "request": req })
}

/// The bytes of one connection: a frame of some kind, maybe torn.
fn random_wire(rng: &mut Rng, empty_rootfs: &str) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.bytes(64),
        1 => {
            // Random lengths, possibly huge, with a short random body.
            let mut f = Vec::new();
            f.extend_from_slice(&(rng.next() as u32 >> rng.below(32)).to_be_bytes());
            f.extend_from_slice(&(rng.next() as u32 >> rng.below(32)).to_be_bytes());
            f.extend(rng.bytes(256));
            f
        }
        2 => frame(&serde_json::to_vec(&random_value(rng, 0)).unwrap(), &rng.bytes(8)),
        3 => {
            let mut f = frame(&serde_json::to_vec(&random_request(rng, empty_rootfs)).unwrap(), b"");
            let cut = rng.below(f.len() as u64) as usize;
            f.truncate(cut);
            f
        }
        _ => frame(&serde_json::to_vec(&random_request(rng, empty_rootfs)).unwrap(), b""),
    }
}

/// Hands out the bytes in random small pieces, as a socket may.
struct Trickle<'a> {
    data: &'a [u8],
    rng: &'a mut Rng,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (1 + self.rng.below(16) as usize).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn read_frame_never_panics_on_random_input() {
    let mut rng = Rng(seed());
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap().to_string();
    let budget = Budget::new(20_000);
    let mut n = 0;
    while budget.more(n) {
        let wire = random_wire(&mut rng, &empty);
        let _ = read_frame::<_, Envelope>(&mut wire.as_slice());
        let _ = read_frame::<_, Response>(&mut wire.as_slice());
        let _ = read_frame_capped::<_, Envelope>(&mut wire.as_slice(), MAX_REQUEST_HEADER, 0);
        let mut seed2 = Rng(rng.next() | 1);
        let _ = read_frame::<_, Envelope>(&mut Trickle { data: &wire, rng: &mut seed2 });
        n += 1;
    }
}

#[test]
fn supervisor_answers_or_closes_every_random_request() {
    let mut rng = Rng(seed());
    let mut sup = Supervisor::start();
    // In the test's own directory: removed with it, even when the test fails.
    let stderr_path = sup.dir.path().join("supervisor.stderr");
    // Restarted with its stderr captured, to look for panics.
    sup.signal_and_wait(libc::SIGTERM);
    sup.spawn_with(&[], std::fs::File::create(&stderr_path).unwrap().into());
    // One ended container with output for logs/inspect/wait to find.
    let (code, _, _) = sup.run("done", &["echo", "hello"]);
    assert_eq!(code, 0);
    let empty = tempfile::tempdir().unwrap();
    let empty_rootfs = empty.path().to_str().unwrap().to_string();

    let budget = Budget::new(600);
    let mut stalled = Vec::new();
    let mut answers = std::collections::BTreeMap::new();
    let mut n = 0;
    while budget.more(n) {
        let wire = random_wire(&mut rng, &empty_rootfs);
        let mut conn = UnixStream::connect(&sup.socket).expect("the supervisor stopped accepting");
        let _ = conn.write_all(&wire);
        if rng.chance(50) && stalled.len() < 20 {
            // Says no more and never closes: the supervisor must time it out.
            stalled.push(conn);
        } else {
            let _ = conn.shutdown(Shutdown::Write);
            conn.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
            let mut answer = Vec::new();
            let got = conn.read_to_end(&mut answer);
            let kind = match read_frame::<_, Response>(&mut answer.as_slice()) {
                Ok(Some((Response::Error { message, .. }, _))) => {
                    format!("error: {}", message.chars().take(24).collect::<String>())
                }
                Ok(Some((resp, _))) => format!("{resp:?}").chars().take(12).collect(),
                _ => "closed".to_string(),
            };
            *answers.entry(kind).or_insert(0u64) += 1;
            assert!(
                !matches!(&got, Err(e) if e.kind() != std::io::ErrorKind::ConnectionReset),
                "iteration {n}: no answer within 40 s ({got:?}) to {:?}",
                String::from_utf8_lossy(&wire)
            );
        }
        if n % 100 == 0 {
            assert!(sup.engine(&["ps"]).status.success(), "ps failed after iteration {n}");
        }
        n += 1;
    }
    let t = Instant::now();
    for mut c in stalled {
        c.set_read_timeout(Some(Duration::from_secs(20).saturating_sub(t.elapsed()).max(Duration::from_millis(1))))
            .unwrap();
        let mut rest = Vec::new();
        let got = c.read_to_end(&mut rest);
        // Closed with its request unread counts as closed (ECONNRESET).
        assert!(
            !matches!(&got, Err(e) if e.kind() != std::io::ErrorKind::ConnectionReset),
            "a stalled client was never closed: {got:?}"
        );
    }
    assert!(sup.engine(&["ps", "-a"]).status.success(), "ps failed after the fuzzing");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    assert!(!stderr.contains("panicked"), "the supervisor panicked:\n{stderr}");
    eprintln!("{n} random requests answered: {answers:#?}");
}

//! Output capture: lossless under load, CRI format on disk, follow, tail, timestamps, many at once.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn sha256_of_command(cmd: &mut Command) -> String {
    let mut producer = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let sum = Command::new("sha256sum").stdin(producer.stdout.take().unwrap()).output().unwrap();
    assert!(producer.wait().unwrap().success());
    String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_200_mb_flood_is_logged_byte_identical() {
    let sup = Supervisor::start();
    // Random bytes: every byte value, newlines at random places, long partial lines.
    let payload = Payload::random("flood", 200_000_000);
    let name = &payload.name;
    let expected = sha256_of_command(Command::new("cat").arg(&payload.host_path));

    let t = Instant::now();
    sup.start_container("flood", &["/bin/sh", "-c", &format!("cat /tmp/{name}; echo done >&2")]);
    assert_eq!(sup.wait_exit("flood"), 0);
    let elapsed = t.elapsed();
    drop(payload);

    let got = sha256_of_command(&mut sup.cmd(&["logs", "flood"]));
    assert_eq!(got, expected, "stdout payload differs from what the container wrote");
    let err = sup.engine(&["logs", "flood"]);
    assert_eq!(String::from_utf8_lossy(&err.stderr), "done\n");
    eprintln!("200 MB through the log pipeline in {elapsed:?}");

    // The file on disk is CRI: timestamp, stream, P|F, text.
    let log = std::fs::File::open(sup.root.join("logs/flood.log")).unwrap();
    let mut reader = BufReader::new(log);
    let mut line = Vec::new();
    for _ in 0..100 {
        line.clear();
        reader.read_until(b'\n', &mut line).unwrap();
        let mut parts = line.splitn(4, |&b| b == b' ');
        let ts = std::str::from_utf8(parts.next().unwrap()).unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "bad timestamp {ts}");
        assert_eq!(parts.next().unwrap(), b"stdout");
        assert!(matches!(parts.next().unwrap(), b"P" | b"F"));
    }
}

#[test]
fn fifty_containers_started_at_once_all_exit_zero_with_their_logs() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let r = rootfs.to_str().unwrap();
    std::thread::scope(|s| {
        for i in 0..50 {
            let sup = &sup;
            s.spawn(move || {
                sup.ok(&[
                    "start",
                    &format!("many{i}"),
                    r,
                    "/bin/sh",
                    "-c",
                    &format!("echo hello-{i}; echo err-{i} >&2"),
                ]);
            });
        }
    });
    for i in 0..50 {
        let name = format!("many{i}");
        assert_eq!(sup.wait_exit(&name), 0);
        let out = sup.engine(&["logs", &name]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("hello-{i}\n"));
        assert_eq!(String::from_utf8_lossy(&out.stderr), format!("err-{i}\n"));
    }
    let ps = sup.ok(&["ps", "-a"]);
    assert_eq!(ps.matches("exited (0)").count(), 50, "{ps}");
}

#[test]
fn logs_follow_streams_until_the_container_ends() {
    let sup = Supervisor::start();
    sup.start_container(
        "ticker",
        &["/bin/sh", "-c", "for i in 1 2 3 4; do echo tick $i; sleep 0.4; done; echo bye >&2"],
    );
    let t = Instant::now();
    let mut child = sup.cmd(&["logs", "-f", "ticker"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "tick 1");
    let first = t.elapsed();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(rest, ["tick 2", "tick 3", "tick 4"]);
    assert!(child.wait().unwrap().success());
    assert!(first < Duration::from_millis(1000), "first line came late: {first:?}");
    assert!(t.elapsed() >= Duration::from_millis(1000), "follow returned before the container ended");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(err, "bye\n");
}

#[test]
fn logs_while_a_request_streams_do_not_block_others() {
    let sup = Supervisor::start();
    sup.start_container("slow", &["/bin/sleep", "20"]);
    let mut follower = sup.cmd(&["logs", "-f", "slow"]).stdout(Stdio::null()).spawn().unwrap();
    let t = Instant::now();
    sup.ok(&["ps"]);
    sup.start_container("other", &["/bin/true"]);
    assert!(t.elapsed() < Duration::from_secs(3));
    sup.ok(&["stop", "slow"]);
    assert!(follower.wait().unwrap().success());
}

#[test]
fn tail_timestamps_and_partial_lines() {
    let sup = Supervisor::start();
    sup.start_container("lines", &["/bin/sh", "-c", "printf 'a\\nb\\nc'; sleep 0.2; printf 'd\\ne\\n'"]);
    assert_eq!(sup.wait_exit("lines"), 0);
    assert_eq!(sup.ok(&["logs", "lines"]), "a\nb\ncd\ne\n");
    assert_eq!(sup.ok(&["logs", "--tail", "2", "lines"]), "cd\ne\n");
    let stamped = sup.ok(&["logs", "--timestamps", "lines"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 4);
    for (line, text) in lines.iter().zip(["a", "b", "cd", "e"]) {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{line}");
        assert_eq!(rest, text);
    }
    let raw = std::fs::read_to_string(sup.root.join("logs/lines.log")).unwrap();
    assert!(raw.contains(" stdout P c\n"), "partial line not marked P: {raw}");
}

#[test]
fn a_reader_that_stops_reading_does_not_lose_output() {
    // The client stops reading the run output for a while: the container blocks, then resumes.
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let mut child = sup
        .cmd(&["run", "paced", rootfs.to_str().unwrap(), "/bin/sh", "-c", "seq 1 300000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut all = String::new();
    std::io::Read::read_to_string(&mut out, &mut all).unwrap();
    assert!(child.wait().unwrap().success());
    let expected: String = (1..=300000).map(|i| format!("{i}\n")).collect();
    assert!(all == expected, "run output differs ({} vs {} bytes)", all.len(), expected.len());
    assert_eq!(sup.ok(&["logs", "paced"]), expected);
}

#[test]
fn after_wait_and_stop_the_log_is_complete() {
    let sup = Supervisor::start();
    // `cat` outruns the writer (random bytes make many short records), so when the container
    // exits the channel is still full: wait and stop must not return before the writer is done.
    let payload = Payload::random("burst", 64_000_000);
    let cat = format!("cat /tmp/{}", payload.name);
    for i in 0..3 {
        let c = format!("burst{i}");
        sup.start_container(&c, &["/bin/sh", "-c", &cat]);
        assert_eq!(sup.wait_exit(&c), 0);
        assert_eq!(sup.engine(&["logs", &c]).stdout.len(), 64_000_000, "log incomplete right after wait");
    }
    let trap = format!("trap '{cat}; exit 0' TERM; while true; do sleep 0.1; done");
    sup.start_container("tail", &["/bin/sh", "-c", &trap]);
    std::thread::sleep(Duration::from_millis(300));
    sup.ok(&["stop", "tail"]);
    assert_eq!(sup.engine(&["logs", "tail"]).stdout.len(), 64_000_000, "log incomplete right after stop");
}

const ROTATE: [&str; 4] = ["--log-opt", "max-size=1m", "--log-opt", "max-file=3"];

/// `engine start` with ROTATE of `/bin/sh -c script`.
fn start_rotated(sup: &Supervisor, name: &str, script: &str) {
    let r = rootfs();
    let mut args = vec!["start"];
    args.extend_from_slice(&ROTATE);
    args.extend_from_slice(&[name, r.to_str().unwrap(), "/bin/sh", "-c", script]);
    sup.ok(&args);
}

/// The files of a container's log, by name.
fn log_files(sup: &Supervisor, name: &str) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(sup.root.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .filter(|(f, _)| f.starts_with(&format!("{name}.log")))
        .collect();
    files.sort();
    files
}

/// The numbers `seq` printed, checked to be one contiguous run: no gap, no duplicate.
fn contiguous_run(out: &str) -> (u64, u64) {
    let numbers: Vec<u64> = out.lines().map(|l| l.parse().unwrap_or_else(|_| panic!("not a number: {l:?}"))).collect();
    assert!(!numbers.is_empty(), "no output");
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "gap or duplicate after {}", pair[0]);
    }
    (numbers[0], numbers[numbers.len() - 1])
}

/// 20 bursts of 10,000 lines (about 9 MB of log in all), 50 ms apart.
const PACED_SEQ: &str = "for i in $(seq 0 19); do seq $((i*10000+1)) $((i*10000+10000)); sleep 0.05; done";

#[test]
fn rotation_keeps_max_file_files_of_max_size_and_logs_reads_the_last_lines_in_order() {
    let sup = Supervisor::start();
    start_rotated(&sup, "rot", "seq 1 200000");
    assert_eq!(sup.wait_exit("rot"), 0);

    let files = log_files(&sup, "rot");
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["rot.log", "rot.log.1", "rot.log.2"], "{files:?}");
    // A record is at most a timestamp, "stdout F " and one short line.
    for (f, len) in &files {
        assert!(*len <= (1 << 20) + 64, "{f} is {len} bytes");
    }
    assert!(files.iter().filter(|(f, _)| f != "rot.log").all(|(_, len)| *len > (1 << 20) - 64), "{files:?}");

    let (first, last) = contiguous_run(&sup.ok(&["logs", "rot"]));
    assert_eq!(last, 200000);
    assert!(first > 1, "nothing was rotated away");
    let kept: u64 = files.iter().map(|(_, len)| len).sum();
    // Every kept record is read back: about 48 bytes a record.
    assert!((last - first + 1) * 44 < kept && kept < (last - first + 1) * 52, "{first}..{last} from {kept} bytes");
    assert_eq!(sup.ok(&["logs", "--tail", "3", "rot"]), "199998\n199999\n200000\n");
    let (tail_first, _) = contiguous_run(&sup.ok(&["logs", "--tail", "50000", "rot"]));
    assert_eq!(tail_first, 150001, "a tail spanning the rotated files");

    sup.ok(&["rm", "rot"]);
    assert_eq!(log_files(&sup, "rot"), Vec::<(String, u64)>::new(), "rm left log files");
}

#[test]
fn logs_follow_and_run_see_every_line_across_rotations() {
    let sup = Supervisor::start();
    start_rotated(&sup, "rotf", &format!("sleep 0.5; {PACED_SEQ}"));
    let follower = sup.cmd(&["logs", "-f", "rotf"]).stdout(Stdio::piped()).spawn().unwrap();
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(contiguous_run(&String::from_utf8_lossy(&out.stdout)), (1, 200000));
    assert_eq!(log_files(&sup, "rotf").len(), 3, "the log was not rotated");

    // `run` streams through the same follower.
    let (code, stdout, stderr) = sup.run_with(&ROTATE, "rotr", &rootfs(), &["/bin/sh", "-c", PACED_SEQ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(contiguous_run(&stdout), (1, 200000));
}

#[test]
fn a_bad_log_opt_is_one_line_exit_125_and_makes_nothing() {
    let sup = Supervisor::start();
    let r = rootfs();
    for opt in ["max-size=abc", "max-file=0", "mode=non-blocking", "max-size=0", "max-size"] {
        for verb in ["start", "run"] {
            let out = sup.engine(&[verb, "--log-opt", opt, "bad", r.to_str().unwrap(), "/bin/true"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{verb} --log-opt {opt}: {}", describe(&out));
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("log-opt") && err.contains(opt), "{err}");
        }
    }
    assert_eq!(sup.ok(&["ps", "-a"]).lines().count(), 1, "a container was made");
    // The same command with good options is accepted.
    sup.ok(&["run", "--log-opt", "max-size=10m", "--log-opt", "max-file=3", "good", r.to_str().unwrap(), "/bin/true"]);
    assert_eq!(log_files(&sup, "bad"), Vec::<(String, u64)>::new());
}

#[test]
fn log_opts_are_recorded_in_the_container_spec() {
    let sup = Supervisor::start();
    let r = rootfs();
    sup.ok(&["start", "--log-opt", "max-size=2m", "deflt", r.to_str().unwrap(), "/bin/true"]);
    assert_eq!(sup.wait_exit("deflt"), 0);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sup.root.join("containers/deflt.json")).unwrap()).unwrap();
    assert_eq!(record["spec"]["log"]["max_size"], 2 << 20, "{record}");
}

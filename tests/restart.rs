//! Issue 11's restart policies, `engine events` and `engine stats`, through the real binaries: a
//! private supervisor per test, real containers, and a supervisor SIGKILLed and started again.
mod common;

use std::time::{Duration, Instant};

use common::*;

fn start_with(sup: &Supervisor, options: &[&str], name: &str, command: &[&str]) {
    let rootfs = rootfs();
    let mut args = vec!["start"];
    args.extend_from_slice(options);
    args.extend_from_slice(&[name, rootfs.to_str().unwrap()]);
    args.extend_from_slice(command);
    sup.ok(&args);
}

fn restart_count(sup: &Supervisor, name: &str) -> u64 {
    sup.state(name)["restart_count"].as_u64().unwrap_or(0)
}

/// Ended, with no restart pending.
fn settled(sup: &Supervisor, name: &str) -> bool {
    let s = sup.state(name);
    !matches!(s["state"]["status"].as_str(), Some("running" | "created")) && s["restarting"] == false
}

fn log_lines(sup: &Supervisor, name: &str, needle: &str) -> usize {
    sup.ok(&["logs", name]).lines().filter(|l| l.contains(needle)).count()
}

fn ps_line(sup: &Supervisor, name: &str) -> String {
    sup.ok(&["ps", "-a"]).lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default().to_string()
}

#[test]
fn on_failure_2_restarts_exactly_twice_then_stays_exited() {
    let sup = Supervisor::start();
    start_with(&sup, &["--restart", "on-failure:2"], "of", &["/bin/sh", "-c", "echo ran; exit 3"]);
    wait_until(Duration::from_secs(20), || restart_count(&sup, "of") == 2 && settled(&sup, "of"));
    // Longer than the back-off a third restart would wait (400 ms).
    std::thread::sleep(Duration::from_millis(1500));
    let s = sup.state("of");
    assert_eq!(s["restart_count"], 2, "{s}");
    assert_eq!(s["state"]["status"], "exited", "{s}");
    assert_eq!(s["exit_code"], 3, "{s}");
    assert_eq!(s["spec"]["restart"]["name"], "on-failure", "inspect shows the policy: {s}");
    assert_eq!(s["spec"]["restart"]["maximum_retry_count"], 2, "{s}");
    // One log for the three runs, appended to.
    assert_eq!(log_lines(&sup, "of", "ran"), 3, "{}", sup.ok(&["logs", "of"]));
    // A clean exit is not a failure.
    start_with(&sup, &["--restart", "on-failure"], "ok", &["/bin/true"]);
    wait_until(Duration::from_secs(10), || settled(&sup, "ok"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(restart_count(&sup, "ok"), 0);
    // Docker refuses these too, in one line.
    let out = sup.engine(&["start", "--restart", "always:3", "bad", rootfs().to_str().unwrap(), "/bin/true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let out = sup.engine(&["run", "--rm", "--restart", "always", "bad", rootfs().to_str().unwrap(), "/bin/true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rm and --restart"), "{}", describe(&out));
    sup.ok(&["rm", "of"]);
    sup.ok(&["rm", "ok"]);
}

#[test]
fn always_restarts_after_exit_0_shows_restarting_and_stop_ends_it() {
    let sup = Supervisor::start();
    start_with(&sup, &["--restart", "always"], "al", &["/bin/sh", "-c", "echo up; exit 0"]);
    wait_until(Duration::from_secs(20), || restart_count(&sup, "al") >= 4);
    // The back-off is 1.6 s by now: `ps` shows the wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < deadline && !seen.contains("restarting") {
        seen = ps_line(&sup, "al");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.contains("restarting"), "ps never showed restarting: {seen:?}");
    // A restarting container is not removed without -f.
    let out = sup.engine(&["rm", "al"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    sup.ok(&["stop", "al"]);
    let count = restart_count(&sup, "al");
    std::thread::sleep(Duration::from_secs(4));
    let s = sup.state("al");
    assert_eq!(s["restart_count"].as_u64(), Some(count), "stop cancels the pending restart: {s}");
    assert!(settled(&sup, "al"), "{s}");
    // One run per restart, one more if the stop found it running rather than waiting.
    let runs = log_lines(&sup, "al", "up") as u64;
    assert!(runs == count || runs == count + 1, "{count} restarts: {}", sup.ok(&["logs", "al"]));
    sup.ok(&["rm", "al"]);
}

#[test]
fn stop_prevents_restart_and_the_address_is_kept() {
    let sup = Supervisor::start();
    start_with(&sup, &["--restart", "always"], "st", &["/bin/sleep", "1000"]);
    let ip = sup.state("st")["network"]["ip"].clone();
    assert!(ip.is_string(), "{}", sup.state("st"));
    sup.ok(&["stop", "-t", "1", "st"]);
    std::thread::sleep(Duration::from_secs(1));
    let s = sup.state("st");
    assert_eq!(s["state"]["status"], "stopped", "{s}");
    assert_eq!(s["restart_count"], 0, "{s}");
    assert_eq!(s["user_stopped"], true, "{s}");
    // A kill from the host is not a stop: `always` starts it again, at the same address.
    let pid = sup.state("st")["pid"].as_i64();
    assert!(pid.is_none());
    sup.ok(&["rm", "st"]);
    start_with(&sup, &["--restart", "always"], "k", &["/bin/sleep", "1000"]);
    let first = sup.state("k");
    let pid = first["pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), || {
        let s = sup.state("k");
        s["restart_count"] == 1 && s["state"]["status"] == "running"
    });
    let again = sup.state("k");
    assert_ne!(again["pid"], first["pid"]);
    assert_eq!(again["network"]["ip"], first["network"]["ip"], "the address is kept: {again}");
    sup.ok(&["rm", "-f", "k"]);
}

#[test]
fn a_restarted_supervisor_resumes_the_policies() {
    let mut sup = Supervisor::start();
    // Exits 2 s after start: while its supervisor is down.
    start_with(&sup, &["--restart", "always"], "gone", &["/bin/sleep", "2"]);
    start_with(&sup, &["--restart", "unless-stopped"], "us", &["/bin/sleep", "1000"]);
    start_with(&sup, &["--restart", "always"], "as", &["/bin/sleep", "1000"]);
    sup.ok(&["stop", "-t", "1", "us"]);
    sup.ok(&["stop", "-t", "1", "as"]);
    let gone_pid = sup.state("gone")["pid"].as_i64().unwrap() as i32;
    sup.signal_and_wait(libc::SIGKILL);
    wait_until(Duration::from_secs(10), || !process_exists(gone_pid));
    sup.spawn();
    wait_until(Duration::from_secs(10), || sup.status("gone") == "running" && sup.status("as") == "running");
    let gone = sup.state("gone");
    assert!(gone["restart_count"].as_u64() >= Some(1), "{gone}");
    assert_ne!(gone["pid"].as_i64(), Some(gone_pid as i64));
    // always starts even a stopped container again after a supervisor restart; unless-stopped not.
    std::thread::sleep(Duration::from_secs(1));
    let us = sup.state("us");
    assert_eq!(us["state"]["status"], "stopped", "{us}");
    assert_eq!(us["restarting"], false, "{us}");
    for name in ["gone", "as", "us"] {
        sup.ok(&["rm", "-f", name]);
    }
}

#[test]
fn events_show_start_die_restart_in_order() {
    let sup = Supervisor::start();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    start_with(&sup, &["--restart", "on-failure:1"], "ev", &["/bin/sh", "-c", "exit 4"]);
    wait_until(Duration::from_secs(10), || restart_count(&sup, "ev") == 1 && settled(&sup, "ev"));
    start_with(&sup, &[], "other", &["/bin/true"]);
    sup.wait_exit("other");
    sup.ok(&["rm", "ev"]);
    let until = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let out = sup.ok(&["events", "--since", &since, "--until", &until, "--filter", "container=ev"]);
    let actions: Vec<&str> = out.lines().map(|l| l.split_whitespace().nth(2).unwrap_or("")).collect();
    assert_eq!(actions, ["create", "start", "die", "restart", "start", "die", "destroy"], "{out}");
    let dies: Vec<&str> = out.lines().filter(|l| l.contains(" die ")).collect();
    assert!(dies.iter().all(|l| l.contains("exitCode=4")), "{out}");
    // Each line starts with its time, in order.
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = out
        .lines()
        .map(|l| chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{out}");
    // Without a filter the other container is there too; a stream with --until ends by itself.
    let all = sup.ok(&["events", "--since", &since, "--until", &until]);
    assert!(all.lines().any(|l| l.contains(" die other ")), "{all}");
    sup.ok(&["rm", "other"]);
    // A live follower sees what happens after it started.
    let follower =
        sup.cmd(&["events", "--filter", "container=live"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    start_with(&sup, &[], "live", &["/bin/true"]);
    sup.wait_exit("live");
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(follower.id() as i32, libc::SIGTERM) };
    let out = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" start live ") && text.contains(" die live "), "{text}");
    sup.ok(&["rm", "live"]);
}

#[test]
fn stats_no_stream_shows_memory_and_pids_of_a_running_container() {
    let sup = Supervisor::start();
    start_with(&sup, &["--memory", "64m"], "sx", &["/bin/sh", "-c", "sleep 1000 & sleep 1000"]);
    start_with(&sup, &[], "done", &["/bin/true"]);
    sup.wait_exit("done");
    let out = sup.ok(&["stats", "--no-stream", "sx", "done"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("MEM USAGE / LIMIT") && lines[0].contains("PIDS"),
        "{out}"
    );
    let row: Vec<&str> =
        lines.iter().find(|l| l.starts_with("sx ")).expect("a row for sx").split_whitespace().collect();
    // NAME CPU% USAGE / LIMIT MEM% NETRX / NETTX BLKR / BLKW PIDS
    assert_eq!(row[3], "/", "{out}");
    assert_eq!(row[4], "64MiB", "the cgroup's limit: {out}");
    let usage = row[2];
    assert!(usage.ends_with("iB") && !usage.starts_with("0B"), "memory in use: {out}");
    assert_eq!(row.last().copied(), Some("3"), "sh and its two sleeps: {out}");
    let done = lines.iter().find(|l| l.starts_with("done ")).expect("a row for done");
    assert!(done.contains("--"), "an ended container has no figures: {out}");
    // Without names: the running ones only.
    let running = sup.ok(&["stats", "--no-stream"]);
    assert!(running.lines().any(|l| l.starts_with("sx ")) && !running.contains("done"), "{running}");
    let out = sup.engine(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    sup.ok(&["rm", "-f", "sx"]);
    sup.ok(&["rm", "done"]);
}

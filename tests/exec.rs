//! `engine exec`: a command in a running container, with its namespaces, cgroup, security,
//! environment and root; output and exit code back to the CLI; nothing left after.
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Starts NAME (no network: faster, and namespaces are what matter) running `sleep TAG`.
fn start(sup: &Supervisor, name: &str, options: &[&str], tag: &str) -> i32 {
    let rootfs = rootfs();
    let mut args = vec!["start", "--net", "none"];
    args.extend_from_slice(options);
    args.extend_from_slice(&[name, rootfs.to_str().unwrap(), "/bin/sleep", tag]);
    sup.ok(&args);
    sup.state(name)["pid"].as_i64().unwrap() as i32
}

fn exec(sup: &Supervisor, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    let out = sup.engine(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The host pid of the process whose command line is exactly `cmdline` (NULs as spaces).
fn pid_of(cmdline: &str) -> Option<i32> {
    pids_matching(cmdline).into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim_end() == cmdline)
    })
}

fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} of {pid}")).to_string()
}

/// Processes in the container's cgroup (the pids one on v1, the group on v2).
fn cgroup_procs(pid: i32) -> Vec<i32> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = cg.lines().find(|l| l.contains(":pids:") || l.starts_with("0::")).unwrap().to_string();
    let path = line.splitn(3, ':').nth(2).unwrap();
    let dir =
        if line.starts_with("0::") { format!("/sys/fs/cgroup{path}") } else { format!("/sys/fs/cgroup/pids{path}") };
    let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs")).unwrap();
    procs.lines().map(|l| l.parse().unwrap()).collect()
}

/// Children of the supervisor that are zombies (a helper nobody reaped).
fn zombie_children(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
        if rest[0] == "Z" && rest[1].parse::<i32>() == Ok(parent) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn exec_output_and_exit_codes_come_back() {
    let sup = Supervisor::start();
    let init = start(&sup, "ex1", &[], "470001");
    let before = cgroup_procs(init);
    let (code, out, err) = exec(&sup, &["ex1", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!((code, out.as_str(), err.as_str()), (7, "out\n", "err\n"));
    let (code, _, err) = exec(&sup, &["ex1", "/no/such/program"]);
    assert_eq!(code, 127, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = exec(&sup, &["ex1", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    // Options after the name belong to the command.
    let (code, out, _) = exec(&sup, &["ex1", "echo", "-e", "a"]);
    assert_eq!((code, out.as_str()), (0, "a\n"));
    // Nothing left: the container's group holds what it held, the helpers are reaped.
    assert_eq!(cgroup_procs(init), before);
    wait_until(Duration::from_secs(5), || zombie_children(sup.pid()).is_empty());
    assert_eq!(sup.status("ex1"), "running");
    sup.ok(&["rm", "-f", "ex1"]);
}

#[test]
fn exec_gets_the_containers_environment_workdir_and_user_with_overrides() {
    let sup = Supervisor::start();
    start(&sup, "ex2", &["-e", "A=1", "-e", "B=2", "-w", "/tmp"], "470002");
    let script = "echo $A $B $C $(pwd) $(id -u) $(id -g) $HOME $HOSTNAME";
    let (code, out, err) = exec(&sup, &["ex2", "sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1 2 /tmp 0 0 /root ex2\n");
    let (code, out, err) =
        exec(&sup, &["-e", "B=3", "-e", "C=4", "-w", "/etc", "-u", "nobody", "ex2", "sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1 3 4 /etc 65534 65534 /nonexistent ex2\n");
    let (code, out, _) = exec(&sup, &["-u", "123:45", "ex2", "sh", "-c", "echo $(id -u):$(id -g)"]);
    assert_eq!((code, out.as_str()), (0, "123:45\n"));
    // A user added since the start is found: the container's /etc as it is now.
    let (code, _, err) = exec(&sup, &["ex2", "sh", "-c", "echo 'late:x:777:778::/l:/bin/sh' >> /etc/passwd"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = exec(&sup, &["-u", "late", "ex2", "id", "-u"]);
    assert_eq!((code, out.as_str()), (0, "777\n"));
    sup.ok(&["rm", "-f", "ex2"]);
}

#[test]
fn exec_joins_the_containers_namespaces_cgroup_and_security() {
    let sup = Supervisor::start();
    let init = start(&sup, "ex3", &[], "470003");
    let command = pid_of("/bin/sleep 470003").expect("the container's command");
    // An exec that stays, to be looked at from the host.
    let cli = sup
        .cmd(&["exec", "ex3", "/bin/sleep", "470103"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut inside = None;
    wait_until(Duration::from_secs(10), || {
        inside = pid_of("/bin/sleep 470103");
        inside.is_some()
    });
    let inside = inside.unwrap();
    for ns in ["ipc", "mnt", "net", "pid", "uts", "cgroup", "user"] {
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/{inside}/ns/{ns}")).unwrap();
        assert_eq!(ours, theirs, "{ns} namespace");
    }
    let cgroup = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup(inside), cgroup(command));
    for field in ["Seccomp:", "CapEff:", "CapBnd:", "CapPrm:", "NoNewPrivs:"] {
        assert_eq!(status_field(inside, field), status_field(command, field));
    }
    assert_eq!(status_field(inside, "Seccomp:"), "Seccomp:\t2");
    let root = |pid: i32| std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root(inside), root(command));
    // Its pid inside the container's pid namespace is small, and a signal's code comes back.
    let nspid = status_field(inside, "NSpid:");
    assert!(nspid.split_whitespace().count() == 3, "{nspid}");
    unsafe { libc::kill(inside, libc::SIGTERM) };
    let out = cli.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", describe(&out));
    wait_until(Duration::from_secs(5), || zombie_children(sup.pid()).is_empty());
    sup.ok(&["rm", "-f", "ex3"]);
}

#[test]
fn exec_into_an_unknown_or_stopped_container_or_as_an_unknown_user_is_one_line_125() {
    let sup = Supervisor::start();
    let one_line_125 = |args: &[&str], needle: &str| {
        let (code, out, err) = exec(&sup, args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    one_line_125(&["nope", "true"], "no such container: nope");
    start(&sup, "ex4", &[], "470004");
    one_line_125(&["-u", "nosuchuser", "ex4", "true"], "nosuchuser");
    one_line_125(&["-w", "relative", "ex4", "true"], "relative");
    sup.ok(&["stop", "-t", "0", "ex4"]);
    one_line_125(&["ex4", "true"], "ex4 is not running");
    wait_until(Duration::from_secs(5), || zombie_children(sup.pid()).is_empty());
    sup.ok(&["rm", "ex4"]);
    // The CLI needs a command.
    let out = sup.engine(&["exec", "ex4"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("required arguments were not provided"), "not about the missing command: {err}");
}

#[test]
fn top_lists_the_containers_processes_exec_ones_included() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let script = "sleep 470007 & sleep 470008";
    sup.ok(&["start", "--net", "none", "ex5", rootfs.to_str().unwrap(), "/bin/sh", "-c", script]);
    let init = sup.state("ex5")["pid"].as_i64().unwrap() as i32;
    let cli = sup.cmd(&["exec", "ex5", "/bin/sleep", "470009"]).stdout(Stdio::null()).spawn().unwrap();
    let mut execd = None;
    wait_until(Duration::from_secs(10), || {
        execd = pid_of("/bin/sleep 470009");
        execd.is_some() && pid_of("sleep 470007").is_some()
    });
    let top = sup.ok(&["top", "ex5"]);
    let header: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["UID", "PID", "PPID", "TIME", "CMD"]);
    let pids: Vec<i32> = top.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap()).collect();
    for (what, pid) in [("init", Some(init)), ("sleep", pid_of("sleep 470007")), ("exec", execd)] {
        assert!(pids.contains(&pid.unwrap()), "{what} missing from top: {top}");
    }
    assert!(top.contains("/bin/sleep 470009") && top.contains("sleep 470008"), "{top}");
    assert_eq!(pids.len(), 4, "{top}");
    unsafe { libc::kill(execd.unwrap(), libc::SIGKILL) };
    let out = cli.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
    sup.ok(&["stop", "-t", "0", "ex5"]);
    let out = sup.engine(&["top", "ex5"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "{}", describe(&out));
    sup.ok(&["rm", "ex5"]);
}

/// The container's environment (a secret passed with -e) never shows in a host process's
/// command line, which every user of the host can read: the helper's plan travels on a pipe.
#[test]
fn the_exec_helper_keeps_the_environment_off_its_command_line() {
    let sup = Supervisor::start();
    start(&sup, "ex-secret", &["-e", "TOKEN=hunter2-secret"], "1001");
    let mut cmd = Command::new(ENGINE);
    cmd.arg("--socket").arg(&sup.socket).args(["exec", "ex-secret", "/bin/sleep", "2"]).stdin(Stdio::null());
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut helper_seen = false;
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(c) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let c = String::from_utf8_lossy(&c);
            if c.starts_with("engine-exec") {
                helper_seen = true;
                assert!(!c.contains("hunter2-secret"), "the secret is on a command line: {c:?}");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(helper_seen, "no engine-exec helper was seen while the exec ran");
    sup.ok(&["stop", "-t", "0", "ex-secret"]);
}

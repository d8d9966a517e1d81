//! What the start-up path does for speed (issue 14), checked for what it must keep.
mod common;

use common::*;

/// The super options of the container's root mount, from its own mountinfo.
fn root_mount_options(mountinfo: &str) -> String {
    mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(" - ").nth(1))
        .unwrap_or_else(|| panic!("no root mount in {mountinfo}"))
        .to_string()
}

#[test]
fn a_run_rm_layer_is_mounted_volatile_and_a_kept_one_is_not() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let cat = ["/bin/cat", "/proc/self/mountinfo"];
    let (code, out, err) = sup.run_with(&["--rm"], "throwaway", &rootfs, &cat);
    assert_eq!(code, 0, "{err}");
    let options = root_mount_options(&out);
    assert!(options.starts_with("overlay "), "{options}");
    // No sync of the whole upper filesystem when a layer that is deleted anyway is unmounted.
    // Shown as `volatile` or, by newer kernels, `fsync=volatile`.
    let volatile = |options: &str| options.split(',').any(|o| o == "volatile" || o == "fsync=volatile");
    assert!(volatile(&options), "run --rm root not volatile: {options}");
    assert!(!sup.root.join("overlay/throwaway").exists(), "the --rm layer was not removed");

    // A kept layer keeps its syncs (an fsync inside the container reaches the disk).
    let (code, out, err) = sup.run_with(&[], "kept", &rootfs, &cat);
    assert_eq!(code, 0, "{err}");
    let options = root_mount_options(&out);
    assert!(options.starts_with("overlay "), "{options}");
    assert!(!volatile(&options), "a kept root is volatile: {options}");
    assert!(sup.root.join("overlay/kept/upper").is_dir());
    sup.ok(&["rm", "kept"]);
}

/// The thread of `pid` named `name` (from /proc/PID/task/*/comm).
fn thread_named(pid: i32, name: &str) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| t.file_name().to_str()?.parse().ok())?
    })
}

#[test]
fn records_are_fsynced_by_the_record_syncer_not_on_the_start_or_exit_path() {
    let sup = Supervisor::start();
    // None (-1): every fsync is on the path of the request that made it.
    let syncer = thread_named(sup.pid(), "record-sync").unwrap_or(-1);
    let rootfs = rootfs();
    let text = strace_supervisor(&sup, "fsync,fdatasync,syncfs,sync_file_range", |trace| {
        let (code, _, err) = sup.run_with(&["--rm"], "gone", &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = sup.run_with(&[], "kept", &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
        // The syncer's round comes a few milliseconds after the last save (without a syncer,
        // the assertions below say what was synced where).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        // Both of its fsyncs, the record's and then the directory's, before strace is stopped.
        let done = |t: &str| t.contains("/containers/kept.json>") && t.contains("/containers>");
        while !done(&std::fs::read_to_string(trace).unwrap_or_default()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let synced: Vec<&str> = text.iter().map(String::as_str).filter(|l| l.contains("sync")).collect();
    let elsewhere: Vec<&&str> = synced.iter().filter(|l| !l.starts_with(&format!("{syncer} "))).collect();
    assert!(elsewhere.is_empty(), "fsync on the path of run (not the record syncer's, {syncer}): {elsewhere:#?}");
    assert!(
        synced.iter().any(|l| l.contains("/containers/kept.json>")),
        "the kept record was never fsync'd: {synced:#?}"
    );
    assert!(synced.iter().any(|l| l.contains("/containers>")), "the records directory was never fsync'd: {synced:#?}");
    sup.ok(&["rm", "kept"]);
}

/// Runs strace on the supervisor's threads and its processes (the spawner, when it has one), and
/// what they make from then on (`-e trace=<what>`, fds shown with their paths), while `during`
/// runs (given the trace file, to wait for a line); the trace's lines.
fn strace_supervisor(sup: &Supervisor, what: &str, during: impl FnOnce(&std::path::Path)) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace");
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", sup.pid())).unwrap();
    let mut pids = vec![sup.pid().to_string()];
    pids.extend(children.split_whitespace().map(str::to_string));
    let mut strace = common::KillOnDrop(
        std::process::Command::new("strace")
            .args(["-f", "-y", "-e", &format!("trace={what}"), "-o"])
            .arg(&trace)
            .args(pids.iter().flat_map(|p| ["-p", p.as_str()]))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("strace (a test tool) is needed for this test"),
    );
    let mut stderr = std::io::BufReader::new(strace.0.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    // strace says it attached on stderr once every thread is traced.
    assert!(line.contains("attached"), "strace: {line}");
    during(&trace);
    drop(strace);
    join_interrupted_calls(&std::fs::read_to_string(&trace).unwrap())
}

/// strace -f splits a call that another thread's line interrupted into `PID call(args <unfinished
/// ...>` and, later, `PID <... call resumed>rest`: each such pair is joined into the one line the
/// call would have had (at the place of its end), so a test can match a call with its result.
fn join_interrupted_calls(trace: &str) -> Vec<String> {
    let mut started: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut lines = Vec::new();
    for line in trace.lines() {
        let pid = line.split_whitespace().next().unwrap_or("");
        if let Some(head) = line.strip_suffix(" <unfinished ...>") {
            started.insert(pid, head);
        } else if let Some((_, rest)) = line.split_once(" resumed>").filter(|_| line.contains(" <... ")) {
            match started.remove(pid) {
                // strace pads the resumed result ("<... x resumed>)      = 0"); the joined line
                // has it as an uninterrupted call's (") = 0").
                Some(head) => match rest.strip_prefix(')') {
                    Some(result) => lines.push(format!("{head}) {}", result.trim_start())),
                    None => lines.push(format!("{head}{rest}")),
                },
                None => lines.push(line.to_string()),
            }
        } else {
            lines.push(line.to_string());
        }
    }
    lines.extend(started.into_values().map(str::to_string));
    lines
}

/// The split CI once saw: a rename interrupted by another thread's openat.
#[test]
fn an_interrupted_call_in_the_trace_is_matched_with_its_result() {
    let trace =
        "29764 renameat2(AT_FDCWD, \"/r/fresh/10\", AT_FDCWD, \"/r/c/.x.spare\", RENAME_NOREPLACE <unfinished ...>\n\
                 29765 openat(AT_FDCWD, \"/t\", O_WRONLY) = 4\n\
                 29764 <... renameat2 resumed>)          = 0\n";
    let lines = join_interrupted_calls(trace);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].starts_with("29764 renameat2(") && lines[1].ends_with("RENAME_NOREPLACE) = 0"), "{lines:#?}");
}

#[test]
fn inits_are_cloned_without_an_exec_and_show_nothing_of_the_supervisor() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let execs = strace_supervisor(&sup, "execve", |_| {
        let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], "once", &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
    });
    let execs: Vec<&String> = execs.iter().filter(|l| l.contains("execve(")).collect();
    // The command's exec only: no re-exec of the engine binary as the init.
    assert!(!execs.is_empty(), "the trace saw no exec at all");
    assert!(execs.iter().all(|l| l.contains("\"/bin/true\"")), "an exec other than the command's: {execs:#?}");

    // What a container can read of its init: nothing of the supervisor's command line, environment
    // or open files. (The test's environment, which the supervisor inherited, names the rootfs.)
    let supervisor_env = std::fs::read(format!("/proc/{}/environ", sup.pid())).unwrap();
    assert!(String::from_utf8_lossy(&supervisor_env).contains("ENGINE_TEST_ROOTFS"));
    sup.ok(&["start", "--net", "none", "idle", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
    let pid = sup.state("idle")["pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.iter().all(|&b| b == 0), "the init shows an environment: {:?}", String::from_utf8_lossy(&environ));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&[u8]> = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).collect();
    assert_eq!(argv, [b"engine-init".as_slice()], "{:?}", String::from_utf8_lossy(&cmdline));
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    assert_eq!(fds, [0, 1, 2, 3], "the init holds more than stdio and its channel");
    // Still the supervisor's child: reaped and signalled by it.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains(&format!("\nPPid:\t{}\n", sup.pid())), "{status}");
    sup.ok(&["rm", "-f", "idle"]);
}

/// The supervisor's engine-spawner child.
fn spawner_of(sup: &Supervisor) -> i32 {
    child_named(sup.pid(), "engine-spawner")
}

/// The one child of `parent` whose comm is `comm`.
fn child_named(parent: i32, comm: &str) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap();
    let named: Vec<i32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm))
        .collect();
    assert_eq!(named.len(), 1, "no single {comm} child of {parent}: {children}");
    named[0]
}

fn gone_or_zombie(pid: i32) -> bool {
    !process_exists(pid) || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

#[test]
fn the_spawner_dies_with_its_supervisor() {
    let mut sup = Supervisor::start();
    let spawner = spawner_of(&sup);
    let maker = child_named(spawner, "engine-netns");
    sup.signal_and_wait(libc::SIGKILL);
    wait_until(std::time::Duration::from_secs(5), || gone_or_zombie(spawner) && gone_or_zombie(maker));
}

/// A maker that goes (killed here) is reaped by the spawner, which lives on without it: each
/// clone then makes its own namespace, and starts go on.
#[test]
fn a_maker_that_dies_is_reaped_and_starts_go_on_without_it() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let spawner = spawner_of(&sup);
    let maker = child_named(spawner, "engine-netns");
    sup.run_with(&["--rm", "--net", "none"], "before", &rootfs, &["/bin/true"]);
    // SAFETY: a signal to a process of the supervisor under test.
    unsafe { libc::kill(maker, libc::SIGKILL) };
    for name in ["after1", "after2", "after3"] {
        let (code, out, err) = sup.run_with(&["--rm", "--net", "none"], name, &rootfs, &["/bin/echo", name]);
        assert_eq!((code, out.trim()), (0, name), "{err}");
    }
    wait_until(std::time::Duration::from_secs(5), || !process_exists(maker));
    assert!(!process_exists(maker), "the maker {maker} was left a zombie of the spawner");
    assert!(process_exists(spawner) && !gone_or_zombie(spawner), "the spawner went with its maker");
}

/// Issue 14: the next init's network namespace is made by a process of its own (`engine-netns`,
/// the spawner's child), never by the spawner: the spawner serves one request at a time, and
/// the next start's request waited for its `unshare` (0.4-2.6 ms in the step trace of
/// back-to-back runs). The maker holds nothing of the spawner's but its socket and the host's
/// namespace (the spawner's request socket above all).
#[test]
fn network_namespaces_are_made_by_a_process_of_their_own_not_the_spawner() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let spawner = spawner_of(&sup);
    let maker = child_named(spawner, "engine-netns");
    let host = namespace_of(std::process::id() as i32, "net").unwrap();
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{maker}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).is_some_and(|n| n > 2))
        .filter_map(|fd| std::fs::read_link(fd.path()).ok()?.to_str().map(str::to_string))
        .collect();
    assert_eq!(held.len(), 2, "the maker holds {held:?}");
    assert!(held.contains(&host) && held.iter().any(|l| l.starts_with("socket:[")), "the maker holds {held:?}");
    sup.run_with(&["--rm", "--net", "none"], "warm", &rootfs, &["/bin/true"]);
    wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    let trace = strace_supervisor(&sup, "unshare,clone,clone3", |_| {
        for name in ["ns1", "ns2", "ns3"] {
            let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], name, &rootfs, &["/bin/true"]);
            assert_eq!(code, 0, "{err}");
            // The work ahead after each answer: the next init cloned, the next namespace asked for.
            wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    let spawner_lines: Vec<&String> = trace.iter().filter(|l| l.starts_with(&format!("{spawner} "))).collect();
    assert!(spawner_lines.iter().any(|l| l.contains("clone(")), "the spawner cloned no init while traced: {trace:#?}");
    let unshared: Vec<_> = spawner_lines.iter().filter(|l| l.contains("unshare(")).collect();
    assert!(unshared.is_empty(), "the spawner made namespaces itself: {unshared:#?}");
    // Each init is still born in a namespace made ahead (not by its clone): see
    // `each_init_is_born_in_a_network_namespace_the_spawner_made_ahead_for_it_alone`.
    let cloned_new_net: Vec<_> = spawner_lines.iter().filter(|l| l.contains("CLONE_NEWNET")).collect();
    assert!(cloned_new_net.is_empty(), "an init's clone made its network namespace: {cloned_new_net:#?}");
}

/// The network namespaces a process holds open (not the one it is in), as `net:[INODE]`.
fn network_namespaces_held_by(pid: i32) -> Vec<String> {
    let mut held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok()?.to_str().map(str::to_string))
        .filter(|link| link.starts_with("net:["))
        .filter(|link| Some(link.as_str()) != namespace_of(pid, "net").as_deref())
        .collect();
    held.sort();
    held
}

fn namespace_of(pid: i32, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?.to_str().map(str::to_string)
}

/// Issue 14: an init's new network namespace is made by the spawner ahead of the request (most
/// of the clone's cost), and the init is cloned inside it: one the spawner made for it alone,
/// never the host's nor another container's, with lo up and nothing else. After the first start
/// the init itself is cloned ahead, into the namespace then held (see the test below): the start
/// gets that init, in that namespace.
#[test]
fn each_init_is_born_in_a_network_namespace_the_spawner_made_ahead_for_it_alone() {
    let sup = Supervisor::start();
    let spawner = spawner_of(&sup);
    let host = namespace_of(std::process::id() as i32, "net").unwrap();
    assert_eq!(namespace_of(spawner, "net").as_deref(), Some(host.as_str()), "the spawner left the host's namespace");
    let rootfs = rootfs();
    let mut seen = vec![host.clone()];
    for name in ["ahead1", "ahead2", "ahead3"] {
        let mut held = Vec::new();
        let first = name == "ahead1";
        wait_until(std::time::Duration::from_secs(5), || {
            held = network_namespaces_held_by(spawner);
            held.len() == 1 && (first || idle_inits(&sup).len() == 1)
        });
        assert!(!seen.contains(&held[0]), "the spawner holds a namespace already used: {held:?} (seen {seen:?})");
        // The namespace of the init cloned ahead, made ahead before it (the spawner holds the next).
        let expected = match first {
            true => held[0].clone(),
            false => namespace_of(idle_inits(&sup)[0], "net").unwrap(),
        };
        assert!(
            !seen.contains(&expected) && (first || expected != held[0]),
            "{expected} (held {held:?}, seen {seen:?})"
        );
        sup.ok(&["start", "--net", "none", name, rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
        let pid = sup.state(name)["pid"].as_i64().unwrap() as i32;
        let theirs = namespace_of(pid, "net").unwrap();
        assert_eq!(theirs, expected, "{name} was not born in the namespace made ahead for it");
        // It steps into the next namespace only while making it (a few ms after a request).
        wait_until(std::time::Duration::from_secs(5), || {
            namespace_of(spawner, "net").as_deref() == Some(host.as_str())
        });
        seen.push(theirs);
        let links = sup.ok(&["exec", name, "/bin/cat", "/proc/net/dev"]);
        let devices: Vec<&str> = links.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
        assert_eq!(devices, ["lo"], "{name}: {links}");
        // lo is up, as the init leaves a namespace it makes.
        sup.ok(&["exec", name, "/bin/ping", "-c", "1", "-W", "1", "127.0.0.1"]);
    }
    for name in ["ahead1", "ahead2", "ahead3"] {
        sup.ok(&["rm", "-f", name]);
    }
}

#[test]
fn a_run_rm_record_is_never_fsynced_and_its_written_layer_is_deleted_through_the_trash() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let text = strace_supervisor(&sup, "fsync,fdatasync,syncfs,sync_file_range,rename", |trace| {
        // It writes to its root: its layer is not one to reuse.
        let (code, _, err) = sup.run_with(&["--rm"], "gone", &rootfs, &["/bin/touch", "/written"]);
        assert_eq!(code, 0, "{err}");
        // Later than the record syncer's round would come (a few ms after the last save).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = trace;
    });
    let synced: Vec<&String> = text.iter().filter(|l| l.contains("sync") && l.contains("gone.json")).collect();
    assert!(synced.is_empty(), "the record of a --rm container was fsync'd: {synced:#?}");
    // Renamed out of overlay/ into trash/ before the answer, deleted there by the trash thread.
    assert!(
        text.iter().any(|l| l.contains("rename(") && l.contains("/trash/gone.")),
        "no rename to the trash: {text:#?}"
    );
    assert!(!sup.root.join("overlay/gone").exists(), "the --rm layer was not removed");
    wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_dir(sup.root.join("trash")).is_ok_and(|mut d| d.next().is_none())
    });
    // The name is free at once.
    let (code, _, err) = sup.run_with(&["--rm"], "gone", &rootfs, &["/bin/true"]);
    assert_eq!(code, 0, "{err}");
}

/// A `run --rm` that wrote no file leaves its layer in the trash for the next spare overlay,
/// which gets it with its root as new: a container that changed its root's mode does not pass
/// that on (nor its root's times or extended attributes: see overlay_ahead's unit tests).
#[test]
fn an_unwritten_run_rm_layer_is_reused_with_its_root_as_new() {
    use std::os::unix::fs::MetadataExt;
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let want = format!("{:o}", std::fs::metadata(&rootfs).unwrap().mode() & 0o7777);
    assert_ne!(want, "700");
    let (code, _, err) = sup.run_with(&["--rm"], "a", &rootfs, &["/bin/chmod", "0700", "/"]);
    assert_eq!(code, 0, "{err}");
    // Kept, not deleted.
    let mut kept = None;
    wait_until(std::time::Duration::from_secs(5), || {
        kept = std::fs::read_dir(sup.root.join("trash")).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        kept.is_some()
    });
    let kept = kept.unwrap().path();
    let ino = std::fs::metadata(&kept).unwrap().ino();
    assert_eq!(std::fs::metadata(kept.join("upper")).unwrap().mode() & 0o7777, 0o700);
    // Later `run --rm`s (the same layers, so the same spares): one gets it, and sees its root
    // as the rootfs has it. Each runs a moment, for its layer's directory to be looked at.
    let mut reused = Vec::new();
    for i in 0..8 {
        let name = format!("b{i}");
        let child = sup
            .cmd(&["run", "--rm", &name, rootfs.to_str().unwrap(), "/bin/sh", "-c", "stat -c %a /; sleep 0.3"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let layer = sup.root.join("overlay").join(&name);
        let mut seen = None;
        wait_until(std::time::Duration::from_secs(5), || {
            seen = std::fs::metadata(&layer).ok().map(|m| m.ino());
            seen.is_some()
        });
        if seen == Some(ino) {
            reused.push(name.clone());
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", describe(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "{name} saw its root's mode as the last container left it"
        );
        if !reused.is_empty() {
            break;
        }
    }
    assert_eq!(reused.len(), 1, "the ended layer was not reused exactly once: {reused:?}");
    // Where layers are made, their directories are spread over the filesystem.
    for dir in ["overlay", "ahead"] {
        assert!(engine::sys::spreads_subdirs(&sup.root.join(dir)).unwrap(), "{dir} is not chattr +T");
    }
}

/// `engine rm` hands its layer to the trash too (off its answer's path): an unwritten one is kept
/// there for the next spare, a written one deleted by the trash thread.
#[test]
fn an_rm_leaves_its_layer_to_the_trash() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    for (name, cmd) in [("clean", "/bin/true"), ("written", "/bin/touch /written")] {
        let mut args = vec!["start", "--net", "none", name, rootfs.to_str().unwrap()];
        args.extend(cmd.split(' '));
        sup.ok(&args);
        assert_eq!(sup.wait_exit(name), 0);
    }
    let trash = |prefix: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(sup.root.join("trash"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect()
    };
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(sup.root.join("overlay/clean")).unwrap().ino();
    sup.ok(&["rm", "clean"]);
    assert!(!sup.root.join("overlay/clean").exists());
    // Kept in the trash, or already made a spare in ahead/ (its thread may have run since).
    let kept: Vec<_> = ["trash", "ahead"]
        .iter()
        .flat_map(|d| std::fs::read_dir(sup.root.join(d)).into_iter().flatten().flatten())
        .filter(|e| e.metadata().is_ok_and(|m| m.ino() == ino))
        .collect();
    assert_eq!(kept.len(), 1, "the unwritten layer was deleted, not kept");
    sup.ok(&["rm", "written"]);
    assert!(!sup.root.join("overlay/written").exists());
    wait_until(std::time::Duration::from_secs(5), || trash("written.").is_empty());
}

#[test]
fn a_trash_left_by_a_dead_supervisor_is_emptied_at_the_next_start() {
    let mut sup = Supervisor::start();
    sup.signal_and_wait(libc::SIGKILL);
    let left = sup.root.join("trash/gone.123/upper/etc");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("written"), "x").unwrap();
    sup.spawn();
    assert!(!sup.root.join("trash").exists(), "the trash was not emptied at start");
}

/// The step trace (ENGINE_STEP_TRACE) of a supervisor that ran `run --rm --net none NAME
/// /bin/true` for each of `names` in turn, once the last run's last step is written (after its
/// answer is on its way: the client can be faster).
fn step_trace_of_runs(names: &[&str]) -> String {
    let mut sup = Supervisor::start();
    sup.signal_and_wait(libc::SIGTERM);
    let trace = sup.dir.path().join("steps");
    sup.spawn_with_env(&[], &[("ENGINE_STEP_TRACE", trace.as_os_str())], std::process::Stdio::inherit());
    for name in names {
        let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], name, &rootfs(), &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
    }
    let last = format!("{} +", names.last().expect("a run"));
    let mut text = String::new();
    wait_until(std::time::Duration::from_secs(5), || {
        text = std::fs::read_to_string(&trace).unwrap();
        text.lines().any(|l| l.starts_with(&last) && l.contains("response sent"))
    });
    text
}

/// When `step` of the run `name` came, in µs since its request: its line is `NAME +MICROSECONDS
/// STEP [PID]`.
fn step_at(text: &str, name: &str, step: &str) -> u64 {
    let head = format!("{name} +");
    let named = |l: &&str| l.ends_with(&format!(" {step}")) || l.contains(&format!(" {step} "));
    let line = text.lines().find(|l| l.starts_with(&head) && named(l));
    let line = line.unwrap_or_else(|| panic!("no {step:?} step in {text}"));
    line[head.len()..].split(' ').next().and_then(|n| n.parse().ok()).expect(line)
}

#[test]
fn the_step_trace_times_every_step_of_a_run_when_asked_for() {
    let text = step_trace_of_runs(&["timed"]);
    // The init's steps among the supervisor's, in time order.
    let mut last = 0u64;
    for step in ["request parsed", "init: Setup received", "init: root built", "Started received", "response sent"] {
        let us = step_at(&text, "timed", step);
        assert!(us >= last, "{step} at {us} µs, before the step ahead of it: {text}");
        last = us;
    }
}

/// Issue 14: the Setup (the container's Plan as JSON, ~5 KB) is encoded while the spawner hands
/// over the init, once the container's groups are made (they are in it): the request thread used
/// to wait for the spawner's answer idle, then encode (~50-90 µs on the path, step trace).
#[test]
fn the_setup_is_encoded_while_the_spawner_hands_over_the_init() {
    let text = step_trace_of_runs(&["first", "second"]);
    let at = |step| step_at(&text, "second", step);
    let (encoded, cloned, sent) = (at("P Setup encoded"), at("init cloned"), at("Setup sent"));
    assert!(encoded <= cloned && cloned <= sent, "encoded {encoded}, init cloned {cloned}, Setup sent {sent}: {text}");
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: i64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or("0 kB");
    line.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)
}

/// The kernel monitor sums the RSS of every process of a container, the init's too, against its
/// limits: once the command runs, the init keeps little of the engine binary mapped (it held
/// ~4.9 MB of its code, and a 6 MiB hard limit was once met by the init alone).
#[test]
fn a_running_init_keeps_little_of_the_engine_binary_in_its_rss() {
    let sup = Supervisor::start();
    sup.start_container("lean", &["/bin/sleep", "60"]);
    let pid = sup.state("lean")["pid"].as_i64().unwrap();
    let rss = || rss_kib(pid);
    wait_until(std::time::Duration::from_secs(5), || rss() < 1536);
    assert!(rss() < 1536, "the init's RSS is {} KiB", rss());
    sup.ok(&["rm", "-f", "lean"]);
}

/// Mount namespaces the supervisor holds open: their `mnt:[inode]` links.
fn held_mount_namespaces(sup: &Supervisor) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", sup.pid())).unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("mnt:["))
        .collect()
}

/// The supervisor holds a running container's mount namespace, so the unmounting of its root
/// happens when the supervisor lets go after the container is settled, not in the init's exit
/// that `run`, `wait` and `stop` wait for; and it lets go of it when the container ends.
#[test]
fn the_supervisor_holds_a_containers_mount_namespace_until_it_has_ended() {
    let sup = Supervisor::start();
    sup.start_container("held", &["/bin/sleep", "60"]);
    let pid = sup.state("held")["pid"].as_i64().unwrap();
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap().to_string_lossy().into_owned();
    assert_eq!(held_mount_namespaces(&sup), vec![ns]);
    sup.ok(&["stop", "-t", "0", "held"]);
    wait_until(std::time::Duration::from_secs(5), || held_mount_namespaces(&sup).is_empty());
    assert_eq!(held_mount_namespaces(&sup), Vec::<String>::new());
    let (code, out, _) = sup.run("brief", &["/bin/echo", "hi"]);
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    wait_until(std::time::Duration::from_secs(5), || held_mount_namespaces(&sup).is_empty());
    assert_eq!(held_mount_namespaces(&sup), Vec::<String>::new());
}

/// Issue 14: a lookup in the host's /proc/sys walks one entry per network namespace looked into
/// before, so a bridged start never looks into its container's: eth0 is born with IPv6 off in the
/// namespace the spawner made (its conf/default), as the network wants it (IPv4 only).
#[test]
fn a_bridged_eth0_is_born_without_ipv6_and_no_lookup_in_the_hosts_proc_sys_finds_it() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let opened = strace_supervisor(&sup, "openat", |_| {
        sup.ok(&["start", "web6", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
    });
    let looked: Vec<&String> = opened.iter().filter(|l| l.contains("/proc/sys/net/ipv6/conf/eth0")).collect();
    assert!(looked.is_empty(), "the supervisor looked up eth0 in /proc/sys: {looked:#?}");
    let off = sup.ok(&["exec", "web6", "/bin/cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]);
    assert_eq!(off.trim(), "1", "eth0 has IPv6 on");
    // lo keeps ::1 (only links made after the namespace are born without IPv6).
    let lo = sup.ok(&["exec", "web6", "/bin/cat", "/proc/net/if_inet6"]);
    assert!(lo.lines().any(|l| l.starts_with("00000000000000000000000000000001 ") && l.ends_with(" lo")), "{lo}");
    sup.ok(&["rm", "-f", "web6"]);
}

/// The spare layers under `<root>/ahead/` (see `supervisor::overlay_ahead`), counting only those
/// whose overlay is mounted (it made `work/work`) and then giving the thread 200 ms to keep it: a
/// directory appears before its spare is ready.
fn spares(sup: &Supervisor) -> Vec<String> {
    let dir = sup.root.join("ahead");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| dir.join(n).join("work/work").is_dir());
    names.sort();
    if !names.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    names
}

#[test]
fn a_start_over_the_same_layers_gets_the_overlay_mounted_ahead_and_a_replaced_rootfs_is_never_served_stale() {
    let mut sup = Supervisor::start();
    // A rootfs of the test's own, to replace under the supervisor.
    let rootfs = sup.dir.path().join("rootfs");
    let copied = std::process::Command::new("cp").arg("-a").arg(common::rootfs()).arg(&rootfs).status().unwrap();
    assert!(copied.success());
    let cat = ["/bin/cat", "/proc/self/mountinfo"];
    let (code, out, err) = sup.run_with(&["--net", "none"], "first", &rootfs, &cat);
    assert_eq!(code, 0, "{err}");
    assert!(root_mount_options(&out).contains(&format!("upperdir={}/overlay/first/upper", sup.root.display())));
    sup.ok(&["rm", "first"]);
    // After that start, a spare over the same layer is made (on an idle CPU).
    wait_until(std::time::Duration::from_secs(10), || !spares(&sup).is_empty());
    let spare = spares(&sup).remove(0);

    // The next start over that layer runs on the spare: its root is the overlay mounted ahead
    // over the spare's directories, which are now the container's own.
    let (code, out, err) = sup.run_with(
        &["--net", "none"],
        "second",
        &rootfs,
        &["/bin/sh", "-c", "echo hi > /new; cat /proc/self/mountinfo"],
    );
    assert_eq!(code, 0, "{err}");
    let options = root_mount_options(&out);
    assert!(options.contains(&format!("upperdir={}/ahead/{spare}/upper", sup.root.display())), "{options}");
    assert!(!options.split(',').any(|o| o.ends_with("volatile")), "a kept layer got a --rm spare: {options}");
    assert!(!spares(&sup).contains(&spare), "the spare was not taken");
    assert_eq!(std::fs::read_to_string(sup.root.join("overlay/second/upper/new")).unwrap(), "hi\n");
    sup.ok(&["rm", "second"]);

    // The rootfs is replaced by another directory: the spare made over the old one is dropped,
    // and the container sees the new one.
    wait_until(std::time::Duration::from_secs(10), || !spares(&sup).is_empty());
    let old = sup.dir.path().join("rootfs.old");
    std::fs::rename(&rootfs, &old).unwrap();
    let copied = std::process::Command::new("cp").arg("-a").arg(&old).arg(&rootfs).status().unwrap();
    assert!(copied.success());
    std::fs::write(rootfs.join("marker"), "the new rootfs\n").unwrap();
    let (code, out, err) = sup.run_with(&["--net", "none"], "third", &rootfs, &["/bin/cat", "/marker"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "the new rootfs\n");
    sup.ok(&["rm", "third"]);

    // A supervisor that stops leaves no spare behind.
    wait_until(std::time::Duration::from_secs(10), || !spares(&sup).is_empty());
    assert!(sup.signal_and_wait(libc::SIGTERM).success());
    let left: Vec<_> =
        std::fs::read_dir(sup.root.join("ahead")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert_eq!(left, Vec::<std::path::PathBuf>::new(), "spares left after the supervisor stopped");
}

/// Back-to-back starts over the same layers (`make bench`'s runs) found the one spare still being
/// made half the time, and mounted their own beside it: two are kept per set of layers.
#[test]
fn two_spares_are_kept_for_the_layers_of_the_last_start() {
    let sup = Supervisor::start();
    let rootfs = common::rootfs();
    for name in ["s1", "s2"] {
        let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], name, &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            seen = spares(&sup);
        }
        assert_eq!(seen.len(), 2, "after {name}, spares: {seen:?}");
    }
}

/// Whether the trace renamed one of `<root>/fresh/` (RENAME_NOREPLACE) to a path with `target`.
fn placed_from_fresh(text: &[String], target: &str) -> bool {
    text.iter().any(|l| {
        l.contains("renameat2(") && l.contains("/fresh/") && l.contains(target) && l.contains("RENAME_NOREPLACE) = 0")
    })
}

#[test]
fn a_start_takes_its_record_and_log_files_from_those_made_ahead_and_none_outlive_the_supervisor() {
    let mut sup = Supervisor::start();
    let rootfs = rootfs();
    let fresh = sup.root.join("fresh");
    let ready = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    wait_until(std::time::Duration::from_secs(10), || ready(&fresh) > 0);
    // The files a start creates (its record, the record's spare, its log) are renamed from
    // <root>/fresh/ (RENAME_NOREPLACE): no inode is made for them on the start's path.
    let text = strace_supervisor(&sup, "openat,rename,renameat2", |_| {
        let (code, out, err) = sup.run_with(&["--net", "none"], "placed", &rootfs, &["/bin/echo", "logged"]);
        assert_eq!((code, out.as_str()), (0, "logged\n"), "{err}");
    });
    for target in ["/logs/placed.log", "/containers/.placed.json.spare"] {
        assert!(placed_from_fresh(&text, target), "{target} was not taken from the fresh files: {text:#?}");
    }
    // They are the container's own files as before: the log holds its output, the record its end.
    assert!(sup.ok(&["logs", "placed"]).contains("logged"));
    assert_eq!(sup.status("placed"), "exited");
    sup.ok(&["rm", "placed"]);
    // A bridged start's lease too (the lease directory's file names its address and container).
    let text = strace_supervisor(&sup, "openat,rename,renameat2", |_| {
        sup.ok(&["start", "leased", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
    });
    assert!(placed_from_fresh(&text, "@leased@"), "the lease was not taken from the fresh files: {text:#?}");
    sup.ok(&["rm", "-f", "leased"]);
    let leases = std::fs::read_dir(sup.root.join("net/leases.d")).unwrap().count();
    assert_eq!(leases, 0, "the lease outlived its container");
    // A stopped supervisor leaves none; a dead one's are deleted by the next.
    assert!(sup.signal_and_wait(libc::SIGTERM).success());
    assert_eq!(ready(&fresh), 0, "fresh files left after the supervisor stopped");
    std::fs::write(fresh.join("left-by-a-crash"), "").unwrap();
    sup.spawn();
    assert!(!fresh.join("left-by-a-crash").exists(), "a dead supervisor's fresh file was kept");
}

/// The groups made ahead under the test supervisor's cgroup parent in `ctrl`'s hierarchy:
/// name → inode (a rename keeps a group's inode).
fn cgroups_ahead(sup: &Supervisor, ctrl: &str) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(ctrl).join(&sup.cgroup_parent);
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".ahead-"))
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().ino()))
                .collect()
        })
        .unwrap_or_default()
}

/// cgroup v1 (this host): a start renames a group made ahead to its name, with the device rules
/// every container gets and its own limits; none outlives the supervisor.
#[test]
fn a_start_takes_a_cgroup_made_ahead_with_the_default_device_rules_and_its_own_limits() {
    if engine::cgroup::Cgroup::detect().unwrap() != engine::cgroup::Version::V1 {
        panic!("this test needs cgroup v1 (v2 makes every group on the start's path: see cgroup::ahead)");
    }
    let mut sup = Supervisor::start();
    // The pool full (four) and idle: a group counted here is ready, none is being made.
    wait_until(std::time::Duration::from_secs(10), || cgroups_ahead(&sup, "pids").len() == 4);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before: Vec<u64> = cgroups_ahead(&sup, "memory").into_values().collect();
    assert!(!before.is_empty(), "no cgroup was made ahead");
    sup.ok(&["start", "--net", "none", "--pids-limit", "7", "grouped", rootfs().to_str().unwrap(), "/bin/sleep", "60"]);
    let group = |ctrl: &str| std::path::Path::new("/sys/fs/cgroup").join(ctrl).join(&sup.cgroup_parent).join("grouped");
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(group("memory")).unwrap());
    assert!(before.contains(&ino), "the container's memory group was not one made ahead");
    // What a group made on the start's path has: the default device rules (never the host's
    // "a *:* rwm"), a cpuset, and the container's own limits.
    let devices = std::fs::read_to_string(group("devices").join("devices.list")).unwrap();
    assert!(!devices.contains("a *:* rwm") && devices.contains("c 1:3 rwm"), "{devices}");
    assert!(!std::fs::read_to_string(group("cpuset").join("cpuset.cpus")).unwrap().trim().is_empty());
    assert_eq!(std::fs::read_to_string(group("pids").join("pids.max")).unwrap().trim(), "7");
    let pid = sup.state("grouped")["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(group("memory").join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "the init is not in its group: {procs}");
    sup.ok(&["rm", "-f", "grouped"]);
    assert!(!group("memory").exists(), "the container's group outlived it");

    // A stopped supervisor leaves none; a dead one's are removed by the next.
    wait_until(std::time::Duration::from_secs(10), || cgroups_ahead(&sup, "memory").len() >= 2);
    assert!(sup.signal_and_wait(libc::SIGTERM).success());
    for ctrl in ["memory", "cpu", "cpuset", "devices", "pids"] {
        assert_eq!(cgroups_ahead(&sup, ctrl).len(), 0, "groups made ahead left in {ctrl} after the supervisor stopped");
    }
    // Nor the parent it made for them.
    let parent = std::path::Path::new("/sys/fs/cgroup/memory").join(&sup.cgroup_parent);
    assert!(!parent.exists(), "the stopped supervisor left the cgroup parent it made");
    let left = parent.join(".ahead-999");
    std::fs::create_dir_all(&left).unwrap();
    sup.spawn();
    assert!(!left.exists(), "a dead supervisor's group made ahead was kept");
}

/// The supervisor's engine-init children in no container's cgroup (in the supervisor's own):
/// inits cloned ahead, before any Setup.
fn idle_inits(sup: &Supervisor) -> Vec<i32> {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", sup.pid())).unwrap_or_default();
    let cgroups = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).ok();
    children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "engine-init"))
        .filter(|p| cgroups(*p).is_some() && cgroups(*p) == cgroups(sup.pid()))
        .collect()
}

/// After a start with output to pipes, the spawner clones the next init ahead (same namespaces);
/// the next such start gets it. Until then it is in no container's cgroup, and it ends with the
/// supervisor.
#[test]
fn a_start_gets_an_init_cloned_ahead_which_ends_with_its_supervisor() {
    let mut sup = Supervisor::start();
    let rootfs = rootfs();
    let (code, out, err) = sup.run_with(&["--rm", "--net", "none"], "first", &rootfs, &["/bin/echo", "one"]);
    assert_eq!((code, out.as_str()), (0, "one\n"), "{err}");
    wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    let ahead = idle_inits(&sup);
    assert_eq!(ahead.len(), 1, "no init was cloned ahead (or it is in a container's cgroup)");
    sup.ok(&["start", "--net", "none", "ready-1", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
    assert_eq!(
        sup.state("ready-1")["pid"].as_i64(),
        Some(ahead[0] as i64),
        "the start did not get the init cloned ahead"
    );
    // Its output reaches the log as any init's does.
    let (code, out, err) =
        sup.run_with(&["--net", "none"], "ready-2", &rootfs, &["/bin/sh", "-c", "echo out; echo err >&2"]);
    assert_eq!((code, out.as_str()), (0, "out\n"), "{err}");
    assert!(sup.ok(&["logs", "ready-2"]).contains("out"));
    sup.ok(&["rm", "-f", "ready-1"]);
    sup.ok(&["rm", "ready-2"]);
    wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    let waiting = idle_inits(&sup);
    assert_eq!(waiting.len(), 1);
    sup.signal_and_wait(libc::SIGKILL);
    let gone = || {
        !process_exists(waiting[0])
            || std::fs::read_to_string(format!("/proc/{}/stat", waiting[0])).unwrap_or_default().contains(") Z ")
    };
    wait_until(std::time::Duration::from_secs(5), gone);
    assert!(gone(), "an init cloned ahead outlived its supervisor");
    sup.spawn();
}

/// The ids of `pid`'s threads named `name`.
fn threads_named(pid: i32, name: &str) -> std::collections::BTreeSet<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

#[test]
fn requests_and_releases_run_on_threads_kept_from_the_run_before() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let run = |name: &str| {
        let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], name, &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
    };
    // Given back: its group is gone (v1 or v2); the release's tail (the mount namespace's drop,
    // the layer to the trash) then ends within moments, and its worker waits again.
    let released = |name: &str| {
        let groups = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"];
        wait_until(std::time::Duration::from_secs(5), || {
            groups.iter().all(|g| !std::path::Path::new(g).join(&sup.cgroup_parent).join(name).exists())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        // And the spawner's work ahead for the next run is done (it begins once a run is
        // answered): the next init waits, cloned.
        wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    };
    // A run's release is on a release thread once its init is reaped; an init whose command
    // ended before the supervisor had marked it running (a first run over a fresh overlay, with
    // the spawner's work ahead for the next run going on beside it) is released on its request's
    // thread: runs until one had a release thread.
    let mut releases = std::collections::BTreeSet::new();
    for i in 0..10 {
        let name = format!("first-{i}");
        run(&name);
        released(&name);
        releases = threads_named(sup.pid(), "release");
        if !releases.is_empty() {
            break;
        }
    }
    // Those runs' request and release threads wait for the next jobs of their kind.
    // (The readiness check's request may have had a thread of its own when the run came.)
    let mut kept = threads_named(sup.pid(), "request");
    assert!(!kept.is_empty() && !releases.is_empty(), "request {kept:?}, release {releases:?}");
    kept.extend(releases);
    // strace: no thread was started (clone3/clone with CLONE_THREAD) for the second run, its
    // release included (after the answer).
    let text = strace_supervisor(&sup, "clone,clone3", |_| {
        run("second");
        released("second");
    });
    let threads: Vec<&String> = text.iter().filter(|l| l.contains("CLONE_THREAD")).collect();
    assert!(threads.is_empty(), "threads started for a run when kept ones were waiting: {threads:#?}");
    let mut after = threads_named(sup.pid(), "request");
    after.extend(threads_named(sup.pid(), "release"));
    assert_eq!(after, kept, "the second run's request and release ran on other threads");
}

#[test]
fn a_run_rm_does_not_read_the_usage_a_kept_container_records() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    // Files read only for the record's usage figures (v1 and v2 names).
    let usage = ["memory.usage_in_bytes", "memory.current", "cpuacct.usage", "cpu.stat"];
    let opened = |text: &[String], name: &str| -> Vec<String> {
        text.iter()
            .filter(|l| l.contains(&format!("/{name}/")) && usage.iter().any(|u| l.contains(u)))
            .cloned()
            .collect()
    };
    let text = strace_supervisor(&sup, "openat", |_| {
        let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], "gone", &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = sup.run_with(&["--net", "none"], "kept", &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
    });
    assert_eq!(opened(&text, "gone"), Vec::<String>::new(), "a --rm container's usage was read");
    assert!(!opened(&text, "kept").is_empty(), "a kept container's usage was not read: {text:#?}");
    let inspect = sup.ok(&["inspect", "kept"]);
    assert!(inspect.contains("cpu_usage_ns") || inspect.contains("cpuUsage"), "{inspect}");
    sup.ok(&["rm", "kept"]);
}

#[test]
fn an_init_unmounts_only_its_old_root_which_takes_the_etc_files_tmpfs_with_it() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let text = strace_supervisor(&sup, "umount2", |_| {
        let (code, out, err) =
            sup.run_with(&["--rm", "--net", "none"], "onlyroot", &rootfs, &["/bin/cat", "/etc/hostname"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), "onlyroot");
    });
    let umounts: Vec<&String> = text.iter().filter(|l| l.contains("umount2(")).collect();
    // One: the old root after the pivot (".", detached with everything under it).
    assert_eq!(umounts.len(), 1, "{umounts:#?}");
    assert!(umounts[0].contains("umount2(\".\", MNT_DETACH)"), "{umounts:#?}");
}

/// The minor page faults a process has taken (field 10 of /proc/PID/stat).
fn minor_faults(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name's closing parenthesis: state is field 3, minflt field 10.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    rest.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0)
}

/// Rss in KiB of `pid`'s 8 MiB anonymous mapping, the stack an init cloned by the spawner runs on.
fn stack_rss_kib(pid: i32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut anonymous, mut in_stack) = (false, false);
    for line in smaps.lines() {
        let value = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        if line.split_whitespace().next().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            // A mapping's first line: address range, perms, offset, device, inode [, path].
            anonymous = line.split_whitespace().count() == 5;
        } else if line.starts_with("Size:") {
            in_stack = anonymous && value(line) == 8192;
        } else if in_stack && line.starts_with("Rss:") {
            return value(line);
        }
    }
    0
}

/// An init cloned ahead takes its first page faults (the Setup's decoder, its stack) while it
/// waits, not after its Setup came: measured (ftrace, 20 runs), ~110 faults between the Setup
/// and the command without this and ~53 with it; 12 before the Setup without it, 74 with it.
#[test]
fn an_init_cloned_ahead_warms_up_before_its_setup() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let (code, out, err) = sup.run_with(&["--rm", "--net", "none"], "first", &rootfs, &["/bin/echo", "one"]);
    assert_eq!((code, out.as_str()), (0, "one\n"), "{err}");
    wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    let ahead = idle_inits(&sup)[0];
    // Settled: the count no longer moves.
    let mut last = minor_faults(ahead);
    wait_until(std::time::Duration::from_secs(10), || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = minor_faults(ahead);
        std::mem::replace(&mut last, now) == now
    });
    assert!(last >= 50, "the init cloned ahead took only {last} page faults before its Setup");
    // Its stack (the spawner's 8 MiB mapping for it) holds the 64 KiB written ahead; the decode
    // alone leaves 44 KiB there.
    assert!(stack_rss_kib(ahead) >= 64, "the init's stack holds {} KiB", stack_rss_kib(ahead));
    let (code, out, err) = sup.run_with(&["--rm", "--net", "none"], "second", &rootfs, &["/bin/echo", "two"]);
    assert_eq!((code, out.as_str()), (0, "two\n"), "{err}");
}

/// A start without a terminal sends the init its Start with no round trip after Ready: Start
/// waits on the channel while the init builds its root, and the init finds it there (measured:
/// "Ready sent" to "Start received" ~300 µs before, ~25 µs after). A terminal's start still waits
/// for Ready (the pty's other end comes then).
#[test]
fn start_goes_out_before_the_init_is_ready() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    sup.run_with(&["--rm", "--net", "none"], "warm", &rootfs, &["/bin/true"]);
    let trace = strace_supervisor(&sup, "sendto,recvfrom", |_| {
        let (code, out, err) = sup.run_with(&["--rm", "--net", "none"], "early", &rootfs, &["/bin/echo", "ran"]);
        assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
    });
    // Only the supervisor sends Start and receives Ready (the init does the opposite calls).
    let at = |call: &str, msg: &str| {
        trace.iter().position(|l| l.contains(&format!("{call}(")) && l.contains(&format!("\"\\\"{msg}\\\"\"")))
    };
    let (start, ready) = (at("sendto", "Start"), at("recvfrom", "Ready"));
    assert!(start.is_some() && ready.is_some(), "no Start sent or no Ready received: {trace:#?}");
    assert!(start < ready, "Start was sent only after Ready came: {trace:#?}");
}

/// The init joins its v1 groups through `tasks` files the supervisor opened when it made the
/// groups ahead, sent with the Setup: it writes "0" to each and opens none on its path (five
/// opens of cgroupfs files were ~65 µs of the init's path).
#[test]
fn the_init_joins_its_groups_through_files_opened_ahead() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    sup.run_with(&["--rm", "--net", "none"], "warm", &rootfs, &["/bin/true"]);
    // The next init is cloned once the warm run is answered: strace must find it there (it
    // traces the supervisor's children as they are when it attaches, and what they clone).
    wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    let mut pid = 0;
    let trace = strace_supervisor(&sup, "openat,write", |_| {
        sup.ok(&["start", "--net", "none", "joined", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
        pid = sup.state("joined")["pid"].as_i64().unwrap();
    });
    let init: Vec<&String> = trace.iter().filter(|l| l.starts_with(&format!("{pid} "))).collect();
    let opened: Vec<_> = init.iter().filter(|l| l.contains("openat(") && l.contains("/tasks\"")).collect();
    assert!(opened.is_empty(), "the init opened its groups' tasks files: {opened:#?}");
    let joins = init.iter().filter(|l| l.contains("write(") && l.contains("/joined/tasks>, \"0\", 1) = 1")).count();
    assert!(joins >= 3, "the init wrote \"0\" to {joins} tasks files: {init:#?}");
    // And it is in them.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for ctrl in ["memory", "pids", "devices"] {
        let line = cgroups.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == ctrl)));
        assert!(line.is_some_and(|l| l.ends_with("/joined")), "{ctrl}: {cgroups}");
    }
    sup.ok(&["rm", "-f", "joined"]);
}

/// The system calls `calls` the init made ahead makes from its Setup to its command's execve,
/// traced over one `run --rm --net none NAME /bin/true` (after a warm-up run, so that an init
/// waits idle for it): its lines of the trace (it is asserted to be the init that ran the
/// command, so no other init's silence passes for this one's).
fn calls_of_a_ready_init_before_its_command(calls: &str, name: &str) -> Vec<String> {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    sup.run_with(&["--rm", "--net", "none"], "warm", &rootfs, &["/bin/true"]);
    wait_until(std::time::Duration::from_secs(10), || idle_inits(&sup).len() == 1);
    let init = idle_inits(&sup)[0];
    let trace = strace_supervisor(&sup, &format!("{calls},execve,wait4"), |_| {
        let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], name, &rootfs, &["/bin/true"]);
        assert_eq!(code, 0, "{err}");
    });
    let of_init = |l: &&String| l.starts_with(&format!("{init} "));
    assert!(
        trace.iter().filter(of_init).any(|l| l.contains("wait4(")),
        "the init {init} did not run the command: {trace:#?}"
    );
    let exec =
        trace.iter().position(|l| l.contains("execve(\"/bin/true\"")).expect("the command's execve was not traced");
    trace[..exec].iter().filter(of_init).cloned().collect()
}

/// Issue 14: an init lets go of the engine's code pages before its command starts only where the
/// kernel monitor counts the container's RSS against limits (none here: no module on this host,
/// no --hard-mib); otherwise only once the command has run a while (`LATE_DROP_AFTER`). The
/// early drop was 0.15-0.27 ms of the init's path to the command.
#[test]
fn an_init_without_counted_memory_limits_keeps_its_code_pages_until_its_command_runs() {
    let calls = calls_of_a_ready_init_before_its_command("madvise", "kept");
    let dropped: Vec<_> = calls.iter().filter(|l| l.contains("MADV_DONTNEED")).collect();
    assert!(dropped.is_empty(), "the init let go of its code pages before its command: {dropped:#?}");
}

/// Issue 14: what an init made ahead does whatever its Setup says is done before its Setup
/// comes: the kernel's last capability read (/proc/sys/kernel/cap_last_cap, for the bounding
/// set) and the no-op handlers that let a PID 1 be sent the signals it forwards. Its path from
/// the Setup to the command has neither.
#[test]
fn an_init_made_ahead_has_read_cap_last_cap_and_set_its_handlers_before_its_setup() {
    let calls = calls_of_a_ready_init_before_its_command("openat,rt_sigaction", "ahead");
    let on_path: Vec<_> = calls.iter().filter(|l| l.contains("cap_last_cap") || l.contains("rt_sigaction(")).collect();
    assert!(on_path.is_empty(), "the init did this between its Setup and its command: {on_path:#?}");
}

/// The host pid of an init of `sup`'s spawner whose mount namespace is a copy of the holding one
/// with a kit in it (made ahead, before its request: `container::kit`), if one is there yet.
fn init_with_kit(sup: &Supervisor) -> Option<i32> {
    pids_matching("engine-init").into_iter().find(|pid| {
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).map(str::to_string));
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        parent.as_deref() == Some(sup.pid().to_string().as_str())
            && mounts.contains(" / /proc ")
            && mounts.lines().next().is_some_and(|root| root.contains(" / / ro,") && root.contains(" - tmpfs "))
    })
}

/// A container's mount tree as it sees it: each mount under its parent's mount point, sorted
/// (mountinfo lists mounts in the order they were made), without what differs between any two
/// containers (mount ids, device numbers, the overlay's own directories).
fn mount_tree(pid: i64) -> Vec<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let lines: Vec<Vec<&str>> = info.lines().map(|l| l.split(' ').collect()).collect();
    let point = |id: &str| lines.iter().find(|f| f[0] == id).map_or("(outside)", |f| f[4]);
    let mut tree: Vec<String> = lines
        .iter()
        .map(|f| match f[4] {
            "/" => "/ (the container's root)".to_string(),
            _ => format!("{} > {}", point(f[1]), f[3..].join(" ")),
        })
        .collect();
    tree.sort();
    tree
}

/// /proc (with its masked and read-only paths) and /dev (devices, devpts, shm) are made by the
/// init cloned ahead, in its own mount namespace, which holds nothing of the host's (a copy of
/// the spawner's holding namespace); they are moved onto the root at the start: the container
/// sees exactly the tree a start that makes them on its path (a Spec they do not fit) gets, the
/// host sees none of it, and a climb out of the root by chroot finds the same root either way.
#[test]
fn the_proc_and_dev_made_ahead_are_those_a_start_makes_on_its_path() {
    let mut sup = Supervisor::start();
    sup.signal_and_wait(libc::SIGTERM);
    let trace = sup.dir.path().join("steps");
    sup.spawn_with_env(&[], &[("ENGINE_STEP_TRACE", trace.as_os_str())], std::process::Stdio::inherit());
    let rootfs = rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let kit = sup.root.join("kit");
    // After a first start the spawner makes the next init ahead, and that init its kit, in a
    // copy of the spawner's holding namespace: a read-only tmpfs, nothing of the host's.
    let (code, _, err) =
        sup.run_with(&["--rm", "--net", "none"], "first", std::path::Path::new(rootfs), &["/bin/true"]);
    assert_eq!(code, 0, "{err}");
    let mut ahead = None;
    wait_until(std::time::Duration::from_secs(10), || {
        ahead = init_with_kit(&sup);
        ahead.is_some()
    });
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(&kit.display().to_string()), "the kit is in the host's mount namespace: {host}");
    // Every filesystem it has mounted is one the host has not (a mount of the host's, /proc or
    // /dev included, would share its device number).
    let its_own = std::fs::read_to_string(format!("/proc/{}/mountinfo", ahead.unwrap())).unwrap();
    let device = |line: &str| line.split(' ').nth(2).unwrap().to_string();
    let hosts: std::collections::HashSet<String> = host.lines().map(device).collect();
    for line in its_own.lines() {
        assert!(!hosts.contains(&device(line)), "the init made ahead holds a mount of the host's: {line}");
    }
    // The next start with the same namespaces takes that init.
    sup.ok(&["start", "--net", "none", "ahead", rootfs, "/bin/sleep", "60"]);
    let ahead_pid = sup.state("ahead")["pid"].as_i64().unwrap();
    assert_eq!(Some(ahead_pid as i32), ahead, "the start did not take the init with the kit");
    // A tmpfs below /dev: the kit does not fit, /proc and /dev are made on the path.
    sup.ok(&["start", "--net", "none", "--tmpfs", "/dev/extra", "onpath", rootfs, "/bin/sleep", "60"]);
    let on_path: Vec<String> = mount_tree(sup.state("onpath")["pid"].as_i64().unwrap())
        .into_iter()
        .filter(|l| !l.contains(" /dev/extra "))
        .collect();
    let made_ahead = mount_tree(ahead_pid);
    assert_eq!(made_ahead, on_path);
    // The init that had the kit used it (its step), the other made them on its path.
    let steps = std::fs::read_to_string(&trace).unwrap();
    let moved = |name: &str| steps.lines().any(|l| l.starts_with(&format!("{name} +")) && l.contains("made ahead"));
    assert!(moved("ahead") && !moved("onpath"), "{steps}");
    // What the masks and read-only binds are for, in the container with the kit.
    for (script, want) in [
        ("echo x > /proc/sys/kernel/hostname && echo written", "Read-only file system"),
        ("cat /proc/keys; echo end", "end\n"),
        ("ls /proc/acpi | wc -l", "0\n"),
        ("echo hi > /dev/null && ls /dev/pts /dev/shm >/dev/null && echo fine", "fine\n"),
    ] {
        let out = sup.engine(&["exec", "ahead", "/bin/sh", "-c", script]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(want), "{script}: {text}");
    }
    // A process that climbs out of its root by a chroot of its own (CAP_SYS_CHROOT is in the
    // default set) lands on the container's root in both: never on the kit's tmpfs below it.
    let climb = |name: &str| {
        let out = sup.engine(&["exec", name, "/chroot_out"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let (from_ahead, from_path) = (climb("ahead"), climb("onpath"));
    assert!(from_ahead.lines().any(|l| l == "chroot_out"), "climbed out to: {from_ahead}");
    assert_eq!(from_ahead, from_path);
    sup.ok(&["rm", "-f", "ahead"]);
    sup.ok(&["rm", "-f", "onpath"]);
}

/// With no group made ahead (`ENGINE_CGROUPS_AHEAD=0`: every group made on the start's path, as
/// when a burst of starts empties the pool), an init with a kit cannot join its v1 groups by
/// their paths (its namespace holds nothing of the host's) and gets no `tasks` files opened
/// ahead: the supervisor moves it into them. It is in every one, and it used its kit.
#[test]
fn an_init_with_a_kit_is_moved_into_groups_made_on_the_path() {
    let mut sup = Supervisor::start();
    sup.signal_and_wait(libc::SIGTERM);
    let trace = sup.dir.path().join("steps");
    let env = [("ENGINE_STEP_TRACE", trace.as_os_str()), ("ENGINE_CGROUPS_AHEAD", std::ffi::OsStr::new("0"))];
    sup.spawn_with_env(&[], &env, std::process::Stdio::inherit());
    let rootfs = rootfs();
    let (code, _, err) = sup.run_with(&["--rm", "--net", "none"], "first", &rootfs, &["/bin/true"]);
    assert_eq!(code, 0, "{err}");
    let mut ahead = None;
    wait_until(std::time::Duration::from_secs(10), || {
        ahead = init_with_kit(&sup);
        ahead.is_some()
    });
    assert!(ahead.is_some(), "no init with a kit was made ahead");
    for ctrl in ["memory", "pids"] {
        assert_eq!(cgroups_ahead(&sup, ctrl).len(), 0, "a group was made ahead in {ctrl}");
    }
    sup.ok(&["start", "--net", "none", "--pids-limit", "9", "moved", rootfs.to_str().unwrap(), "/bin/sleep", "60"]);
    let pid = sup.state("moved")["pid"].as_i64().unwrap();
    assert_eq!(Some(pid as i32), ahead, "the start did not take the init with the kit");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for ctrl in ["memory", "pids", "devices", "cpu", "cpuacct", "cpuset"] {
        let line = cgroups.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == ctrl)));
        assert!(line.is_some_and(|l| l.ends_with("/moved")), "{ctrl}: {cgroups}");
    }
    let group = std::path::Path::new("/sys/fs/cgroup/pids").join(&sup.cgroup_parent).join("moved");
    assert_eq!(std::fs::read_to_string(group.join("pids.max")).unwrap().trim(), "9");
    let steps = std::fs::read_to_string(&trace).unwrap();
    assert!(steps.lines().any(|l| l.starts_with("moved +") && l.contains("made ahead")), "{steps}");
    sup.ok(&["rm", "-f", "moved"]);
}

/// A bridged start's veth pair is made ahead, in the network namespace of the init it gets
/// (`net::ahead`): its host end is a port of the bridge, down and unnamed, before the request,
/// and the start makes it its own (alias, address, eth0's MAC). A start without the bridge never
/// gets a namespace with a pair.
#[test]
fn a_bridged_start_gets_the_veth_pair_made_ahead_and_a_start_without_the_bridge_none() {
    let sup = Supervisor::start();
    let rootfs = rootfs();
    let rootfs = rootfs.to_str().unwrap();
    // The first bridged start makes the bridge; once each bridged start is answered, the
    // namespace the next init is cloned in gets its pair. (A start answered while no namespace
    // was ready leaves the next init's to its clone, without a pair: starts until one has.)
    let unnamed = || -> Vec<String> {
        bridge_ports(&sup.bridge).into_iter().filter(|(_, a)| a.is_empty()).map(|(p, _)| p).collect()
    };
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(format!("b{i}"));
        sup.ok(&["start", &names[i], rootfs, "/bin/sleep", "60"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        if unnamed().len() == 1 {
            break;
        }
    }
    let ahead = unnamed();
    assert_eq!(ahead.len(), 1, "no veth pair made ahead: {:?}", bridge_ports(&sup.bridge));
    sup.ok(&["start", "bx", rootfs, "/bin/sleep", "60"]);
    let alias = format!("engine:{}:bx", sup.bridge);
    let ports = bridge_ports(&sup.bridge);
    let own: Vec<&String> = ports.iter().filter(|(_, a)| **a == alias).map(|(p, _)| p).collect();
    assert!(
        own.len() == 1 && ahead.contains(own[0]),
        "the next start's pair was not one made ahead: {ports:?}, ahead {ahead:?}"
    );
    // Configured as one made on the path: its MAC (not the placeholder), up, and it reaches the
    // gateway.
    let link = sup.ok(&["exec", "bx", "/sbin/ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:42:") && link.contains(",UP"), "eth0: {link}");
    let gateway = format!("{}.1", sup.subnet_prefix);
    sup.ok(&["exec", "bx", "/bin/ping", "-c", "1", "-W", "2", &gateway]);
    // A start without the bridge never gets a namespace with a pair (the ready init's is let go).
    sup.ok(&["start", "--net", "none", "n1", rootfs, "/bin/sleep", "60"]);
    let devices = sup.ok(&["exec", "n1", "/bin/cat", "/proc/net/dev"]);
    assert!(!devices.contains("eth0"), "a --net none container has eth0: {devices}");
    for name in names.iter().map(String::as_str).chain(["bx", "n1"]) {
        sup.ok(&["rm", "-f", name]);
    }
}

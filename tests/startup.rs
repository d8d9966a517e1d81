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
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace");
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync,syncfs,sync_file_range", "-o"])
        .arg(&trace)
        .args(["-p", &sup.pid().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace (a test tool) is needed for this test");
    // strace says it attached on stderr once every thread is traced.
    let mut stderr = std::io::BufReader::new(strace.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("attached"), "strace: {line}");

    let rootfs = rootfs();
    let (code, _, err) = sup.run_with(&["--rm"], "gone", &rootfs, &["/bin/true"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = sup.run_with(&[], "kept", &rootfs, &["/bin/true"]);
    assert_eq!(code, 0, "{err}");
    // The syncer's round comes a few milliseconds after the last save (without a syncer, the
    // assertions below say what was synced where).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !std::fs::read_to_string(&trace).unwrap_or_default().contains("/containers/kept.json>")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = strace.kill();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&trace).unwrap();
    let synced: Vec<&str> = text.lines().filter(|l| l.contains("fsync(") || l.contains("sync")).collect();
    let elsewhere: Vec<&&str> = synced.iter().filter(|l| !l.starts_with(&format!("{syncer} "))).collect();
    assert!(elsewhere.is_empty(), "fsync on the path of run (not the record syncer's, {syncer}): {elsewhere:#?}");
    assert!(
        synced.iter().any(|l| l.contains("/containers/kept.json>")),
        "the kept record was never fsync'd: {synced:#?}"
    );
    assert!(synced.iter().any(|l| l.contains("/containers>")), "the records directory was never fsync'd: {synced:#?}");
    sup.ok(&["rm", "kept"]);
}

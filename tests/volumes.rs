//! Volumes through the real binaries: `-v HOST:CTR[:ro]`, `--tmpfs`, named volumes and
//! `engine volume`, `--mount`; bad input one line, exit 125, nothing made.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{rootfs, Supervisor};

fn host_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("engine-test-vol-").tempdir_in("/tmp").unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bind_mount_shares_files_both_ways() {
    let sup = Supervisor::start();
    let host = host_dir();
    std::fs::write(host.path().join("in"), "from-host\n").unwrap();
    // /data/new/dir does not exist in the rootfs: created inside the container's root.
    let vol = format!("{}:/data/new/dir", s(host.path()));
    let (code, out, err) = sup.run_with(
        &["-v", &vol],
        "b1",
        &rootfs(),
        &["/bin/sh", "-c", "cat /data/new/dir/in; echo from-ctr > /data/new/dir/out"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "from-host\n");
    assert_eq!(std::fs::read_to_string(host.path().join("out")).unwrap(), "from-ctr\n");
    assert!(!rootfs().join("data").exists(), "the target was made in the container's layer, not the rootfs");
    // The same through --mount.
    let m = format!("type=bind,source={},target=/m", s(host.path()));
    let (code, out, err) = sup.run_with(&["--mount", &m], "b2", &rootfs(), &["/bin/cat", "/m/out"]);
    assert_eq!((code, out.as_str()), (0, "from-ctr\n"), "{err}");
}

#[test]
fn read_only_bind_refuses_writes() {
    let sup = Supervisor::start();
    let host = host_dir();
    std::fs::write(host.path().join("f"), "keep\n").unwrap();
    let script = "echo x > /data/f; echo x > /data/new; cat /data/f";
    for (i, flag) in [
        ["-v".to_string(), format!("{}:/data:ro", s(host.path()))],
        ["--mount".to_string(), format!("type=bind,src={},dst=/data,readonly", s(host.path()))],
    ]
    .iter()
    .enumerate()
    {
        let args: Vec<&str> = flag.iter().map(String::as_str).collect();
        let (code, out, err) = sup.run_with(&args, &format!("ro{i}"), &rootfs(), &["/bin/sh", "-c", script]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "keep\n");
        assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
        assert!(!host.path().join("new").exists());
        assert_eq!(std::fs::read_to_string(host.path().join("f")).unwrap(), "keep\n");
    }
}

/// A rootfs whose /mnt is an absolute link to a host directory (first one the test owns, then the
/// host's /etc): the target is resolved as the container sees it, inside its root, and nothing
/// is made in the host's directory.
#[test]
fn a_planted_symlink_does_not_lead_the_mount_out_of_the_root() {
    let sup = Supervisor::start();
    let copy = host_dir();
    let root: PathBuf = copy.path().join("rootfs");
    let status = Command::new("cp").arg("-a").arg(rootfs()).arg(&root).status().unwrap();
    assert!(status.success());
    let outside = host_dir();
    let probe = format!("engine-vol-probe-{}", std::process::id());
    for (i, link) in [outside.path(), Path::new("/etc")].into_iter().enumerate() {
        let _ = std::fs::remove_dir(root.join("mnt"));
        let _ = std::fs::remove_file(root.join("mnt"));
        std::os::unix::fs::symlink(link, root.join("mnt")).unwrap();
        let host = host_dir();
        let vol = format!("{}:/mnt/{probe}", s(host.path()));
        let script = format!("echo inside > {}/{probe}/f && echo ok", s(link));
        let (code, out, err) = sup.run_with(&["-v", &vol], &format!("ln{i}"), &root, &["/bin/sh", "-c", &script]);
        assert!(!link.join(&probe).exists(), "a directory was made in the host's {}", link.display());
        // A link dangling inside the root (the test's own directory) is refused: fine too.
        if i == 0 && code == 125 {
            assert!(err.contains("resolving /mnt/") && err.lines().count() == 1, "{err}");
            continue;
        }
        assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
        assert_eq!(std::fs::read_to_string(host.path().join("f")).unwrap(), "inside\n");
        assert!(
            !root.join(link.strip_prefix("/").unwrap()).join(&probe).exists(),
            "the lower directory stays untouched"
        );
    }
}

#[test]
fn tmpfs_is_a_tmpfs_of_its_size() {
    let sup = Supervisor::start();
    let (code, out, err) = sup.run_with(
        &["--tmpfs", "/scratch:size=1m,mode=1777", "--mount", "type=tmpfs,target=/t2,tmpfs-size=2m"],
        "t1",
        &rootfs(),
        &["/bin/sh", "-c", "grep -E ' /(scratch|t2) ' /proc/mounts; stat -c %a /scratch"],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec") && lines[0].contains("size=1024k"),
        "{out}"
    );
    assert!(lines[1].starts_with("tmpfs /t2 tmpfs ") && lines[1].contains("size=2048k"), "{out}");
    assert_eq!(lines[2], "1777");
}

#[test]
fn a_named_volume_persists_across_containers_and_restarts() {
    let mut sup = Supervisor::start();
    let root = s(&sup.root).to_string();
    let (code, _, err) = sup.run_with(&["-v", "data1:/v"], "w1", &rootfs(), &["/bin/sh", "-c", "echo kept > /v/f"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = sup.run_with(&["-v", "data1:/v:ro"], "r1", &rootfs(), &["/bin/cat", "/v/f"]);
    assert_eq!((code, out.as_str()), (0, "kept\n"), "{err}");
    assert_eq!(std::fs::read_to_string(sup.root.join("volumes/data1/_data/f")).unwrap(), "kept\n");
    assert!(sup.ok(&["volume", "ls", "--root", &root]).lines().any(|l| l.ends_with(" data1")));
    let info: serde_json::Value =
        serde_json::from_str(&sup.ok(&["volume", "inspect", "--root", &root, "data1"])).unwrap();
    assert_eq!(info["UsedBy"], serde_json::json!(["r1", "w1"]));

    // In use by (finished) containers: refused in one line, and the data stays.
    let out = sup.engine(&["volume", "rm", "--root", &root, "data1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.lines().count()), (Some(125), 1), "{err}");
    assert!(err.contains("in use"), "{err}");
    assert!(sup.root.join("volumes/data1/_data/f").exists());

    // The flags are in the record: after a restart, inspect still shows them.
    sup.signal_and_wait(libc::SIGTERM);
    sup.spawn();
    let vols = &sup.state("w1")["spec"]["volumes"];
    assert_eq!(vols[0]["type"], "volume");
    assert_eq!((vols[0]["source"].as_str(), vols[0]["target"].as_str()), (Some("data1"), Some("/v")));
    assert_eq!(sup.state("r1")["spec"]["volumes"][0]["readonly"], true);

    sup.ok(&["rm", "w1"]);
    sup.ok(&["rm", "r1"]);
    assert_eq!(sup.ok(&["volume", "rm", "--root", &root, "data1"]), "data1\n");
    assert!(!sup.root.join("volumes/data1").exists());
    assert_eq!(sup.ok(&["volume", "create", "--root", &root, "made"]), "made\n");
    assert!(sup.root.join("volumes/made/_data").is_dir());
    assert_eq!(sup.ok(&["volume", "ls", "-q", "--root", &root]), "made\n");
}

#[test]
fn bad_volume_input_is_one_line_exit_125_and_nothing_made() {
    let sup = Supervisor::start();
    let root = s(&sup.root).to_string();
    let missing = format!("/tmp/engine-test-no-such-dir-{}", std::process::id());
    let cases: Vec<Vec<String>> = vec![
        vec!["-v".into(), format!("{missing}:/data")],
        vec!["-v".into(), "/tmp:relative".into()],
        vec!["-v".into(), "/tmp:/".into()],
        vec!["-v".into(), "./rel:/data".into()],
        vec!["-v".into(), "/tmp:/data:rx".into()],
        vec!["-v".into(), "/tmp".into()],
        vec!["--tmpfs".into(), "/t:size=lots".into()],
        vec!["--tmpfs".into(), "/t:mode=9".into()],
        vec!["--mount".into(), "type=bind,target=/x".into()],
        vec!["--mount".into(), format!("type=bind,source={missing},target=/x")],
        vec!["--mount".into(), "type=nfs,source=a,target=/x".into()],
        vec!["-v".into(), "/tmp:/d".into(), "--tmpfs".into(), "/d".into()],
    ];
    for case in &cases {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        let (code, _, err) = sup.run_with(&args, "bad", &rootfs(), &["/bin/true"]);
        assert_eq!((code, err.lines().count()), (125, 1), "{case:?}: {err}");
        assert!(err.starts_with("engine: "), "{case:?}: {err}");
    }
    assert!(!sup.ok(&["ps", "-a"]).contains("bad"), "no container was recorded");
    assert!(!Path::new(&missing).exists(), "a missing bind source is not created");
    assert_eq!(sup.ok(&["volume", "ls", "-q", "--root", &root]), "");
    let out = sup.engine(&["volume", "rm", "--root", &root, "nope"]);
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stderr).lines().count()), (Some(125), 1));
}

/// `volume rm` and a start naming a volume exclude each other through ROOT/volumes/.lock: a
/// start waits while a removal holds it, and a removal waits while a start holds it, so rm never
/// deletes a volume that a start checked no record for and is about to mount. The test holds the
/// lock in the other party's place and sees the supervisor queued on it in /proc/locks (a blocked
/// waiter, `->`), the client still waiting, then done once the lock is let go.
#[test]
fn volume_rm_and_a_start_naming_the_volume_exclude_each_other() {
    use std::os::fd::AsRawFd;
    let sup = Supervisor::start();
    let root = s(&sup.root).to_string();
    sup.ok(&["volume", "create", "--root", &root, "shared"]);
    let lock_path = sup.root.join("volumes/.lock");
    // Made as the supervisor makes it when it first takes it.
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&lock_path).unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&lock_path).unwrap()).to_string();
    let hold = |op: libc::c_int| {
        let file = std::fs::File::open(&lock_path).unwrap();
        // SAFETY: flock on an fd this closure owns.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), op) }, 0);
        file
    };
    // `pid` queued on the lock: a "->" line of /proc/locks with its pid and the inode.
    let waits = |pid: u32| {
        std::fs::read_to_string("/proc/locks").unwrap().lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"->")
                && f.contains(&pid.to_string().as_str())
                && f.iter().any(|x| x.rsplit(':').next() == Some(inode.as_str()))
        })
    };
    // Starts lock in the supervisor; `volume rm` in the client itself.
    let blocked_until_released = |held: std::fs::File, args: &[&str], in_client: bool| {
        let mut client = common::KillOnDrop(sup.cmd(args).stdout(std::process::Stdio::null()).spawn().unwrap());
        let waiter = if in_client { client.0.id() } else { sup.pid() as u32 };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !waits(waiter) {
            let locks = std::fs::read_to_string("/proc/locks").unwrap();
            assert!(std::time::Instant::now() < deadline, "{waiter} does not wait on inode {inode}: {locks}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(client.0.try_wait().unwrap().is_none(), "{args:?} ended while the lock was held");
        drop(held);
        assert!(client.0.wait().unwrap().success(), "{args:?} failed once the lock was free");
    };

    blocked_until_released(
        hold(libc::LOCK_EX),
        &["start", "-v", "shared:/data", "user1", s(&rootfs()), "/bin/true"],
        false,
    );
    assert_eq!(sup.wait_exit("user1"), 0);
    sup.ok(&["rm", "user1"]);
    blocked_until_released(hold(libc::LOCK_SH), &["volume", "rm", "--root", &root, "shared"], true);
    // A start without a named volume takes no lock.
    let held = hold(libc::LOCK_EX);
    sup.ok(&["start", "plain", s(&rootfs()), "/bin/true"]);
    drop(held);
}

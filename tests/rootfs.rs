//! The container's root: symlinks planted in a rootfs never lead the runtime out of it, writes go
//! to the container's own copy-on-write layer, `--read-only`, and /etc/hosts on a bounded tmpfs.
mod common;

use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{rootfs, Supervisor};

/// A private copy of the test rootfs, for tests that plant things in it or check it is unchanged.
fn copy_rootfs(dir: &Path) -> PathBuf {
    let copy = dir.join("rootfs");
    assert!(Command::new("cp").arg("-a").arg(rootfs()).arg(&copy).status().unwrap().success());
    copy
}

/// A host path that is removed when dropped, even by a failing test.
struct HostPath(PathBuf);

impl HostPath {
    fn new(tag: &str) -> HostPath {
        HostPath(PathBuf::from(format!("/tmp/engine-rootfs-{tag}-{}", std::process::id())))
    }
}

impl Drop for HostPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn etc_links_to_the_host_are_not_followed() {
    let sup = Supervisor::start();
    let dir = tempfile::tempdir().unwrap();
    let rfs = copy_rootfs(dir.path());
    // What an earlier container could have left: /etc/hostname pointing at a host path that does
    // not exist (the runtime used to create it), /etc/hosts at a host file with content.
    let created = HostPath::new("hostname");
    let precious = HostPath::new("hosts");
    std::fs::write(&precious.0, "precious\n").unwrap();
    std::fs::remove_file(rfs.join("etc/hostname")).unwrap();
    std::fs::remove_file(rfs.join("etc/hosts")).unwrap();
    symlink(&created.0, rfs.join("etc/hostname")).unwrap();
    symlink(&precious.0, rfs.join("etc/hosts")).unwrap();
    let run = sup.run_with(&["--net", "none"], "links", &rfs, &["/bin/cat", "/etc/hostname"]);
    assert!(!created.0.exists(), "the start created {} on the host", created.0.display());
    assert_eq!(std::fs::read_to_string(&precious.0).unwrap(), "precious\n", "the host file was changed");
    // A link whose target is not inside the root is refused in one line (not created through).
    let (code, out, err) = run;
    assert_eq!((code, err.lines().count()), (125, 1), "stdout {out:?} stderr {err:?}");
    assert!(err.contains("/etc/host"), "{err}");
}

#[test]
fn proc_and_dev_links_resolve_inside_the_root() {
    let sup = Supervisor::start();
    let dir = tempfile::tempdir().unwrap();
    let rfs = copy_rootfs(dir.path());
    // /proc and /dev replaced by links to host directories; the same paths also exist inside the
    // root, which is where a link in the container's tree leads.
    let proc_dir = HostPath::new("proc");
    let dev_dir = HostPath::new("dev");
    for (host, name) in [(&proc_dir, "proc"), (&dev_dir, "dev")] {
        std::fs::create_dir(&host.0).unwrap();
        std::fs::write(host.0.join("canary"), "host\n").unwrap();
        std::fs::create_dir_all(rfs.join(host.0.strip_prefix("/").unwrap())).unwrap();
        std::fs::remove_dir(rfs.join(name)).unwrap();
        symlink(&host.0, rfs.join(name)).unwrap();
    }
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let script = "grep -c ^Pid: /proc/self/status; [ -c /dev/null ] && echo devnull-ok; cat /dev/canary /proc/canary 2>/dev/null; echo end";
    let run = sup.run_with(&["--net", "none"], "links", &rfs, &["/bin/sh", "-c", script]);
    for host in [&proc_dir, &dev_dir] {
        let names: Vec<_> = std::fs::read_dir(&host.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["canary"], "{} was written to", host.0.display());
        assert_eq!(std::fs::read_to_string(host.0.join("canary")).unwrap(), "host\n");
    }
    assert_eq!(std::fs::read_to_string("/proc/self/mountinfo").unwrap(), mounts_before);
    // Refused, as runc refuses them: a mount on a linked /proc or /dev would not land where the
    // container sees it.
    let (code, out, err) = run;
    assert_eq!((code, err.lines().count()), (125, 1), "stdout {out:?} stderr {err:?}");
    assert!(err.contains("resolving /proc in the rootfs (a directory, not a link)"), "{err}");
}

/// Whether `path` exists (as anything, a dangling link included).
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn container_writes_stay_in_its_own_layer() {
    let sup = Supervisor::start();
    let dir = tempfile::tempdir().unwrap();
    let rfs = copy_rootfs(dir.path());
    let script = "echo x > /tmp/x && cp /bin/busybox /tmp/suid && chmod 4755 /tmp/suid && \
                  mknod /tmp/node c 1 3 && rm /bin/ls && echo done";
    let (code, out, err) = sup.run_with(&["--net", "none"], "writer", &rfs, &["/bin/sh", "-c", script]);
    assert_eq!((code, out.as_str()), (0, "done\n"), "{err}");
    for p in ["tmp/x", "tmp/suid", "tmp/node"] {
        assert!(!present(&rfs.join(p)), "{p} appeared in the rootfs directory on the host");
    }
    assert!(present(&rfs.join("bin/ls")), "the container's rm /bin/ls removed it from the rootfs directory");
    // The next container has its own fresh view.
    let (code, out, err) = sup.run_with(
        &["--net", "none", "--rm"],
        "reader",
        &rfs,
        &["/bin/sh", "-c", "ls /bin/ls; [ -e /tmp/suid ] || echo clean"],
    );
    assert_eq!((code, out.as_str()), (0, "/bin/ls\nclean\n"), "{err}");
    // The finished container's layer stays, out of host users' reach, until `engine rm`.
    let layer = sup.root.join("overlay/writer");
    assert!(layer.join("upper/tmp/suid").exists(), "no upper layer at {}", layer.display());
    assert_eq!(std::fs::metadata(&layer).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(sup.root.join("overlay")).unwrap().mode() & 0o777, 0o700);
    assert!(!present(&sup.root.join("overlay/reader")), "--rm left its layer");
    sup.ok(&["rm", "writer"]);
    assert!(!present(&layer), "engine rm left {}", layer.display());
}

#[test]
fn read_only_root_as_docker() {
    let sup = Supervisor::start();
    let dir = tempfile::tempdir().unwrap();
    let rfs = copy_rootfs(dir.path());
    let script = "touch /x 2>&1; touch /tmp/x 2>&1; echo shm > /dev/shm/a && cat /dev/shm/a; \
                  echo '10.9.9.9 extra' >> /etc/hosts && grep -c extra /etc/hosts; grep -c ^Pid: /proc/self/status";
    let (code, out, err) =
        sup.run_with(&["--net", "none", "--rm", "--read-only"], "ro", &rfs, &["/bin/sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "touch: /x: Read-only file system\ntouch: /tmp/x: Read-only file system\nshm\n1\n1\n", "{err}");
    assert!(!present(&rfs.join("x")) && !present(&rfs.join("tmp/x")));
}

/// Sum of the sizes of the files under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { disk_usage(&entry.path()) } else { meta.len() };
    }
    total
}

#[test]
fn etc_hosts_is_bounded_and_off_the_supervisors_disk() {
    let sup = Supervisor::start();
    let script = "for f in hosts hostname; do dd if=/dev/zero of=/etc/$f bs=1024 count=1024 2>&1 | grep -c 'No space left'; done";
    let (code, out, err) = sup.run_with(&["--net", "none"], "filler", &rootfs(), &["/bin/sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\n1\n", "{err}");
    // The container is still there (not removed): nothing of its files is on the supervisor's disk.
    let used = disk_usage(&sup.root);
    assert!(used < 64 * 1024, "the supervisor's root holds {used} bytes after the container wrote 2 MiB");
    sup.ok(&["rm", "filler"]);
}

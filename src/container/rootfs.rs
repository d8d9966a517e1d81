//! Child side, before exec: give the container its own copy-on-write root with its own /proc, a
//! minimal /dev and its /etc/hosts and /etc/hostname, then make it `/`, so nothing of the host's
//! mount tree is visible or affected.
//!
//! Every path below the container root is resolved by [`safepath`]: the root is the container's
//! to shape (it may have left symlinks for this start), and this code runs as real root.
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::pivot_root;

use super::channel::EtcFile;
use super::init::SetupError;
use super::safepath::{Dir, Kind};
use super::spec::ContainerSpec;

/// Character devices every container gets: (name, major, minor), all mode 0666 like Docker's.
const DEVICES: &[(&str, u32, u32)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

/// What /etc/hosts and /etc/hostname live on: enough for any real hosts file, and a container
/// writing into them fills this, not the supervisor's disk.
const ETC_TMPFS: &str = "size=64k,mode=0755";

fn step(what: &'static str) -> impl Fn(nix::Error) -> SetupError {
    move |e| SetupError::new(format!("{what}: {e}"))
}

fn io_step(what: &'static str) -> impl Fn(std::io::Error) -> SetupError {
    move |e| SetupError::new(format!("{what}: {e}"))
}

/// Everything from the private mount tree to the pivot; on return `/` is the container's root.
/// `overlay` holds the container's `upper`, `work` and `merged` directories (the supervisor made
/// them, under its own 0700 root).
pub fn enter(spec: &ContainerSpec, overlay: &Path, files: &[EtcFile]) -> Result<(), SetupError> {
    // Private first: nothing below may propagate back into the host's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(step("making / private"))?;
    mount_overlay(&spec.rootfs, overlay)?;
    let root = Dir::root(&overlay.join("merged")).map_err(io_step("opening the container root"))?;
    let proc = mount_proc(&root)?;
    let dev = mount_dev(&root)?;
    protect_proc(&proc, &dev)?;
    // Any directory of ours can hold the files' tmpfs for the moment it is mounted: the mount
    // exists only in this namespace, and the binds keep the tmpfs alive once it is detached.
    mount_etc_files(&root, overlay, files)?;
    if spec.read_only {
        // Only the root mount: /proc, /dev, /dev/shm and the /etc files keep their own flags,
        // as with Docker's --read-only.
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(None::<&str>, root.mount_path(), None::<&str>, ro, None::<&str>)
            .map_err(step("making the root read-only"))?;
    }
    pivot(&root)
}

/// The rootfs directory is only ever the lower layer: whatever the container writes, deletes or
/// makes (setuid copies, device nodes) goes to its own upper directory, which host users cannot
/// reach and which goes with the container.
fn mount_overlay(rootfs: &Path, overlay: &Path) -> Result<(), SetupError> {
    let (lower, upper, work) = (rootfs.display(), overlay.join("upper"), overlay.join("work"));
    // overlayfs options are split at ',' and lower layers at ':'; such a path cannot be passed.
    for p in [rootfs, overlay] {
        if p.to_string_lossy().contains([',', ':', '\\']) {
            return Err(SetupError::new(format!(
                "{}: overlayfs cannot use a path containing ',', ':' or '\\'",
                p.display()
            )));
        }
    }
    // index=off: the lower directory is shared by many containers and must stay plain; the index
    // would tie it to one upper (and refuse the next mount) on kernels that enable it by default.
    let opts = format!("lowerdir={lower},upperdir={},workdir={},index=off", upper.display(), work.display());
    mount(Some("overlay"), &overlay.join("merged"), Some("overlay"), MsFlags::empty(), Some(opts.as_str()))
        .map_err(|e| SetupError::new(format!("mounting the overlay root on {}: {e}", rootfs.display())))
}

/// A fresh proc for the new PID namespace: `ps` sees only the container.
fn mount_proc(root: &Dir) -> Result<Dir, SetupError> {
    let target = root.real_dir("proc").map_err(io_step("resolving /proc in the rootfs (a directory, not a link)"))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount(Some("proc"), target.mount_path(), Some("proc"), flags, None::<&str>).map_err(step("mounting /proc"))?;
    // The fd above is the directory under the mount; what the masking works on is the mount.
    let proc = root.dir("proc", false).map_err(io_step("opening the new /proc"))?.strict();
    match proc.fs_type() {
        Ok(libc::PROC_SUPER_MAGIC) => Ok(proc),
        _ => Err(SetupError::new("/proc changed while it was mounted".into())),
    }
}

/// /proc shows kernel-wide state: sysctls writable by uid 0 (core_pattern alone would run a
/// program as host root), memory images, keys. As Docker does, these are read-only or masked.
const PROC_READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];
const PROC_MASKED: &[&str] =
    &["acpi", "asound", "kcore", "keys", "latency_stats", "sched_debug", "scsi", "timer_list", "timer_stats"];

fn protect_proc(proc: &Dir, dev: &Dir) -> Result<(), SetupError> {
    for name in PROC_READ_ONLY {
        let Some((entry, _)) = proc.entry(name).map_err(io_step("opening a /proc path to protect"))? else {
            continue;
        };
        let path = entry.mount_path();
        mount(Some(path), path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(step("binding a /proc path"))?;
        // Again through the name: the remount needs the new bind mount, not the file under it.
        let Some((bound, _)) = proc.entry(name).map_err(io_step("opening a bound /proc path"))? else {
            return Err(SetupError::new(format!("/proc/{name} vanished while being protected")));
        };
        let ro = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount(None::<&str>, bound.mount_path(), None::<&str>, ro, None::<&str>)
            .map_err(step("making a /proc path read-only"))?;
    }
    let Some((null, _)) = dev.entry("null").map_err(io_step("opening /dev/null"))? else {
        return Err(SetupError::new("/dev/null is missing".into()));
    };
    for name in PROC_MASKED {
        match proc.entry(name).map_err(io_step("opening a /proc path to mask"))? {
            Some((dir, Kind::Dir)) => {
                mount(Some("tmpfs"), dir.mount_path(), Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))
                    .map_err(step("masking a /proc directory"))?
            }
            Some((file, Kind::File)) => {
                mount(Some(null.mount_path()), file.mount_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(step("masking a /proc file"))?
            }
            None => {}
        }
    }
    Ok(())
}

/// A tmpfs /dev with the usual nodes, pts and shm; every name made relative to the /dev fd.
fn mount_dev(root: &Dir) -> Result<Dir, SetupError> {
    let target = root.real_dir("dev").map_err(io_step("resolving /dev in the rootfs (a directory, not a link)"))?;
    let nosuid = MsFlags::MS_NOSUID;
    mount(
        Some("tmpfs"),
        target.mount_path(),
        Some("tmpfs"),
        nosuid | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(step("mounting /dev"))?;
    let dev = root.dir("dev", false).map_err(io_step("opening the new /dev"))?.strict();
    if dev.fs_type().ok() != Some(libc::TMPFS_MAGIC) {
        return Err(SetupError::new("/dev changed while it was mounted".into()));
    }
    for &(name, major, minor) in DEVICES {
        dev.mknod(name, libc::S_IFCHR | 0o666, libc::makedev(major, minor))
            .map_err(|e| SetupError::new(format!("creating /dev/{name}: {e}")))?;
    }
    dev.mkdir("pts", 0o755).map_err(io_step("creating /dev/pts"))?;
    let pts = dev.dir("pts", false).map_err(io_step("opening /dev/pts"))?;
    mount(
        Some("devpts"),
        pts.mount_path(),
        Some("devpts"),
        nosuid | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(step("mounting /dev/pts"))?;
    dev.mkdir("shm", 0o755).map_err(io_step("creating /dev/shm"))?;
    let shm = dev.dir("shm", false).map_err(io_step("opening /dev/shm"))?;
    mount(
        Some("shm"),
        shm.mount_path(),
        Some("tmpfs"),
        nosuid | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )
    .map_err(step("mounting /dev/shm"))?;
    for &(target, name) in DEV_LINKS {
        dev.symlink(target, name).map_err(|e| SetupError::new(format!("linking /dev/{name}: {e}")))?;
    }
    Ok(dev)
}

/// Writes each file on a small tmpfs mounted on `scratch` and binds it over its target in the
/// root (created empty if missing, never truncated, never through a link out of the root).
fn mount_etc_files(root: &Dir, scratch: &Path, files: &[EtcFile]) -> Result<(), SetupError> {
    if files.is_empty() {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), scratch, Some("tmpfs"), flags, Some(ETC_TMPFS))
        .map_err(step("mounting the /etc files' tmpfs"))?;
    let bound = (|| {
        let tmp = Dir::root(scratch).map_err(io_step("opening the /etc files' tmpfs"))?.strict();
        for (i, f) in files.iter().enumerate() {
            let name = format!("{i}");
            tmp.write_new(&name, f.content.as_bytes(), 0o644)
                .map_err(|e| SetupError::new(format!("writing {}: {e}", f.target)))?;
            let source = tmp.file(&name, false).map_err(|e| SetupError::new(format!("opening {}: {e}", f.target)))?;
            let target = root
                .file(&f.target, true)
                .map_err(|e| SetupError::new(format!("resolving {} in the rootfs: {e}", f.target)))?;
            mount(Some(source.mount_path()), target.mount_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| SetupError::new(format!("bind-mounting {}: {e}", f.target)))?;
        }
        Ok(())
    })();
    let detached = umount2(scratch, MntFlags::MNT_DETACH).map_err(step("detaching the /etc files' tmpfs"));
    bound.and(detached)
}

/// pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the
/// container's root, with no directory in it to reach the host through (runc's approach).
fn pivot(root: &Dir) -> Result<(), SetupError> {
    nix::unistd::fchdir(root.as_raw_fd()).map_err(step("entering the container root"))?;
    pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detaching the old root"))?;
    nix::unistd::chdir("/").map_err(step("chdir to the new root"))
}

//! Child side, before exec: make the rootfs the container's `/` with its own /proc and a minimal
//! /dev, so nothing of the host's mount tree is visible or affected.
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, pivot_root};

use super::channel::BindFile;
use super::init::SetupError;

/// Character devices every container gets: (name, major, minor), all mode 0666 like Docker's.
const DEVICES: &[(&str, u64, u64)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

fn step(what: &'static str) -> impl Fn(nix::Error) -> SetupError {
    move |e| SetupError::new(format!("{what}: {e}"))
}

/// Everything from the private mount tree to the pivot; on return `/` is the rootfs.
pub fn enter(rootfs: &Path, files: &[BindFile]) -> Result<(), SetupError> {
    // Private first: nothing below may propagate back into the host's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(step("making / private"))?;
    // pivot_root needs the new root to be a mount point.
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(step("bind-mounting the rootfs"))?;
    mount_proc(rootfs)?;
    mount_dev(&rootfs.join("dev"))?;
    protect_proc(rootfs)?;
    for f in files {
        bind_file(rootfs, f)?;
    }
    pivot(rootfs)
}

fn bind_file(rootfs: &Path, file: &BindFile) -> Result<(), SetupError> {
    let target = rootfs.join(file.target.trim_start_matches('/'));
    if !target.exists() {
        if let Some(dir) = target.parent() {
            ensure_dir(dir)?;
        }
        fs::File::create(&target).map_err(|e| SetupError::new(format!("creating {}: {e}", file.target)))?;
    }
    mount(Some(&file.source), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| SetupError::new(format!("bind-mounting {}: {e}", file.target)))
}

fn ensure_dir(path: &Path) -> Result<(), SetupError> {
    fs::create_dir_all(path).map_err(|e| SetupError::new(format!("creating {}: {e}", path.display())))
}

fn mount_proc(rootfs: &Path) -> Result<(), SetupError> {
    let target = rootfs.join("proc");
    ensure_dir(&target)?;
    // A fresh proc for the new PID namespace: `ps` sees only the container.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount(Some("proc"), &target, Some("proc"), flags, None::<&str>).map_err(step("mounting /proc"))
}

/// /proc shows kernel-wide state: sysctls writable by uid 0 (core_pattern alone would run a
/// program as host root), memory images, keys. As Docker does, these are read-only or masked.
const PROC_READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];
const PROC_MASKED: &[&str] =
    &["acpi", "asound", "kcore", "keys", "latency_stats", "sched_debug", "scsi", "timer_list", "timer_stats"];

fn protect_proc(rootfs: &Path) -> Result<(), SetupError> {
    let proc = rootfs.join("proc");
    for name in PROC_READ_ONLY {
        let path = proc.join(name);
        if path.exists() {
            mount(Some(&path), &path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(step("binding a /proc path"))?;
            let ro = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC;
            mount(None::<&str>, &path, None::<&str>, ro, None::<&str>)
                .map_err(step("making a /proc path read-only"))?;
        }
    }
    let null = rootfs.join("dev/null");
    for name in PROC_MASKED {
        let path = proc.join(name);
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => mount(Some("tmpfs"), &path, Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))
                .map_err(step("masking a /proc directory"))?,
            Ok(_) => mount(Some(&null), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(step("masking a /proc file"))?,
            Err(_) => {}
        }
    }
    Ok(())
}

fn mount_dev(dev: &Path) -> Result<(), SetupError> {
    ensure_dir(dev)?;
    let nosuid = MsFlags::MS_NOSUID;
    mount(Some("tmpfs"), dev, Some("tmpfs"), nosuid | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))
        .map_err(step("mounting /dev"))?;
    for &(name, major, minor) in DEVICES {
        let path = dev.join(name);
        mknod(&path, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor))
            .map_err(step("creating a device node"))?;
        // mknod applies the umask; the mode must be exactly 0666.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .map_err(|e| SetupError::new(format!("chmod {}: {e}", path.display())))?;
    }
    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        nosuid | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(step("mounting /dev/pts"))?;
    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        nosuid | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )
    .map_err(step("mounting /dev/shm"))?;
    for &(target, name) in DEV_LINKS {
        symlink(target, dev.join(name)).map_err(|e| SetupError::new(format!("linking /dev/{name}: {e}")))?;
    }
    Ok(())
}

/// pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the
/// rootfs, with no directory in it to reach the host through (runc's approach).
fn pivot(rootfs: &Path) -> Result<(), SetupError> {
    chdir(rootfs).map_err(step("entering the rootfs"))?;
    pivot_root(".", ".").map_err(step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step("detaching the old root"))?;
    chdir("/").map_err(step("chdir to the new root"))
}

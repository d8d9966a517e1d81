//! The mounts every engine container gets (/proc with Docker's masked and read-only paths, /dev
//! with its devices, devpts and shm), made ahead by an init the spawner cloned before its request
//! and moved onto the container's root when its Setup comes: two moves instead of ~20 mounts,
//! device nodes and links on the start's path (~0.6 ms of the init's CPU here, step trace).
//!
//! They are made by the same code as on the path (`rootfs::mount_one`, `make_devices`,
//! `protect_paths`), in a tmpfs of the init's own mount namespace at the supervisor's
//! `<root>/kit` (a private mount there: nothing of it reaches the host), whose /proc is that of
//! the init's own pid namespace, as on the path. A Spec they do not fit (`fits`: other mounts at
//! /proc or /dev, other masked or read-only paths, devices or sysctls of its own (written before
//! /proc/sys is made read-only), a propagation of the root) is built on the path as before, and
//! is not given an init with a kit (the spawner's `MadeKitFits`); a kit is detached with the old
//! root. Its /proc and /dev
//! are moved with everything mounted below them, so the container sees the same tree, with the
//! same flags, either way.
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Mount, MountBuilder, Spec};

use super::error::CoreError;
use super::rootfs;
use super::safepath::Dir;

/// /proc, /dev, /dev/pts, /dev/shm: (destination, type, source, options), Docker's.
pub const MOUNTS: &[(&str, &str, &str, &[&str])] = &[
    ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
    ("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
    ("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
    ("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
];

/// /proc paths made read-only, and masked, as Docker does: sysctls writable by uid 0
/// (core_pattern alone would run a program as host root), memory images, keys.
pub const PROC_READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];
pub const PROC_MASKED: &[&str] =
    &["acpi", "asound", "kcore", "keys", "latency_stats", "sched_debug", "scsi", "timer_list", "timer_stats"];

pub fn readonly_paths() -> Vec<String> {
    PROC_READ_ONLY.iter().map(|p| format!("/proc/{p}")).collect()
}

pub fn masked_paths() -> Vec<String> {
    PROC_MASKED.iter().map(|p| format!("/proc/{p}")).collect()
}

/// The namespaces an init must have been cloned with for its kit: its own mount namespace (the
/// kit's mounts stay in it) and pid namespace (its /proc).
pub fn flags_fit(flags: nix::sched::CloneFlags) -> bool {
    use nix::sched::CloneFlags as F;
    flags.contains(F::CLONE_NEWNS | F::CLONE_NEWPID) && !flags.contains(F::CLONE_NEWUSER)
}

/// Whether `spec`'s /proc and /dev are exactly what the kit holds.
pub fn fits(spec: &Spec) -> bool {
    let Some(linux) = spec.linux() else { return false };
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let same_mount = |m: &Mount, &(dest, typ, source, options): &(&str, &str, &str, &[&str])| {
        m.destination() == Path::new(dest)
            && m.typ().as_deref() == Some(typ)
            && m.source().as_deref() == Some(Path::new(source))
            && m.options().as_deref().unwrap_or_default().iter().map(String::as_str).eq(options.iter().copied())
            && m.uid_mappings().is_none()
            && m.gid_mappings().is_none()
    };
    // Clear of /proc and /dev by its words alone (a `..` could climb into them).
    let clear = |dest: &Path| {
        dest.components().all(|c| c != std::path::Component::ParentDir)
            && !dest.starts_with("/proc")
            && !dest.starts_with("/dev")
    };
    // The Spec's list is /proc/NAME for each NAME of `names`, in order (no list built: this
    // runs on every start, in the supervisor and again in the init).
    let proc_list = |paths: Option<&Vec<String>>, names: &[&str]| {
        paths.is_some_and(|p| p.iter().map(|p| p.strip_prefix("/proc/")).eq(names.iter().map(|n| Some(*n))))
    };
    let own = |kind| rootfs::has_new_namespace(spec, kind);
    mounts.len() >= MOUNTS.len()
        && mounts.iter().zip(MOUNTS).all(|(m, k)| same_mount(m, k))
        && mounts[MOUNTS.len()..].iter().all(|m| clear(m.destination()))
        && proc_list(linux.masked_paths().as_ref(), PROC_MASKED)
        && proc_list(linux.readonly_paths().as_ref(), PROC_READ_ONLY)
        && linux.devices().as_deref().unwrap_or_default().is_empty()
        && linux.sysctl().as_ref().is_none_or(|s| s.is_empty())
        && linux.rootfs_propagation().as_deref().unwrap_or_default().is_empty()
        && own(LinuxNamespaceType::Mount)
        && own(LinuxNamespaceType::Pid)
        && !rootfs::has_namespace(spec, LinuxNamespaceType::User)
}

/// The kit of this init: a tmpfs at `dir` holding `proc` and `dev`, mounted.
pub struct Kit {
    dir: PathBuf,
}

impl Kit {
    /// Makes the kit at `dir` (an empty directory). Makes this namespace's tree private first,
    /// as the root's build would: nothing mounted here may propagate to the host.
    pub fn make(dir: &Path) -> Result<Kit, CoreError> {
        let step = |what: &str| {
            let what = format!("the mounts made ahead: {what}");
            move |e: nix::Error| CoreError::Root { step: what, source: e.into() }
        };
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
            .map_err(step("making / private"))?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("size=16k,mode=0700")).map_err(step("the tmpfs"))?;
        let io = |what: &'static str| move |e: std::io::Error| CoreError::Root { step: what.into(), source: e };
        let root = Dir::root(dir).map_err(io("opening the kit's tmpfs"))?;
        root.mkdir("proc", 0o755).map_err(io("the kit's proc"))?;
        root.mkdir("dev", 0o755).map_err(io("the kit's dev"))?;
        let mounts = MOUNTS.iter().map(to_mount).collect::<Result<Vec<_>, _>>()?;
        rootfs::make_standard(&root, &mounts, &readonly_paths(), &masked_paths())?;
        Ok(Kit { dir: dir.to_path_buf() })
    }

    /// Moves /proc and /dev (with what is mounted below them) onto `root`'s. Each target must be
    /// a real directory of the root, as for a mount there; the moved mount is checked to be where
    /// it was resolved.
    pub fn place(self, root: &Dir) -> Result<(), CoreError> {
        for (name, magic) in [("proc", libc::PROC_SUPER_MAGIC), ("dev", libc::TMPFS_MAGIC)] {
            let dest = format!("/{name}");
            let target = root.real_dir(name).map_err(|e| CoreError::Root {
                step: format!("resolving {dest} in the rootfs (a directory, not a link)"),
                source: e,
            })?;
            mount(Some(&self.dir.join(name)), target.mount_path(), None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .map_err(|e| CoreError::Root { step: format!("moving the {dest} made ahead"), source: e.into() })?;
            let moved = root
                .dir(name, false)
                .map_err(|e| CoreError::Root { step: format!("opening the new {dest}"), source: e })?
                .strict();
            if moved.fs_type().ok() != Some(magic) {
                return Err(CoreError::Root {
                    step: format!("{dest} changed while it was mounted"),
                    source: std::io::Error::from_raw_os_error(libc::EXDEV),
                });
            }
        }
        Ok(())
    }
}

fn to_mount(&(dest, typ, source, options): &(&str, &str, &str, &[&str])) -> Result<Mount, CoreError> {
    mount_of(dest, typ, source, options).map_err(|e| CoreError::spec("mounts", e.to_string()))
}

/// A Spec's mount entry.
pub fn mount_of(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, oci_spec::OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

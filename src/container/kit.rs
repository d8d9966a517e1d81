//! The mounts every engine container gets (/proc with Docker's masked and read-only paths, /dev
//! with its devices, devpts and shm), made ahead by an init the spawner cloned before its request
//! and moved onto the container's root when its Setup comes: two moves instead of ~20 mounts,
//! device nodes and links on the start's path (~0.6 ms of the init's CPU here, step trace).
//!
//! They are made by the same code as on the path (`rootfs::mount_one`, `make_devices`,
//! `protect_paths`), in a tmpfs of the init's own mount namespace, whose /proc is that of the
//! init's own pid namespace, as on the path. That namespace is a copy of the spawner's
//! [`Holding`] one, which holds nothing of the host's: there is no old root to detach at the
//! start (its RCU grace period, ~0.4 ms, was the path's largest wait). The root comes as a mount
//! (nothing of the host is reachable by path), is attached in the kit, gets its mounts, /dev and
//! /proc, and is moved over the namespace's root and entered (`Kit::enter`).
//!
//! A Spec the kit does not fit (`fits`: other mounts at /proc or /dev, other masked or read-only
//! paths, devices or sysctls of its own (written before /proc/sys is made read-only), a
//! propagation of the root, anything of the host's tree to reach) is built on the path as
//! before, by an init cloned in the host's namespace, and is not given an init with a kit (the
//! spawner's `MadeKitFits`). /proc and /dev are moved with everything mounted below them, so the
//! container sees the same tree, with the same flags, either way.
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
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

/// Whether `spec`'s /proc and /dev are exactly what the kit holds, and nothing else of its root's
/// build needs the host's tree (its other mounts, namespaces to join, createContainer hooks run
/// in the init). The caller's side (`lifecycle::create`) adds its own: the root given as a mount,
/// the start gate a channel, no preserved fds.
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
    // Made from nothing of the host's (an init with a kit reaches no host path): no bind,
    // no cgroup (binds of the host's groups), no device or overlay with a host path.
    let sourceless = |m: &Mount| {
        matches!(m.typ().as_deref(), Some("tmpfs" | "mqueue" | "sysfs"))
            && !m.options().as_deref().unwrap_or_default().iter().any(|o| o == "bind" || o == "rbind")
    };
    let own = |kind| rootfs::has_new_namespace(spec, kind);
    let joined = linux.namespaces().as_deref().unwrap_or_default().iter().any(|n| n.path().is_some());
    let create_hooks = spec.hooks().as_ref().and_then(|h| h.create_container().as_ref()).is_some_and(|h| !h.is_empty());
    mounts.len() >= MOUNTS.len()
        && mounts.iter().zip(MOUNTS).all(|(m, k)| same_mount(m, k))
        && mounts[MOUNTS.len()..].iter().all(|m| clear(m.destination()) && sourceless(m))
        && !joined
        && !create_hooks
        && proc_list(linux.masked_paths().as_ref(), PROC_MASKED)
        && proc_list(linux.readonly_paths().as_ref(), PROC_READ_ONLY)
        && linux.devices().as_deref().unwrap_or_default().is_empty()
        && linux.sysctl().as_ref().is_none_or(|s| s.is_empty())
        && linux.rootfs_propagation().as_deref().unwrap_or_default().is_empty()
        && own(LinuxNamespaceType::Mount)
        && own(LinuxNamespaceType::Pid)
        && !rootfs::has_namespace(spec, LinuxNamespaceType::User)
}

/// In an init's copy of the spawner's [`Holding`] namespace: where its /proc and /dev are made
/// (as in a container's root: /proc/self/fd, which every mount below names its target by, works
/// once /proc is there), where the root is attached, and the tmpfs the /etc files are written to
/// (mounted as on the path, `rootfs::ETC_TMPFS`).
pub const ROOT: &str = "/root";
pub const ETC: &str = "/etc";
/// The holding namespace's directories.
const HOLDING_DIRS: [&str; 4] = ["proc", "dev", "etc", "root"];

/// The spawner's mount namespace for inits with a kit: its whole tree is one small read-only
/// tmpfs of empty directories (`/proc`, `/dev`, `/etc`, `/root`), nothing of the host's. An init
/// cloned in it (CLONE_NEWNS) gets a copy of that one mount, so it has nothing of the host's to
/// copy, make private or detach (the detach's RCU grace period, ~0.4 ms, was the path's largest
/// wait), and nothing of the host's can be reached from it. Made once, when the supervisor names
/// the directory.
pub struct Holding {
    ns: OwnedFd,
    home: OwnedFd,
}

impl Holding {
    /// Makes the namespace with a tmpfs over `dir` (an empty directory of the supervisor's)
    /// pivoted into; the caller (single-threaded) is back in its own namespace on return.
    pub fn make(dir: &Path) -> std::io::Result<Holding> {
        use nix::sched::CloneFlags;
        let open = |path: &str| std::fs::File::open(path).map(OwnedFd::from);
        let home = open("/proc/self/ns/mnt")?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
        let made = (|| -> std::io::Result<OwnedFd> {
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("size=4k,mode=0755"))?;
            for name in HOLDING_DIRS {
                std::fs::create_dir(dir.join(name))?;
            }
            let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | flags;
            mount(None::<&str>, dir, None::<&str>, ro, None::<&str>)?;
            let ns = open("/proc/self/ns/mnt")?;
            nix::unistd::chdir(dir)?;
            nix::unistd::pivot_root(".", ".")?;
            umount2(".", MntFlags::MNT_DETACH)?;
            Ok(ns)
        })();
        // Back home whatever happened: the spawner clones every other init there.
        Self::back(&home);
        Ok(Holding { ns: made?, home })
    }

    /// Into the holding namespace, for one clone; [`Holding::back_home`] after it.
    pub fn enter(&self) -> std::io::Result<()> {
        nix::sched::setns(&self.ns, nix::sched::CloneFlags::CLONE_NEWNS).map_err(Into::into)
    }

    pub fn back_home(&self) {
        Self::back(&self.home);
    }

    /// The spawner may not stay in the holding namespace (an init for a path build would be
    /// cloned there): if it cannot go back, it ends, and the supervisor takes the exec path.
    fn back(home: &OwnedFd) {
        if nix::sched::setns(home, nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
            // SAFETY: ends this single-threaded process.
            unsafe { libc::_exit(0) }
        }
    }
}

/// The kit of this init: /proc, /dev and the /etc files' tmpfs mounted in its copy of the
/// [`Holding`] namespace.
pub struct Kit(());

impl Kit {
    /// Makes the kit in this init's copy of the holding namespace: /proc first, by its plain
    /// name (a directory of the read-only holding tmpfs: no link can be there), then the rest as
    /// in a container's root.
    pub fn make() -> Result<Kit, CoreError> {
        let root = Dir::root(Path::new("/"))
            .map_err(|e| CoreError::Root { step: "the mounts made ahead: opening /".into(), source: e })?;
        rootfs::mount_plain(&to_mount(&MOUNTS[0])?, Path::new("/proc"))?;
        let mounts = MOUNTS[1..].iter().map(to_mount).collect::<Result<Vec<_>, _>>()?;
        rootfs::make_standard(&root, &mounts, &readonly_paths(), &masked_paths())?;
        rootfs::mount_etc_tmpfs(Path::new(ETC))?;
        Ok(Kit(()))
    }

    /// Attaches the root (a detached mount: `sys::clone_tree` of a directory, or an overlay made
    /// ahead) at [`ROOT`] and opens it.
    pub fn attach_root(&self, mount: &OwnedFd) -> Result<Dir, CoreError> {
        rootfs::move_mount_onto(mount, Path::new(ROOT)).map_err(|e| CoreError::Root {
            step: "attaching the root to the mounts made ahead".into(),
            source: e.into(),
        })?;
        Dir::root(Path::new(ROOT)).map_err(|e| CoreError::Root { step: "opening the container root".into(), source: e })
    }

    /// Moves /dev and then /proc (with what is mounted below them) onto `root`'s: the last steps
    /// that name a path through /proc/self/fd before /proc leaves the kit. Each target must be a
    /// real directory of the root, as for a mount there; the moved mount is checked to be where
    /// it was resolved.
    pub fn place(&self, root: &Dir) -> Result<(), CoreError> {
        for (name, magic) in [("dev", libc::TMPFS_MAGIC), ("proc", libc::PROC_SUPER_MAGIC)] {
            let dest = format!("/{name}");
            let target = root.real_dir(name).map_err(|e| CoreError::Root {
                step: format!("resolving {dest} in the rootfs (a directory, not a link)"),
                source: e,
            })?;
            mount(Some(dest.as_str()), target.mount_path(), None::<&str>, MsFlags::MS_MOVE, None::<&str>)
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

    /// Makes `root` the container's `/`: moved over the holding tmpfs (the mount namespace's
    /// root), then entered by chroot. No pivot_root and no detach: there is nothing of the host's
    /// to detach, and the holding tmpfs, read-only and empty but for the /etc files' tmpfs, stays
    /// below the root. setns into this mount namespace (`exec`, nsenter) lands on the
    /// root, the topmost mount on the namespace's root, and so does a climb out of it by chroot.
    pub fn enter(self, root: &Dir) -> Result<(), CoreError> {
        let step = |what: &'static str| move |e: nix::Error| CoreError::Root { step: what.into(), source: e.into() };
        nix::unistd::fchdir(root.as_raw_fd()).map_err(step("entering the container root"))?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(step("moving the container root over the mounts made ahead"))?;
        nix::unistd::chroot(".").map_err(step("chroot into the container root"))?;
        nix::unistd::chdir("/").map_err(step("chdir to the new root"))
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

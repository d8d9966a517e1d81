//! Child side, before the command: the container's root (a directory bound onto itself, or its
//! own overlay), the Spec's mounts, /dev's device nodes, the masked and read-only paths, its own
//! /etc files, then pivot_root into it, so nothing of the host's mount tree is visible or
//! affected.
//!
//! Every path below the container root is resolved by [`safepath`]: the root is the container's
//! to shape (it may have left symlinks for this start), and this code runs as real root.
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::pivot_root;
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Mount};

use super::channel::{EtcFile, Plan};
use super::error::CoreError;
use super::lifecycle::RootSource;
use super::safepath::{Dir, Kind};

pub use super::kit::Kit;

/// Character devices every container gets (runc's default devices): (name, major, minor), mode 0666.
const DEFAULT_DEVICES: &[(&str, u32, u32)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

/// What /etc/hosts and /etc/hostname live on: enough for any real hosts file, and a container
/// writing into them fills this, not the host's disk.
const ETC_TMPFS: &str = "size=64k,mode=0755";

fn nix_step(what: impl Into<String>) -> impl FnOnce(nix::Error) -> CoreError {
    CoreError::root_nix(what)
}

fn io_step(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CoreError {
    CoreError::root(what)
}

fn changed(what: &str) -> CoreError {
    CoreError::Root {
        step: format!("{what} changed while it was mounted"),
        source: std::io::Error::from_raw_os_error(libc::EBUSY),
    }
}

/// Everything from the private mount tree to the pivot; on return `/` is the container's root.
/// `root_mount`: the overlay mounted ahead by the caller, or its copy of the root directory's
/// tree (see `Plan::root_mount`); `kit`: the mounts made ahead by this init, for a Spec they fit
/// (`kit::fits`; `build_in_kit`).
pub fn build(plan: &Plan, root_mount: Option<OwnedFd>, kit: Option<Kit>) -> Result<(), CoreError> {
    if let Some(kit) = kit {
        return build_in_kit(plan, root_mount, kit);
    }
    let spec = &plan.spec;
    let linux = spec.linux().as_ref();
    // Private first: nothing below may propagate back into the host's mount namespace. A slave
    // root (rootfsPropagation slave/rslave) is made a slave here instead, as runc does: nothing
    // goes back either, but what the host mounts later under a shared source still reaches the
    // container's binds of it. That is Kubernetes' mountPropagation: HostToContainer (containerd
    // asks for an rslave root and rslave binds); a private copy would cut the link for good.
    // No mount namespace of the container's own (an OCI config that lists none): the caller's
    // is the container's, and nothing of it may change but the root's own bind (see `HostRoot`).
    let own_ns = has_namespace(spec, LinuxNamespaceType::Mount);
    let shared = own_ns && matches!(linux.and_then(|l| l.rootfs_propagation().as_deref()), Some("shared" | "rshared"));
    if shared {
        // runc's way: the tree stays in the host's peer groups, so a bind of a shared host mount
        // propagates both ways (Kubernetes' mountPropagation: Bidirectional asks for an rshared
        // root and rshared binds). Only `/` (pivot_root refuses a shared one) and the mount that
        // holds the root (whose bind would otherwise appear in the host) are made private here.
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
            .map_err(nix_step("making / private for pivot_root"))?;
        let holder = match &plan.root {
            RootSource::Overlay { dir, .. } => dir.join("merged"),
            RootSource::Dir(dir) => dir.clone(),
        };
        make_holder_private(&holder)?;
    } else if own_ns {
        let slave = matches!(linux.and_then(|l| l.rootfs_propagation().as_deref()), Some("slave" | "rslave"));
        let first = if slave { MsFlags::MS_SLAVE } else { MsFlags::MS_PRIVATE };
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | first, None::<&str>)
            .map_err(nix_step("making / private (or a slave)"))?;
    }
    let (root_path, scratch) = match &plan.root {
        RootSource::Overlay { lower, dir, throwaway } => {
            if !own_ns {
                return Err(CoreError::spec("linux.namespaces", "an overlay root needs a mount namespace"));
            }
            match root_mount {
                Some(mount) => move_mount_onto(&mount, &dir.join("merged"))
                    .map_err(nix_step(format!("moving the overlay made ahead onto {}", dir.display())))?,
                None => mount_overlay(lower, dir, *throwaway)?,
            }
            (dir.join("merged"), dir.clone())
        }
        RootSource::Dir(dir) => {
            // A mount of its own, as pivot_root needs, and what a read-only remount acts on: a
            // recursive bind, or the copy of one the caller made (`sys::clone_tree`, for a start
            // that an init with a kit could have served).
            match root_mount {
                Some(mount) if own_ns => move_mount_onto(&mount, dir)
                    .map_err(nix_step(format!("attaching the copy of the root {} onto it", dir.display())))?,
                _ => mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                    .map_err(nix_step(format!("binding the root {} onto itself", dir.display())))?,
            }
            if !own_ns {
                // In the caller's namespace: the bind is made private at once, so the mounts below
                // stay in it (none propagates to the host's peers), and one detach of it at
                // delete takes them all (HostRoot).
                mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None::<&str>)
                    .map_err(nix_step(format!("making the root {} private", dir.display())))?;
            }
            (dir.clone(), PathBuf::from("/tmp"))
        }
    };
    if !own_ns && !plan.files.is_empty() {
        // Their tmpfs would be mounted on the caller's /tmp for a moment.
        return Err(CoreError::spec("linux.namespaces", "the container's own /etc files need a mount namespace"));
    }
    let root = Dir::root(&root_path).map_err(io_step("opening the container root"))?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let (proc, dev_tmpfs) = mount_all(&root, mounts, &plan.cgroup_paths)?;
    // runc's rule: the default devices (and the Spec's) are made unless /dev came from a bind.
    if dev_tmpfs {
        let devices = linux.and_then(|l| l.devices().as_ref()).map(Vec::as_slice).unwrap_or_default();
        make_devices(&root, devices, has_new_namespace(spec, LinuxNamespaceType::User))?;
    }
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        write_sysctls(spec, proc.as_ref(), sysctl)?;
    }
    let readonly = linux.and_then(|l| l.readonly_paths().as_ref()).map(Vec::as_slice).unwrap_or_default();
    let masked = linux.and_then(|l| l.masked_paths().as_ref()).map(Vec::as_slice).unwrap_or_default();
    protect_paths(&root, proc.as_ref(), readonly, masked)?;
    // Any directory of ours can hold the files' tmpfs for the moment it is mounted: the mount
    // exists only in this namespace, and the binds keep the tmpfs alive once it is detached.
    // It lies outside the new root, so the pivot's detach of the old root takes it too: its own
    // unmount (a second RCU grace period, ~0.15 ms) only where a createContainer hook would
    // otherwise find it over the scratch directory.
    let create_hooks = spec.hooks().as_ref().and_then(|h| h.create_container().as_ref()).is_some_and(|h| !h.is_empty());
    mount_etc_files(&root, &scratch, &plan.files, create_hooks)?;
    finish_root(&root, spec)?;
    // createContainer: after the Spec's mounts, before pivot_root, in the container's namespaces.
    super::hooks::run_in_init(
        "createContainer",
        spec.hooks().as_ref().and_then(|h| h.create_container().as_ref()),
        plan.hook_state.as_deref(),
    )?;
    if own_ns {
        pivot(&root, shared)?;
    } else {
        enter_chroot(&root)?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_ref()).filter(|p| !p.is_empty()) {
        let flags = match p.as_str() {
            "private" => MsFlags::MS_PRIVATE,
            "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "shared" => MsFlags::MS_SHARED,
            "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
            "slave" => MsFlags::MS_SLAVE,
            "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
            "unbindable" => MsFlags::MS_UNBINDABLE,
            "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            other => return Err(CoreError::spec("linux.rootfsPropagation", format!("unknown value {other:?}"))),
        };
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(nix_step(format!("setting the root's propagation to {p}")))?;
    }
    Ok(())
}

/// `build` for an init with a kit (a Spec `kit::fits`), in its copy of the spawner's holding
/// namespace (nothing of the host's). The root (a mount given: nothing here names a host path)
/// is attached there, gets the Spec's other mounts, the /etc files (written to the kit's tmpfs),
/// then the kit's /dev and /proc, and becomes `/`; then the cwd is made (it may lie in /dev), or
/// the root made read-only (through the container's own /proc by then).
fn build_in_kit(plan: &Plan, root_mount: Option<OwnedFd>, kit: Kit) -> Result<(), CoreError> {
    let spec = &plan.spec;
    let mount = root_mount
        .ok_or_else(|| CoreError::spec("root", "an init with the mounts made ahead needs its root as a mount"))?;
    let root = kit.attach_root(&mount)?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    mount_all(&root, &mounts[super::kit::MOUNTS.len()..], &plan.cgroup_paths)?;
    let etc = Dir::root(Path::new(super::kit::ETC)).map_err(io_step("opening the /etc files' tmpfs"))?.strict();
    bind_etc_files(&root, &etc, &plan.files)?;
    kit.place(&root)?;
    kit.enter(&root)?;
    finish_root(&root, spec)
}

/// The cwd made, or the root made read-only.
fn finish_root(root: &Dir, spec: &super::Spec) -> Result<(), CoreError> {
    if spec.root().as_ref().and_then(|r| r.readonly()) != Some(true) {
        return make_cwd(root, spec);
    }
    // Only the root mount: /proc, /dev, /dev/shm and the /etc files keep their own flags, as
    // with Docker's --read-only.
    let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    mount(None::<&str>, root.mount_path(), None::<&str>, ro, None::<&str>)
        .map_err(nix_step("making the root read-only"))
}

/// Whether the Spec asks for a new namespace of `kind` (listed without a path to join).
pub(crate) fn has_new_namespace(spec: &super::Spec, kind: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == kind && n.path().is_none()))
}

/// Whether the Spec gives the container its own namespace of `kind` (new or joined by path).
/// Whether the Spec lists a namespace of `kind` (new or joined).
pub fn has_namespace(spec: &super::Spec, kind: LinuxNamespaceType) -> bool {
    spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).is_some_and(|ns| ns.iter().any(|n| n.typ() == kind))
}

/// The Spec's mounts in order: the /proc mounted (for the sysctls and the masked paths), and
/// whether /dev is a fresh tmpfs (for the devices).
fn mount_all(root: &Dir, mounts: &[Mount], cgroup_paths: &[PathBuf]) -> Result<(Option<Dir>, bool), CoreError> {
    let (mut proc, mut dev_tmpfs) = (None, false);
    for m in mounts {
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            mount_cgroup(root, m, cgroup_paths)?;
            continue;
        }
        match mount_one(root, m)? {
            Mounted::Proc(dir) => proc = Some(dir),
            Mounted::DevTmpfs => dev_tmpfs = true,
            Mounted::Other => {}
        }
    }
    Ok((proc, dev_tmpfs))
}

/// Engine's standard /proc and /dev (the kit's, made ahead): `mounts`, the default devices, the
/// read-only and masked paths, in `root`, as `build` makes them in a container's root.
pub(super) fn make_standard(
    root: &Dir,
    mounts: &[Mount],
    readonly: &[String],
    masked: &[String],
) -> Result<(), CoreError> {
    let (proc, dev_tmpfs) = mount_all(root, mounts, &[])?;
    if dev_tmpfs {
        make_devices(root, &[], false)?;
    }
    protect_paths(root, proc.as_ref(), readonly, masked)
}

/// linux.sysctl, refusing (as runc does) any key that is not namespaced by a namespace the
/// container has: a write would change the host. Written through the container's /proc.
fn write_sysctls(
    spec: &super::Spec,
    proc: Option<&Dir>,
    sysctl: &std::collections::HashMap<String, String>,
) -> Result<(), CoreError> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let value = &sysctl[key];
        let allowed = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            has_namespace(spec, LinuxNamespaceType::Ipc)
        } else if key.starts_with("net.") {
            has_namespace(spec, LinuxNamespaceType::Network)
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            has_namespace(spec, LinuxNamespaceType::Uts)
        } else {
            false
        };
        if !allowed || key.contains("..") || key.contains('/') {
            return Err(CoreError::spec(
                format!("linux.sysctl.{key}"),
                "not a sysctl of a namespace the container has (it would change the host)",
            ));
        }
        let rel = format!("sys/{}", key.replace('.', "/"));
        let file = match proc {
            Some(proc) => {
                let entry = proc.file(&rel, false).map_err(io_step(format!("opening sysctl {key}")))?;
                std::fs::OpenOptions::new().write(true).open(entry.mount_path())
            }
            // No /proc of its own yet: the host's, whose sysctl files answer for the writer's namespaces.
            None => std::fs::OpenOptions::new().write(true).open(Path::new("/proc").join(&rel)),
        };
        use std::io::Write;
        file.and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(io_step(format!("setting sysctl {key}={value}")))?;
    }
    Ok(())
}

/// The lower directories are only ever read: whatever the container writes, deletes or makes
/// (setuid copies, device nodes) goes to its own upper directory, which host users cannot reach
/// and which goes with the container.
///
/// `throwaway` (a `run --rm` layer, deleted when the container ends) mounts it `volatile`: the
/// last unmount of an overlay syncs its whole upper filesystem (every dirty page of every
/// process on the host's disk, not only the container's), and that unmount runs in the exit of
/// the container's last process, so a `run --rm` waited for a host-wide sync at every exit
/// (0.2 ms vs 9 ms median on this host's busy disk). A layer nobody will read again needs no
/// sync, nor do the container's own fsyncs into it (podman mounts `--rm` layers volatile too).
/// A kept layer keeps the syncs: an application's fsync inside it must mean what it says.
fn mount_overlay(lower: &[PathBuf], dir: &Path, throwaway: bool) -> Result<(), CoreError> {
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    // overlayfs options are split at ',' and lower layers at ':'; such a path cannot be passed.
    for p in lower.iter().map(PathBuf::as_path).chain([dir]) {
        if p.to_string_lossy().contains([',', ':', '\\']) {
            return Err(CoreError::Root {
                step: format!("{}: overlayfs cannot use a path containing ',', ':' or '\\'", p.display()),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
    }
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    // index=off: a lower directory is shared by many containers and must stay plain; the index
    // would tie it to one upper (and refuse the next mount) on kernels that enable it by default.
    let opts =
        format!("lowerdir={},upperdir={},workdir={},index=off", lowers.join(":"), upper.display(), work.display());
    let merged = dir.join("merged");
    let fail = || nix_step(format!("mounting the overlay root on {}", lowers.join(":")));
    if throwaway {
        match mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(format!("{opts},volatile").as_str()),
        ) {
            // A kernel before 5.10 does not know `volatile`: the layer is mounted as a kept one.
            Err(nix::Error::EINVAL) => {}
            done => return done.map_err(fail()),
        }
    }
    mount(Some("overlay"), &merged, Some("overlay"), MsFlags::empty(), Some(opts.as_str())).map_err(fail())
}

/// Attaches a detached mount (from fsmount) at `target` in this mount namespace.
pub(super) fn move_mount_onto(mount: &OwnedFd, target: &Path) -> nix::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let target = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).map_err(|_| nix::Error::EINVAL)?;
    // SAFETY: the fd is owned by the caller, the strings live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    match r {
        0 => Ok(()),
        _ => Err(nix::Error::last()),
    }
}

enum Mounted {
    Proc(Dir),
    DevTmpfs,
    Other,
}

/// Mount flags and the data string from fstab-style options; propagation flags apart.
struct Options {
    flags: MsFlags,
    propagation: MsFlags,
    data: Vec<String>,
}

/// fstab-style flag options: (name, flag, whether the option sets it or clears it). A later
/// option overrides an earlier one ("ro,rw" is read-write).
const FLAG_OPTIONS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("mand", MsFlags::MS_MANDLOCK, true),
    ("nomand", MsFlags::MS_MANDLOCK, false),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
    ("bind", MsFlags::MS_BIND, true),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), true),
];

/// Propagation options: applied by a mount call of their own, after the mount itself.
const PROPAGATION_OPTIONS: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

fn parse_options(options: &[String]) -> Options {
    let mut o = Options { flags: MsFlags::empty(), propagation: MsFlags::empty(), data: vec![] };
    for opt in options {
        if let Some(&(_, flag, set)) = FLAG_OPTIONS.iter().find(|(name, ..)| name == opt) {
            o.flags.set(flag, set);
        } else if let Some(&(_, prop)) = PROPAGATION_OPTIONS.iter().find(|(name, _)| name == opt) {
            o.propagation |= prop;
        } else {
            o.data.push(opt.clone());
        }
    }
    o
}

/// The filesystem a fresh mount of this type must show (statfs f_type), to prove the mount
/// landed where it was resolved.
fn magic(fstype: &str) -> Option<i64> {
    Some(match fstype {
        "proc" => libc::PROC_SUPER_MAGIC,
        "tmpfs" => libc::TMPFS_MAGIC,
        "sysfs" => libc::SYSFS_MAGIC,
        "devpts" => libc::DEVPTS_SUPER_MAGIC,
        "mqueue" => 0x1980_0202,
        "cgroup2" => libc::CGROUP2_SUPER_MAGIC,
        _ => return None,
    })
}

/// One mount of the Spec, its target resolved inside the root. A destination directly below
/// the root (/proc, /dev, /sys) must be a real directory, not a link (runc refuses a linked
/// /proc too): a mount on it then lands where the container sees it.
fn mount_one(root: &Dir, m: &Mount) -> Result<Mounted, CoreError> {
    let dest = m.destination().to_string_lossy().to_string();
    let fstype = m.typ().clone().unwrap_or_default();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let bind = opts.flags.contains(MsFlags::MS_BIND) || fstype == "bind";
    let rel = dest.trim_start_matches('/');
    if rel.is_empty() || !dest.starts_with('/') {
        return Err(CoreError::spec("mounts", format!("destination {dest:?} must be an absolute path below /")));
    }
    if bind {
        let source = m.source().clone().unwrap_or_default();
        let is_dir = std::fs::metadata(&source).map_err(io_step(format!("bind source {}", source.display())))?.is_dir();
        let target = resolve_target(root, rel, &dest, is_dir)?;
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        mount(Some(&source), target.path(), None::<&str>, flags, None::<&str>)
            .map_err(nix_step(format!("bind-mounting {} on {dest}", source.display())))?;
        // Flags beyond the bind itself take a remount of the new mount (the kernel ignores
        // them on the bind call).
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
        if !extra.is_empty() {
            let again = resolve_target(root, rel, &dest, is_dir)?;
            mount(
                None::<&str>,
                again.path(),
                None::<&str>,
                extra | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(nix_step(format!("remounting {dest} with its options")))?;
        }
        set_propagation(root, rel, &dest, is_dir, opts.propagation)?;
        return Ok(Mounted::Other);
    }
    let target = if rel.contains('/') {
        root.dir(rel, true).map_err(io_step(format!("resolving {dest} in the rootfs")))?
    } else {
        root.real_dir(rel).map_err(io_step(format!("resolving {dest} in the rootfs (a directory, not a link)")))?
    };
    mount_fs(m, &opts, target.mount_path())?;
    // The fd above is the directory under the mount; what comes next works on the mount.
    let mounted = root.dir(rel, false).map_err(io_step(format!("opening the new {dest}")))?.strict();
    if let Some(want) = magic(&fstype) {
        if mounted.fs_type().ok() != Some(want) {
            return Err(changed(&dest));
        }
    }
    if !opts.propagation.is_empty() {
        mount(None::<&str>, mounted.mount_path(), None::<&str>, opts.propagation, None::<&str>)
            .map_err(nix_step(format!("setting the propagation of {dest}")))?;
    }
    Ok(match (fstype.as_str(), dest.as_str()) {
        ("proc", "/proc") => Mounted::Proc(mounted),
        ("tmpfs", "/dev") => Mounted::DevTmpfs,
        _ => Mounted::Other,
    })
}

/// The filesystem of `m` (not a bind) mounted at `target` with `opts` (its parsed options).
fn mount_fs(m: &Mount, opts: &Options, target: &Path) -> Result<(), CoreError> {
    let fstype = m.typ().clone().unwrap_or_default();
    let source = m.source().as_ref().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| fstype.clone());
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data);
    mount(Some(source.as_str()), target, Some(fstype.as_str()), opts.flags, data.as_deref())
        .map_err(nix_step(format!("mounting {}", m.destination().display())))
}

/// `m` (a filesystem, not a bind) at `target`, a path the caller made and trusts (no link can
/// be on it): the kit's /proc, the first mount of its namespace, which `mount_one`'s way of
/// naming a target (through /proc/self/fd) needs.
pub(super) fn mount_plain(m: &Mount, target: &Path) -> Result<(), CoreError> {
    mount_fs(m, &parse_options(m.options().as_deref().unwrap_or_default()), target)
}

/// A mount of type `cgroup`: the container's own groups and nothing above them, bound from the
/// host (runc's way without a cgroup namespace): on v2 its directory at the destination, on v1 a
/// tmpfs there with one directory per hierarchy (`memory`, `cpu,cpuacct`, ...) bound to its group.
fn mount_cgroup(root: &Dir, m: &Mount, paths: &[PathBuf]) -> Result<(), CoreError> {
    let dest = m.destination().to_string_lossy().to_string();
    let rel = dest.trim_start_matches('/').to_string();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let flags = opts.flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let bind = |source: &Path, target: &Dir, what: &str| -> Result<(), CoreError> {
        mount(Some(source), target.mount_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(nix_step(format!("binding the container's cgroup on {what}")))?;
        let again = root.dir(what.trim_start_matches('/'), false).map_err(io_step(format!("opening {what}")))?;
        mount(
            None::<&str>,
            again.mount_path(),
            None::<&str>,
            flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(nix_step(format!("remounting {what} with its options")))
    };
    let target = root.dir(&rel, true).map_err(io_step(format!("resolving {dest} in the rootfs")))?;
    if let [single] = paths {
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return bind(single, &target, &dest);
        }
    }
    mount(
        Some("tmpfs"),
        target.mount_path(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(nix_step(format!("mounting the tmpfs of {dest}")))?;
    for path in paths {
        // /sys/fs/cgroup/<hierarchy>/<group...>: the hierarchy's name is the first component.
        let Some(hierarchy) = path.strip_prefix("/sys/fs/cgroup").ok().and_then(|p| p.components().next()) else {
            continue;
        };
        let hierarchy = hierarchy.as_os_str().to_string_lossy().to_string();
        let sub = format!("{rel}/{hierarchy}");
        let dir = root.dir(&sub, true).map_err(io_step(format!("creating /{sub}")))?;
        bind(path, &dir, &format!("/{sub}"))?;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top = root.dir(&rel, false).map_err(io_step(format!("opening {dest}")))?;
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(None::<&str>, top.mount_path(), None::<&str>, ro, None::<&str>)
            .map_err(nix_step(format!("making {dest} read-only")))?;
    }
    Ok(())
}

/// A resolved mount point, held open: its `mount_path` names the fd.
enum Target {
    Dir(Dir),
    File(super::safepath::Entry),
}

impl Target {
    fn path(&self) -> &Path {
        match self {
            Target::Dir(d) => d.mount_path(),
            Target::File(f) => f.mount_path(),
        }
    }
}

/// A working directory the root lacks is made (0755, missing parents too), as Docker makes an
/// image's WorkingDir and runc a process's cwd; resolved inside the root like every path here.
/// Not in a read-only root: nothing is written there, and the chdir names the missing directory.
fn make_cwd(root: &Dir, spec: &oci_spec::runtime::Spec) -> Result<(), CoreError> {
    let Some(cwd) = spec.process().as_ref().map(|p| p.cwd().to_string_lossy().into_owned()) else { return Ok(()) };
    if root.entry(&cwd).map_err(io_step(format!("resolving the working directory {cwd}")))?.is_none() {
        root.dir(&cwd, true).map_err(io_step(format!("making the working directory {cwd}")))?;
    }
    Ok(())
}

/// The mount point for a bind: a directory for a directory, a file (created empty) otherwise.
fn resolve_target(root: &Dir, rel: &str, dest: &str, is_dir: bool) -> Result<Target, CoreError> {
    let step = || format!("resolving {dest} in the rootfs");
    Ok(if is_dir {
        Target::Dir(root.dir(rel, true).map_err(io_step(step()))?)
    } else {
        Target::File(root.file(rel, true).map_err(io_step(step()))?)
    })
}

fn set_propagation(root: &Dir, rel: &str, dest: &str, is_dir: bool, propagation: MsFlags) -> Result<(), CoreError> {
    if propagation.is_empty() {
        return Ok(());
    }
    let target = resolve_target(root, rel, dest, is_dir)?;
    mount(None::<&str>, target.path(), None::<&str>, propagation, None::<&str>)
        .map_err(nix_step(format!("setting the propagation of {dest}")))
}

/// The default devices, the Spec's devices, and /dev's usual links, in the fresh /dev tmpfs.
/// In a user namespace no device node can be made: the host's are bound instead (runc's way).
fn make_devices(root: &Dir, devices: &[oci_spec::runtime::LinuxDevice], user_ns: bool) -> Result<(), CoreError> {
    let dev = root.dir("dev", false).map_err(io_step("opening the new /dev"))?.strict();
    // /dev/ptmx is always the link to the container's own devpts instance (DEV_LINKS), as runc
    // makes it whatever the Spec lists: a privileged container (ctr run --privileged, a
    // privileged Kubernetes pod) gets every host device in linux.devices, /dev/ptmx among them,
    // and that node would open the host's pty instance. Its device rule stays as given.
    let devices: Vec<&oci_spec::runtime::LinuxDevice> =
        devices.iter().filter(|d| d.path() != Path::new("/dev/ptmx")).collect();
    if user_ns {
        let host: Vec<PathBuf> = DEFAULT_DEVICES
            .iter()
            .map(|(name, _, _)| PathBuf::from(format!("/dev/{name}")))
            .chain(devices.iter().map(|d| d.path().clone()))
            .collect();
        for path in host {
            let rel = path.to_string_lossy().trim_start_matches("/dev/").to_string();
            let target = dev.file(&rel, true).map_err(io_step(format!("creating {}", path.display())))?;
            mount(Some(&path), target.mount_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(nix_step(format!("binding the host's {}", path.display())))?;
        }
        for &(target, name) in DEV_LINKS {
            dev.symlink(target, name).map_err(io_step(format!("linking /dev/{name}")))?;
        }
        return Ok(());
    }
    for &(name, major, minor) in DEFAULT_DEVICES {
        dev.mknod(name, libc::S_IFCHR | 0o666, libc::makedev(major, minor))
            .map_err(io_step(format!("creating /dev/{name}")))?;
    }
    for d in devices {
        let path = d.path().to_string_lossy().to_string();
        let Some(rel) = path.strip_prefix("/dev/").filter(|r| !r.is_empty()) else {
            return Err(CoreError::spec("linux.devices", format!("{path:?} is not below /dev")));
        };
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err(CoreError::spec("linux.devices", format!("{path}: type a"))),
        };
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, rel),
        };
        let sub;
        let dir = match parent {
            Some(p) => {
                sub = dev.dir(p, true).map_err(io_step(format!("creating the directory of {path}")))?;
                &sub
            }
            None => &dev,
        };
        if DEFAULT_DEVICES.iter().any(|(n, _, _)| parent.is_none() && *n == name) {
            // Already made; the Spec's copy (same node, maybe another mode) replaces it.
            let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        let devno = libc::makedev(d.major() as u32, d.minor() as u32);
        dir.mknod(name, kind | mode, devno).map_err(io_step(format!("creating {path}")))?;
        let (uid, gid) = (d.uid().unwrap_or(0), d.gid().unwrap_or(0));
        if uid != 0 || gid != 0 {
            nix::unistd::fchownat(
                Some(dir.as_raw_fd()),
                name,
                Some(uid.into()),
                Some(gid.into()),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(nix_step(format!("chown {path}")))?;
        }
    }
    for &(target, name) in DEV_LINKS {
        dev.symlink(target, name).map_err(io_step(format!("linking /dev/{name}")))?;
    }
    Ok(())
}

/// Read-only paths: bound onto themselves and remounted read-only. Masked paths: a directory
/// gets an empty read-only tmpfs, anything else (file, device node, fifo) /dev/null. Paths below
/// /proc are resolved in the /proc the init just mounted, where nothing may be a link; the others
/// in the root, links followed inside it. A path that is not there is skipped (runc, crun); one
/// that cannot be resolved (a link looping on itself: ELOOP) fails the container, as does a
/// relative one.
fn protect_paths(root: &Dir, proc: Option<&Dir>, readonly: &[String], masked: &[String]) -> Result<(), CoreError> {
    for (field, paths) in [("linux.readonlyPaths", readonly), ("linux.maskedPaths", masked)] {
        if let Some((i, p)) = paths.iter().enumerate().find(|(_, p)| !p.starts_with('/')) {
            return Err(CoreError::spec(format!("{field}[{i}]"), format!("{p:?} is not an absolute path")));
        }
    }
    let place = |path: &str| -> (&Dir, String) {
        match (path.strip_prefix("/proc/"), proc) {
            (Some(rel), Some(proc)) => (proc, rel.to_string()),
            _ => (root, path.trim_start_matches('/').to_string()),
        }
    };
    for path in readonly {
        let (dir, rel) = place(path);
        let Some((entry, _)) = dir.node(&rel).map_err(io_step(format!("opening {path} to make it read-only")))? else {
            continue;
        };
        let p = entry.mount_path();
        mount(Some(p), p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(nix_step(format!("binding {path}")))?;
        // Again through the name: the remount needs the new bind mount, not the file under it.
        let Some((bound, _)) = dir.node(&rel).map_err(io_step(format!("opening the bound {path}")))? else {
            return Err(changed(path));
        };
        let ro = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount(None::<&str>, bound.mount_path(), None::<&str>, ro, None::<&str>)
            .map_err(nix_step(format!("making {path} read-only")))?;
    }
    if masked.is_empty() {
        return Ok(());
    }
    let null = root.entry("dev/null").map_err(io_step("opening /dev/null"))?;
    let Some((null, _)) = null else {
        return Err(CoreError::Root {
            step: "/dev/null (the source of masks)".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        });
    };
    for path in masked {
        let (dir, rel) = place(path);
        match dir.node(&rel).map_err(io_step(format!("opening {path} to mask it")))? {
            Some((d, Kind::Dir)) => {
                mount(Some("tmpfs"), d.mount_path(), Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))
                    .map_err(nix_step(format!("masking {path}")))?
            }
            // Any non-directory takes a bind of another: /dev/null over a file, a device node, a fifo.
            Some((file, Kind::File)) => {
                mount(Some(null.mount_path()), file.mount_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(nix_step(format!("masking {path}")))?
            }
            None => {}
        }
    }
    Ok(())
}

/// Writes each file on a small tmpfs mounted on `scratch` and binds it over its target in the
/// root (created empty if missing, never truncated, never through a link out of the root).
fn mount_etc_files(root: &Dir, scratch: &Path, files: &[EtcFile], detach: bool) -> Result<(), CoreError> {
    if files.is_empty() {
        return Ok(());
    }
    mount_etc_tmpfs(scratch)?;
    let bound = Dir::root(scratch)
        .map_err(io_step("opening the /etc files' tmpfs"))
        .and_then(|tmp| bind_etc_files(root, &tmp.strict(), files));
    if !detach && bound.is_ok() {
        return Ok(());
    }
    let detached = umount2(scratch, MntFlags::MNT_DETACH).map_err(nix_step("detaching the /etc files' tmpfs"));
    bound.and(detached)
}

/// The tmpfs the container's own /etc files are written to, at `at`.
pub(super) fn mount_etc_tmpfs(at: &Path) -> Result<(), CoreError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), at, Some("tmpfs"), flags, Some(ETC_TMPFS)).map_err(nix_step("mounting the /etc files' tmpfs"))
}

/// Writes each file to `tmp` (their tmpfs) and binds it onto its target in the root.
fn bind_etc_files(root: &Dir, tmp: &Dir, files: &[EtcFile]) -> Result<(), CoreError> {
    for (i, f) in files.iter().enumerate() {
        let name = format!("{i}");
        tmp.write_new(&name, f.content.as_bytes(), 0o644).map_err(io_step(format!("writing {}", f.target)))?;
        let source = tmp.file(&name, false).map_err(io_step(format!("opening {}", f.target)))?;
        let target = root.file(&f.target, true).map_err(io_step(format!("resolving {} in the rootfs", f.target)))?;
        mount(Some(source.mount_path()), target.mount_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(nix_step(format!("bind-mounting {}", f.target)))?;
    }
    Ok(())
}

/// Without a mount namespace of its own, pivot_root would move the caller's root: chroot into
/// the container's (runc's and crun's way there).
fn enter_chroot(root: &Dir) -> Result<(), CoreError> {
    nix::unistd::fchdir(root.as_raw_fd()).map_err(nix_step("entering the container root"))?;
    nix::unistd::chroot(".").map_err(nix_step("chroot into the container root"))?;
    nix::unistd::chdir("/").map_err(nix_step("chdir to the new root"))
}

/// Makes the mount holding `path` (the topmost at it, or the one it lies in) private, found by its
/// id in /proc/self/mountinfo (the mount call needs the mount point, not any path inside).
fn make_holder_private(path: &Path) -> Result<(), CoreError> {
    let id = mount_id(path).map_err(io_step(format!("reading the mount id of {}", path.display())))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(io_step("reading /proc/self/mountinfo"))?;
    let point = info
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[0].parse::<u64>().ok() == Some(id))
        .map(|f| unescape_mountinfo(f[4]))
        .ok_or_else(|| CoreError::Root {
            step: format!("finding the mount that holds {} in /proc/self/mountinfo", path.display()),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        })?;
    mount(None::<&str>, point.as_str(), None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(nix_step(format!("making the mount {point} that holds the root private")))
}

/// mountinfo writes space, tab, newline and backslash in a path as \ooo octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0')) as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The root of a container that has no mount namespace of its own: its bind onto itself, and
/// every mount of the Spec below it, live in the caller's namespace (as with runc and crun), and
/// outlive the init. They are told apart from anything else at that path by the mount's id
/// (statx STATX_MNT_ID): the one `delete` (or a failed create) detaches, with all below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    pub dir: PathBuf,
    /// The id of the mount at `dir` before the container's bind (its parent's, or a mount the
    /// caller made there, as containerd mounts a rootfs).
    pub before: u64,
}

/// The id of the topmost mount at `dir` (statx STATX_MNT_ID).
pub fn mount_id(dir: &Path) -> std::io::Result<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statx fills the struct; zeroed is a valid value of it.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and struct pointer for the duration of the call.
    let rc =
        unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, libc::STATX_MNT_ID, &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(st.stx_mnt_id)
}

impl HostRoot {
    /// Whether the Spec leaves the container in the caller's mount namespace with this root.
    pub fn of(spec: &super::Spec, root: &RootSource) -> Result<Option<HostRoot>, CoreError> {
        match root {
            RootSource::Dir(dir) if !has_namespace(spec, LinuxNamespaceType::Mount) => {
                let before = mount_id(dir).map_err(io_step(format!("reading the mount id of {}", dir.display())))?;
                Ok(Some(HostRoot { dir: dir.clone(), before }))
            }
            _ => Ok(None),
        }
    }

    /// The id of the container's bind at `dir`, if the init made it.
    pub fn made(&self) -> Option<u64> {
        mount_id(&self.dir).ok().filter(|id| *id != self.before)
    }
}

/// Detaches the container's root bind `made` (with every mount below it) from `dir`, if it is
/// still the mount there; anything else at `dir` is left alone.
pub fn release_host_root(dir: &Path, made: u64) -> Result<(), CoreError> {
    match mount_id(dir) {
        Ok(id) if id == made => umount2(dir, MntFlags::MNT_DETACH)
            .map_err(nix_step(format!("detaching the container's root mount {}", dir.display()))),
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(CoreError::root(format!("reading the mount id of {}", dir.display()))(e)),
    }
}

/// pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the
/// container's root, with no directory in it to reach the host through (runc's approach).
fn pivot(root: &Dir, shared: bool) -> Result<(), CoreError> {
    // An rshared root kept the old tree in the host's peer groups: made slaves first, its
    // unmounts cannot propagate to the host's mounts (runc's step). The mount call needs the old
    // root itself as ".", reached through an fd of it: "." after the pivot is the new root, whose
    // shared binds must stay as they are. A private or slave tree has nothing to propagate.
    let old_root = match shared {
        true => Some(Dir::root(Path::new("/")).map_err(io_step("opening the old root"))?),
        false => None,
    };
    nix::unistd::fchdir(root.as_raw_fd()).map_err(nix_step("entering the container root"))?;
    pivot_root(".", ".").map_err(nix_step("pivot_root"))?;
    if let Some(old) = old_root {
        nix::unistd::fchdir(old.as_raw_fd()).map_err(nix_step("entering the old root"))?;
        mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
            .map_err(nix_step("making the old root a slave"))?;
    }
    umount2(".", MntFlags::MNT_DETACH).map_err(nix_step("detaching the old root"))?;
    nix::unistd::chdir("/").map_err(nix_step("chdir to the new root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo("/plain\\"), "/plain\\");
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let opts: Vec<String> =
            ["ro", "nosuid", "rw", "rbind", "rslave", "mode=755", "size=1k"].iter().map(|s| s.to_string()).collect();
        let o = parse_options(&opts);
        // The later "rw" wins over "ro".
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, ["mode=755", "size=1k"]);
    }
}

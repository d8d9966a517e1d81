//! Starting and stopping one container: the supervisor's half of the parent/child handshake.
use std::time::Duration;

pub use super::failure::Failure;
use super::logs::LogFile;
use super::overlay_ahead;
use super::record::ImageUse;
use super::resources::{self, Resources};
use super::spec::ContainerSpec;
use super::Supervisor;
use crate::container::{self, exit, CreateOptions, InitHandle, InitMode, RootSource, StartGate, Stdio};

/// What becomes of the container's writable layer when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Kept until `rm` (the container can be started again, exported, inspected).
    Kept,
    /// Deleted when the container ends (`run --rm`): mounted without syncs (see
    /// `container::rootfs`), since nothing of it is ever read again.
    Throwaway,
}

/// Creates the container and returns once its command runs (its host PID), or fails leaving
/// nothing behind: no record, no log file, no process. Crash-consistent: the record is on disk
/// before the init may run the command (see `registry`), and a supervisor killed earlier leaves
/// only files and cgroups the next one removes as orphans.
pub fn start(sup: &Supervisor, spec: ContainerSpec) -> Result<i32, Failure> {
    start_with(sup, spec, Layer::Kept)
}

/// [`start`], saying what becomes of the writable layer.
pub fn start_with(sup: &Supervisor, mut spec: ContainerSpec, layer: Layer) -> Result<i32, Failure> {
    crate::container::trace::begin(&spec.name);
    // Held until the record naming the image is on disk (or the start failed): see resolve_locked.
    let (image, _store_lock) = match resolve_image(sup, &mut spec)? {
        Some((image, lock)) => (Some(image), Some(lock)),
        None => (None, None),
    };
    spec.validate().map_err(Failure::engine)?;
    // Until the volumes are made, so a `volume rm` either finished first or sees this record.
    let _volumes_lock = match spec.volumes.iter().any(|v| v.kind == super::volumes::MountKind::Volume) {
        true => Some(super::volumes::lock(&sup.root, false).map_err(Failure::engine)?),
        false => None,
    };
    let name = spec.name.clone();
    let log_path = sup.logs_dir().join(format!("{name}.log"));
    sup.registry.reserve(&spec, log_path.clone())?;
    // The name is ours now; its host ports are taken here, before anything is made.
    if let Err(e) = sup.ports.claim(&name, &spec.ports) {
        sup.registry.abandon(&name);
        return Err(Failure::engine(e));
    }
    if let Some(image) = &image {
        sup.registry.set_image(&name, image.clone());
    }
    if layer == Layer::Throwaway {
        sup.registry.set_throwaway(&name);
    }
    // Checked after the reservation: a shutdown sets the flag before it lists the containers to
    // stop, so a start either is on that list or sees the flag here.
    if sup.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
        sup.registry.abandon(&name);
        sup.ports.release(&name);
        return Err(Failure::engine("the supervisor is shutting down"));
    }
    crate::container::trace::step(&name, "name reserved");
    let started = launch(sup, spec, image.as_ref(), &log_path, false, layer);
    if started.is_err() {
        crate::container::trace::end(&name, "start failed");
        sup.registry.kill_init(&name);
        if let Some(ended) = sup.registry.abandon(&name) {
            release(sup, ended);
        }
        let _ = super::logs::rotate::remove_all(&log_path);
        remove_overlay(sup, &name);
        sup.ports.release(&name);
    }
    started
}

/// Gives back what an ended container held, reporting (not stopping at) each failure, then
/// lets its `--restart` policy act.
pub fn release(sup: &Supervisor, ended: super::registry::Ended) {
    let name = ended.name.clone();
    give_back(sup, ended);
    crate::container::trace::step(&name, "released (cgroups removed)");
    super::restart::schedule(sup, &name);
}

/// What every end releases, a failed restart's too: the console, the resources, the record's
/// live part.
pub fn give_back(sup: &Supervisor, mut ended: super::registry::Ended) {
    sup.consoles.remove(&ended.name);
    // Let go of last, once the waiters are woken: the unmounting is this thread's alone. What
    // waited for it (a removed `run --rm`'s layer to delete) runs after.
    let mount_ns = ended.resources.mount_ns.take();
    for e in super::resources::release(sup, &ended.name, ended.pid, ended.resources) {
        crate::warn!("{e}");
    }
    let after = sup.registry.released(&ended.name);
    drop(mount_ns);
    for job in after {
        job();
    }
}

/// Starts an ended container again (`--restart`), on its own copy-on-write layer and appending
/// to its log; on a failure the caller undoes what was made (see `restart`).
pub fn relaunch(
    sup: &Supervisor,
    spec: ContainerSpec,
    image: Option<&ImageUse>,
    log_path: &std::path::Path,
) -> Result<i32, Failure> {
    launch(sup, spec, image, log_path, true, Layer::Kept)
}

/// The image named where a ROOTFS stands, merged into `spec` (its command, environment, working
/// directory, user), with the store's shared lock. A name the store does not know falls back to
/// the directory of that name the CLI found, if any (see the README: how `run` tells an image
/// from a directory).
fn resolve_image(
    sup: &Supervisor,
    spec: &mut ContainerSpec,
) -> Result<Option<(ImageUse, crate::image::store::Lock)>, Failure> {
    let Some(reference) = spec.image.clone() else { return Ok(None) };
    match crate::image::resolve_locked(&crate::image::store_dir(&sup.root), &reference) {
        Ok((image, lock)) => {
            spec.rootfs = std::path::PathBuf::new();
            spec.apply_image(&image.config, &image.reference).map_err(Failure::engine)?;
            let used = ImageUse {
                id: image.digest,
                reference: image.reference,
                layers: image.lower_dirs,
                config: image.config,
            };
            Ok(Some((used, lock)))
        }
        Err(crate::image::Error::NotFound(_)) if !spec.rootfs.as_os_str().is_empty() => {
            spec.image = None;
            Ok(None)
        }
        Err(crate::image::Error::NotFound(_)) => Err(Failure {
            missing_image: Some(reference.clone()),
            ..Failure::engine(format!(
                "no such image or directory: {reference} (`engine pull {reference}` fetches an image)"
            ))
        }),
        Err(e) => Err(Failure::engine(format!("image {reference}: {e}"))),
    }
}

/// `again`: a restart, which keeps the container's layer and log.
fn launch(
    sup: &Supervisor,
    spec: ContainerSpec,
    image: Option<&ImageUse>,
    log_path: &std::path::Path,
    again: bool,
    layer: Layer,
) -> Result<i32, Failure> {
    let name = spec.name.clone();
    let lower = match image {
        Some(i) => i.layers.clone(),
        None => vec![spec.rootfs.clone()],
    };
    let user = crate::image::user::resolve_user(spec.user.as_deref().unwrap_or(""), &lower)
        .map_err(|e| Failure::engine(format!("cannot start {name}: {e}")))?;
    // `-v NAME:CTR` uses the volume, creating it on first use (Docker's way).
    for v in spec.volumes.iter().filter(|v| v.kind == super::volumes::MountKind::Volume) {
        super::volumes::create(&sup.root, &v.source).map_err(Failure::engine)?;
    }
    let volumes_dir = super::volumes::volumes_dir(&sup.root);
    let host = super::to_oci::Host { monitor: sup.monitor.is_some(), volumes_dir };
    let oci = super::to_oci::translate(&spec, &host, &format!("{}/{name}", sup.cgroup_parent), &user)?;
    crate::container::trace::step(&name, "spec translated");
    // A spare layer made ahead over the same layers (see overlay_ahead), when the init mounts
    // no namespace of a new user's (its root could not attach a mount made by ours).
    let ahead = (!again && !container::rootfs::has_namespace(&oci, oci_spec::runtime::LinuxNamespaceType::User))
        .then(|| overlay_ahead::Key { lowers: lower.clone(), throwaway: layer == Layer::Throwaway });
    let mut root_mount = ahead.as_ref().and_then(|key| take_spare(sup, &name, key));
    let overlay = match (again, &root_mount) {
        (false, None) => make_overlay(sup, &name, &lower, image.is_none())?,
        _ => sup.overlay_dir(&name),
    };
    crate::container::trace::step(
        &name,
        if root_mount.is_some() { "overlay taken ahead" } else { "overlay dirs made" },
    );
    if root_mount.is_none() && container::spawner::makes_kits() && container::kit::fits(&oci) {
        // No spare: mounted here, detached, as a spare is, so an init that made its mounts ahead
        // (in a namespace with nothing of the host's) can take this start too.
        root_mount = overlay_ahead::mount_detached(&lower, &overlay, layer == Layer::Throwaway).ok();
        crate::container::trace::step(&name, "overlay mounted detached");
    }
    let log = LogFile::rotating(log_path.to_path_buf(), spec.log.rotation());

    // Between clone and Setup (the workload never runs unlimited or unplugged): the registry
    // learns the init (so a failure can kill it), then the monitor and the network.
    let mut resources = Resources::default();
    let mut enforcement = Ok(None);
    let before_setup = |init: &InitHandle<'_>| -> Result<Vec<container::EtcFile>, container::BoxError> {
        let pidfd =
            init.pidfd.try_clone_to_owned().map_err(|e| Failure::engine(format!("duplicating the pidfd: {e}")))?;
        sup.registry.set_spawned(&name, init.pid, pidfd, log.clone());
        resources.mount_ns = resources::hold_mount_ns(init.pid);
        let paths = init.cgroup.map(|c| c.paths()).unwrap_or_default();
        enforcement = resources::acquire(sup, &spec, init.pid, &paths, &mut resources);
        if let Err(e) = &enforcement {
            return Err(Box::new(Failure::with_code(e.exit_code, &e.message)));
        }
        Ok(resources::etc_files(&spec, &resources))
    };
    // `-i`/`-t`: their stdio (a plain container keeps its pipes; see `console`).
    let (stdio, console, console_output) = match super::console::stdio(&spec)? {
        Some(c) => (c.stdio, Some(c.setup), c.output),
        None => (Stdio::Pipes, None, None),
    };
    let created = container::create(CreateOptions {
        id: name.clone(),
        spec: oci,
        root: RootSource::Overlay { lower, dir: overlay, throwaway: layer == Layer::Throwaway },
        stdio,
        mode: InitMode::Reaper,
        gate: StartGate::Channel,
        files: Vec::new(),
        cgroup_parent: sup.cgroup_parent.clone(),
        cgroup: container::CgroupRules::Engine,
        before_setup: Some(Box::new(before_setup)),
        init_binary: None,
        hook_state: None,
        preserve_fds: Vec::new(),
        root_mount,
        cgroup_ahead: sup.cgroups_ahead.take(),
        bridged: spec.net == super::spec::NetMode::Bridge,
        rss_limited: sup.monitor.is_some() && (spec.soft_bytes().is_some() || spec.hard_bytes().is_some()),
    });
    let mut pending = match created {
        Ok(p) => p,
        Err(e) => {
            // What the hook acquired (monitor, network) is given back by the caller's abandon.
            sup.registry.set_resources(&name, resources, None);
            return Err(cannot_start(&name, e));
        }
    };
    crate::container::trace::step(&name, "created (init building its root)");
    // The network's links, while the init builds its root; what was made goes to the registry
    // either way, for the caller's abandon to give back.
    let plugged = resources::plug(sup, &spec, pending.pid(), &mut resources);
    crate::container::trace::step(&name, "network plugged");
    resources.cgroup = pending.take_cgroup();
    let output = pending.take_output().or(console_output);
    let enforcement = enforcement.ok().flatten();
    sup.registry.set_resources(&name, resources, enforcement);
    if let Err(failed) = plugged {
        // An init that failed meanwhile took its namespace with it: its own error is the cause.
        return Err(match pending.ready() {
            Err(e) => cannot_start(&name, e),
            Ok(_) => failed,
        });
    }
    if let Some((stdout, stderr)) = output {
        if !again {
            sup.fresh.place(log_path);
        }
        sup.logs
            .attach(&log, stdout, stderr, again)
            .map_err(|e| Failure::engine(format!("creating log {}: {e}", log_path.display())))?;
    }
    // The init builds the container's root while the two slow steps of a start run: the move
    // into its cgroups (in `create`) and the record's one synced write here, which must come
    // before Start (a container whose record cannot be saved does not run).
    sup.registry.persist_created(&name)?;
    crate::container::trace::step(&name, "record written");
    let running = match console {
        // The record is saved and the init joins its cgroups itself: nothing waits for Ready.
        None => pending.start_when_ready(),
        // The terminal's other end comes once the root is built, before the command runs.
        Some(setup) => {
            let created = pending.ready().map_err(|e| cannot_start(&name, e))?;
            crate::container::trace::step(&name, "Ready received");
            super::console::finish(sup, &name, &log, setup, again)?;
            created.start()
        }
    };
    let running = running.map_err(|e| cannot_start(&name, e))?;
    crate::container::trace::step(&name, "Started received");
    let Some(channel) = running.channel else {
        return Err(Failure::engine(format!("container init of {name} kept no channel")));
    };
    if let Some(ended) = sup.registry.mark_running(&name, channel)? {
        release(sup, ended);
    }
    // The next start over these layers finds its overlay mounted.
    if let Some(key) = ahead {
        sup.ahead.want(key);
    }
    Ok(running.pid)
}

/// The spare made ahead over `key`'s layers, as `name`'s own overlay directory, and its mount.
fn take_spare(sup: &Supervisor, name: &str, key: &overlay_ahead::Key) -> Option<std::os::fd::OwnedFd> {
    let dir = sup.overlay_dir(name);
    // The name is free in the registry, so anything here is a leftover of a crash.
    if dir.exists() && std::fs::remove_dir_all(&dir).is_err() {
        return None;
    }
    sup.ahead.take(key, &dir)
}

/// A failure the init (or the core) reported, as the user sees it.
fn cannot_start(name: &str, e: container::CoreError) -> Failure {
    match e {
        // The supervisor's own step between clone and Setup: its sentence as it is.
        container::CoreError::Caller(inner) => match inner.downcast::<Failure>() {
            Ok(f) => *f,
            Err(other) => Failure::engine(other),
        },
        e => Failure::with_code(e.exit_code(), format!("cannot start {name}: {e}")),
    }
}

/// The container's own `upper`, `work` and `merged` directories under `<root>/overlay/<name>`
/// (0700: host users must not reach what the container writes, such as setuid copies), over
/// `lower` (top first). `user_dir`: the lower is a directory the user gave, not the store's.
fn make_overlay(
    sup: &Supervisor,
    name: &str,
    lower: &[std::path::PathBuf],
    user_dir: bool,
) -> Result<std::path::PathBuf, Failure> {
    let fail = |what: &str, e: std::io::Error| Failure::engine(format!("{what} for {name}: {e}"));
    let top = lower.first().ok_or_else(|| Failure::engine(format!("no root layers for {name}")))?;
    if user_dir {
        let rootfs = top.canonicalize().map_err(|e| fail("resolving the rootfs", e))?;
        // overlayfs refuses layers inside one another; say so before the init fails obscurely.
        if rootfs.starts_with(&sup.root) || sup.root.starts_with(&rootfs) {
            return Err(Failure::engine(format!(
                "rootfs {} overlaps the supervisor's root {}: it cannot be an overlay lower layer",
                rootfs.display(),
                sup.root.display()
            )));
        }
    }
    let dir = sup.overlay_dir(name);
    // The name is free in the registry, so anything here is a leftover of a crash.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| fail("removing a stale overlay directory", e))?;
    }
    make_layer_dirs(&dir, top).map_err(|(what, e)| fail(what, e))?;
    Ok(dir)
}

/// `dir` (0700) with `upper`, `work` and `merged` for an overlay whose top layer is `top`; on a
/// failure, the step that failed.
pub(super) fn make_layer_dirs(
    dir: &std::path::Path,
    top: &std::path::Path,
) -> Result<(), (&'static str, std::io::Error)> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let lower = std::fs::metadata(top).map_err(|e| ("reading the rootfs", e))?;
    let umask = process_umask();
    let mkdir = |path: &std::path::Path, mode: u32| {
        std::fs::DirBuilder::new().mode(mode).create(path)?;
        // Exactly `mode`, whatever the umask (no chmod when it took nothing away).
        match umask.is_none_or(|m| m & mode != 0) {
            true => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
            false => Ok(()),
        }
    };
    mkdir(dir, 0o700).map_err(|e| ("creating the overlay directory", e))?;
    // The merged root takes the upper directory's owner and mode: those of the rootfs's root.
    let upper = dir.join("upper");
    mkdir(&upper, lower.mode() & 0o7777).map_err(|e| ("creating the upper directory", e))?;
    std::os::unix::fs::chown(&upper, Some(lower.uid()), Some(lower.gid()))
        .map_err(|e| ("creating the upper directory", e))?;
    mkdir(&dir.join("work"), 0o700).map_err(|e| ("creating the overlay work directory", e))?;
    mkdir(&dir.join("merged"), 0o755).map_err(|e| ("creating the overlay mount point", e))?;
    Ok(())
}

/// The upper directory of a layer used again over `top`: `top`'s owner and mode, as
/// [`make_layer_dirs`] gives a new one.
pub(super) fn set_upper_owner(
    upper: &std::path::Path,
    top: &std::path::Path,
) -> Result<(), (&'static str, std::io::Error)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let lower = std::fs::metadata(top).map_err(|e| ("reading the rootfs", e))?;
    std::os::unix::fs::chown(upper, Some(lower.uid()), Some(lower.gid()))
        .map_err(|e| ("setting the upper directory's owner", e))?;
    std::fs::set_permissions(upper, std::fs::Permissions::from_mode(lower.mode() & 0o7777))
        .map_err(|e| ("setting the upper directory's mode", e))
}

/// The removal of a layer (`run --rm`'s, `rm`'s), off the path of the answer: renamed at once into
/// `<root>/trash/` (the name is free for a new container of that name as soon as this returns);
/// once nothing has it mounted, kept for the next spare overlay (see
/// `overlay_ahead::Ahead::recycle`) or deleted by the trash thread. A supervisor that dies first
/// leaves it in `trash/`, which the next one empties at its start (`remove_orphan_files`). Falls
/// back to [`remove_overlay`].
pub fn discard_overlay(sup: &Supervisor, name: &str) {
    let dir = sup.overlay_dir(name);
    let trash_dir = sup.root.join(super::trash::TRASH_DIR);
    let nonce = crate::container::trace::now_ns();
    let trash = trash_dir.join(format!("{name}.{nonce}"));
    let renamed = match std::fs::rename(&dir, &trash) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.exists() => {
            use std::os::unix::fs::DirBuilderExt;
            let made = std::fs::DirBuilder::new().mode(0o700).create(&trash_dir);
            made.or_else(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) })
                .and_then(|()| std::fs::rename(&dir, &trash))
        }
        other => other,
    };
    let ahead = sup.ahead.clone();
    let delete = move || {
        if let Err(trash) = ahead.recycle(trash) {
            super::trash::delete_later(trash);
        }
    };
    match renamed {
        // The name's directory is free now; its content goes once nothing has it mounted (a
        // `run --rm` is removed before its release has let go of its mount namespace).
        Ok(()) => {
            if let Some(delete) = sup.registry.after_release(name, Box::new(delete)) {
                delete();
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => remove_overlay(sup, name),
    }
}

/// The supervisor's umask (from /proc/self/status once: umask(2) cannot read it without
/// setting it, which would race with the other threads); None if unknown.
fn process_umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// Removes a container's copy-on-write layer, reporting (not failing on) what stays.
pub fn remove_overlay(sup: &Supervisor, name: &str) {
    match std::fs::remove_dir_all(sup.overlay_dir(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            crate::warn!("removing the overlay directory of {name}: {e}")
        }
        _ => {}
    }
}

/// Blocks until the container has ended, given back what it held, and its output is all on
/// disk (after `engine wait` or `engine stop`, `engine logs` is complete); its exit code.
/// A log that cannot be written (full disk) does not hold this up for more than
/// [`STUCK_GRACE`](super::logs::STUCK_GRACE): the container has ended, its unwritten tail stays
/// queued and is written if space returns.
pub fn wait_settled(sup: &Supervisor, name: &str) -> Result<i32, Failure> {
    let record = sup.registry.wait_terminal(name, None)?.ok_or_else(|| no_result(name))?;
    output_settled(sup, name, record)
}

/// `run --rm`'s wait: the exit code once the init has reported how the command ended (the
/// container is ended then, without waiting for the init's own exit and reap, see
/// `Registry::finish_reported`) or, with no report to come, once it is reaped; and its output all
/// on disk. What it held is given back after, by the reaper's release.
pub fn wait_reported(sup: &Supervisor, name: &str) -> Result<i32, Failure> {
    use super::registry::Reported;
    let record = loop {
        match sup.registry.finish_reported(name)? {
            Reported::Ended(record) => break *record,
            Reported::Pending(channel) => {
                // A report or a hang-up wakes this; the timeout only bounds a missed wakeup.
                let mut fds =
                    [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&channel), nix::poll::PollFlags::POLLIN)];
                let woke = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16));
                let hung_up = fds[0].revents().is_some_and(|r| {
                    r.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)
                        && !r.contains(nix::poll::PollFlags::POLLIN)
                });
                if woke.is_err() || hung_up {
                    break sup.registry.wait_ended(name)?.ok_or_else(|| no_result(name))?;
                }
            }
            Reported::Closed => break sup.registry.wait_ended(name)?.ok_or_else(|| no_result(name))?,
        }
    };
    output_settled(sup, name, record)
}

fn no_result(name: &str) -> Failure {
    Failure::engine(format!("waiting for {name} to end returned without a result"))
}

/// Once ended: its output all on disk; its exit code.
fn output_settled(sup: &Supervisor, name: &str, record: super::record::ContainerRecord) -> Result<i32, Failure> {
    if let (_, Some(log)) = sup.registry.log_of(name)? {
        if let Err(e) = log.wait_done() {
            crate::warn!("{name} has ended but its output is not all on disk: {e}");
        }
    }
    // Only a `lost` container has none: engine could not see how it ended.
    Ok(record.exit_code.unwrap_or(exit::ENGINE_ERROR))
}

/// SIGTERM (forwarded by the init to the command), then SIGKILL to the whole container after
/// `grace`. Returns once the container is reaped.
pub fn stop(sup: &Supervisor, name: &str, grace: Duration) -> Result<(), Failure> {
    let first = if grace.is_zero() { libc::SIGKILL } else { libc::SIGTERM };
    if !sup.registry.signal(name, first, |live| live.stop_requested = true)? {
        return Ok(());
    }
    if sup.registry.wait_terminal(name, Some(grace))?.is_none() {
        sup.registry.signal(name, libc::SIGKILL, |_| {})?;
    }
    wait_settled(sup, name).map(drop)
}

//! The daemon that owns every container: it accepts CLI requests on a UNIX socket, spawns and
//! reaps containers, captures their output and keeps their records.
mod cgroups_ahead;
mod console;
pub mod events;
mod exec;
pub mod failure;
pub mod fresh_files;
pub mod handlers;
pub mod launch;
pub mod logs;
mod made_ahead;
pub mod metrics;
mod monitor_events;
pub mod overlay_ahead;
mod reaper;
pub mod record;
pub mod registry;
pub mod resources;
pub mod restart;
mod server;
pub mod softlimit;
pub mod spec;
mod stats;
pub mod store;
mod systemd;
pub mod to_oci;
mod trash;
pub mod volumes;
mod workers;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub const DEFAULT_ROOT: &str = "/var/lib/engine";
pub use crate::cli::shared::DEFAULT_SOCKET;
/// Where supervisors lock the host-wide names they use (cgroup parent, bridge).
pub const LOCK_DIR: &str = "/run/engine/locks";
/// How often records whose save failed are retried.
const FLUSH_TICK: Duration = Duration::from_secs(1);
/// How long the record syncer gathers records before one fsync round (the group commit).
const SYNC_DELAY: Duration = Duration::from_millis(20);
/// Grace between SIGTERM and SIGKILL when the supervisor itself is asked to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Config {
    pub root: PathBuf,
    pub socket: PathBuf,
    /// Containers' cgroups live in `<hierarchy>/<cgroup_parent>/<name>`; derived from the root
    /// when not given (see [`HostNames`]).
    pub cgroup_parent: Option<String>,
    pub bridge: Option<String>,
    /// The bridge's network; its first address is the gateway.
    pub subnet: Option<crate::net::Ipv4Net>,
    /// `--metrics-addr`: serve Prometheus metrics there.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The host-wide names a supervisor uses. Each supervisor cleans its cgroup parent and bridge of
/// whatever it does not know at startup, so two supervisors must never share them: the defaults
/// are derived from the root (the default root keeps `engine`, `engine0`, 10.88.0.0/16; any other
/// root gets `engine-<hash>`, `en<hash>`, 10.89.<hash byte>.0/24, hash = 8 hex digits of FNV-1a
/// of the canonical root path), and `run` locks them, so explicit names that clash are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNames {
    pub cgroup_parent: String,
    pub bridge: String,
    pub subnet: crate::net::Ipv4Net,
}

impl HostNames {
    /// The defaults for the canonical root `root`.
    pub fn derived(root: &Path) -> Result<HostNames, crate::net::NetError> {
        if root == Path::new(DEFAULT_ROOT) {
            return Ok(HostNames {
                cgroup_parent: crate::cgroup::DEFAULT_PARENT.into(),
                bridge: "engine0".into(),
                subnet: crate::net::Ipv4Net::new(std::net::Ipv4Addr::new(10, 88, 0, 0), 16)?,
            });
        }
        // A stable hash: the names must be the same for every build of engine.
        let h = crate::net::fnv1a(root.as_os_str().as_encoded_bytes().iter().copied());
        let hash = format!("{:08x}", (h ^ (h >> 32)) as u32);
        Ok(HostNames {
            cgroup_parent: format!("engine-{hash}"),
            bridge: format!("en{hash}"),
            subnet: crate::net::Ipv4Net::new(std::net::Ipv4Addr::new(10, 89, (h >> 56) as u8, 0), 24)?,
        })
    }

    fn resolve(config: &Config, root: &Path) -> Result<HostNames, crate::net::NetError> {
        let d = HostNames::derived(root)?;
        Ok(HostNames {
            cgroup_parent: config.cgroup_parent.clone().unwrap_or(d.cgroup_parent),
            bridge: config.bridge.clone().unwrap_or(d.bridge),
            subnet: config.subnet.unwrap_or(d.subnet),
        })
    }
}

pub struct Supervisor {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub registry: registry::Registry,
    pub logs: logs::LogPipeline,
    /// The kernel memory monitor, when its module is loaded.
    pub monitor: Option<crate::monitor::MonitorDevice>,
    /// Soft-limit crossings (and `--soft-signal`) from the cgroup where the monitor is absent.
    pub softlimits: softlimit::Watcher,
    /// `--restart`'s back-off per container.
    pub restarts: restart::Restarter,
    pub cgroup_parent: String,
    /// The directories of the cgroup parent this supervisor made: removed when it stops with
    /// nothing left in them, so a supervisor leaves the hierarchies as it found them.
    made_parent_dirs: Vec<PathBuf>,
    pub net: crate::net::NetConfig,
    /// Host ports published by live containers (`-p`), taken before a start makes anything.
    pub ports: crate::net::firewall::Claims,
    pub shutting_down: AtomicBool,
    /// The stdin of `-i`/`-t` containers: pipe write ends and pty masters, by name.
    pub consoles: console::Consoles,
    /// Spare overlay roots, mounted before their containers' requests.
    pub ahead: Arc<overlay_ahead::Ahead>,
    /// Empty files made ahead for the records and logs of new containers.
    pub fresh: Arc<fresh_files::FreshFiles>,
    /// The cgroups of the next containers (cgroup v1).
    pub cgroups_ahead: cgroups_ahead::CgroupsAhead,
    /// systemd's readiness and activation state (nothing when started by hand).
    activation: systemd::Activation,
    /// The socket came from socket activation: systemd owns its file, so it is left in place.
    socket_activated: bool,
    /// Held for the daemon's lifetime: one supervisor per root, per cgroup parent, per bridge.
    _locks: Vec<nix::fcntl::Flock<fs::File>>,
}

impl Supervisor {
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The container's copy-on-write layer: `upper`, `work` and `merged` (its root while it runs).
    pub fn overlay_dir(&self, name: &str) -> PathBuf {
        self.root.join("overlay").join(name)
    }

    /// Applies every queued kernel monitor event to the registry.
    pub fn drain_monitor_events(&self) {
        let Some(dev) = &self.monitor else { return };
        match dev.read_events() {
            Ok(events) => {
                for ev in events {
                    self.registry.monitor_event(ev.pid, &ev);
                }
            }
            Err(e) => crate::warn!("reading kernel monitor events: {e}"),
        }
    }

    /// Stops every container (SIGTERM, SIGKILL after the grace time), waits until they are reaped
    /// and their logs are on disk, removes the socket and exits 0. Runs on the reaper thread,
    /// calling `reap` as it waits: it needs no thread of its own, so SIGTERM works even when no
    /// thread can be started (a pids limit). Every wait is bounded: a container that survives
    /// SIGKILL or a log that cannot be written (full disk) is reported, not waited for forever.
    fn shutdown(self: &Arc<Self>, reap: impl Fn()) {
        // Ended ones still giving back their cgroup or veth count too: exiting under a release
        // thread would leave its cgroup behind.
        let names = self.registry.unsettled();
        for name in &names {
            let _ = self.registry.signal(name, libc::SIGTERM, |live| live.stop_requested = true);
        }
        // Ended and given back what it held (or gone from the registry).
        let settled = |name: &str| !matches!(self.registry.wait_terminal(name, Some(Duration::ZERO)), Ok(None));
        let kill_at = Instant::now() + SHUTDOWN_GRACE;
        let give_up_at = kill_at + SHUTDOWN_GRACE;
        let mut killed = false;
        let left = loop {
            reap();
            let left: Vec<&String> = names.iter().filter(|n| !settled(n)).collect();
            let now = Instant::now();
            // A removed one (`run --rm` answered, its release still under way) is in no list
            // above but holds its cgroup until its release thread is done: one exit left it
            // behind (seen once in a test run).
            if left.is_empty() && !self.registry.removed_releasing() {
                break left;
            }
            if now >= give_up_at {
                match left.is_empty() {
                    true => crate::warn!("a removed container is still giving back its cgroup; leaving it"),
                    false => crate::warn!("containers still running after SIGKILL, leaving them: {left:?}"),
                }
                break left;
            }
            if !killed && now >= kill_at {
                for name in left {
                    let _ = self.registry.signal(name, libc::SIGKILL, |_| {});
                }
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // A container that survived SIGKILL still holds its pipes open: its log never ends.
        for name in names.iter().filter(|n| !left.contains(n)) {
            if let Ok((_, Some(log))) = self.registry.log_of(name) {
                if let Err(e) = log.wait_done() {
                    crate::warn!("{name}: {e}; the rest of its output is lost");
                }
            }
        }
        self.ahead.clear();
        self.fresh.clear();
        self.cgroups_ahead.clear();
        if left.is_empty() {
            crate::cgroup::remove_if_empty(&self.made_parent_dirs);
        }
        self.activation.notify("STOPPING=1");
        if !self.socket_activated {
            let _ = fs::remove_file(&self.socket);
        }
        if self.registry.flush_dirty() > 0 {
            crate::warn!("some records could not be saved: their files on disk are behind");
        }
        if let Err(e) = self.registry.sync_owed() {
            crate::warn!("syncing the container records: {e}");
        }
        // Nothing of ours runs any more: the masquerade and port rules go (the next start makes them).
        if left.is_empty() {
            if let Err(e) = crate::net::firewall::teardown(&self.net.bridge) {
                crate::warn!("removing the NAT rules of {}: {e}", self.net.bridge);
            }
        }
        crate::warn!("supervisor stopped");
        std::process::exit(0);
    }
}

/// Makes fds 0-2 valid (container spawning relies on every fd it hands out being >= 3), and fds
/// inherited from whoever started us close-on-exec: they are not ours to pass on.
fn sanitize_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: only changes fd flags.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries; /dev/null is opened onto the free slot.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}

fn lock_root(root: &Path) -> anyhow::Result<nix::fcntl::Flock<fs::File>> {
    let path = root.join("supervisor.lock");
    match lock_file(&path)? {
        Ok(lock) => Ok(lock),
        Err(_) => bail!("another supervisor is already using {}", root.display()),
    }
}

/// Takes the exclusive lock on `path` (created 0600), or returns what the holder wrote in it.
fn lock_file(path: &Path) -> anyhow::Result<Result<nix::fcntl::Flock<fs::File>, String>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Ok(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(fs::read_to_string(path).unwrap_or_default())),
        Err((_, e)) => bail!("locking {}: {e}", path.display()),
    }
}

/// Locks the cgroup parent and the bridge for this root, so another supervisor that would sweep
/// them as stale is refused before it touches anything; each lock file names its holder's root.
fn lock_host_names(names: &HostNames, root: &Path) -> anyhow::Result<Vec<nix::fcntl::Flock<fs::File>>> {
    use std::io::{Seek, Write};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(LOCK_DIR)
        .with_context(|| format!("creating {LOCK_DIR}"))?;
    // '+' cannot occur in a cgroup name, so the '/' of a nested parent maps back unambiguously.
    let wanted = [
        (
            "cgroup parent",
            "cgroup-parent",
            &names.cgroup_parent,
            format!("cgroup-{}.lock", names.cgroup_parent.replace('/', "+")),
        ),
        ("bridge", "bridge", &names.bridge, format!("bridge-{}.lock", names.bridge)),
    ];
    let mut locks = Vec::new();
    for (what, flag, name, file) in wanted {
        let path = Path::new(LOCK_DIR).join(file);
        match lock_file(&path)? {
            Ok(mut lock) => {
                let owner = format!("{}\n", root.display());
                let _ = lock.set_len(0).and_then(|()| lock.rewind()).and_then(|_| lock.write_all(owner.as_bytes()));
                locks.push(lock);
            }
            Err(holder) => {
                let holder = match holder.trim() {
                    "" => String::new(),
                    h => format!(" (root {h})"),
                };
                bail!("{what} {name} is in use by another supervisor{holder}: give this one its own --{flag}")
            }
        }
    }
    Ok(locks)
}

/// The root holds records with whole environments: 0700, like dockerd's root, also when it
/// existed with a looser mode.
fn secure_root(root: &Path) -> anyhow::Result<()> {
    // overlay/ holds what containers write (setuid copies, device nodes): 0700 like the root,
    // made once here rather than on every start.
    for dir in ["logs", "overlay"] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root.join(dir))
            .with_context(|| format!("creating {}", root.join(dir).display()))?;
    }
    // Each container's layer is a tree of its own (see sys::spread_subdirs); best effort.
    if let Err(e) = crate::sys::spread_subdirs(&root.join("overlay")) {
        if !matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL)) {
            crate::warn!("marking {}/overlay as the top of unrelated trees: {e}", root.display());
        }
    }
    let mode = fs::metadata(root).with_context(|| format!("reading {}", root.display()))?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        crate::warn!("{} was mode {mode:04o}; setting 0700: it holds every container's environment", root.display());
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", root.display()))?;
    }
    Ok(())
}

/// After a crash: files of containers no record knows (the start that made them never reached
/// the record, or an `rm` was cut short). Removed: `logs/<name>.log`, `containers/<name>.etc/`,
/// `overlay/<name>/`. remove_dir_all does not follow symlinks, so a link planted in an upper dir
/// cannot lead the removal out of it; mounts were in the dead containers' own namespaces.
fn remove_orphan_files(root: &Path, registry: &registry::Registry) {
    // An unreadable record still claims its name: its files are kept for whoever repairs it.
    let known = |name: &str| registry.contains(name) || registry.records_dir().join(format!("{name}.json")).exists();
    // The entries of `dir` whose container (`owner` of the file name) no record knows.
    let orphans = |dir: &Path, owner: &dyn Fn(&str) -> Option<&str>| -> Vec<(String, PathBuf)> {
        let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = owner(&file)?.to_string();
                (!name.is_empty() && !name.starts_with('.') && !known(&name)).then(|| (name, e.path()))
            })
            .collect()
    };
    // Layers of `--rm` containers a previous supervisor had not finished deleting.
    match fs::remove_dir_all(root.join(trash::TRASH_DIR)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => crate::warn!("emptying the trash: {e}"),
        _ => {}
    }
    for (name, path) in orphans(&root.join("logs"), &logs::rotate::container_of) {
        match fs::remove_file(&path) {
            Ok(()) => crate::warn!("removed the orphan log of {name}"),
            Err(e) => crate::warn!("removing orphan {}: {e}", path.display()),
        }
    }
    for (name, path) in orphans(&root.join("containers"), &|f| f.strip_suffix(".etc"))
        .into_iter()
        .chain(orphans(&root.join("overlay"), &|f| Some(f)))
    {
        let removed = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        match removed {
            Ok(()) => crate::warn!("removed the orphan files of {name}: {}", path.display()),
            Err(e) => crate::warn!("removing orphan {}: {e}", path.display()),
        }
    }
}

/// Retries record saves that failed, until the supervisor exits.
fn spawn_flusher(sup: &Arc<Supervisor>) -> std::io::Result<()> {
    let sup = Arc::downgrade(sup);
    std::thread::Builder::new().name("record-flush".into()).spawn(move || loop {
        std::thread::sleep(FLUSH_TICK);
        match sup.upgrade() {
            Some(sup) => drop(sup.registry.flush_dirty()),
            None => return,
        }
    })?;
    Ok(())
}

/// fsyncs the records that starts and exits renamed into place without waiting for one, a few
/// milliseconds after the first of them (the others of that moment share the fsync of the
/// directory), until the supervisor exits.
fn spawn_record_syncer(sup: &Arc<Supervisor>) -> std::io::Result<()> {
    let sup = Arc::downgrade(sup);
    std::thread::Builder::new().name("record-sync".into()).spawn(move || loop {
        let Some(owed) = sup.upgrade().map(|s| s.registry.wait_sync_owed(FLUSH_TICK)) else { return };
        if !owed {
            continue;
        }
        std::thread::sleep(SYNC_DELAY);
        let Some(sup) = sup.upgrade() else { return };
        if let Err(e) = sup.registry.sync_owed() {
            crate::warn!("syncing the container records: {e}; retrying");
            std::thread::sleep(FLUSH_TICK);
        }
    })?;
    Ok(())
}

/// Binds the socket (0600 in a 0700 directory), refusing if a live supervisor answers on it and
/// replacing a stale one.
fn bind_socket(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("a supervisor is already running on {}", path.display());
        }
        fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener =
        std::os::unix::net::UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Where the spawner makes the namespace its inits with the mounts every container gets are
/// cloned in (`container::kit::Holding`): an empty directory of the root's, with the spawner's
/// tmpfs on it in a mount namespace of its own. Without it, the mounts are made on each start's
/// path.
fn set_kit_dir(dir: &Path) {
    let made = match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => crate::container::spawner::set_kit_dir(dir),
    };
    if let Err(e) = made {
        crate::warn!("{}: {e}; the mounts of each container are made on its start's path", dir.display());
    }
}

/// Runs the supervisor until SIGINT/SIGTERM. `ready` is called once requests are accepted.
pub fn run(config: Config, ready: impl FnOnce()) -> anyhow::Result<()> {
    // Before anything else: it edits the environment, and no thread exists yet.
    let activation = systemd::Activation::take_from_env();
    sanitize_fds();
    if !nix::unistd::geteuid().is_root() {
        bail!("the supervisor must run as root");
    }
    // While this is the only thread: the spawner clones the container inits without an execve
    // (see container::spawner); without it they are exec'd as before.
    if let Err(e) = crate::container::spawner::start() {
        crate::warn!("starting the init spawner: {e}; container inits re-execute the engine binary");
    }
    secure_root(&config.root)?;
    let root = config.root.canonicalize().with_context(|| format!("resolving {}", config.root.display()))?;
    set_kit_dir(&root.join("kit"));
    let names = HostNames::resolve(&config, &root)?;
    // Validated before anything is locked or touched.
    let net = crate::net::NetConfig::new(names.bridge.clone(), names.subnet, root.join("net"))?;
    let mut locks = vec![lock_root(&root)?];
    locks.extend(lock_host_names(&names, &root)?);
    // engine.socket's listening socket, else our own.
    let (listener, socket_activated) = match activation.listener(&config.socket)? {
        Some(listener) => (listener, true),
        None => (bind_socket(&config.socket)?, false),
    };
    let fresh = fresh_files::FreshFiles::start(&root);
    let store = store::Store::open(&root)
        .with_context(|| format!("creating {}/containers", root.display()))?
        .with_fresh_files(fresh.clone());
    let registry = registry::Registry::load(store).context("loading container records")?;
    // No container runs yet: whatever an earlier supervisor left in our cgroup parent or on our
    // bridge belongs to containers that are gone (or were just killed as lost). Removing a group
    // kills what is still in it: an init that was never recorded, and whatever a lost one forked.
    for name in crate::cgroup::Cgroup::cleanup_stale_in(&names.cgroup_parent, &|_| false) {
        crate::warn!("removed the stale cgroup of {name}");
    }
    for name in crate::net::cleanup_stale(&net, &|_| false) {
        crate::warn!("removed the stale network attachment of {name}");
    }
    // Rebuilt whole: no port rule of a predecessor's container outlives this start.
    if let Err(e) = crate::net::firewall::setup(&net) {
        crate::warn!("no NAT for {} (published ports and outbound traffic will fail): {e}", net.bridge);
    }
    remove_orphan_files(&root, &registry);
    let monitor = match crate::monitor::MonitorDevice::open() {
        Ok(dev) => {
            let v = dev.version();
            let sig = if v.soft_signal() { "" } else { "; too old for --soft-signal" };
            crate::warn!(
                "kernel memory monitor found (ABI {}{sig}): --soft-mib/--hard-mib use /dev/container_monitor",
                v.abi
            );
            Some(dev)
        }
        Err(e) => {
            crate::warn!("no kernel memory monitor ({e}): --soft-mib/--hard-mib fall back to cgroup memory limits");
            None
        }
    };
    let ahead = overlay_ahead::Ahead::start(&root);
    let made_parent_dirs = crate::cgroup::missing_parent_dirs(&names.cgroup_parent);
    let cgroups_ahead = cgroups_ahead::CgroupsAhead::start(&names.cgroup_parent);
    let sup = Arc::new(Supervisor {
        root,
        socket: config.socket,
        registry,
        logs: logs::LogPipeline::start()?,
        monitor,
        softlimits: softlimit::Watcher::new().context("creating the soft-limit watcher's eventfd")?,
        restarts: restart::Restarter::default(),
        cgroup_parent: names.cgroup_parent,
        made_parent_dirs,
        net,
        ports: crate::net::firewall::Claims::new(),
        shutting_down: AtomicBool::new(false),
        consoles: console::Consoles::default(),
        ahead,
        fresh,
        cgroups_ahead,
        activation,
        socket_activated,
        _locks: locks,
    });
    reaper::spawn(sup.clone())?;
    spawn_flusher(&sup)?;
    spawn_record_syncer(&sup)?;
    softlimit::spawn(&sup)?;
    if let Some(addr) = config.metrics_addr {
        metrics::spawn(&sup, addr)?;
    }
    if sup.monitor.is_some() {
        monitor_events::spawn(sup.clone())?;
    }
    // After the sweeps above: a container started again gets a fresh cgroup and veth.
    restart::resume(&sup);
    ready();
    // Type=notify: the socket accepts requests from here on.
    sup.activation.notify("READY=1");
    server::serve(sup, listener);
    Ok(())
}

//! The daemon that owns every container: it accepts CLI requests on a UNIX socket, spawns and
//! reaps containers, captures their output and keeps their records.
pub mod handlers;
pub mod launch;
pub mod logs;
mod monitor_events;
mod reaper;
pub mod registry;
pub mod resources;
mod server;
pub mod store;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub const DEFAULT_ROOT: &str = "/var/lib/engine";
pub const DEFAULT_SOCKET: &str = "/run/engine/engine.sock";
/// Grace between SIGTERM and SIGKILL when the supervisor itself is asked to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Config {
    pub root: PathBuf,
    pub socket: PathBuf,
    /// Containers' cgroups live in `<hierarchy>/<cgroup_parent>/<name>`.
    pub cgroup_parent: String,
    pub bridge: String,
    /// The bridge's network; its first address is the gateway.
    pub subnet: crate::net::Ipv4Net,
}

pub struct Supervisor {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub registry: registry::Registry,
    pub logs: logs::LogPipeline,
    /// The kernel memory monitor, when its module is loaded.
    pub monitor: Option<crate::monitor::MonitorDevice>,
    pub cgroup_parent: String,
    pub net: crate::net::NetConfig,
    shutting_down: AtomicBool,
    /// Held for the daemon's lifetime: one supervisor per root.
    _lock: nix::fcntl::Flock<fs::File>,
}

impl Supervisor {
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The container's own /etc/hosts and /etc/hostname.
    pub fn etc_dir(&self, name: &str) -> PathBuf {
        self.root.join("containers").join(format!("{name}.etc"))
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
        let names = self.registry.active();
        for name in &names {
            let _ = self.registry.signal(name, libc::SIGTERM, |live| live.stop_requested = true);
        }
        // Ended and given back what it held (or gone from the registry).
        let settled = |name: &str| !matches!(self.registry.wait_terminal(name, Some(Duration::ZERO)), Ok(None));
        let kill_at = Instant::now() + SHUTDOWN_GRACE;
        let give_up_at = kill_at + SHUTDOWN_GRACE;
        let mut killed = false;
        loop {
            reap();
            let left: Vec<&String> = names.iter().filter(|n| !settled(n)).collect();
            let now = Instant::now();
            if left.is_empty() {
                break;
            }
            if now >= give_up_at {
                crate::warn!("containers still running after SIGKILL, leaving them: {left:?}");
                break;
            }
            if !killed && now >= kill_at {
                for name in left {
                    let _ = self.registry.signal(name, libc::SIGKILL, |_| {});
                }
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for name in &names {
            if let Ok((_, Some(log))) = self.registry.log_of(name) {
                if let Err(e) = log.wait_done() {
                    crate::warn!("{name}: {e}; the rest of its output is lost");
                }
            }
        }
        let _ = fs::remove_file(&self.socket);
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
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("supervisor.lock"))
        .with_context(|| format!("opening {}/supervisor.lock", root.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!("another supervisor is already using {}", root.display()),
        Err((_, e)) => bail!("locking {}: {e}", root.display()),
    }
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

/// Runs the supervisor until SIGINT/SIGTERM. `ready` is called once requests are accepted.
pub fn run(config: Config, ready: impl FnOnce()) -> anyhow::Result<()> {
    sanitize_fds();
    if !nix::unistd::geteuid().is_root() {
        bail!("the supervisor must run as root");
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(config.root.join("logs"))
        .with_context(|| format!("creating {}", config.root.display()))?;
    let root = config.root.canonicalize()?;
    let lock = lock_root(&root)?;
    let listener = bind_socket(&config.socket)?;
    let store = store::Store::open(&root)?;
    let registry = registry::Registry::load(store).context("loading container records")?;
    let net = crate::net::NetConfig::new(config.bridge, config.subnet, root.join("net"))?;
    // No container runs yet: whatever an earlier supervisor left in our cgroup parent or on our
    // bridge belongs to containers that are gone (or were just killed as lost).
    for name in crate::cgroup::Cgroup::cleanup_stale_in(&config.cgroup_parent, &|_| false) {
        crate::warn!("removed the stale cgroup of {name}");
    }
    for name in crate::net::cleanup_stale(&net, &|_| false) {
        crate::warn!("removed the stale network attachment of {name}");
    }
    let monitor = match crate::monitor::MonitorDevice::open() {
        Ok(dev) => {
            crate::warn!("kernel memory monitor found: --soft-mib/--hard-mib use /dev/container_monitor");
            Some(dev)
        }
        Err(e) => {
            crate::warn!("no kernel memory monitor ({e}): --soft-mib/--hard-mib fall back to cgroup memory limits");
            None
        }
    };
    let sup = Arc::new(Supervisor {
        root,
        socket: config.socket,
        registry,
        logs: logs::LogPipeline::start()?,
        monitor,
        cgroup_parent: config.cgroup_parent,
        net,
        shutting_down: AtomicBool::new(false),
        _lock: lock,
    });
    reaper::spawn(sup.clone())?;
    if sup.monitor.is_some() {
        monitor_events::spawn(sup.clone())?;
    }
    ready();
    server::serve(sup, listener);
    Ok(())
}

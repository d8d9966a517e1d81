//! `create --bundle DIR [--pid-file F] [--console-socket S] ID`: the container made up to its
//! start gate; its process waits on exec.fifo for `start`.
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::console::{self, ConsoleError};
use super::error::{OciError, Result};
use super::state::{Container, Record, SpecState, Status};
use super::{config, hooks, log, monitor, state, Ctx};
use crate::container::{
    self, BeforeSetup, BoxError, CoreError, CreateOptions, Created, InitHandle, InitMode, RootSource, StartGate, Stdio,
};

/// The cgroup of a container whose config names none: `/engine-oci/<id>` in every hierarchy.
pub const CGROUP_PARENT: &str = "engine-oci";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The bundle: config.json and the root it names.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid here once it exists.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty master to (process.terminal).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Keep the root with chroot-like MS_MOVE instead of pivot_root (refused: engine always pivots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not make a new session keyring (accepted: engine makes none).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass fds 3 .. 3+N-1 on to the container's process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

/// Everything checked before anything is made: a refusal here leaves nothing behind.
pub struct Checked {
    pub bundle: config::Bundle,
    pub monitor: monitor::Request,
}

pub fn check(args: &Args) -> Result<Checked> {
    state::validate_id(&args.id)?;
    let bundle = config::load(&args.bundle)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    match (terminal, &args.console_socket) {
        (true, None) => return Err(ConsoleError::NoSocket.into()),
        (false, Some(_)) => return Err(ConsoleError::NotTerminal.into()),
        _ => {}
    }
    // runc's bound: the caller's fds 3 .. 3+N-1 must all be open.
    for fd in 3..3u32.saturating_add(args.preserve_fds) {
        // SAFETY: F_GETFD only reads the fd's flags.
        if unsafe { libc::fcntl(fd as i32, libc::F_GETFD) } < 0 {
            return Err(OciError::Unsupported(format!("--preserve-fds {}: fd {fd} is not open", args.preserve_fds)));
        }
    }
    if args.no_pivot {
        // pivot_root is the safer of the two and works wherever the root is not on ramfs.
        log::warn("--no-pivot: engine-oci always uses pivot_root");
    }
    let monitor = monitor::request(&bundle.spec)?;
    Ok(Checked { bundle, monitor })
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let checked = check(&args)?;
    let mut c = ctx.root.create(&args.id)?;
    match create_in(&args, checked, &mut c) {
        Ok(made) => {
            made.detach();
            Ok(0)
        }
        Err(e) => {
            // The core has removed what it made (process, cgroup); the state directory is ours.
            let _ = c.remove();
            Err(e)
        }
    }
}

/// A created container as `create` leaves it: the init blocked at its fifo.
pub struct Made {
    created: Created,
}

impl Made {
    pub fn pid(&self) -> i32 {
        self.created.pid()
    }

    /// Lets go of the init (it stays blocked at exec.fifo) and of its cgroup (kept, not removed).
    pub fn detach(mut self) {
        let _ = self.created.take_cgroup();
        self.created.detach();
    }

    /// The init's pidfd (engine-oci is its parent until it exits: `run` waits on it).
    pub fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.created.take_pidfd()
    }
}

/// Stdio for the container: the connected console socket (the init opens the container's pty and
/// sends its master there), or engine-oci's own 0, 1, 2 as the caller gave them (the suite
/// passes files, conmon pipes).
fn stdio(console: Option<OwnedFd>) -> Result<Stdio> {
    let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map_err(OciError::io("duplicating stdio for the container"));
    Ok(match console {
        Some(socket) => Stdio::Console(socket),
        None => {
            // SAFETY: 0, 1 and 2 are open for the life of the process (the caller's stdio).
            let (i, o, e) =
                unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1), BorrowedFd::borrow_raw(2)) };
            Stdio::Fds([dup(i)?, dup(o)?, dup(e)?])
        }
    })
}

/// `--preserve-fds N`: copies of the caller's fds 3 .. 3+N-1 (close-on-exec here), which the
/// container's process gets under the same numbers.
fn preserved(n: u32) -> Result<Vec<OwnedFd>> {
    (3..3i32.saturating_add(n as i32))
        .map(|fd| {
            // SAFETY: check() found each of these open; the caller owns them for our whole life.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            fd.try_clone_to_owned().map_err(OciError::io("duplicating a --preserve-fds fd"))
        })
        .collect()
}

/// The state hooks see while the container is being created.
fn hook_state(id: &str, pid: i32, bundle: &config::Bundle, status: Status) -> SpecState {
    SpecState {
        oci_version: state::OCI_VERSION.to_string(),
        id: id.to_string(),
        status,
        pid,
        bundle: bundle.dir.clone(),
        rootfs: None,
        created: None,
        owner: None,
        annotations: bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect(),
    }
}

pub fn create_in(args: &Args, checked: Checked, c: &mut Container) -> Result<Made> {
    let Checked { bundle, monitor: request } = checked;
    let fifo = c.make_fifo()?;
    let mut spec = bundle.spec.clone();
    let plan = monitor::plan(&mut spec, &request)?;
    let process = spec.process().clone().unwrap_or_default();
    // Connected here, where the socket's path means what the caller meant; check() made sure
    // terminal and --console-socket go together.
    let console = match (process.terminal().unwrap_or(false), &args.console_socket) {
        (true, Some(sock)) => Some(console::connect(sock)?),
        _ => None,
    };
    let hooks = spec.hooks().clone();
    // createContainer/startContainer run in the init, which gets their state in its plan.
    let in_init_hooks = hooks.as_ref().is_some_and(|h| {
        h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
    });
    let id = args.id.clone();
    let monitored = std::cell::Cell::new(false);
    // Between clone and Setup: the container's namespaces exist, its process does not run yet.
    // The runtime-namespace hooks run here (createRuntime, then the older prestart, as runc
    // orders them), then the monitor registration; a failure fails create, and the core takes the
    // init and its cgroup away.
    let before: BeforeSetup<'_> = Box::new(|h: &InitHandle<'_>| {
        let run = || -> Result<()> {
            if let Some(hk) = hooks.as_ref() {
                hooks::run_all(
                    "createRuntime",
                    hk.create_runtime().as_ref(),
                    &hook_state(&id, h.pid, &bundle, Status::Creating),
                )?;
                #[allow(deprecated)]
                let prestart = hk.prestart();
                hooks::run_all("prestart", prestart.as_ref(), &hook_state(&id, h.pid, &bundle, Status::Created))?;
            }
            if let monitor::Plan::Device(dev) = &plan {
                monitor::register(dev, h.pid, &id, &request)?;
                monitored.set(true);
            }
            Ok(())
        };
        run().map(|()| Vec::new()).map_err(|e| Box::new(e) as BoxError)
    });
    let opts = CreateOptions {
        id: args.id.clone(),
        spec,
        root: RootSource::Dir(bundle.rootfs.clone()),
        stdio: stdio(console)?,
        mode: InitMode::Exec,
        gate: StartGate::Fifo(fifo),
        files: Vec::new(),
        cgroup_parent: CGROUP_PARENT.to_string(),
        cgroup: container::CgroupRules::Oci,
        before_setup: Some(before),
        init_binary: None,
        preserve_fds: preserved(args.preserve_fds)?,
        root_mount: None,
        cgroup_ahead: None,
        bridged: false,
        // Exec mode: the command replaces the init's memory.
        rss_limited: false,
        hook_state: in_init_hooks.then(|| {
            let render: container::HookState<'_> = Box::new(|pid| {
                // SpecState is plain data: encoding it cannot fail in practice.
                serde_json::to_string(&hook_state(&id, pid, &bundle, Status::Created)).unwrap_or_default()
            });
            render
        }),
    };
    let pending = container::create(opts).map_err(core_error)?;
    let pid = pending.pid();
    let created = match pending.ready() {
        Ok(c) => c,
        Err(e) => {
            if monitored.get() {
                let _ = monitor::unregister(pid);
            }
            return Err(core_error(e));
        }
    };
    let mut made = Made { created };
    match record(args, &bundle, c, &made, monitored.get()) {
        Ok(()) => Ok(made),
        Err(e) => {
            // Nothing of it may stay: the init (our child) killed and reaped, its cgroup removed.
            if let Some(fd) = made.take_pidfd() {
                let _ = container::signal(&fd, libc::SIGKILL);
                let _ = container::wait(&fd);
            }
            if let Some(cg) = made.created.take_cgroup() {
                let _ = container::delete(cg);
            }
            if let Some(id) = made.created.host_root_mount() {
                let _ = container::rootfs::release_host_root(&bundle.rootfs, id);
            }
            if monitored.get() {
                let _ = monitor::unregister(pid);
            }
            Err(e)
        }
    }
}

/// The rest of create once the init waits at its gate (the console's master already sent by
/// it): state.json, the pid file.
fn record(args: &Args, bundle: &config::Bundle, c: &mut Container, made: &Made, monitored: bool) -> Result<()> {
    let pid = made.pid();
    let cgroup = made.created.cgroup();
    let cgroup_paths = cgroup.map(|cg| cg.paths()).unwrap_or_default();
    // Recorded absolute (the group's name from create_oci), so every later verb opens the same
    // group whatever its own cgroup (a relative cgroupsPath was joined to this process's group).
    let cgroup_path = cgroup.map(|cg| cg.name().to_string()).unwrap_or_default();
    c.save(Record {
        id: args.id.clone(),
        pid,
        pid_start: state::start_ticks(pid)?,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        cgroup_paths,
        cgroup_path,
        annotations: bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        monitored,
        hooks: bundle.spec.hooks().clone(),
        host_root_mount: made.created.host_root_mount(),
    })?;
    if let Some(p) = &args.pid_file {
        super::exec::write_pid_file(p, pid)?;
    }
    Ok(())
}

/// The core's error as one line: its step and cause.
pub fn core_error(e: CoreError) -> OciError {
    // A hook or monitor failure from before_setup comes back as the caller's own error.
    OciError::Other(e.to_string())
}

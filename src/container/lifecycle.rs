//! The container lifecycle as library calls, with no supervisor needed:
//! `create` → `Pending::ready` → `Created::start` (or `detach` + `start_fifo`) → `signal` /
//! `wait` → `delete`. The supervisor and the OCI binary both drive containers through these.
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::channel::{EtcFile, InitChannel, Plan, ToInit};
use super::error::CoreError;
use super::exit::Termination;
use super::rootfs::{self, HostRoot};
use super::{limits, name, pidfd, spawn, Spec};
use crate::cgroup::Cgroup;

/// How long an init may take from Setup to Ready, and from Start to Started.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RootSource {
    /// A directory used as the root as it is (an OCI bundle's root.path, already joined to the
    /// bundle dir): bind-mounted onto itself (MS_BIND|MS_REC), as runc does, then pivot_root.
    Dir(PathBuf),
    /// overlayfs: `lower` read-only dirs (first = top), the container's own `dir` holding
    /// upper/ work/ merged/ (made by the caller). `throwaway`: the upper is deleted when the
    /// container ends (`run --rm`), so it is mounted `volatile` (see `rootfs::mount_overlay`).
    Overlay {
        lower: Vec<PathBuf>,
        dir: PathBuf,
        #[serde(default)]
        throwaway: bool,
    },
}

pub enum Stdio {
    /// stdin /dev/null; stdout and stderr pipes whose read ends come back in `Pending`.
    Pipes,
    /// These fds become the container's 0, 1, 2 (OCI: the caller's own stdio).
    Fds([OwnedFd; 3]),
    /// process.terminal: a connected console socket (OCI `--console-socket`). The init's stdio is
    /// /dev/null until its root is built; it then opens a pty from the container's own
    /// /dev/ptmx, sends the master on this socket and makes the slave its 0, 1, 2.
    Console(OwnedFd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitMode {
    /// The init stays as PID 1: forwards signals, reaps orphans, reports Exited on the channel.
    Reaper,
    /// The init execs spec.process itself, which becomes PID 1 of the container.
    Exec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartGate {
    /// `Created::start()` sends Start on the channel and waits for Started.
    Channel,
    /// The init opens this FIFO (made by the caller, mode 0622) for writing and blocks until
    /// `start_fifo(path)` opens it for reading (runc's exec.fifo).
    Fifo(PathBuf),
}

/// What the caller's step between clone and Setup sees: the init exists, in its namespaces
/// (blocked before Setup), its cgroup is made (not joined yet).
pub struct InitHandle<'a> {
    pub pid: i32,
    pub pidfd: BorrowedFd<'a>,
    pub cgroup: Option<&'a Cgroup>,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Runs after clone and the cgroup, before Setup (what the supervisor does there: register the
/// init with the memory monitor, wire its network); returns more files for the root (/etc/hosts
/// with the address it got). An error fails `create`, which then cleans up.
pub type BeforeSetup<'a> = Box<dyn FnOnce(&InitHandle<'_>) -> Result<Vec<EtcFile>, BoxError> + 'a>;

/// Renders the OCI state JSON for the init's hooks from the init's host pid (the caller knows the
/// bundle and the rest of the state).
pub type HookState<'a> = Box<dyn FnOnce(i32) -> String + 'a>;

/// Which rules make the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupRules {
    /// `<cgroup_parent>/<id>` (or cgroupsPath below the hierarchy's root) through
    /// `Cgroup::create_in` with engine's own `Limits`: a fresh group, refused if it exists. The
    /// supervisor's (its few limits, its speed).
    Engine,
    /// runc's: `Cgroup::create_oci(cgroupsPath or "/<cgroup_parent>/<id>", linux.resources)`, with
    /// an allow rule for each `linux.devices` node. Relative paths join the caller's own group,
    /// nested parents are made, an existing group is joined, every resource is applied. The OCI
    /// binary's.
    Oci,
}

pub struct CreateOptions<'a> {
    pub id: String,
    pub spec: Spec,
    pub root: RootSource,
    pub stdio: Stdio,
    pub mode: InitMode,
    pub gate: StartGate,
    /// Files of the container's own (/etc/hosts, /etc/hostname): written on a small tmpfs,
    /// bound over their targets.
    pub files: Vec<EtcFile>,
    /// The group when spec.linux.cgroupsPath is None: `<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    pub cgroup: CgroupRules,
    pub before_setup: Option<BeforeSetup<'a>>,
    /// The engine binary re-exec'd as the init; None: /proc/self/exe (the running engine). A
    /// library user whose own binary is not engine (a test) names engine's.
    pub init_binary: Option<PathBuf>,
    /// The state for the createContainer/startContainer hooks the init runs; None: not run.
    pub hook_state: Option<HookState<'a>>,
    /// fds the command gets as 3, 4, ... (OCI `create --preserve-fds`; Exec mode only): passed
    /// to the init after its Setup, closed here once sent.
    pub preserve_fds: Vec<OwnedFd>,
    /// The overlay root, already mounted (detached, from fsmount) by the caller: the init moves
    /// it onto `merged` instead of mounting one (RootSource::Overlay only).
    pub root_mount: Option<OwnedFd>,
    /// A group made ahead under `cgroup_parent` (cgroup v1, CgroupRules::Engine, no
    /// cgroupsPath): renamed to the container's instead of making one (see `cgroup::ahead`).
    pub cgroup_ahead: Option<crate::cgroup::ahead::AheadGroup>,
    /// The init's new network namespace goes on the supervisor's bridge: the spawner may give
    /// one made ahead with its veth pair (`net::ahead`); never one with a pair otherwise.
    pub bridged: bool,
    /// The kernel monitor counts this container's RSS against limits, the init's with it: a
    /// Reaper init lets go of its code pages before the command starts
    /// (`init::let_go_of_code_pages`), not only once it has run a while.
    pub rss_limited: bool,
}

/// What follows the Setup on the channel, in this order (closed here once sent).
struct AfterSetup {
    root_mount: Option<OwnedFd>,
    preserve_fds: Vec<OwnedFd>,
    /// The init may be one with a kit, in a namespace with nothing of the host's: nothing it is
    /// given names a host path (the cgroups it cannot join by their `tasks` fds are joined from here).
    no_host_paths: bool,
}

/// The Setup as it goes on the channel, with what goes with it: encoded once the container's
/// group is there, while the spawner clones (or hands over) the init when it can be (nothing in
/// it then waits for the init's pid), else just before it is sent.
struct SetupMessage {
    bytes: Vec<u8>,
    /// The `tasks` files of the groups the init joins itself, which follow the Setup.
    tasks: Vec<OwnedFd>,
    /// The groups the parent moves the init into (cgroup v2, a new user namespace's init).
    parent_joins: Vec<PathBuf>,
    /// The Plan's /etc files, sent after the Setup with the hook's (`Plan::files_follow`).
    files: Vec<EtcFile>,
}

impl SetupMessage {
    /// `plan` completed with its group `cg` (whose `tasks` files it takes) and encoded; later
    /// changes to `plan` are not in it.
    fn prepare(plan: &mut Plan, cg: &mut Cgroup, no_host_paths: bool) -> Result<SetupMessage, CoreError> {
        let tasks = cg.take_tasks_files();
        let paths = cg.paths();
        plan.cgroup_paths.clone_from(&paths);
        // v1 hierarchies (they have `tasks`) the init joins itself, cheaply (see
        // `Plan::cgroup_self_join`); the parent writes the pid into the others. A new user
        // namespace's root is not the host's and may not write the host's cgroup files.
        let new_user_ns = rootfs::has_new_namespace(&plan.spec, oci_spec::runtime::LinuxNamespaceType::User);
        let (self_join, paths): (Vec<PathBuf>, Vec<PathBuf>) = match new_user_ns {
            true => (Vec::new(), paths),
            // Every v1 group has `tasks`; a v2 group has none.
            false => match cg.version() {
                crate::cgroup::Version::V1 => (paths, Vec::new()),
                crate::cgroup::Version::V2 => (Vec::new(), paths),
            },
        };
        // Its `tasks` files opened ahead, when they are the ones to join: the init writes to them.
        let tasks = if !self_join.is_empty() && tasks.len() == self_join.len() { tasks } else { Vec::new() };
        let (self_join, parent_joins) = match tasks.is_empty() && no_host_paths {
            true => (Vec::new(), self_join.into_iter().chain(paths).collect()),
            false => (self_join, paths),
        };
        plan.cgroup_tasks_sent = !tasks.is_empty();
        plan.cgroup_self_join = self_join;
        let files = if plan.files_follow { std::mem::take(&mut plan.files) } else { Vec::new() };
        let bytes = super::channel::encode_setup(plan)?;
        Ok(SetupMessage { bytes, tasks, parent_joins, files })
    }
}

/// A created init still building its root.
pub struct Pending {
    pid: i32,
    pidfd: Option<OwnedFd>,
    channel: Option<InitChannel>,
    output: Option<(OwnedFd, OwnedFd)>,
    cgroup: Option<Cgroup>,
    mode: InitMode,
    gate: StartGate,
    host_root: Option<HostRoot>,
}

/// An init at its start gate: the root is built, the program found (Fifo gate).
pub struct Created {
    pid: i32,
    pidfd: Option<OwnedFd>,
    channel: Option<InitChannel>,
    cgroup: Option<Cgroup>,
    mode: InitMode,
    gate: StartGate,
    host_root: Option<HostRoot>,
}

/// The command runs.
pub struct Running {
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    /// Reaper mode: the init reports Exited here (`InitChannel::wait_exited`).
    pub channel: Option<InitChannel>,
    pub cgroup: Option<Cgroup>,
}

/// The cgroup a Spec asks for: cgroupsPath (absolute or relative, both taken below the root of
/// engine's hierarchy) or `<parent>/<id>`; split into (parent, name) for `Cgroup::create_in`.
fn cgroup_place(spec: &Spec, parent: &str, id: &str) -> Result<(String, String), CoreError> {
    let path = match spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()) {
        Some(p) => p.to_string_lossy().trim_start_matches('/').to_string(),
        None => format!("{parent}/{id}"),
    };
    match path.rsplit_once('/') {
        Some((parent, name)) if !parent.is_empty() => Ok((parent.to_string(), name.to_string())),
        _ => Err(CoreError::spec("linux.cgroupsPath", format!("{path:?} needs a parent group and a name"))),
    }
}

/// The container's group, checked before the clone so a refused Spec leaves nothing.
enum GroupPlan {
    Engine { parent: String, name: String, limits: crate::cgroup::Limits },
    Oci { path: String, resources: Option<Box<oci_spec::runtime::LinuxResources>> },
}

impl GroupPlan {
    fn new(spec: &Spec, rules: CgroupRules, parent: &str, id: &str) -> Result<GroupPlan, CoreError> {
        let linux = spec.linux().as_ref();
        let resources = linux.and_then(|l| l.resources().as_ref());
        match rules {
            CgroupRules::Engine => {
                let (parent, name) = cgroup_place(spec, parent, id)?;
                Ok(GroupPlan::Engine { parent, name, limits: limits::from_oci(resources)? })
            }
            CgroupRules::Oci => {
                let path = match linux.and_then(|l| l.cgroups_path().as_ref()) {
                    Some(p) => p.to_string_lossy().into_owned(),
                    None => format!("/{parent}/{id}"),
                };
                Ok(GroupPlan::Oci { path, resources: oci_resources(spec)?.map(Box::new) })
            }
        }
    }

    fn path(&self) -> String {
        match self {
            GroupPlan::Engine { parent, name, .. } => format!("{parent}/{name}"),
            GroupPlan::Oci { path, .. } => path.clone(),
        }
    }

    /// The container's group: `ahead` renamed where it fits (made under the same parent), made
    /// here otherwise or if that fails.
    fn create(&self, ahead: Option<crate::cgroup::ahead::AheadGroup>) -> Result<Cgroup, CoreError> {
        let made = match self {
            GroupPlan::Engine { parent, name, limits } => match ahead.filter(|a| a.parent() == parent) {
                Some(ahead) => ahead.adopt(name, limits).or_else(|_| Cgroup::create_in(parent, name, limits)),
                None => Cgroup::create_in(parent, name, limits),
            },
            GroupPlan::Oci { path, resources } => Cgroup::create_oci(path, resources.as_deref()),
        };
        made.map_err(|source| CoreError::Cgroup { path: self.path(), source })
    }
}

/// linux.resources with an allow rule for each linux.devices node appended (after the Spec's
/// own rules, as runc's specconv does): a node the container is given must also be usable.
fn oci_resources(spec: &Spec) -> Result<Option<oci_spec::runtime::LinuxResources>, CoreError> {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxResources};
    let Some(linux) = spec.linux().as_ref() else { return Ok(None) };
    let nodes = linux.devices().as_deref().unwrap_or_default();
    if nodes.is_empty() {
        return Ok(linux.resources().clone());
    }
    let mut r = linux.resources().clone().unwrap_or_else(LinuxResources::default);
    let mut rules = r.devices().clone().unwrap_or_default();
    // A fifo needs no device rule (the device cgroup only knows block and character devices).
    for d in nodes.iter().filter(|d| d.typ() != oci_spec::runtime::LinuxDeviceType::P) {
        let rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(d.typ())
            .major(d.major())
            .minor(d.minor())
            .access("rwm")
            .build()
            .map_err(|e| CoreError::spec("linux.devices", format!("{}: {e}", d.path().display())))?;
        rules.push(rule);
    }
    r.set_devices(Some(rules));
    Ok(Some(r))
}

/// Clones the init into the Spec's namespaces, creates its cgroup (cgroupsPath + resources),
/// runs `before_setup`, sends Setup and moves the init into the cgroup (overlapping the init's
/// own work on its root), and returns. On error nothing is left: the init is killed and reaped,
/// the cgroup removed.
pub fn create(opts: CreateOptions<'_>) -> Result<Pending, CoreError> {
    name::validate(&opts.id)?;
    let args = opts.spec.process().as_ref().and_then(|p| p.args().as_ref());
    if args.is_none_or(|a| a.is_empty() || a[0].is_empty()) {
        return Err(CoreError::spec("process.args", "no program given"));
    }
    let uts = opts
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts));
    for (field, set) in [("hostname", opts.spec.hostname().is_some()), ("domainname", opts.spec.domainname().is_some())]
    {
        // Without a UTS namespace of its own the init would rename the host (runc refuses too).
        if set && !uts {
            return Err(CoreError::spec(field, "needs a UTS namespace of the container's own"));
        }
    }
    if !opts.preserve_fds.is_empty() && opts.mode != InitMode::Exec {
        return Err(CoreError::spec("preserve_fds", "only a command the init execs itself can get them"));
    }
    // A mount made by the caller's user namespace cannot be attached by a root of another.
    let user_ns = super::rootfs::has_namespace(&opts.spec, oci_spec::runtime::LinuxNamespaceType::User);
    if opts.root_mount.is_some()
        && (!matches!(opts.root, RootSource::Overlay { .. }) || !opts.preserve_fds.is_empty() || user_ns)
    {
        return Err(CoreError::spec(
            "root",
            "a root mounted ahead must be an overlay, without preserved fds or a user namespace",
        ));
    }
    let group = GroupPlan::new(&opts.spec, opts.cgroup, &opts.cgroup_parent, &opts.id)?;
    super::trace::step(&opts.id, "P group planned");
    // Before anything is made: a profile that does not compile fails the create here.
    let profile = opts.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let seccomp = profile.map(super::seccomp::compile_once).transpose()?;
    let madvise_denied = profile.is_some_and(|p| !super::seccomp::allows_madvise(p));
    super::trace::step(&opts.id, "P seccomp");
    let (flags, pid_ns) = spawn::clone_flags(&opts.spec)?;
    // Read before the clone: what the init will mount at the root is told from what was there.
    let host_root = HostRoot::of(&opts.spec, &opts.root)?;
    if host_root.is_some() && opts.gate == StartGate::Channel {
        // Only the OCI binary's delete knows to detach such a root (Created::host_root_mount).
        return Err(CoreError::spec(
            "linux.namespaces",
            "a container without a mount namespace needs the OCI lifecycle",
        ));
    }
    super::trace::step(&opts.id, "P host root");
    let console = matches!(opts.stdio, Stdio::Console(_));
    let (stdio, binary) = (opts.stdio, opts.init_binary.as_deref());
    // A start an init with a kit could serve: a Spec the kit fits, and nothing the init would
    // reach by a host path (its namespace has nothing of the host's). Its root then goes to the
    // init as a mount: for a directory, a copy of its tree made here.
    let mut root_mount = opts.root_mount;
    let mut kit_fits = super::spawner::makes_kits()
        && super::kit::fits(&opts.spec)
        && opts.gate == StartGate::Channel
        && opts.preserve_fds.is_empty();
    if kit_fits && root_mount.is_none() {
        root_mount = match &opts.root {
            RootSource::Dir(dir) => crate::sys::clone_tree(dir).ok(),
            RootSource::Overlay { .. } => None,
        };
        kit_fits = root_mount.is_some();
        super::trace::step(&opts.id, "P root copied");
    }
    let mut spec = opts.spec;
    if seccomp.is_some() {
        // Sent compiled: the init never reads the profile.
        if let Some(linux) = spec.linux_mut() {
            linux.set_seccomp(None);
        }
    }
    let new_user_ns = flags.contains(nix::sched::CloneFlags::CLONE_NEWUSER);
    let mut plan = Plan {
        trace: super::trace::origin(&opts.id),
        id: opts.id,
        spec,
        root: opts.root,
        files: opts.files,
        files_follow: opts.before_setup.is_some(),
        mode: opts.mode,
        gate: opts.gate.clone(),
        cgroup_paths: Vec::new(),
        cgroup_self_join: Vec::new(),
        cgroup_tasks_sent: false,
        hook_state: None,
        preserve_fds: opts.preserve_fds.len(),
        console,
        root_mount: root_mount.is_some(),
        seccomp,
        madvise_denied,
        rss_limited: opts.rss_limited,
    };
    // The cgroup directories are made while the spawner clones the init (new namespaces take a
    // while): both were strictly one after the other. Then, unless it needs the init's pid (the
    // OCI hooks' state), the Setup is encoded there too.
    let encode_ahead = opts.hook_state.is_none() && !new_user_ns;
    let mut made: Option<Result<Cgroup, CoreError>> = None;
    let mut prepared: Option<Result<SetupMessage, CoreError>> = None;
    let mut ahead = opts.cgroup_ahead;
    let id = plan.id.clone();
    let mut make_group = || {
        if made.is_none() {
            super::trace::step(&id, "P meanwhile begin");
            made = Some(group.create(ahead.take()));
            super::trace::step(&id, "P meanwhile end");
            if let (true, Some(Ok(cg))) = (encode_ahead, made.as_mut()) {
                prepared = Some(SetupMessage::prepare(&mut plan, cg, kit_fits));
                super::trace::step(&id, "P Setup encoded");
            }
        }
    };
    let child = match &pid_ns {
        Some(path) => spawn::in_pid_namespace(path, || {
            spawn::spawn_init_overlapped(flags, stdio, binary, kit_fits, opts.bridged, &mut make_group)
        }),
        None => spawn::spawn_init_overlapped(flags, stdio, binary, kit_fits, opts.bridged, &mut make_group),
    };
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            if let Some(Ok(cg)) = made {
                let _ = cg.remove();
            }
            return Err(e);
        }
    };
    let gate = child.user_ns_gate.take();
    let mut pending = Pending {
        pid: child.pid,
        pidfd: Some(child.pidfd),
        channel: Some(child.channel),
        output: child.output,
        cgroup: None,
        mode: opts.mode,
        gate: opts.gate.clone(),
        host_root,
    };
    super::trace::step(&id, "init cloned");
    if let Some(render) = opts.hook_state {
        plan.hook_state = Some(render(pending.pid));
    }
    let maps = match gate {
        Some(gate) => spawn::write_id_maps(pending.pid, &plan.spec).and_then(|()| spawn::release(gate)),
        None => Ok(()),
    };
    if let Err(e) = maps {
        pending.destroy();
        if let Some(Ok(cg)) = made {
            let _ = cg.remove();
        }
        return Err(e);
    }
    let fds = AfterSetup { root_mount, preserve_fds: opts.preserve_fds, no_host_paths: kit_fits };
    match pending.setup(plan, prepared, &group, made, opts.before_setup, fds) {
        Ok(()) => Ok(pending),
        Err(e) => {
            pending.destroy();
            Err(e)
        }
    }
}

impl Pending {
    /// `prepared`: the Setup's message made from `plan` while the spawner cloned, if it was.
    fn setup(
        &mut self,
        mut plan: Plan,
        prepared: Option<Result<SetupMessage, CoreError>>,
        group: &GroupPlan,
        made: Option<Result<Cgroup, CoreError>>,
        before_setup: Option<BeforeSetup<'_>>,
        fds: AfterSetup,
    ) -> Result<(), CoreError> {
        let cg = match made {
            Some(made) => made?,
            // Not made during the clone (no spawner): a group made ahead was dropped (removed).
            None => group.create(None)?,
        };
        // Ours from here: a failure removes it with the init (`destroy`).
        let cg = self.cgroup.insert(cg);
        let message = match prepared {
            Some(prepared) => prepared?,
            None => SetupMessage::prepare(&mut plan, cg, fds.no_host_paths)?,
        };
        super::trace::step(&plan.id, "cgroups made");
        let channel = self
            .channel
            .as_ref()
            .ok_or(CoreError::Channel(super::channel::ChannelError::Closed { awaited: "Setup" }))?;
        let paths = &message.parent_joins;
        let join = || {
            crate::cgroup::add_pid_to(paths, self.pid)
                .map_err(|source| CoreError::Cgroup { path: group.path(), source })
        };
        // Fifo gate: the init applies the process (affinity, ...) before its gate, so it must be
        // in the cgroup first. Channel gate: the move overlaps with the init building its root
        // (v1: one RCU grace period), and the init applies the process only after Start.
        if self.gate != StartGate::Channel {
            join()?;
        }
        channel.send_encoded(&message.bytes)?;
        if let Some(mount) = &fds.root_mount {
            channel.send_fds(&[mount.as_fd()])?;
        }
        if !message.tasks.is_empty() {
            channel.send_fds(&message.tasks.iter().map(AsFd::as_fd).collect::<Vec<_>>())?;
        }
        if let Some(file) = plan.trace.as_ref().and(super::trace::file()) {
            channel.send_fds(&[file])?;
        }
        if !fds.preserve_fds.is_empty() {
            channel.send_fds(&fds.preserve_fds.iter().map(AsFd::as_fd).collect::<Vec<_>>())?;
        }
        super::trace::step(&plan.id, "Setup sent");
        // The hook's /etc files follow the Setup: the init begins (wakes, reads the Setup, joins
        // its cgroups) while the hook runs; it waits for them whenever `files_follow` says so.
        if plan.files_follow {
            let mut files = message.files;
            if let (Some(hook), Some(pidfd)) = (before_setup, self.pidfd.as_ref()) {
                let handle = InitHandle { pid: self.pid, pidfd: pidfd.as_fd(), cgroup: Some(cg) };
                files.extend(hook(&handle).map_err(CoreError::Caller)?);
                super::trace::step(&plan.id, "before_setup hook done");
            }
            channel.send(&ToInit::Files(files))?;
        }
        channel.set_timeout(Some(STEP_TIMEOUT))?;
        if self.gate == StartGate::Channel {
            if let Err(e) = join() {
                // An init that failed meanwhile says why; that is the cause to report.
                if let Ok(Some(super::channel::FromInit::Failed(f))) = channel.try_recv() {
                    return Err(CoreError::Init(f));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The init's pidfd (taken: the caller keeps it; the core's error paths then signal by pid).
    pub fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.pidfd.take()
    }

    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|p| p.as_fd())
    }

    /// stdout/stderr read ends (Stdio::Pipes).
    pub fn take_output(&mut self) -> Option<(OwnedFd, OwnedFd)> {
        self.output.take()
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// The cgroup becomes the caller's (to read stats, and to remove when the container ends).
    pub fn take_cgroup(&mut self) -> Option<Cgroup> {
        self.cgroup.take()
    }

    /// Waits for Ready: the root built and pivoted, every step up to the start gate done.
    pub fn ready(mut self) -> Result<Created, CoreError> {
        let waited = match self.channel.as_ref() {
            Some(c) => c.wait_ready().map_err(CoreError::from),
            None => Err(CoreError::Channel(super::channel::ChannelError::Closed { awaited: "Ready" })),
        };
        if let Err(e) = waited {
            self.destroy();
            return Err(e);
        }
        Ok(Created {
            pid: self.pid,
            pidfd: self.pidfd.take(),
            channel: self.channel.take(),
            cgroup: self.cgroup.take(),
            mode: self.mode,
            gate: self.gate.clone(),
            host_root: self.host_root.take(),
        })
    }

    /// StartGate::Channel, for a caller with nothing to do between Ready and Start (its record
    /// saved, the init in its cgroups): Start goes out at once and waits on the channel until
    /// the init has built its root, so the init goes on without a round trip to the caller
    /// (two wakeups across CPUs, ~0.3 ms here); then Ready and Started are awaited as
    /// [`ready`](Self::ready) and [`Created::start`] do. A root that fails still ends in Failed.
    pub fn start_when_ready(self) -> Result<Running, CoreError> {
        if self.gate != StartGate::Channel {
            return Err(CoreError::spec("start", "this container starts through its fifo (start_fifo)"));
        }
        // An init that failed already has closed its end (the send fails): its report, read by
        // `ready`, says why.
        let sent = self.channel.as_ref().is_some_and(|c| c.send(&ToInit::Start).is_ok());
        let created = self.ready()?;
        // Not sent but Ready came: Start goes the usual way (and fails there, cleaning up).
        created.start_sent(sent)
    }

    /// Kills and reaps the init, removes the cgroup it has (if still the core's) and the mounts
    /// it made in the caller's namespace (no mount namespace of its own).
    fn destroy(&mut self) {
        kill_and_reap(self.pid, self.pidfd.take());
        self.channel = None;
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
        release(self.host_root.take());
    }
}

impl Drop for Pending {
    /// A Pending dropped unused (the caller failed meanwhile) takes its init with it.
    fn drop(&mut self) {
        if self.channel.is_some() {
            self.destroy();
        }
    }
}

/// Detaches the root bind a container without a mount namespace left in the caller's, if it made one.
fn release(host_root: Option<HostRoot>) {
    if let Some((h, made)) = host_root.and_then(|h| h.made().map(|id| (h, id))) {
        let _ = rootfs::release_host_root(&h.dir, made);
    }
}

fn kill_and_reap(pid: i32, pidfd: Option<OwnedFd>) {
    match pidfd {
        Some(fd) => {
            let _ = pidfd::pidfd_send_signal(&fd, libc::SIGKILL);
            // ECHILD: a reaper of the caller's (the supervisor's) was first.
            let _ = pidfd::wait(&fd);
        }
        None => {
            // The caller holds the pidfd and so the duty to reap; a SIGKILL by pid is safe while
            // the init is unreaped, which it is until the caller's reaper sees it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

impl Created {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    pub fn take_cgroup(&mut self) -> Option<Cgroup> {
        self.cgroup.take()
    }

    pub fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.pidfd.take()
    }

    /// No mount namespace of its own: the id of the root's bind the init made in the caller's
    /// namespace, which the caller detaches when it deletes the container
    /// ([`rootfs::release_host_root`]).
    pub fn host_root_mount(&self) -> Option<u64> {
        self.host_root.as_ref().and_then(HostRoot::made)
    }

    /// StartGate::Channel: sends Start, waits for Started (Exec mode: for the exec).
    pub fn start(self) -> Result<Running, CoreError> {
        self.start_sent(false)
    }

    /// [`start`](Self::start), where `sent`: Start is on the channel already
    /// ([`Pending::start_when_ready`]).
    fn start_sent(mut self, sent: bool) -> Result<Running, CoreError> {
        if self.gate != StartGate::Channel {
            return Err(CoreError::spec("start", "this container starts through its fifo (start_fifo)"));
        }
        let channel = self.channel.take();
        let send = |c: &InitChannel| if sent { Ok(()) } else { c.send(&ToInit::Start).map_err(CoreError::from) };
        let started = match channel.as_ref() {
            Some(c) => send(c).and_then(|()| {
                c.wait_started(self.mode)?;
                c.set_timeout(None)?;
                Ok(())
            }),
            None => Err(CoreError::Channel(super::channel::ChannelError::Closed { awaited: "Started" })),
        };
        if let Err(e) = started {
            kill_and_reap(self.pid, self.pidfd.take());
            if let Some(cg) = self.cgroup.take() {
                let _ = cg.remove();
            }
            release(self.host_root.take());
            return Err(e);
        }
        let keep = if self.mode == InitMode::Reaper { channel } else { None };
        Ok(Running { pid: self.pid, pidfd: self.pidfd.take(), channel: keep, cgroup: self.cgroup.take() })
    }

    /// StartGate::Fifo: leaves the init blocked at its fifo and lets go of it (the OCI `create`
    /// exits; `start_fifo` releases it later).
    pub fn detach(mut self) {
        self.channel = None;
    }
}

/// OCI `start`: opens the fifo for reading (which unblocks the init's open for writing), reads
/// its byte, removes the fifo. An init that is gone (nobody opens the other end) is an error
/// after a bounded wait, never a hang.
pub fn start_fifo(fifo: &Path) -> Result<(), CoreError> {
    let err = |source: std::io::Error| CoreError::Fifo { path: fifo.to_path_buf(), source };
    let fd =
        open(fifo, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| err(e.into()))?;
    // SAFETY: `fd` was just returned by open and is owned here.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd, valid for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, STEP_TIMEOUT.as_millis() as libc::c_int) };
    if n < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    let mut byte = [0u8; 1];
    let read = nix::unistd::read(fd.as_raw_fd(), &mut byte).map_err(|e| err(e.into()))?;
    if n == 0 || read != 1 {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the container's init is not waiting on it",
        )));
    }
    std::fs::remove_file(fifo).map_err(err)
}

/// Sends `signal` to the init (the container's PID 1).
pub fn signal(pidfd: impl AsFd, signal: i32) -> Result<(), CoreError> {
    pidfd::pidfd_send_signal(pidfd, signal).map_err(CoreError::Signal)
}

/// Waits for the init (a child of the caller) to end and reaps it.
pub fn wait(pidfd: impl AsFd) -> Result<Termination, CoreError> {
    pidfd::wait(pidfd).map_err(CoreError::Wait)
}

/// Removes what the container held outside its namespaces: its cgroup (killing what is left).
pub fn delete(cgroup: Cgroup) -> Result<(), CoreError> {
    let path = cgroup.name().to_string();
    cgroup.remove().map_err(|source| CoreError::Cgroup { path, source })
}

//! `exec [--process FILE | ARGS...] ID`: a new process in a running container.
//!
//! The process is built here (runc's rules: the container's own process from its config.json
//! with this call's command and options); entering the container is the core's
//! (`container::exec`: cgroups, namespaces, the fork into the pid namespace, the process's
//! attributes), the same code `engine exec` runs through its helper. engine-oci is
//! single-threaded, which that code needs, so it calls it directly.
//!
//! Without --detach engine-oci waits for the process as its subreaper (its parent, the middle
//! child, has exited) and forwards the signals it receives, then exits with the process's code
//! (128+N when killed by signal N).
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, Process};

use super::error::{OciError, Result};
use super::state::{self, Status};
use super::{console, Ctx};
use crate::container::exec::{self, open_namespaces, ExecError, Plan};

impl From<ExecError> for OciError {
    fn from(e: ExecError) -> OciError {
        match e {
            ExecError::Child { code, message } => OciError::Exec { code, msg: message },
            ExecError::OpenNamespace { path, source } => OciError::Io { step: format!("exec: opening {path}"), source },
            ExecError::Setup { step, source } => OciError::Io { step: format!("exec: {step}"), source },
            e @ ExecError::Gone { .. } => OciError::Other(e.to_string()),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A runtime-spec `process` JSON file; the other process options are then ignored.
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// KEY=VALUE, added to the container's environment.
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID].
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// A capability added to the process's sets.
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass fds 3 .. 3+N-1 of engine-oci on to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    #[arg(long)]
    cgroup: Option<String>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The process to run: `--process FILE`, or the container's own process (from its config.json)
/// with the command and options of this call, as runc builds it.
fn build_process(a: &Args, bundle: &Path) -> Result<(Process, Option<oci_spec::runtime::Linux>)> {
    let config = super::config::load(bundle).ok();
    let linux = config.as_ref().and_then(|b| b.spec.linux().clone());
    Ok((build_process_only(a, config.as_ref())?, linux))
}

fn build_process_only(a: &Args, config: Option<&super::config::Bundle>) -> Result<Process> {
    if let Some(p) = &a.process {
        let text = std::fs::read(p).map_err(OciError::io(format!("exec: reading {}", p.display())))?;
        let process: Process = serde_json::from_slice(&text).map_err(|e| {
            let field = super::config::json_path_at(&text, e.line(), e.column());
            OciError::Other(format!("exec: {}: {field}: {e}", p.display()))
        })?;
        if process.args().as_ref().is_none_or(|v| v.is_empty()) {
            return Err(OciError::Other(format!("exec: {}: args: must hold at least the program", p.display())));
        }
        return Ok(process);
    }
    if a.command.is_empty() {
        return Err(OciError::Other("exec: no command given (ARGS... or --process FILE)".into()));
    }
    let mut p = config.and_then(|b| b.spec.process().clone()).unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let bad = || OciError::Other(format!("exec: --user {u:?}: expected UID[:GID] as numbers"));
        let (uid, gid) = u.split_once(':').map_or((u.as_str(), None), |(a, b)| (a, Some(b)));
        let mut user = p.user().clone();
        user.set_uid(uid.parse().map_err(|_| bad())?);
        if let Some(g) = gid {
            user.set_gid(g.parse().map_err(|_| bad())?);
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: Capability = serde_json::from_value(serde_json::json!(name))
                .map_err(|_| OciError::Other(format!("exec: --cap {name:?}: unknown capability")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    for (set, flag) in [(args.process_label.is_some(), "--process-label"), (args.apparmor.is_some(), "--apparmor")] {
        if set {
            return Err(OciError::Unsupported(format!("exec: {flag}: no SELinux or AppArmor support in engine-oci")));
        }
    }
    if args.cgroup.is_some() {
        return Err(OciError::Unsupported("exec: --cgroup: sub-cgroups for exec are not supported".into()));
    }
    let c = ctx.root.open(&args.id)?;
    let rec = c.record()?.clone();
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        s => return Err(OciError::Status { id: args.id, status: s.as_str(), verb: "exec", wanted: "running" }),
    }
    let (process, linux) = build_process(&args, &rec.bundle)?;
    let ns = open_namespaces(rec.pid)?;
    // Checked after the opens: the fds are the container's, not those of a process that took its pid.
    if !state::process_is(rec.pid, rec.pid_start) {
        return Err(OciError::Status { id: args.id, status: "stopped", verb: "exec", wanted: "running" });
    }
    // Done with the state: a long exec must not hold up `delete` or `kill` of this container.
    drop(c);

    let terminal = process.terminal().unwrap_or(false);
    // Connected here, in engine-oci's namespaces; the pty is opened by the process itself once
    // it is in the container's (exec_process_inner).
    let console = match (terminal, &args.console_socket) {
        (true, Some(sock)) => Some(console::connect(sock)?),
        (true, None) => return Err(console::ConsoleError::NoSocket.into()),
        (false, Some(_)) => return Err(console::ConsoleError::NotTerminal.into()),
        (false, None) => None,
    };
    let plan = Plan { process, linux, ns, cgroups: rec.cgroup_paths.clone(), console, preserve_fds: args.preserve_fds };
    spawn(&plan, args.detach, args.pid_file.as_deref())
}

fn spawn(plan: &Plan, detach: bool, pid_file: Option<&Path>) -> Result<i32> {
    let waiting = if detach { None } else { Some(exec::prepare_wait()?) };
    let pid = exec::spawn(plan, waiting.as_ref().map(|(_, old)| old))?;
    if let Some(p) = pid_file {
        write_pid_file(p, pid)?;
    }
    match waiting {
        None => Ok(0),
        Some((mask, _)) => Ok(exec::wait_forwarding(pid, &mask)?),
    }
}

/// Writes the pid file atomically (temp + rename), as runc: a reader never sees it half-written.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let step = || format!("writing the pid file {}", path.display());
    std::fs::write(&tmp, pid.to_string()).map_err(OciError::io(step()))?;
    std::fs::rename(&tmp, path).map_err(OciError::io(step()))
}

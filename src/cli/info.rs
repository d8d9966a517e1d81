//! `engine info [--json]`: what this host supports and what the supervisor holds, as `docker info`.
//!
//! The host facts (kernel, cgroups, monitor, seccomp, overlay) are read by the client itself, so
//! `engine info` says something useful even when no supervisor runs; the supervisor adds what only
//! it knows (root, bridge, containers) through the `info` request.
use std::path::Path;

use serde::Serialize;

use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response, SupervisorInfo, ENGINE_COMMIT, ENGINE_VERSION, PROTOCOL_VERSION};

#[derive(clap::Args)]
pub struct Args {
    /// Print everything as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Host {
    client_version: String,
    client_commit: String,
    protocol: u32,
    kernel: String,
    architecture: String,
    /// "v1" or "v2" (what engine uses on this host), "none" without a cgroup hierarchy.
    cgroup_version: String,
    cgroup_controllers: Vec<String>,
    /// Whether the monitor module is loaded (/sys/module/monitor) and its device is there.
    monitor_loaded: bool,
    monitor_device: bool,
    /// The module's ABI version (CM_IOC_VERSION; 1 for modules from before that call), when the
    /// device can be opened.
    monitor_abi: Option<u32>,
    seccomp: bool,
    overlay: bool,
}

#[derive(Serialize)]
struct Info {
    host: Host,
    supervisor: Option<SupervisorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supervisor_error: Option<String>,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let host = host_facts();
    let (supervisor, supervisor_error) = match client.call(Request::Info) {
        Ok(Response::Info { info }) => (Some(*info), None),
        Ok(other) => return Err(unexpected(other)),
        Err(e) if e.message.contains("unknown variant") => {
            (None, Some("the supervisor does not know the info request: it is older than this client".to_string()))
        }
        Err(e) => (None, Some(e.message)),
    };
    let info = Info { host, supervisor, supervisor_error };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", text(&info));
    }
    // As `docker info`: the host part is printed, and an unreachable supervisor is an error.
    match info.supervisor_error {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}

fn text(info: &Info) -> String {
    let h = &info.host;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut out = format!(
        "Client:\n  Version:            {} ({})\n  Protocol:           {}\nHost:\n  Kernel:             {} ({})\n  Cgroup version:     {}\n  Cgroup controllers: {}\n  Seccomp:            {}\n  Overlay:            {}\n  Kernel monitor:     {}\n",
        h.client_version,
        h.client_commit,
        h.protocol,
        h.kernel,
        h.architecture,
        h.cgroup_version,
        h.cgroup_controllers.join(" "),
        yes(h.seccomp),
        yes(h.overlay),
        match (h.monitor_loaded, h.monitor_device) {
            (true, true) => format!(
                "loaded, /dev/container_monitor (ABI {})",
                h.monitor_abi.map_or_else(|| "unknown".to_string(), |v| v.to_string())
            ),
            (true, false) => "module loaded, but no /dev/container_monitor".into(),
            (false, true) => "/dev/container_monitor, module not in /sys/module".into(),
            (false, false) => "not loaded (memory limits use cgroups)".into(),
        },
    );
    if let Some(s) = &info.supervisor {
        let states: Vec<String> = s.containers.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let total: usize = s.containers.values().sum();
        out.push_str(&format!(
            "Supervisor:\n  Version:            {} ({})\n  Protocol:           {}\n  PID:                {}\n  Socket:             {}\n  Root:               {} ({} used, {} free)\n  Cgroup parent:      {}\n  Bridge:             {} {} (gateway {})\n  Kernel monitor:     {}\n  Containers:         {total}{}\n",
            s.version,
            s.commit,
            s.protocol,
            s.pid,
            s.socket.display(),
            s.root.display(),
            human(s.root_used_bytes),
            human(s.root_free_bytes),
            s.cgroup_parent,
            s.bridge,
            s.subnet,
            s.gateway,
            if s.monitor { "in use" } else { "not in use" },
            if states.is_empty() { String::new() } else { format!(" ({})", states.join(", ")) },
        ));
    }
    out
}

/// 1536 → "1.5 KiB".
fn human(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 {
            return if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") };
        }
        value /= 1024.0;
    }
    format!("{value:.1} TiB")
}

fn host_facts() -> Host {
    let uts = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref().map_or_else(|| "unknown".to_string(), |u| f(u).to_string_lossy().into_owned())
    };
    let (cgroup_version, cgroup_controllers) = cgroups();
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let module = Path::new("/sys/module/monitor");
    Host {
        client_version: ENGINE_VERSION.into(),
        client_commit: ENGINE_COMMIT.into(),
        protocol: PROTOCOL_VERSION,
        kernel: field(|u| u.release()),
        architecture: field(|u| u.machine()),
        cgroup_version,
        cgroup_controllers,
        monitor_loaded: module.exists(),
        monitor_device: Path::new(crate::monitor::abi::CM_DEVICE_PATH).exists(),
        monitor_abi: crate::monitor::MonitorDevice::open().ok().map(|dev| dev.version().abi),
        // The Seccomp line of /proc/self/status exists only in CONFIG_SECCOMP kernels.
        seccomp: std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:"))),
        overlay: filesystems.lines().any(|l| l.split_whitespace().last() == Some("overlay")),
    }
}

/// The cgroup version engine uses here and the controllers it can use: v2's cgroup.controllers
/// of the unified mount, v1's mounted hierarchies from /proc/cgroups.
fn cgroups() -> (String, Vec<String>) {
    match crate::cgroup::Cgroup::detect() {
        Ok(crate::cgroup::Version::V2) => {
            let controllers = ["/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok().filter(|s| !s.trim().is_empty()))
                .unwrap_or_default();
            ("v2".into(), controllers.split_whitespace().map(String::from).collect())
        }
        Ok(crate::cgroup::Version::V1) => {
            // subsys_name hierarchy num_cgroups enabled; hierarchy 0 means not mounted as v1.
            let table = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
            let controllers = table
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() >= 4 && f[1] != "0" && f[3] == "1").then(|| f[0].to_string())
                })
                .collect();
            ("v1".into(), controllers)
        }
        Err(_) => ("none".into(), Vec::new()),
    }
}

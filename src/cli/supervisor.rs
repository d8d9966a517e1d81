//! `engine supervisor [--root DIR] [--socket PATH] [--detach]`: the daemon.
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, setsid, ForkResult};

use super::CliResult;
use crate::supervisor::{self, Config, DEFAULT_ROOT};

#[derive(clap::Args)]
pub struct Args {
    /// Where container records and logs live
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Run in the background once the socket accepts requests; output goes to ROOT/supervisor.log
    #[arg(long)]
    detach: bool,
    /// Parent cgroup of the containers' groups [default: engine for the default root,
    /// engine-<hash of the root> for another]
    #[arg(long, value_name = "NAME")]
    cgroup_parent: Option<String>,
    /// Bridge that `--net bridge` containers are plugged into [default: engine0 for the default
    /// root, en<hash of the root> for another]
    #[arg(long, value_name = "NAME")]
    bridge: Option<String>,
    /// The bridge's network; the bridge takes its first address [default: 10.88.0.0/16 for the
    /// default root, 10.89.<from the hash>.0/24 for another]
    #[arg(long, value_name = "CIDR")]
    subnet: Option<crate::net::Ipv4Net>,
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT, or PORT on 127.0.0.1)
    #[arg(long, value_name = "ADDR", value_parser = crate::supervisor::metrics::parse_addr)]
    metrics_addr: Option<std::net::SocketAddr>,
}

pub fn execute(args: Args, socket: &Path) -> CliResult {
    let config = Config {
        root: args.root,
        socket: socket.to_path_buf(),
        cgroup_parent: args.cgroup_parent,
        bridge: args.bridge,
        subnet: args.subnet,
        metrics_addr: args.metrics_addr,
    };
    if !args.detach {
        supervisor::run(config, || {})?;
        return Ok(0);
    }
    // Fork before any thread exists; the parent returns once the daemon is ready or has failed.
    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: single-threaded here; the child continues as the daemon.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(status_w);
            let mut answer = String::new();
            std::fs::File::from(status_r).read_to_string(&mut answer)?;
            match answer.as_str() {
                "ok" => Ok(0),
                "" => Err("the supervisor exited before it was ready".into()),
                msg => Err(msg.into()),
            }
        }
        ForkResult::Child => {
            drop(status_r);
            std::process::exit(daemon(config, status_w));
        }
    }
}

/// The daemon's life; its exit code. Until it is ready, errors go to the waiting parent.
fn daemon(config: Config, status: OwnedFd) -> i32 {
    let status = RefCell::new(Some(std::fs::File::from(status)));
    let result = detach_stdio(&config.root).and_then(|()| {
        supervisor::run(config, || {
            if let Some(mut f) = status.borrow_mut().take() {
                let _ = f.write_all(b"ok");
            }
        })
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            match status.borrow_mut().take() {
                Some(mut f) => drop(f.write_all(format!("{e:#}").as_bytes())),
                None => eprintln!("engine: {e:#}"),
            }
            1
        }
    }
}

/// A daemon keeps no terminal: new session, stdin from /dev/null, output to ROOT/supervisor.log
/// (0600 in a 0700 root: it names containers and their failures).
fn detach_stdio(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    setsid()?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root)?;
    let path = root.join("supervisor.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
    // An older log may have been made 0644.
    log.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let null = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2(null.as_raw_fd(), 0)?;
    nix::unistd::dup2(log.as_raw_fd(), 1)?;
    nix::unistd::dup2(log.as_raw_fd(), 2)?;
    Ok(())
}

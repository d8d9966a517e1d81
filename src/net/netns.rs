//! Entering a container's network namespace. The work runs on a short-lived
//! thread that setns()es into the namespace and then exits, so no thread of
//! the supervisor is ever left inside a container's namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use nix::sched::{setns, CloneFlags};

use super::error::NetError;

/// Opens `/proc/<pid>/ns/net`, refusing a process that shares our own
/// namespace: configuring "its" eth0 and default route would change the host.
pub(crate) fn open(pid: i32) -> Result<File, NetError> {
    let ns_err = |step, source| NetError::Namespace { pid, step, source };
    if pid <= 0 {
        return Err(ns_err("check pid", std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid must be positive")));
    }
    let file = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| ns_err("open", e))?;
    let theirs = file.metadata().map_err(|e| ns_err("stat", e))?;
    let ours = std::fs::metadata("/proc/thread-self/ns/net").map_err(|e| ns_err("stat own", e))?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Err(ns_err(
            "check",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the process shares the host's network namespace"),
        ));
    }
    Ok(file)
}

/// Runs `f` on a new thread inside the network namespace of `pid` and
/// returns what it returned. The thread exits when `f` returns; sockets it
/// created stay in that namespace (a listener made here can be used from
/// any thread afterwards).
pub fn run_in_netns<T, F>(pid: i32, f: F) -> Result<T, NetError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let ns = open(pid)?;
    run_in(pid, &ns, f)
}

/// Like [`run_in_netns`] with an already opened namespace file.
pub(crate) fn run_in<T, F>(pid: i32, ns: &File, f: F) -> Result<T, NetError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name(format!("netns-{pid}"))
            .spawn_scoped(s, move || {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Namespace {
                    pid,
                    step: "setns",
                    source: e.into(),
                })?;
                Ok(f())
            })
            .map_err(|e| NetError::Namespace { pid, step: "spawn thread", source: e })?;
        worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

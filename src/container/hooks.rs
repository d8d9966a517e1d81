//! OCI hooks (the runner; the OCI verbs' own sequencing is in `crate::oci::hooks`): a program run at a point of the lifecycle, the container's state JSON on its stdin,
//! its `args` (argv[0] included) and `env` as given (no `env`: the runtime's own, as runc), killed
//! when its `timeout` (seconds) expires.
//!
//! Where each kind runs (runtime-spec "Lifecycle", as runc does it):
//! - `createRuntime` and (deprecated) `prestart`: by `create`, in the runtime's namespaces, once
//!   the container's namespaces exist and before it is started;
//! - `createContainer` (before pivot_root) and `startContainer` (after start, before the user's
//!   program is exec'd): by the container's init, inside its namespaces, with [`run_hook`];
//! - `poststart`: by `start`, once the program runs; `poststop`: by `delete`.
//!
//! [`run_hook`] uses no thread and no allocation-sensitive trick, so the single-threaded init
//! may call it too: the hook's output goes to a memfd (a pipe would block a chatty hook while we
//! wait), and the timeout is a poll on a pidfd.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use oci_spec::runtime::Hook;

use super::error::CoreError;

/// The end of a hook's output kept for the error message.
const OUTPUT_TAIL: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{path}: {step}: {source}")]
    Setup { path: String, step: &'static str, source: std::io::Error },
    #[error("{path}: {status}{}", output_suffix(.output))]
    Failed { path: String, status: String, output: String },
    #[error("{path}: timed out after {secs} s (killed)")]
    Timeout { path: String, secs: i64 },
}

fn output_suffix(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

/// Runs one hook to its end (or its timeout) with `state_json` on its stdin.
pub fn run_hook(hook: &Hook, state_json: &[u8]) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let setup = |step: &'static str| {
        let path = path.clone();
        move |source: std::io::Error| HookError::Setup { path, step, source }
    };
    let mut out = memfd().map_err(setup("making a buffer for its output"))?;
    let out_w = out.try_clone().map_err(setup("making a buffer for its output"))?;
    let err_w = out.try_clone().map_err(setup("making a buffer for its output"))?;
    let mut cmd = Command::new(hook.path());
    if let Some([argv0, rest @ ..]) = hook.args().as_deref() {
        cmd.arg0(argv0).args(rest);
    }
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            cmd.env(k, v);
        }
    }
    // The state comes from a memfd rather than a pipe: a hook that never reads cannot block us
    // past its timeout, whatever the size of the state.
    let mut input = memfd().map_err(setup("making its stdin"))?;
    input
        .write_all(state_json)
        .and_then(|()| input.seek(SeekFrom::Start(0)).map(drop))
        .map_err(setup("writing the state to its stdin"))?;
    cmd.stdin(Stdio::from(input)).stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
    let mut child = cmd.spawn().map_err(setup("starting it"))?;
    let status = match hook.timeout() {
        Some(secs) if secs > 0 => match wait_timeout(&mut child, Duration::from_secs(secs as u64)) {
            Ok(Some(st)) => st,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout { path, secs });
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(setup("waiting for it")(e));
            }
        },
        _ => child.wait().map_err(setup("waiting for it"))?,
    };
    if status.success() {
        return Ok(());
    }
    Err(HookError::Failed { path, status: describe(status), output: tail(&mut out) })
}

/// Runs the Spec's hooks of `kind` (createContainer, startContainer) from the init, in the
/// container's namespaces, when the caller gave their state; the first failure stops the rest.
pub fn run_in_init(kind: &'static str, hooks: Option<&Vec<Hook>>, state: Option<&str>) -> Result<(), CoreError> {
    let (Some(hooks), Some(state)) = (hooks, state) else { return Ok(()) };
    for hook in hooks {
        run_hook(hook, state.as_bytes()).map_err(|source| CoreError::Hook { kind, source })?;
    }
    Ok(())
}

fn memfd() -> std::io::Result<File> {
    // SAFETY: a NUL-terminated name; the fd returned is new and ours.
    let fd = unsafe { libc::memfd_create(c"engine-oci-hook".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nothing else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Waits for `child` at most `limit`: None when it is still running then.
fn wait_timeout(child: &mut std::process::Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    // A child we have not reaped: its pid still names it.
    let pidfd = super::pidfd::pidfd_open(child.id() as i32)?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc > 0 {
            return child.wait().map(Some);
        }
        if left.is_zero() {
            return Ok(None);
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("ended with {status}"),
    }
}

/// The last bytes the hook wrote, on one line.
fn tail(f: &mut File) -> String {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let start = buf.len().saturating_sub(OUTPUT_TAIL);
    let s = String::from_utf8_lossy(&buf[start..]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn sh(script: &str, timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default().path("/bin/sh").args(vec!["sh".to_string(), "-c".into(), script.into()]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn state_on_stdin_env_and_args() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".into(), format!("cat > {0} && echo \"$FOO\" >> {0}", out.display())])
            .env(vec!["FOO=bar=baz".to_string()])
            .build()
            .unwrap();
        run_hook(&hook, b"{\"id\":\"x\"}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}bar=baz\n");
    }

    #[test]
    fn failure_names_status_and_output() {
        let err = run_hook(&sh("echo oops >&2; exit 3", None), b"{}").unwrap_err();
        assert_eq!(err.to_string(), "/bin/sh: exited with status 3: oops");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let t = std::time::Instant::now();
        let err = run_hook(&sh("sleep 30", Some(1)), b"{}").unwrap_err();
        assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn hook_that_ignores_stdin_is_fine() {
        run_hook(&sh("exit 0", None), &vec![b'x'; 1 << 20]).unwrap();
    }

    #[test]
    fn missing_program_is_a_setup_error() {
        let hook = HookBuilder::default().path("/nonexistent/hook").build().unwrap();
        let err = run_hook(&hook, b"{}").unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/hook: starting it:"), "{err}");
    }
}

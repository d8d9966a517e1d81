//! `process.terminal` with `--console-socket`: engine-oci connects to the caller's socket
//! (podman's conmon, the containerd shim) in its own namespaces, where the path means what the
//! caller meant, and hands the connected socket to the process being made. The pty itself is
//! opened inside the container and its master sent from there (`container::console`): a pty of
//! the host's devpts would be no terminal by name in the container's own devpts.
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

pub use crate::container::console::{recv_fd, send_fd, CONSOLE_NAME};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: connecting to the console socket {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("console: process.terminal is true but no --console-socket was given")]
    NoSocket,
    #[error("console: --console-socket was given but process.terminal is false")]
    NotTerminal,
}

/// The console socket, connected (close-on-exec, as std makes every socket).
pub fn connect(socket: &Path) -> Result<OwnedFd, ConsoleError> {
    UnixStream::connect(socket)
        .map(OwnedFd::from)
        .map_err(|source| ConsoleError::Connect { path: socket.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failure_names_the_socket() {
        let err = connect(Path::new("/nonexistent/console.sock")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/console.sock"), "{err}");
    }
}

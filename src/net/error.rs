//! The one error type of the networking module. Each variant names the step
//! that failed and keeps its cause, so the supervisor can show a sentence.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid IPv4 address {input:?}: {reason}")]
    InvalidAddress { input: String, reason: String },

    #[error("invalid subnet {input:?}: {reason}")]
    InvalidSubnet { input: String, reason: String },

    #[error("address {ip} is outside the network {subnet}")]
    OutsideSubnet { ip: Ipv4Addr, subnet: String },

    #[error("address {ip} is the {what} address of {subnet} and cannot be given to a container")]
    ReservedAddress { ip: Ipv4Addr, what: &'static str, subnet: String },

    #[error("address {ip} is already in use by container {holder:?}")]
    AddressInUse { ip: Ipv4Addr, holder: String },

    #[error("no free address left in {subnet}")]
    PoolExhausted { subnet: String },

    #[error("container {container:?} already holds address {ip} (detach it first)")]
    AlreadyAttached { container: String, ip: Ipv4Addr },

    #[error("invalid container name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("link {name:?} exists but is not a {expected}")]
    WrongLinkKind { name: String, expected: &'static str },

    /// A netlink request answered with an error (or not at all).
    #[error("netlink: {op}: {source}")]
    Netlink { op: String, source: io::Error },

    /// Netlink answered something we did not ask for.
    #[error("netlink: {op}: {detail}")]
    Protocol { op: String, detail: String },

    #[error("network namespace of pid {pid}: {step}: {source}")]
    Namespace { pid: i32, step: &'static str, source: io::Error },

    #[error("{step} {path}: {source}")]
    Io { step: &'static str, path: PathBuf, source: io::Error },

    #[error("lease file {path} is corrupt: {detail}")]
    CorruptLeases { path: PathBuf, detail: String },

    #[error("-p {}: host port {}/{} is already taken by {holder}", port.flag(), port.host_port, port.proto)]
    PortTaken { port: super::firewall::PortMapping, holder: String },

    /// Several independent steps failed (teardown keeps going and reports all).
    #[error("{}", join(.0))]
    Multiple(Vec<NetError>),
}

fn join(errors: &[NetError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

impl NetError {
    /// The errno behind a netlink or I/O failure, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { source, .. } | NetError::Namespace { source, .. } | NetError::Io { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: io::Error) -> NetError {
        NetError::Netlink { op: op.into(), source }
    }

    pub(crate) fn protocol(op: impl Into<String>, detail: impl Into<String>) -> NetError {
        NetError::Protocol { op: op.into(), detail: detail.into() }
    }

    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> NetError {
        NetError::Io { step, path: path.into(), source }
    }
}

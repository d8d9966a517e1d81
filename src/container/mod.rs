//! The container core: one description of a container (the OCI runtime [`Spec`]) and its
//! lifecycle as library calls (`lifecycle`). The parent side clones the init (`spawn`) and talks
//! to it in typed phases (`channel`); the init (`init`) builds the root (`rootfs`, every path
//! through `safepath`) and applies the process (`process`, `security`, `seccomp`). Errors name
//! their step (`error`); exit codes have one table (`exit`); names one rule (`name`).
pub mod channel;
pub mod console;
pub mod error;
pub mod exec;
pub mod exit;
pub mod hooks;
pub mod init;
pub mod kit;
pub mod lifecycle;
mod limits;
pub mod name;
mod netns_pool;
pub mod pidfd;
pub mod process;
pub mod rootfs;
pub mod safepath;
pub mod seccomp;
pub mod security;
pub mod spawn;
pub mod spawner;
pub mod trace;

pub use channel::EtcFile;
pub use error::CoreError;
pub use lifecycle::{
    create, delete, signal, start_fifo, wait, BeforeSetup, BoxError, CgroupRules, CreateOptions, Created, HookState,
    InitHandle, InitMode, Pending, RootSource, Running, StartGate, Stdio,
};
pub use oci_spec::runtime::Spec;

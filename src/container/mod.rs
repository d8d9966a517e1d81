//! Creating a container: what to run (spec), the parent side (spawn), the child side (init,
//! rootfs, security), the messages between them (channel) and the lifecycle states (state).
pub mod channel;
pub mod init;
pub mod rootfs;
pub mod safepath;
pub mod seccomp;
pub mod security;
pub mod spawn;
pub mod spec;
pub mod state;

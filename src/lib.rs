//! engine: a small, fast, Docker-like container runtime for Linux.
pub mod cgroup;
pub mod cli;
pub mod container;
pub mod diag;
pub mod image;
pub mod monitor;
pub mod net;
pub mod oci;
pub mod protocol;
pub mod supervisor;
pub mod sys;

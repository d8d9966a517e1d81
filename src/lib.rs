//! engine: a small, fast, Docker-like container runtime for Linux.
pub mod cli;
pub mod container;
pub mod protocol;
pub mod supervisor;

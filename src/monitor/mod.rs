//! The supervisor's side of the kernel memory monitor (`kmod/monitor.ko`):
//! `abi` mirrors `kmod/monitor_uapi.h`, `device` opens `/dev/container_monitor` and issues
//! the ioctls, `events` decodes the soft-limit / hard-kill / gone records read from it.
//!
//! Self-contained on purpose (std, libc, ioctl-sys, serde only): the supervisor decides
//! what to do when the device is missing (cgroup fallback), not this module.

pub mod abi;
pub mod device;
pub mod events;

pub use device::{MonitorDevice, Usage, Version};
pub use events::{Event, EventKind};

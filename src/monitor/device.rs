//! `/dev/container_monitor`: register a container, unregister it, query its usage, read
//! the monitor's events. Every call needs CAP_SYS_ADMIN (EPERM otherwise).
//!
//! Errors are the kernel's errno as `io::Error` (match on `raw_os_error()`):
//! EINVAL bad argument (soft > hard, hard == 0, bad name, pid 1 or a kernel thread),
//! ESRCH pid not alive, EEXIST already registered, ENOENT not registered (or already
//! exited and dropped), EPERM not CAP_SYS_ADMIN, ENOTTY not this device.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::abi::{self, CmQuery, CmRegister, CmUnregister, CmVersion};
use super::events::{self, Event};

/// A container's memory as the monitor sees it (from its latest check, which QUERY runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    /// `abi::CM_FLAG_*`.
    pub flags: u32,
    /// Processes counted in rss_bytes.
    pub nr_procs: u32,
}

impl Usage {
    pub fn soft_exceeded(&self) -> bool {
        self.flags & abi::CM_FLAG_SOFT_EXCEEDED != 0
    }
    pub fn hard_killed(&self) -> bool {
        self.flags & abi::CM_FLAG_HARD_KILLED != 0
    }
}

/// What the loaded module speaks (CM_IOC_VERSION; ABI 1 modules have no such call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub abi: u32,
    /// `abi::CM_FEATURE_*`.
    pub features: u32,
}

impl Version {
    /// What a module without CM_IOC_VERSION is.
    pub const ABI_1: Version = Version { abi: 1, features: 0 };

    pub fn soft_signal(&self) -> bool {
        self.features & abi::CM_FEATURE_SOFT_SIGNAL != 0
    }
}

#[derive(Debug)]
pub struct MonitorDevice {
    file: File,
    /// Read once at open: the module cannot change while a file of it is open.
    version: Version,
}

impl MonitorDevice {
    /// Opens `/dev/container_monitor`. NotFound when the module is not loaded.
    pub fn open() -> io::Result<MonitorDevice> {
        MonitorDevice::open_at(abi::CM_DEVICE_PATH)
    }

    /// Opens the device at another path (tests, a differently named node).
    /// Non-blocking, so `read_events` drains without waiting; close-on-exec so containers
    /// never inherit it.
    pub fn open_at(path: impl AsRef<Path>) -> io::Result<MonitorDevice> {
        let file =
            OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK).open(path)?;
        let mut dev = MonitorDevice { file, version: Version::ABI_1 };
        dev.version = dev.read_version()?;
        Ok(dev)
    }

    /// Starts monitoring the container whose init has host pid `pid`. `soft_bytes` 0 means
    /// no soft limit. `name` appears in the kernel log and in events: printable ASCII, no
    /// spaces, at most 63 bytes.
    /// `soft_signal`: a signal the monitor sends to `pid` when RSS crosses soft (once per
    /// crossing, re-armed below 90 % of soft); needs a module with
    /// `Version::soft_signal()` (an older one answers EINVAL).
    pub fn register(
        &self,
        pid: i32,
        soft_bytes: u64,
        hard_bytes: u64,
        name: &str,
        soft_signal: Option<i32>,
    ) -> io::Result<()> {
        let name = abi::encode_name(name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("monitor name {name:?}: 1 to {} bytes without NUL", abi::CM_NAME_LEN - 1),
            )
        })?;
        let flags = match soft_signal {
            None => 0,
            Some(sig) if (1..=255).contains(&sig) => abi::CM_REGISTER_SOFT_SIGNAL | abi::cm_register_signal(sig as u32),
            Some(sig) => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("soft signal {sig} out of range")))
            }
        };
        let mut req = CmRegister { pid, flags, soft_bytes, hard_bytes, name };
        self.ioctl(abi::CM_IOC_REGISTER, &mut req)
    }

    /// The module's ABI version, read at open; a module from before CM_IOC_VERSION is ABI 1.
    pub fn version(&self) -> Version {
        self.version
    }

    fn read_version(&self) -> io::Result<Version> {
        let mut v = CmVersion::default();
        match self.ioctl(abi::CM_IOC_VERSION, &mut v) {
            Ok(()) => Ok(Version { abi: v.abi, features: v.features }),
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Ok(Version::ABI_1),
            Err(e) => Err(e),
        }
    }

    /// Stops monitoring; no event follows. ENOENT if the container was not registered or
    /// has already exited and been dropped (a Gone event said so).
    pub fn unregister(&self, pid: i32) -> io::Result<()> {
        let mut req = CmUnregister { pid, reserved: 0 };
        self.ioctl(abi::CM_IOC_UNREGISTER, &mut req)
    }

    /// Checks the container now and returns its usage.
    pub fn query(&self, pid: i32) -> io::Result<Usage> {
        let mut q = CmQuery { pid, ..Default::default() };
        self.ioctl(abi::CM_IOC_QUERY, &mut q)?;
        Ok(Usage {
            rss_bytes: q.rss_bytes,
            peak_rss_bytes: q.peak_rss_bytes,
            soft_bytes: q.soft_bytes,
            hard_bytes: q.hard_bytes,
            flags: q.flags,
            nr_procs: q.nr_procs,
        })
    }

    /// Every event queued for this open file, without blocking (empty when none).
    /// Poll the fd for POLLIN to know when to call it.
    pub fn read_events(&self) -> io::Result<Vec<Event>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * events::RECORD_SIZE];
        loop {
            match (&self.file).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend(Event::decode_all(&buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn ioctl<T>(&self, cmd: u32, arg: &mut T) -> io::Result<()> {
        // SAFETY: cmd encodes size_of::<T>() (abi.rs builds each number from its struct),
        // and arg is a valid, exclusively borrowed T for the duration of the call.
        let rc = unsafe { ioctl_sys::ioctl(self.file.as_raw_fd(), cmd as libc::c_ulong, arg as *mut T) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl AsRawFd for MonitorDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for MonitorDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_missing_device_is_not_found() {
        let err = MonitorDevice::open_at("/nonexistent/container_monitor").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn ioctl_on_another_file_is_enotty() {
        // /dev/null is no monitor: the kernel answers ENOTTY, which we must pass on as is.
        let dev = MonitorDevice::open_at("/dev/null").unwrap();
        assert_eq!(dev.query(1).unwrap_err().raw_os_error(), Some(libc::ENOTTY));
        assert_eq!(dev.unregister(1).unwrap_err().raw_os_error(), Some(libc::ENOTTY));
        // A module from before CM_IOC_VERSION answers ENOTTY too: that is ABI 1, no soft signal.
        let v = dev.version();
        assert_eq!(v, Version::ABI_1);
        assert!(!v.soft_signal());
        // read() on /dev/null is EOF: no events, no error.
        assert!(dev.read_events().unwrap().is_empty());
    }

    #[test]
    fn register_refuses_unencodable_names_before_the_kernel() {
        let dev = MonitorDevice::open_at("/dev/null").unwrap();
        let err = dev.register(1, 0, 1, &"n".repeat(64), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = dev.register(1, 0, 1, "", None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = dev.register(1, 1, 2, "x", Some(256)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn usage_flags() {
        let u = Usage {
            rss_bytes: 0,
            peak_rss_bytes: 0,
            soft_bytes: 0,
            hard_bytes: 1,
            flags: abi::CM_FLAG_HARD_KILLED,
            nr_procs: 1,
        };
        assert!(u.hard_killed());
        assert!(!u.soft_exceeded());
    }
}

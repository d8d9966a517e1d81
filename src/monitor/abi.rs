//! Rust mirror of `kmod/monitor_uapi.h`, the ABI of `/dev/container_monitor`.
//!
//! Written once, here; `tests/monitor_abi.rs` compiles a C program against the header and
//! fails when a size, an offset, an ioctl number or a constant differs from this file.
//! Field comments are in the header.

use std::mem::size_of;

pub const CM_DEVICE_PATH: &str = "/dev/container_monitor";
/// Bytes of a name, including the terminating NUL.
pub const CM_NAME_LEN: usize = 64;

pub const CM_FLAG_SOFT_EXCEEDED: u32 = 1 << 0;
pub const CM_FLAG_HARD_KILLED: u32 = 1 << 1;
pub const CM_FLAG_PIDNS: u32 = 1 << 2;
pub const CM_FLAG_SOFT_SIGNALLED: u32 = 1 << 3;

/// ABI 1 had no CM_IOC_VERSION (ENOTTY); ABI 2 added it and the soft-limit signal.
pub const CM_ABI_VERSION: u32 = 2;
pub const CM_FEATURE_SOFT_SIGNAL: u32 = 1 << 0;

pub const CM_REGISTER_SOFT_SIGNAL: u32 = 1 << 0;
pub const CM_REGISTER_SIGNAL_SHIFT: u32 = 8;
pub const CM_REGISTER_SIGNAL_MASK: u32 = 0xff << CM_REGISTER_SIGNAL_SHIFT;
pub const CM_SOFT_REARM_PERCENT: u32 = 90;

/// `CM_REGISTER_SIGNAL(sig)` of the header.
pub const fn cm_register_signal(sig: u32) -> u32 {
    (sig << CM_REGISTER_SIGNAL_SHIFT) & CM_REGISTER_SIGNAL_MASK
}

pub const CM_EVENT_SOFT_LIMIT: u32 = 1;
pub const CM_EVENT_HARD_KILL: u32 = 2;
pub const CM_EVENT_GONE: u32 = 3;
pub const CM_EVENT_SOFT_SIGNAL: u32 = 4;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CmRegister {
    pub pid: i32,
    pub flags: u32,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub name: [u8; CM_NAME_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CmUnregister {
    pub pid: i32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CmQuery {
    pub pid: i32,
    pub flags: u32,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub nr_procs: u32,
    pub reserved: u32,
    pub next_check_ms: u64,
    pub name: [u8; CM_NAME_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CmStats {
    pub nr_entries: u32,
    pub reserved: u32,
    pub runs: u64,
    pub checks: u64,
    pub total_ns: u64,
    pub max_run_ns: u64,
    pub events_dropped: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CmVersion {
    pub abi: u32,
    pub features: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CmEvent {
    pub kind: u32, // `type` in C
    pub pid: i32,
    pub rss_bytes: u64,
    pub limit_bytes: u64,
    pub timestamp_ns: u64,
    pub name: [u8; CM_NAME_LEN],
}

// All-zero is a valid value of every ABI struct (that is what the kernel starts from too).
macro_rules! zeroed_default {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // SAFETY: plain integers and byte arrays; all-zero is valid.
                unsafe { std::mem::zeroed() }
            }
        }
    )*};
}
zeroed_default!(CmRegister, CmQuery, CmEvent);

pub const CM_IOC_MAGIC: u8 = 0xCE;
pub const CM_IOC_REGISTER: u32 = ioctl_sys::iow!(CM_IOC_MAGIC, 1, size_of::<CmRegister>());
pub const CM_IOC_UNREGISTER: u32 = ioctl_sys::iow!(CM_IOC_MAGIC, 2, size_of::<CmUnregister>());
pub const CM_IOC_QUERY: u32 = ioctl_sys::iorw!(CM_IOC_MAGIC, 3, size_of::<CmQuery>());
pub const CM_IOC_STATS: u32 = ioctl_sys::ior!(CM_IOC_MAGIC, 4, size_of::<CmStats>());
pub const CM_IOC_VERSION: u32 = ioctl_sys::ior!(CM_IOC_MAGIC, 5, size_of::<CmVersion>());

/// `name` as the kernel wants it: NUL-terminated in CM_NAME_LEN bytes. None if it does not
/// fit or holds a NUL (the kernel also refuses spaces and non-printable bytes).
pub fn encode_name(name: &str) -> Option<[u8; CM_NAME_LEN]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= CM_NAME_LEN || bytes.contains(&0) {
        return None;
    }
    let mut out = [0u8; CM_NAME_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

/// The text before the first NUL (lossy: the kernel only stores printable ASCII).
pub fn decode_name(raw: &[u8; CM_NAME_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(CM_NAME_LEN);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_multiples_of_8() {
        // Same layout for 32- and 64-bit userspace; the C side is checked in tests/monitor_abi.rs.
        for s in [
            size_of::<CmRegister>(),
            size_of::<CmUnregister>(),
            size_of::<CmQuery>(),
            size_of::<CmStats>(),
            size_of::<CmEvent>(),
            size_of::<CmVersion>(),
        ] {
            assert_eq!(s % 8, 0, "size {s}");
        }
    }

    #[test]
    fn ioctl_numbers_encode_direction_size_and_magic() {
        // _IOW = 1 << 30, _IOR = 2 << 30 on x86-64.
        assert_eq!(CM_IOC_REGISTER >> 30, 1);
        assert_eq!(CM_IOC_STATS >> 30, 2);
        assert_eq!(CM_IOC_QUERY >> 30, 3);
        assert_eq!((CM_IOC_QUERY >> 16) & 0x3fff, size_of::<CmQuery>() as u32);
        assert_eq!((CM_IOC_REGISTER >> 8) & 0xff, 0xCE);
        assert_eq!(CM_IOC_UNREGISTER & 0xff, 2);
    }

    #[test]
    fn names_round_trip_and_reject_what_cannot_fit() {
        let raw = encode_name("memtest").unwrap();
        assert_eq!(&raw[..8], b"memtest\0");
        assert_eq!(decode_name(&raw), "memtest");
        assert!(encode_name("").is_none());
        assert!(encode_name("a\0b").is_none());
        assert!(encode_name(&"x".repeat(CM_NAME_LEN)).is_none());
        assert!(encode_name(&"x".repeat(CM_NAME_LEN - 1)).is_some());
        let full = [b'y'; CM_NAME_LEN];
        assert_eq!(decode_name(&full).len(), CM_NAME_LEN);
    }
}

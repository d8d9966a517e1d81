//! Events the monitor queues for every open file of the device: fixed-size `struct
//! cm_event` records returned whole by `read()`, readable when `poll()` says POLLIN.

use serde::{Deserialize, Serialize};

use super::abi::{self, CmEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// RSS went above the soft limit (once per crossing).
    SoftLimit,
    /// RSS went above the hard limit; every process of the container got SIGKILL.
    HardKill,
    /// The container's init exited; the monitor dropped the entry by itself.
    Gone,
    /// The soft-limit signal was sent (ABI 2), once per crossing; limit_bytes is soft.
    SoftSignal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The pid the container was registered with.
    pub pid: i32,
    /// Container RSS when the event fired (for Gone: at the last check).
    pub rss_bytes: u64,
    /// The limit crossed; 0 for Gone.
    pub limit_bytes: u64,
    pub name: String,
}

impl EventKind {
    fn from_raw(kind: u32) -> Option<EventKind> {
        match kind {
            abi::CM_EVENT_SOFT_LIMIT => Some(EventKind::SoftLimit),
            abi::CM_EVENT_HARD_KILL => Some(EventKind::HardKill),
            abi::CM_EVENT_GONE => Some(EventKind::Gone),
            abi::CM_EVENT_SOFT_SIGNAL => Some(EventKind::SoftSignal),
            _ => None,
        }
    }
}

impl Event {
    /// None for an event type this build does not know (a newer module): skip it.
    pub fn from_raw(raw: &CmEvent) -> Option<Event> {
        Some(Event {
            kind: EventKind::from_raw(raw.kind)?,
            pid: raw.pid,
            rss_bytes: raw.rss_bytes,
            limit_bytes: raw.limit_bytes,
            name: abi::decode_name(&raw.name),
        })
    }

    /// Decodes whole records from bytes read off the device; a partial tail is ignored
    /// (the kernel never returns one).
    pub fn decode_all(bytes: &[u8]) -> Vec<Event> {
        bytes
            .chunks_exact(RECORD_SIZE)
            .filter_map(|chunk| {
                // SAFETY: chunk is exactly one record; read_unaligned copes with any alignment,
                // and every bit pattern is a valid CmEvent (integers and bytes).
                let raw = unsafe { std::ptr::read_unaligned(chunk.as_ptr() as *const CmEvent) };
                Event::from_raw(&raw)
            })
            .collect()
    }
}

/// Size of one record on the wire.
pub const RECORD_SIZE: usize = std::mem::size_of::<CmEvent>();

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u32, pid: i32, rss: u64, limit: u64, name: &str) -> Vec<u8> {
        let ev = CmEvent {
            kind,
            pid,
            rss_bytes: rss,
            limit_bytes: limit,
            timestamp_ns: 42,
            name: abi::encode_name(name).unwrap(),
        };
        // SAFETY: CmEvent is repr(C) plain data without padding holes (checked by size).
        let bytes = unsafe { std::slice::from_raw_parts(&ev as *const CmEvent as *const u8, RECORD_SIZE) };
        bytes.to_vec()
    }

    #[test]
    fn decodes_each_kind_and_the_name() {
        let mut buf = raw(abi::CM_EVENT_SOFT_LIMIT, 7, 4 << 20, 3 << 20, "memtest");
        buf.extend(raw(abi::CM_EVENT_HARD_KILL, 7, 7 << 20, 6 << 20, "memtest"));
        buf.extend(raw(abi::CM_EVENT_GONE, 7, 7 << 20, 0, "memtest"));
        buf.extend(raw(abi::CM_EVENT_SOFT_SIGNAL, 7, 4 << 20, 3 << 20, "memtest"));
        let evs = Event::decode_all(&buf);
        let kinds: Vec<_> = evs.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::SoftLimit, EventKind::HardKill, EventKind::Gone, EventKind::SoftSignal]);
        assert_eq!(evs[1].pid, 7);
        assert_eq!(evs[1].rss_bytes, 7 << 20);
        assert_eq!(evs[1].limit_bytes, 6 << 20);
        assert_eq!(evs[1].name, "memtest");
    }

    #[test]
    fn skips_unknown_kinds_and_partial_tails() {
        let mut buf = raw(99, 1, 0, 0, "future");
        buf.extend(raw(abi::CM_EVENT_GONE, 2, 0, 0, "known"));
        buf.extend([0u8; 10]);
        let evs = Event::decode_all(&buf);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].name, "known");
    }

    #[test]
    fn record_size_matches_the_header() {
        // 4 + 4 + 8 + 8 + 8 + 64: no padding anywhere.
        assert_eq!(RECORD_SIZE, 96);
    }
}

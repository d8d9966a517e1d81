//! `engine events`: the containers' lifecycle as a stream of one-line events (create, start, die
//! with its exit code, kill with the signal, stop, restart, destroy, oom, the memory limits'
//! soft crossings, soft-limit signals and hard kills), like `docker events`.
//!
//! The registry emits them where the state changes. They are kept in memory only, in a ring of
//! the last [`CAPACITY`] events that `--since` replays from; a supervisor restart starts an empty
//! ring (the records on disk keep each container's own limit events).
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

/// Events kept for `--since`: enough for minutes of a busy host, a few hundred KiB at most.
pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// The same instant, nanoseconds since the epoch (what `--since` compares).
    pub time_nano: i64,
    /// Increases by one per event: a follower resumes after the last one it sent.
    pub seq: u64,
    pub container: String,
    /// `create`, `start`, `die`, `kill`, `stop`, `restart`, `destroy`, `oom`, `hard-limit-kill`,
    /// `soft-limit`, `soft-signal`, `restart-failed`.
    pub action: String,
    /// `exitCode`, `signal`, `rssKiB`, ... as `docker events` prints them.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// `docker events`' line: `TIME container ACTION NAME (key=value, ...)`.
    pub fn line(&self) -> String {
        let mut attrs: Vec<String> = self.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        attrs.insert(0, format!("name={}", self.container));
        format!("{} container {} {} ({})", self.time, self.action, self.container, attrs.join(", "))
    }
}

/// Which events a follower wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Nanoseconds since the epoch: events at or after it are replayed from the ring.
    pub since: Option<i64>,
    /// Events after it are not sent, and the stream ends once it has passed.
    pub until: Option<i64>,
    /// Only these containers (empty: all).
    pub containers: Vec<String>,
}

impl Filter {
    fn wants(&self, e: &Event) -> bool {
        self.until.is_none_or(|u| e.time_nano <= u)
            && (self.containers.is_empty() || self.containers.iter().any(|c| c == &e.container))
    }
}

#[derive(Default)]
struct Ring {
    events: VecDeque<Event>,
    next_seq: u64,
}

#[derive(Default)]
pub struct EventLog {
    ring: Mutex<Ring>,
    added: Condvar,
}

impl EventLog {
    pub fn emit(&self, container: &str, action: &str, attributes: &[(&str, String)]) {
        let now = chrono::Utc::now();
        let mut ring = self.ring.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() == CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(Event {
            time: now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            time_nano: now.timestamp_nanos_opt().unwrap_or(i64::MAX),
            seq,
            container: container.to_string(),
            action: action.to_string(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        });
        self.added.notify_all();
    }

    /// Where a follower starts: the first kept event at or after `since`, or what comes next.
    pub fn start(&self, since: Option<i64>) -> u64 {
        let ring = self.ring.lock();
        match since {
            Some(t) => ring.events.iter().find(|e| e.time_nano >= t).map_or(ring.next_seq, |e| e.seq),
            None => ring.next_seq,
        }
    }

    /// The events from `cursor` on that `filter` wants, waiting up to `wait` for one to come;
    /// also the cursor after them.
    pub fn read(&self, cursor: u64, filter: &Filter, wait: Duration) -> (Vec<Event>, u64) {
        let deadline = Instant::now() + wait;
        let mut ring = self.ring.lock();
        while ring.next_seq <= cursor {
            if self.added.wait_until(&mut ring, deadline).timed_out() {
                break;
            }
        }
        // Events that fell off the ring are gone; the follower resumes at the oldest kept.
        let events = ring.events.iter().filter(|e| e.seq >= cursor && filter.wants(e)).cloned().collect();
        (events, ring.next_seq.max(cursor))
    }
}

/// How often a follower with nothing to send checks that its client is still there.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// `engine events`: replays what `filter.since` asks for, then streams new events until
/// `filter.until` has passed (then [`Response::Done`]) or the client goes away.
///
/// [`Response::Done`]: crate::protocol::Response::Done
pub fn follow(
    sup: &super::Supervisor,
    conn: &mut std::os::unix::net::UnixStream,
    filter: Filter,
) -> Result<(), super::failure::Failure> {
    use crate::protocol::{write_frame, Response};
    let log = &sup.registry.events;
    let mut cursor = log.start(filter.since);
    loop {
        let (events, next) = log.read(cursor, &filter, IDLE_CHECK);
        cursor = next;
        for event in events {
            if write_frame(conn, &Response::Event { event }, b"").is_err() {
                return Ok(());
            }
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        if filter.until.is_some_and(|u| now > u) {
            return write_frame(conn, &Response::Done, b"")
                .map_err(|e| super::failure::Failure::engine(format!("client went away: {e}")));
        }
        if client_gone(conn) {
            return Ok(());
        }
    }
}

/// The client closed its end (it sends nothing after its request, so readable means closed).
fn client_gone(conn: &std::os::unix::net::UnixStream) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    match recv(conn.as_raw_fd(), &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Ok(_) => true,
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_sees_each_event_once_in_order_and_filters_apply() {
        let log = EventLog::default();
        log.emit("a", "create", &[]);
        let t = log.ring.lock().events[0].time_nano;
        log.emit("b", "start", &[]);
        log.emit("a", "die", &[("exitCode", "3".into())]);
        let only_a = Filter { containers: vec!["a".into()], ..Default::default() };
        let (events, cursor) = log.read(log.start(Some(t)), &only_a, Duration::ZERO);
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "die"]);
        assert_eq!(cursor, 3);
        assert!(events[1].line().ends_with("container die a (name=a, exitCode=3)"), "{}", events[1].line());
        // Nothing new: an empty read after the wait.
        assert_eq!(log.read(cursor, &Filter::default(), Duration::from_millis(5)).0, vec![]);
        assert_eq!(log.start(None), 3);
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let log = EventLog::default();
        for i in 0..CAPACITY + 10 {
            log.emit("c", &format!("a{i}"), &[]);
        }
        let (events, _) = log.read(0, &Filter::default(), Duration::ZERO);
        assert_eq!(events.len(), CAPACITY);
        assert_eq!(events[0].action, "a10");
    }
}

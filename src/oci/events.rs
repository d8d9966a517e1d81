//! `events [--stats] [--interval D] ID`: the container's resource usage as runc's event JSON,
//! `{"type":"stats","id":ID,"data":{...}}`: once with --stats, else every interval until the
//! container stops. The numbers are the cgroup module's (`Cgroup::stats_oci`, runc's shape).
use std::time::Duration;

use serde_json::json;

use super::error::{OciError, Result};
use super::state::Status;
use super::status::write_stdout;
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the usage once and exit.
    #[arg(long)]
    stats: bool,
    /// Between two reports (Go duration: 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    id: String,
}

/// Go's durations as runc takes them: a number and a unit (ns, us, ms, s, m, h), repeatable.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (e.g. 5s, 500ms, 1m30s)");
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    if total <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    loop {
        // The lock is held only for the read: `delete` must not wait for a long events loop.
        let c = ctx.root.open(&args.id)?;
        let status = c.status();
        if status == Status::Stopped && !args.stats {
            return Ok(0);
        }
        let rec = c.record()?;
        let stats = super::cgroups::open(rec)?.stats_oci().map_err(|e| OciError::Other(format!("events: {e}")))?;
        let ev = json!({ "type": "stats", "id": rec.id, "data": stats });
        drop(c);
        let line = serde_json::to_string(&ev).map_err(|e| OciError::Other(format!("events: encoding: {e}")))?;
        write_stdout(format!("{line}\n").as_bytes())?;
        if args.stats {
            return Ok(0);
        }
        std::thread::sleep(args.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        for bad in ["", "5", "s", "-1s", "0s", "5x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

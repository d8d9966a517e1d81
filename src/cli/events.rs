//! `engine events [--since T] [--until T] [--filter container=NAME|event=ACTION]`: the
//! containers' lifecycle, one line per event (`docker events`' format), until Ctrl-C, or until
//! `--until` has passed. `--since` replays what the supervisor still holds (its last few
//! thousand events, since it started).
use std::io::Write;

use super::client::unexpected;
use super::{CliError, CliResult, Client};
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Show events from this time on: RFC 3339 (2026-12-01T10:00:00Z), Unix seconds, or a duration ago (10s, 5m, 1h30m)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<i64>,
    /// Stop at this time (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<i64>,
    /// container=NAME or event=ACTION (repeatable; values of one key are alternatives)
    #[arg(long, short = 'f', value_name = "KEY=VALUE", value_parser = parse_filter)]
    filter: Vec<(String, String)>,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
}

fn parse_filter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k @ ("container" | "name" | "event"), v)) if !v.is_empty() => {
            Ok((if k == "name" { "container" } else { k }.to_string(), v.to_string()))
        }
        _ => Err(format!("--filter {s}: expected container=NAME or event=ACTION")),
    }
}

/// A time as nanoseconds since the epoch.
fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("{s}: expected an RFC 3339 time, Unix seconds or a duration such as 10m");
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt().ok_or_else(bad);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let ago = parse_duration(s).ok_or_else(bad)?;
    let now = chrono::Utc::now().timestamp_nanos_opt().ok_or_else(bad)?;
    Ok(now.saturating_sub(ago))
}

/// Go's duration form as `docker events` takes it: 1h30m, 10s, 250ms; nanoseconds.
fn parse_duration(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    (!s.is_empty()).then_some(total as i64)
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let values =
        |key: &str| -> Vec<String> { args.filter.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect() };
    let actions = values("event");
    let mut conn =
        client.send(Request::Events { since: args.since, until: args.until, containers: values("container") })?;
    let mut out = std::io::stdout().lock();
    loop {
        match conn.next()? {
            Response::Event { event } => {
                if !actions.is_empty() && !actions.contains(&event.action) {
                    continue;
                }
                let line =
                    if args.json { serde_json::to_string(&event).map_err(CliError::from)? } else { event.line() };
                // A closed stdout (`engine events | head`) ends the command quietly.
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(0);
                }
            }
            Response::Done => return Ok(0),
            other => return Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_dockers_forms() {
        assert_eq!(parse_time("2026-12-01T00:00:00Z"), Ok(1_796_083_200_000_000_000));
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5400 * 1_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_filter("image=x").is_err());
        assert_eq!(parse_filter("name=web"), Ok(("container".into(), "web".into())));
    }
}

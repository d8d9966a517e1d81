//! `engine ps [-a] [--json]`: NAME STATE PID STARTED EXIT.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};
use crate::supervisor::record::ContainerRecord;

#[derive(clap::Args)]
pub struct Args {
    /// Show finished containers too
    #[arg(short, long)]
    all: bool,
    /// Print the records as JSON
    #[arg(long)]
    json: bool,
    /// Add memory (current, peak), CPU time and pids from each container's cgroup
    #[arg(long)]
    stats: bool,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let mut conn = client.send(Request::Ps { all: args.all, stats: args.stats })?;
    let mut containers = Vec::new();
    loop {
        match conn.next()? {
            Response::ListPage { containers: page } => containers.extend(page),
            Response::List { containers: page } => {
                containers.extend(page);
                break;
            }
            other => return Err(unexpected(other)),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
    } else {
        print!("{}", table(&containers, args.stats));
    }
    Ok(0)
}

fn table(containers: &[ContainerRecord], stats: bool) -> String {
    let dash = || "-".to_string();
    let mib = |b: u64| format!("{:.1}MiB", b as f64 / (1 << 20) as f64);
    let mut header = vec!["NAME", "STATE", "PID", "STARTED", "EXIT"];
    if stats {
        header.extend(["MEM", "PEAK", "CPU", "PIDS"]);
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for c in containers {
        let mut row = vec![
            c.name().to_string(),
            c.state_text(),
            c.pid.map_or_else(dash, |p| p.to_string()),
            c.started_at.as_deref().map_or_else(dash, short_time),
            c.exit_code.map_or_else(dash, |e| e.to_string()),
        ];
        if stats {
            let s = c.stats.as_ref();
            row.push(s.map_or_else(dash, |s| mib(s.memory_current)));
            row.push(c.peak_rss_bytes.or(s.and_then(|s| s.memory_peak)).map_or_else(dash, mib));
            row.push(s.map_or_else(dash, |s| format!("{:.2}s", s.cpu_usage_ns as f64 / 1e9)));
            row.push(s.map_or_else(dash, |s| s.pids_current.to_string()));
        }
        rows.push(row);
    }
    super::table::aligned(&rows, "  ")
}

/// `2026-11-30T17:45:23.123456789Z` → `2026-11-30 17:45:23` in local time.
fn short_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

//! `engine stats [--no-stream] [NAME...]`: CPU %, memory, network and block I/O and pids per
//! container, like `docker stats`: refreshed every second (in place on a terminal) until Ctrl-C,
//! or printed once with `--no-stream`. Without names it shows the running containers.
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{ContainerStats, Request, Response};

/// Between two readings: the CPU % is the CPU time used over this wall time.
const INTERVAL: Duration = Duration::from_secs(1);
/// `--no-stream` reads twice this far apart, so its CPU % is a rate too.
const ONE_SHOT_INTERVAL: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct Args {
    /// Print one reading and exit
    #[arg(long)]
    no_stream: bool,
    /// Containers to show (default: every running one)
    names: Vec<String>,
}

fn read(client: &Client, names: &[String]) -> Result<Vec<ContainerStats>, super::CliError> {
    match client.call(Request::Stats { names: names.to_vec() })? {
        Response::Stats { stats } => Ok(stats),
        other => Err(unexpected(other)),
    }
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let mut previous: HashMap<String, ContainerStats> = HashMap::new();
    if args.no_stream {
        previous = read(client, &args.names)?.into_iter().map(|s| (s.name.clone(), s)).collect();
        std::thread::sleep(ONE_SHOT_INTERVAL);
    }
    let terminal = std::io::stdout().is_terminal();
    loop {
        let now = read(client, &args.names)?;
        let mut text = String::new();
        if terminal && !args.no_stream {
            // Home and clear: the table is redrawn in place.
            text.push_str("\x1b[H\x1b[2J");
        }
        text.push_str(&table(&now, &previous));
        let mut out = std::io::stdout().lock();
        // A closed stdout (`engine stats | head`) ends the command quietly.
        if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() || args.no_stream {
            return Ok(0);
        }
        drop(out);
        previous = now.into_iter().map(|s| (s.name.clone(), s)).collect();
        std::thread::sleep(INTERVAL);
    }
}

fn table(stats: &[ContainerStats], previous: &HashMap<String, ContainerStats>) -> String {
    let mut rows =
        vec![["NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"].map(String::from)];
    for s in stats {
        if !s.state.starts_with("running") {
            let dash = || "--".to_string();
            rows.push([s.name.clone(), dash(), dash(), dash(), dash(), dash(), dash()]);
            continue;
        }
        let cpu = previous.get(&s.name).map_or(0.0, |p| cpu_percent(p, s));
        let mem_pct =
            if s.memory_limit_bytes > 0 { s.memory_bytes as f64 / s.memory_limit_bytes as f64 * 100.0 } else { 0.0 };
        rows.push([
            s.name.clone(),
            format!("{cpu:.2}%"),
            format!("{} / {}", binary(s.memory_bytes), binary(s.memory_limit_bytes)),
            format!("{mem_pct:.2}%"),
            format!("{} / {}", decimal(s.net_rx_bytes), decimal(s.net_tx_bytes)),
            format!("{} / {}", decimal(s.block_read_bytes), decimal(s.block_write_bytes)),
            s.pids.to_string(),
        ]);
    }
    super::table::aligned(&rows, "   ")
}

/// CPU time used between two readings over the wall time between them: 100 % is one CPU.
fn cpu_percent(before: &ContainerStats, after: &ContainerStats) -> f64 {
    let wall = after.read_at_nano.saturating_sub(before.read_at_nano);
    if wall <= 0 || after.cpu_ns < before.cpu_ns {
        return 0.0;
    }
    (after.cpu_ns - before.cpu_ns) as f64 / wall as f64 * 100.0
}

/// `docker stats`' memory units: 1.5MiB, 7.698GiB (four significant digits).
fn binary(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"], 4)
}

/// `docker stats`' I/O units: 1.23kB, 35MB (three significant digits).
fn decimal(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB"], 3)
}

fn scaled(bytes: u64, step: f64, units: &[&str], significant: i32) -> String {
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= step && i + 1 < units.len() {
        v /= step;
        i += 1;
    }
    let whole_digits = if v < 1.0 { 1 } else { v.log10().floor() as i32 + 1 };
    let decimals = (significant - whole_digits).max(0) as usize;
    let text = format!("{v:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_cpu_percent_read_as_dockers() {
        assert_eq!(binary(1536 * 1024), "1.5MiB");
        assert_eq!(binary(512), "512B");
        assert_eq!(decimal(1234), "1.23kB");
        assert_eq!(decimal(35_000_000), "35MB");
        assert_eq!(decimal(0), "0B");
        let a = ContainerStats { cpu_ns: 0, read_at_nano: 0, ..Default::default() };
        let b = ContainerStats { cpu_ns: 500_000_000, read_at_nano: 1_000_000_000, ..Default::default() };
        assert!((cpu_percent(&a, &b) - 50.0).abs() < 1e-9);
    }
}

//! `engine ps [-a] [--json]`: NAME STATE PID STARTED EXIT.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::container::state::ContainerRecord;
use crate::protocol::{Request, Response};

#[derive(clap::Args)]
pub struct Args {
    /// Show finished containers too
    #[arg(short, long)]
    all: bool,
    /// Print the records as JSON
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let containers = match client.call(Request::Ps { all: args.all })? {
        Response::List { containers } => containers,
        other => return Err(unexpected(other)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
    } else {
        print!("{}", table(&containers));
    }
    Ok(0)
}

fn table(containers: &[ContainerRecord]) -> String {
    let dash = || "-".to_string();
    let mut rows = vec![["NAME", "STATE", "PID", "STARTED", "EXIT"].map(String::from)];
    for c in containers {
        rows.push([
            c.name().to_string(),
            c.state.to_string(),
            c.pid.map_or_else(dash, |p| p.to_string()),
            c.started_at.as_deref().map_or_else(dash, short_time),
            c.exit_code.map_or_else(dash, |e| e.to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `2026-11-30T17:45:23.123456789Z` → `2026-11-30 17:45:23` in local time.
fn short_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

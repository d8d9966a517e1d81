//! `engine top NAME`: the container's processes, as `docker top` shows them (host pids), read
//! from its cgroup's `cgroup.procs` and each process's /proc files; no `ps` is run.
use super::client::unexpected;
use super::{CliResult, Client};
use crate::protocol::{Request, Response};
use crate::supervisor::record::State;

#[derive(clap::Args)]
pub struct Args {
    name: String,
}

pub fn execute(args: Args, client: &Client) -> CliResult {
    let record = match client.call(Request::Inspect { name: args.name.clone() })? {
        Response::Record { container } => container,
        other => return Err(unexpected(other)),
    };
    if record.state != State::Running {
        return Err(format!("container {} is not running ({})", args.name, record.state_text()).into());
    }
    // Every hierarchy the container has lists the same processes: the first readable one.
    let procs =
        record.cgroup.iter().find_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok()).ok_or_else(
            || format!("reading the processes of {}: no readable cgroup.procs in its cgroups", args.name),
        )?;
    let mut pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pids.sort_unstable();
    println!("{:<8} {:>8} {:>8} {:>10} CMD", "UID", "PID", "PPID", "TIME");
    for pid in pids {
        // A process may end between the read of the list and of its files: skipped.
        if let Some(line) = row(pid) {
            println!("{line}");
        }
    }
    Ok(0)
}

/// UID, PID, PPID, CPU time (user + system) and the command line of `pid`.
fn row(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    let ppid = fields.get(1)?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf with a constant.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|&h| h > 0).unwrap_or(100);
    let secs = ticks / hz;
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim_end().to_string();
    // Kernel threads and zombies have no command line: their name in brackets, as ps shows it.
    let cmd = if cmd.is_empty() { format!("[{comm}]") } else { cmd };
    Some(format!("{uid:<8} {pid:>8} {ppid:>8} {time:>10} {cmd}"))
}

//! `ps [--format table|json] ID`: the processes in the container's cgroup. JSON is the pid list
//! the containerd shim reads; the table is read from /proc here (runc runs ps(1), and a runtime of
//! ours runs no programs, so arguments for ps(1) are refused).
use super::error::{OciError, Result};
use super::status::{print_json, write_stdout};
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,
    id: String,
    /// ps(1) options (refused).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let c = ctx.root.open(&args.id)?;
    let pids = super::cgroups::procs(c.record()?)?;
    match args.format {
        Format::Json => {
            if !args.ps_args.is_empty() {
                return Err(OciError::Unsupported("ps: options for ps(1) cannot be used with --format json".into()));
            }
            print_json(&pids)?;
        }
        Format::Table => {
            if !args.ps_args.is_empty() {
                return Err(OciError::Unsupported(format!(
                    "ps: options for ps(1) ({}) are not supported: engine-oci runs no programs; the table is UID PID PPID STAT CMD",
                    args.ps_args.join(" ")
                )));
            }
            let mut out = format!("{:<8} {:>8} {:>8} {:<4} CMD\n", "UID", "PID", "PPID", "STAT");
            for pid in pids {
                if let Some(row) = row(pid) {
                    out.push_str(&row);
                }
            }
            write_stdout(out.as_bytes())?;
        }
    }
    Ok(0)
}

/// One line from /proc/PID/{status,cmdline}; None if the process went meanwhile.
fn row(pid: i32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.split_whitespace().next().unwrap_or("").to_string())
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut cmd: String = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if cmd.is_empty() {
        cmd = format!("[{}]", field("Name:").unwrap_or_default());
    }
    Some(format!(
        "{:<8} {:>8} {:>8} {:<4} {cmd}\n",
        field("Uid:").unwrap_or_default(),
        pid,
        field("PPid:").unwrap_or_default(),
        field("State:").unwrap_or_default()
    ))
}

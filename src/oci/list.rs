//! `list [--format table|json] [-q]`: every container under the root, as runc lists them.
use super::error::Result;
use super::state::{Root, SpecState};
use super::status::{print_json, write_stdout};
use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,
    /// Only the ids.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Each container's state; one being created or deleted meanwhile is skipped, not an error.
pub fn states(root: &Root) -> Result<Vec<SpecState>> {
    let mut out = Vec::new();
    for id in root.ids()? {
        if let Ok(c) = root.open(&id) {
            if let Ok(r) = c.record() {
                out.push(r.spec_state(c.status()));
            }
        }
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let states = states(&ctx.root)?;
    if args.quiet {
        let ids: String = states.iter().map(|s| format!("{}\n", s.id)).collect();
        write_stdout(ids.as_bytes())?;
        return Ok(0);
    }
    match args.format {
        Format::Json => print_json(&states)?,
        Format::Table => write_stdout(table(&states).as_bytes())?,
    }
    Ok(0)
}

fn table(states: &[SpecState]) -> String {
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.pid.to_string(),
                s.status.as_str().to_string(),
                s.bundle.display().to_string(),
                s.created.clone().unwrap_or_default(),
                s.owner.clone().filter(|o| !o.is_empty()).unwrap_or_else(|| "root".into()),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|r| {
            let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("{}\n", cells.join("   ").trim_end())
        })
        .collect()
}

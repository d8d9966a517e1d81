//! Grouped bar chart (SVG) from a TSV table, for the bench and experiment reports.
//!
//! usage: engine-bench-plot OUT.svg TITLE Y_LABEL < table.tsv
//!
//! The first TSV line is the header: `label<TAB>series...`. A column named `NAME_lo` or
//! `NAME_hi` is not a series: it gives the low/high end of a whisker on series NAME (the bench
//! uses p10/p90 there). Every following line is one group of bars: its label, then numbers.
//!
//! `engine-bench-plot --lines OUT.svg TITLE X_LABEL Y_LABEL < series.tsv` draws curves instead
//! (src/lines.rs).
mod lines;
use plotters::prelude::*;
use std::io::Read;
use std::process::ExitCode;

struct Series {
    name: String,
    col: usize,
    lo: Option<usize>,
    hi: Option<usize>,
}

struct Table {
    series: Vec<Series>,
    rows: Vec<(String, Vec<f64>)>,
}

fn parse(text: &str) -> Result<Table, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or("empty table")?.split('\t').collect();
    let mut series: Vec<Series> = Vec::new();
    for (i, name) in header.iter().enumerate().skip(1) {
        if let Some(base) = name.strip_suffix("_lo").or_else(|| name.strip_suffix("_hi")) {
            let s = series
                .iter_mut()
                .find(|s| s.name == base)
                .ok_or_else(|| format!("whisker column {name} before its series {base}"))?;
            if name.ends_with("_lo") {
                s.lo = Some(i - 1)
            } else {
                s.hi = Some(i - 1)
            }
        } else {
            series.push(Series { name: name.to_string(), col: i - 1, lo: None, hi: None });
        }
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let mut cells = line.split('\t');
        let label = cells.next().unwrap_or_default().to_string();
        let values = cells
            .map(|c| c.trim().parse::<f64>().map_err(|e| format!("row {}: {c:?}: {e}", n + 2)))
            .collect::<Result<Vec<_>, _>>()?;
        if values.len() != header.len() - 1 {
            return Err(format!("row {} has {} values, header has {}", n + 2, values.len(), header.len() - 1));
        }
        rows.push((label, values));
    }
    if series.is_empty() || rows.is_empty() {
        return Err("table needs at least one series and one row".into());
    }
    Ok(Table { series, rows })
}

fn draw(table: &Table, out: &str, title: &str, y_label: &str) -> Result<(), Box<dyn std::error::Error>> {
    let y_max = table
        .rows
        .iter()
        .flat_map(|(_, v)| table.series.iter().map(move |s| v[s.hi.unwrap_or(s.col)].max(v[s.col])))
        .fold(0.0_f64, f64::max)
        * 1.3;
    let groups = table.rows.len();
    let root = SVGBackend::new(out, (160 + 110 * groups as u32, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..groups as f64, 0.0..y_max.max(1e-9))?;
    let labels: Vec<&str> = table.rows.iter().map(|(l, _)| l.as_str()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        // Category labels sit at the group centres (i + 0.5); other tick positions stay blank.
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).unwrap_or(&"").to_string()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()?;

    let n = table.series.len() as f64;
    let width = 0.8 / n;
    for (si, s) in table.series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        let bars = table.rows.iter().enumerate().map(|(gi, (_, v))| {
            let x0 = gi as f64 + 0.1 + si as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v[s.col])], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        if let (Some(lo), Some(hi)) = (s.lo, s.hi) {
            let whiskers = table.rows.iter().enumerate().map(|(gi, (_, v))| {
                let xc = gi as f64 + 0.1 + (si as f64 + 0.45) * width;
                PathElement::new(vec![(xc, v[lo]), (xc, v[hi])], BLACK.stroke_width(2))
            });
            chart.draw_series(whiskers)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 6 && args[1] == "--lines" {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("engine-bench-plot: reading stdin: {e}");
            return ExitCode::FAILURE;
        }
        return match lines::run(&text, &args[2], &args[3], &args[4], &args[5]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("engine-bench-plot: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.len() != 4 {
        eprintln!("usage: engine-bench-plot OUT.svg TITLE Y_LABEL < table.tsv\n       engine-bench-plot --lines OUT.svg TITLE X_LABEL Y_LABEL < series.tsv");
        return ExitCode::from(2);
    }
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("engine-bench-plot: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let result = parse(&text).map_err(|e| e.into()).and_then(|table| draw(&table, &args[1], &args[2], &args[3]));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine-bench-plot: {e}");
            ExitCode::FAILURE
        }
    }
}

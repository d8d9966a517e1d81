//! Line chart (SVG) for time series, e.g. RSS over time: `engine-bench-plot --lines OUT.svg TITLE
//! X_LABEL Y_LABEL < table.tsv`. TSV lines (no header):
//!   `point<TAB>SERIES<TAB>X<TAB>Y`            one sample of a curve, in order
//!   `mark<TAB>SERIES<TAB>X<TAB>Y<TAB>KIND`    a moment on that curve; KIND "signal" (triangle),
//!                                            "kill" (cross) or "exit" (circle)
//!   `hline<TAB>LABEL<TAB>Y`                   a dashed horizontal line (a limit)
use plotters::prelude::*;

struct Mark {
    series: usize,
    x: f64,
    y: f64,
    kind: String,
}

pub fn run(text: &str, out: &str, title: &str, x_label: &str, y_label: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut marks = Vec::new();
    let mut hlines = Vec::new();
    let index = |series: &mut Vec<(String, Vec<(f64, f64)>)>, name: &str| match series.iter().position(|s| s.0 == name)
    {
        Some(i) => i,
        None => {
            series.push((name.to_string(), Vec::new()));
            series.len() - 1
        }
    };
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let c: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| -> Result<f64, String> {
            c.get(i)
                .ok_or(format!("line {}: too few cells", n + 1))?
                .trim()
                .parse::<f64>()
                .map_err(|e| format!("line {}: {e}", n + 1))
        };
        match (c[0], c.len()) {
            ("point", 4) => {
                let i = index(&mut series, c[1]);
                series[i].1.push((num(2)?, num(3)?));
            }
            ("mark", 5) => {
                let i = index(&mut series, c[1]);
                marks.push(Mark { series: i, x: num(2)?, y: num(3)?, kind: c[4].to_string() });
            }
            ("hline", 3) => hlines.push((c[1].to_string(), num(2)?)),
            _ => return Err(format!("line {}: not point/mark/hline: {line:?}", n + 1).into()),
        }
    }
    if series.is_empty() {
        return Err("no points".into());
    }
    let pts = series.iter().flat_map(|s| s.1.iter());
    let x_max = pts.clone().map(|p| p.0).fold(0.0_f64, f64::max).max(1e-9) * 1.02;
    let y_max = pts.map(|p| p.1).chain(hlines.iter().map(|h| h.1)).fold(0.0_f64, f64::max).max(1e-9) * 1.15;
    let root = SVGBackend::new(out, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
    for (label, y) in &hlines {
        let dashes = (0..200).map(|i| i as f64 * x_max / 200.0).collect::<Vec<_>>();
        chart.draw_series(dashes.chunks(2).map(|d| PathElement::new(vec![(d[0], *y), (d[1], *y)], BLACK.mix(0.5))))?;
        chart.draw_series(std::iter::once(Text::new(label.clone(), (x_max * 0.005, *y), ("sans-serif", 13))))?;
    }
    for (si, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    for m in &marks {
        let color = Palette99::pick(m.series).to_rgba();
        let at = (m.x, m.y);
        match m.kind.as_str() {
            "signal" => chart.draw_series(std::iter::once(TriangleMarker::new(at, 9, color.filled())))?,
            "kill" => chart.draw_series(std::iter::once(Cross::new(at, 8, color.stroke_width(3))))?,
            _ => chart.draw_series(std::iter::once(Circle::new(at, 6, color.stroke_width(2))))?,
        };
    }
    // The markers' meaning, once, in the legend.
    chart
        .draw_series(std::iter::once(TriangleMarker::new((-1.0, -1.0), 0, BLACK.filled())))?
        .label("▲ signal sent   ✕ hard kill   ○ exit")
        .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, BLACK.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

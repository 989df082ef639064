//! Results as files: a scenario's markdown tables and notes go to `<out>/results.md` (and to
//! stdout), its charts to `<out>/*.svg` (plotters' SVG backend), which docs/benchmarks.md embeds.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A markdown table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub(crate) headers: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.headers.join(" | "));
        for (i, _) in self.headers.iter().enumerate() {
            // The first column names things; the others are numbers, right-aligned.
            s.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        s.push('\n');
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
}

/// Where one scenario's results go.
pub(crate) struct Output {
    dir: Option<PathBuf>,
    text: String,
}

impl Output {
    /// Results written into `dir` (created) when given, else only printed.
    pub(crate) fn new(dir: Option<&Path>) -> Result<Output, String> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(Output {
            dir: dir.map(Path::to_owned),
            text: String::new(),
        })
    }

    /// A paragraph of text (printed, and kept for results.md).
    pub(crate) fn note(&mut self, text: &str) {
        println!("{text}\n");
        let _ = writeln!(self.text, "{text}\n");
    }

    pub(crate) fn table(&mut self, table: &Table) {
        let md = table.markdown();
        println!("{md}");
        let _ = writeln!(self.text, "{md}");
    }

    /// A grouped bar chart: one group per category, one bar per series in each.
    pub(crate) fn bar_chart(&mut self, name: &str, chart: &BarChart) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let file = dir.join(format!("{name}.svg"));
        draw_bars(&file, chart).map_err(|e| format!("{}: {e}", file.display()))?;
        let _ = writeln!(self.text, "![{}]({name}.svg)\n", chart.title);
        Ok(())
    }

    /// A line chart of `(x, y)` series.
    pub(crate) fn line_chart(&mut self, name: &str, chart: &LineChart) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let file = dir.join(format!("{name}.svg"));
        draw_lines(&file, chart).map_err(|e| format!("{}: {e}", file.display()))?;
        let _ = writeln!(self.text, "![{}]({name}.svg)\n", chart.title);
        Ok(())
    }

    /// Writes `results.md` (when there is a directory).
    pub(crate) fn finish(self, heading: &str) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let file = dir.join("results.md");
        std::fs::write(&file, format!("# {heading}\n\n{}", self.text))
            .map_err(|e| format!("{}: {e}", file.display()))
    }
}

pub(crate) struct BarChart {
    pub(crate) title: String,
    pub(crate) y_label: String,
    pub(crate) categories: Vec<String>,
    /// (series name, one value per category).
    pub(crate) series: Vec<(String, Vec<f64>)>,
}

pub(crate) struct LineChart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) series: Vec<(String, Vec<(f64, f64)>)>,
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

const SIZE: (u32, u32) = (760, 420);

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 5] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(214, 39, 40),
    ];
    COLORS[i % COLORS.len()]
}

/// A value short enough for a bar's label: 412k, 1.3M, 7.5, 0.42.
pub(crate) fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn draw_bars(file: &Path, c: &BarChart) -> DrawResult {
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let n = c.categories.len().max(1);
    let top = c
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.45;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
    let categories = c.categories.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&move |x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() {
                categories[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(c.y_label.as_str())
        .y_label_formatter(&|y| short_number(*y))
        .draw()?;
    let per = 0.8 / c.series.len().max(1) as f64;
    for (j, (name, values)) in c.series.iter().enumerate() {
        let fill = color(j);
        let bars = values.iter().enumerate().map(move |(i, &v)| {
            let x0 = i as f64 - 0.4 + j as f64 * per;
            Rectangle::new([(x0, 0.0), (x0 + per * 0.92, v)], fill.filled())
        });
        chart
            .draw_series(bars)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
        let labels = values.iter().enumerate().map(move |(i, &v)| {
            let x = i as f64 - 0.4 + (j as f64 + 0.46) * per;
            Text::new(
                short_number(v),
                (x, v),
                ("sans-serif", 12)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        });
        chart.draw_series(labels)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn draw_lines(file: &Path, c: &LineChart) -> DrawResult {
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let points = c.series.iter().flat_map(|(_, p)| p.iter());
    let (x_max, y_max) = points.fold((1e-9f64, 1e-9f64), |(a, b), &(x, y)| (a.max(x), b.max(y)));
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max * 1.05, 0f64..y_max * 1.08)?;
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .draw()?;
    for (j, (name, points)) in c.series.iter().enumerate() {
        let stroke = color(j);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                stroke.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], stroke.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_markdown_with_numbers_right_aligned() {
        let mut t = Table::new(&["server", "rate"]);
        t.row(vec!["tidings".into(), "10".into()]);
        assert_eq!(
            t.markdown(),
            "| server | rate |\n|---|---:|\n| tidings | 10 |\n"
        );
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(412_345.0), "412k");
        assert_eq!(short_number(1_340_000.0), "1.3M");
        assert_eq!(short_number(7.46), "7.46");
        assert_eq!(short_number(250.0), "250");
    }

    #[test]
    fn charts_and_results_are_written_as_files() {
        let dir = std::env::temp_dir().join(format!("tidings-bench-report-{}", std::process::id()));
        let mut out = Output::new(Some(&dir)).unwrap();
        out.note("a note");
        out.bar_chart(
            "bars",
            &BarChart {
                title: "deliveries/s".into(),
                y_label: "per second".into(),
                categories: vec!["1k".into(), "5k".into()],
                series: vec![
                    ("tidings".into(), vec![500_000.0, 450_000.0]),
                    ("node ws".into(), vec![90_000.0, 80_000.0]),
                ],
            },
        )
        .unwrap();
        out.line_chart(
            "lines",
            &LineChart {
                title: "back".into(),
                x_label: "ms".into(),
                y_label: "%".into(),
                series: vec![(
                    "tidings".into(),
                    vec![(0.0, 0.0), (100.0, 50.0), (300.0, 100.0)],
                )],
            },
        )
        .unwrap();
        out.finish("Test").unwrap();
        let svg = std::fs::read_to_string(dir.join("bars.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("node ws") && svg.contains("450k"));
        let svg = std::fs::read_to_string(dir.join("lines.svg")).unwrap();
        assert!(svg.contains("<polyline"), "a line series is drawn");
        let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(md.contains("a note") && md.contains("![deliveries/s](bars.svg)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

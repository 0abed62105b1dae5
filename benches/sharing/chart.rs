//! SVG line charts through plotters' SVG backend (text goes into the file as `<text>`, so no
//! font library is needed to draw them): the speedup charts of the seed paper, with the ideal
//! speedup beside the measured one.

use std::path::Path;

use plotters::prelude::*;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// Measured: a solid line with a dot at every point.
    Solid,
    /// Ideal or a peer: a dashed line with a dot at every point.
    Dashed,
    /// Markers only, no line.
    Markers,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// Index into the palette (series of one prefix length share a colour).
    pub color: usize,
    pub stroke: Stroke,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub series: Vec<Series>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Draws `chart` into the SVG file `path` (x on a log scale: ratios and group sizes double).
pub fn draw(chart: &Chart, path: &Path) -> Result<(), String> {
    let pts = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    if pts().next().is_none() {
        return Err(format!("{}: no points to draw", chart.title));
    }
    let (x_lo, x_hi) = pts().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(x), b.max(x)));
    let (y_lo, y_hi) = pts().fold((1.0f64, 1.0f64), |(a, b), (_, y)| (a.min(y), b.max(y)));
    let x_range = (x_lo / 1.25)..(x_hi * 1.25);
    let pad = 0.08 * (y_hi - y_lo).max(0.1);
    let y_range = (y_lo - pad).max(0.0)..(y_hi + pad);

    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.log_scale().with_key_points(ticks(chart)), y_range)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(&|x| trim(*x))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(|x| e(&x))?;
    for s in &chart.series {
        let col = color(s.color);
        let style = ShapeStyle::from(&col).stroke_width(2);
        let legend_style = style;
        let anno = match s.stroke {
            Stroke::Solid => c
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(|x| e(&x))?,
            Stroke::Dashed => c
                .draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 5, style))
                .map_err(|x| e(&x))?,
            Stroke::Markers => c
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 7, col.filled())),
                )
                .map_err(|x| e(&x))?,
        };
        let dashed = s.stroke == Stroke::Dashed;
        anno.label(s.name.as_str()).legend(move |(x, y)| {
            if dashed {
                PathElement::new(vec![(x, y), (x + 8, y)], legend_style)
            } else {
                PathElement::new(vec![(x, y), (x + 20, y)], legend_style)
            }
        });
        if s.stroke != Stroke::Markers {
            c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, col.filled())))
                .map_err(|x| e(&x))?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// The x of every point, ascending and distinct: the ratios (or group sizes) measured, so the
/// axis is labelled exactly there.
fn ticks(chart: &Chart) -> Vec<f64> {
    let mut xs: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// 0.5 -> "0.5", 4.0 -> "4".
pub fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

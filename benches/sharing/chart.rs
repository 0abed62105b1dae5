//! SVG charts through plotters' SVG backend (text goes into the file as `<text>`, so no font
//! library is needed to draw them): speedups with their 95% intervals as error bars, the ideal
//! speedup beside them.
//!
//! Layout rules, because a chart is read, not only written: the title is wrapped to fit the
//! width; the legend has its own panel right of the plot, so it never hides a point; series that
//! share x values are nudged apart horizontally (and differ in marker shape), so overlapping
//! lines and bars stay distinguishable; identical series are merged by the caller; a flagged
//! point (noisy or busy) is a hollow marker, and its bar is clipped to the plot; every legend
//! swatch is drawn like its series (line, dashes, marker).

use std::path::Path;

use plotters::coord::Shift;
use plotters::element::ComposedElement;
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// Measured: a solid line, a marker and an error bar at every point.
    Solid,
    /// Ideal or a reference: a dashed line, no markers.
    Dashed,
    /// Markers and error bars only, no line.
    Markers,
}

/// One point: y with its interval, and whether it is flagged (not a result).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pt {
    pub x: f64,
    pub y: f64,
    /// The interval, when there is one.
    pub ci: Option<(f64, f64)>,
    pub flagged: bool,
}

impl Pt {
    /// A point without interval (ideal lines).
    pub fn exact(x: f64, y: f64) -> Self {
        Pt {
            x,
            y,
            ci: None,
            flagged: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// Index into the palette (series of one prefix length share a colour).
    pub color: usize,
    /// Index of the marker shape.
    pub marker: usize,
    pub stroke: Stroke,
    pub points: Vec<Pt>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    /// A second, smaller title line (what was measured, the statistic).
    pub subtitle: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Tick labels at these x, when not empty (categorical charts: put the categories at
    /// 1, 2, 4, ... so that the log axis spaces them evenly).
    pub x_labels: Vec<(f64, String)>,
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

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 620;
/// Width of the legend panel.
const LEGEND: u32 = 300;

/// Splits `text` into lines of at most `max` characters, at spaces.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > max {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur += word;
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Characters of sans-serif text at `size` px that fit `px` (0.6 em per character: generous
/// for proportional fonts, so wrapped lines fit).
fn chars_in(px: u32, size: u32) -> usize {
    (px as f64 / (0.6 * size as f64)) as usize
}

/// Marker shape of packed-row points: kept for them, so no series of lines shares it.
pub const PACKED_MARKER: usize = 4;

/// The outline of marker shape `shape` (pixel offsets): circle (a 12-gon), square, triangle,
/// diamond; [`PACKED_MARKER`] is a downward triangle.
fn outline(shape: usize) -> Vec<(i32, i32)> {
    if shape == PACKED_MARKER {
        return vec![(0, 6), (6, -5), (-6, -5)];
    }
    match shape % 4 {
        0 => (0..12)
            .map(|i| {
                let a = std::f64::consts::TAU * i as f64 / 12.0;
                (
                    (5.5 * a.cos()).round() as i32,
                    (5.5 * a.sin()).round() as i32,
                )
            })
            .collect(),
        1 => vec![(-5, -5), (5, -5), (5, 5), (-5, 5)],
        2 => vec![(0, -6), (6, 5), (-6, 5)],
        _ => vec![(0, -7), (7, 0), (0, 7), (-7, 0)],
    }
}

/// A marker: a filled polygon and its outline, in pixel offsets around a point.
type Marker<C, DB> = ComposedElement<C, DB, Polygon<(i32, i32)>, PathElement<(i32, i32)>>;

/// A marker at `at`: filled with its colour, or hollow (white inside) when flagged.
fn marker<C: Clone, DB: DrawingBackend>(
    at: C,
    shape: usize,
    col: RGBColor,
    filled: bool,
) -> Marker<C, DB> {
    let pts = outline(shape);
    let mut closed = pts.clone();
    closed.push(pts[0]);
    let fill = if filled { col.filled() } else { WHITE.filled() };
    EmptyElement::at(at) + Polygon::new(pts, fill) + PathElement::new(closed, col.stroke_width(2))
}

/// The x of every point, ascending and distinct.
fn xs(chart: &Chart) -> Vec<f64> {
    let mut xs: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.x))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// Series `i` of `m` with markers is nudged by a factor (x is on a log axis), so that bars at
/// the same x stand side by side.
fn nudge(i: usize, m: usize, x: f64) -> f64 {
    let k = i as f64 - (m as f64 - 1.0) / 2.0;
    x * (1.0 + 0.035 * k)
}

/// The y range: every median and ideal value, every unflagged interval, and 1 (no speedup).
fn y_range(chart: &Chart) -> (f64, f64) {
    let mut lo = 1.0f64;
    let mut hi = 1.0f64;
    for p in chart.series.iter().flat_map(|s| &s.points) {
        lo = lo.min(p.y);
        hi = hi.max(p.y);
        if let (Some((a, b)), false) = (p.ci, p.flagged) {
            if a.is_finite() && b.is_finite() {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
    }
    let pad = 0.08 * (hi - lo).max(0.1);
    ((lo - pad).max(0.0), hi + pad)
}

/// Draws `chart` into the SVG file `path` (x on a log scale: ratios and group sizes double).
pub fn draw(chart: &Chart, path: &Path) -> Result<(), String> {
    let xs = xs(chart);
    if xs.is_empty() {
        return Err(format!("{}: no points to draw", chart.title));
    }
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut area = root.clone();
    for line in wrap(&chart.title, chars_in(WIDTH - 40, 20)) {
        area = area.titled(&line, ("sans-serif", 20)).map_err(|x| e(&x))?;
    }
    for line in wrap(&chart.subtitle, chars_in(WIDTH - 40, 14)) {
        area = area.titled(&line, ("sans-serif", 14)).map_err(|x| e(&x))?;
    }
    let (plot, legend) = area.split_horizontally(WIDTH - LEGEND);

    let (x_lo, x_hi) = (xs[0], xs[xs.len() - 1]);
    let (y_lo, y_hi) = y_range(chart);
    let mut b = ChartBuilder::on(&plot);
    b.margin(12).x_label_area_size(48).y_label_area_size(64);
    let labels = chart.x_labels.clone();
    let label_of = move |x: &f64| {
        labels
            .iter()
            .find(|(v, _)| (v - x).abs() < 1e-9)
            .map_or_else(|| trim(*x), |(_, l)| l.clone())
    };
    let mut c = b
        .build_cartesian_2d(
            ((x_lo / 1.3)..(x_hi * 1.3))
                .log_scale()
                .with_key_points(xs.clone()),
            y_lo..y_hi,
        )
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(&label_of)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(|x| e(&x))?;
    plot_series(&mut c, chart, (y_lo, y_hi)).map_err(|x| e(&x))?;
    draw_legend(&legend, chart).map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

type Err<'b> = DrawingAreaErrorKind<<SVGBackend<'b> as DrawingBackend>::ErrorType>;

fn plot_series<'b, X>(
    c: &mut ChartContext<
        '_,
        SVGBackend<'b>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    chart: &Chart,
    (y_lo, y_hi): (f64, f64),
) -> Result<(), Err<'b>>
where
    X: Ranged<ValueType = f64>,
{
    let with_markers: Vec<usize> = (0..chart.series.len())
        .filter(|&i| chart.series[i].stroke != Stroke::Dashed)
        .collect();
    let m = with_markers.len();
    for (si, s) in chart.series.iter().enumerate() {
        let col = color(s.color);
        let style = ShapeStyle::from(&col).stroke_width(2);
        let slot = with_markers.iter().position(|&i| i == si);
        let at = |p: &Pt| match slot {
            Some(j) => nudge(j, m, p.x),
            None => p.x,
        };
        match s.stroke {
            Stroke::Solid => {
                c.draw_series(LineSeries::new(
                    s.points.iter().map(|p| (at(p), p.y)),
                    style,
                ))?;
            }
            Stroke::Dashed => {
                c.draw_series(DashedLineSeries::new(
                    s.points.iter().map(|p| (at(p), p.y)),
                    9,
                    6,
                    style,
                ))?;
            }
            Stroke::Markers => {}
        }
        if s.stroke == Stroke::Dashed {
            continue;
        }
        for p in &s.points {
            let x = at(p);
            if let Some((lo, hi)) = p.ci {
                let (lo, hi) = (lo.max(y_lo), hi.min(y_hi));
                if lo < hi {
                    let bar = ShapeStyle::from(&col).stroke_width(1);
                    c.draw_series(std::iter::once(PathElement::new(
                        vec![(x, lo), (x, hi)],
                        bar,
                    )))?;
                    for y in [lo, hi] {
                        c.draw_series(std::iter::once(
                            EmptyElement::at((x, y)) + PathElement::new(vec![(-4, 0), (4, 0)], bar),
                        ))?;
                    }
                }
            }
            if p.flagged {
                // White under the hollow marker, so the line does not run through it.
                c.draw_series(std::iter::once(
                    EmptyElement::at((x, p.y)) + Circle::new((0, 0), 6, WHITE.filled()),
                ))?;
            }
            c.draw_series(std::iter::once(marker((x, p.y), s.marker, col, !p.flagged)))?;
        }
    }
    Ok(())
}

/// The legend panel: one entry per series, drawn like the series, then what bars and hollow
/// markers mean.
fn draw_legend<'b>(
    area: &DrawingArea<SVGBackend<'b>, Shift>,
    chart: &Chart,
) -> Result<(), Err<'b>> {
    let font = ("sans-serif", 14).into_font();
    let mut y = 24i32;
    let x0 = 8i32;
    let text_x = x0 + 44;
    let max_chars = chars_in(LEGEND - 60, 14);
    let text = |s: &str, y: &mut i32| -> Result<(), Err<'b>> {
        for line in wrap(s, max_chars) {
            area.draw(&Text::new(line, (text_x, *y - 7), font.clone()))?;
            *y += 18;
        }
        Ok(())
    };
    for s in &chart.series {
        let col = color(s.color);
        let style = ShapeStyle::from(&col).stroke_width(2);
        match s.stroke {
            Stroke::Solid => {
                area.draw(&PathElement::new(vec![(x0, y), (x0 + 36, y)], style))?;
            }
            Stroke::Dashed => {
                for k in 0..3 {
                    let a = x0 + k * 13;
                    area.draw(&PathElement::new(vec![(a, y), (a + 8, y)], style))?;
                }
            }
            Stroke::Markers => {}
        }
        if s.stroke != Stroke::Dashed {
            area.draw(&marker((x0 + 18, y), s.marker, col, true))?;
        }
        text(&s.name, &mut y)?;
        y += 6;
    }
    // What bars and hollow markers mean, only where the chart has them.
    let pts = || chart.series.iter().flat_map(|s| &s.points);
    let grey = RGBColor(90, 90, 90);
    if pts().any(|p| p.ci.is_some()) {
        y += 10;
        let bar = ShapeStyle::from(&grey).stroke_width(1);
        area.draw(&PathElement::new(
            vec![(x0 + 18, y - 8), (x0 + 18, y + 8)],
            bar,
        ))?;
        for dy in [-8, 8] {
            area.draw(&PathElement::new(
                vec![(x0 + 14, y + dy), (x0 + 22, y + dy)],
                bar,
            ))?;
        }
        text("bar: 95% confidence interval of the median", &mut y)?;
    }
    if pts().any(|p| p.flagged) {
        y += 10;
        area.draw(&marker((x0 + 18, y), 0, grey, false))?;
        text("hollow: flagged noisy or busy - not a result", &mut y)?;
    }
    Ok(())
}

/// 0.5 -> "0.5", 4.0 -> "4".
pub fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

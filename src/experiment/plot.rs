//! The experiments' pictures, drawn with plotters into SVG: lines over a swept parameter,
//! and labelled points. Axes say their units, every series is in the legend, and the text
//! is left to the browser's sans-serif (no font files needed to draw).

use std::path::Path;

use plotters::coord::Shift;
pub use plotters::prelude::SeriesLabelPosition;
use plotters::prelude::*;

/// One series: its name in the legend and its points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// (x, y) points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Draw points only (no line between them), each labelled with its text.
    pub labels: Option<Vec<String>>,
}

/// A chart of `series` against `x` and `y`.
#[derive(Clone)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// The x axis, with its unit.
    pub x: String,
    /// The y axis, with its unit.
    pub y: String,
    /// A logarithmic x axis.
    pub log_x: bool,
    /// A logarithmic y axis.
    pub log_y: bool,
    /// What to draw.
    pub series: Vec<Series>,
    /// A horizontal line: its height and its name in the legend.
    pub reference: Option<(f64, String)>,
    /// Where the legend goes: a corner the points leave empty.
    pub legend: SeriesLabelPosition,
}

impl std::fmt::Debug for Chart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chart")
            .field("title", &self.title)
            .field("series", &self.series)
            .finish()
    }
}

const SIZE: (u32, u32) = (900, 520);

/// Colours that stay apart on white and for most colour-blind readers (Tableau's first four).
const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
];

/// An axis label: no needless decimals, thousands as k.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if a >= 100.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("drawing the plot: {e:?}")
}

/// Draw `chart` as an SVG at `path`.
pub fn draw(path: &Path, chart: &Chart) -> Result<(), String> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let all: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .chain(chart.reference.iter().map(|(y, _)| (f64::NAN, *y)))
        .collect();
    let xs: Vec<f64> = all.iter().map(|p| p.0).filter(|x| x.is_finite()).collect();
    let ys: Vec<f64> = all.iter().map(|p| p.1).filter(|y| y.is_finite()).collect();
    let range = |v: &[f64], log: bool| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        if log {
            let lo = lo.max(1e-3);
            (lo / 1.5, hi.max(lo) * 1.5)
        } else {
            let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
            ((lo - pad).min(0.0), hi + pad)
        }
    };
    let (x0, mut x1) = range(&xs, chart.log_x);
    if chart.series.iter().any(|s| s.labels.is_some()) {
        // Room for the last point's label.
        x1 = if chart.log_x {
            x1 * 1.6
        } else {
            x1 + (x1 - x0) * 0.12
        };
    }
    let (y0, y1) = range(&ys, chart.log_y);
    match (chart.log_x, chart.log_y) {
        (false, false) => body(&root, chart, x0..x1, y0..y1),
        (true, false) => body(&root, chart, (x0..x1).log_scale(), y0..y1),
        (false, true) => body(&root, chart, x0..x1, (y0..y1).log_scale()),
        (true, true) => body(&root, chart, (x0..x1).log_scale(), (y0..y1).log_scale()),
    }?;
    root.present().map_err(err)
}

fn body<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart,
    x: X,
    y: Y,
) -> Result<(), String>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    c.configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .x_desc(&chart.x)
        .y_desc(&chart.y)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()].to_rgba();
        let style = ShapeStyle::from(color).stroke_width(2);
        let legend_style = style;
        if s.labels.is_none() {
            c.draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], legend_style));
        } else {
            c.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| Circle::new((x + 11, y), 5, color.filled()));
        }
        c.draw_series(s.points.iter().map(|p| Circle::new(*p, 5, color.filled())))
            .map_err(err)?;
        if let Some(labels) = &s.labels {
            c.draw_series(s.points.iter().zip(labels).map(|(p, text)| {
                EmptyElement::at(*p) + Text::new(text.clone(), (8, -16), ("sans-serif", 14))
            }))
            .map_err(err)?;
        }
    }
    if let Some((height, name)) = &chart.reference {
        let (x0, x1) = (c.x_range().start, c.x_range().end);
        let style = ShapeStyle::from(BLACK.mix(0.6)).stroke_width(1);
        c.draw_series(LineSeries::new([(x0, *height), (x1, *height)], style))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(chart.legend.clone())
        .draw()
        .map_err(err)?;
    Ok(())
}

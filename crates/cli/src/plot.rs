//! `--plot out.svg|out.png`: the recorded series drawn as lines against time.

use plotters::prelude::*;
use std::path::Path;

/// DejaVu Sans (Bitstream Vera licence, see assets/README.md), registered once so that
/// PNG and SVG output need no system fonts.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        );
    });
}

/// The series colours (matplotlib's first eight).
pub(crate) const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A figure that draws itself on any plotters backend (SVG or bitmap).
pub(crate) trait Figure {
    /// Draws into `area` (already white).
    fn draw<B: DrawingBackend>(
        &self,
        area: &DrawingArea<B, plotters::coord::Shift>,
    ) -> Result<(), String>
    where
        B::ErrorType: 'static;
}

/// Renders `fig` at `size` pixels into `path`, SVG or PNG by the extension, with the
/// embedded font.
pub(crate) fn render(path: &Path, size: (u32, u32), fig: &impl Figure) -> Result<(), String> {
    register_font();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    fn go<B: DrawingBackend>(
        area: DrawingArea<B, plotters::coord::Shift>,
        fig: &impl Figure,
    ) -> Result<(), String>
    where
        B::ErrorType: 'static,
    {
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        fig.draw(&area)?;
        area.present().map_err(|e| e.to_string())
    }
    match ext.as_str() {
        "svg" => go(SVGBackend::new(path, size).into_drawing_area(), fig),
        "png" => go(BitMapBackend::new(path, size).into_drawing_area(), fig),
        _ => Err(format!(
            "cannot plot to `{}`: use a .svg or .png file",
            path.display()
        )),
    }
}

/// Draws `rows` (time, values) of the series `names` into `path` (SVG or PNG by extension).
pub fn plot(
    path: &Path,
    title: &str,
    names: &[String],
    rows: &[(f64, Vec<f64>)],
) -> Result<(), String> {
    register_font();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "svg" => draw(
            SVGBackend::new(path, (900, 500)).into_drawing_area(),
            title,
            names,
            rows,
        ),
        "png" => draw(
            BitMapBackend::new(path, (900, 500)).into_drawing_area(),
            title,
            names,
            rows,
        ),
        _ => Err(format!(
            "cannot plot to `{}`: use a .svg or .png file",
            path.display()
        )),
    }
}

fn draw<B: DrawingBackend>(
    area: DrawingArea<B, plotters::coord::Shift>,
    title: &str,
    names: &[String],
    rows: &[(f64, Vec<f64>)],
) -> Result<(), String>
where
    B::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    area.fill(&WHITE).map_err(|x| e(&x))?;
    let t0 = rows.first().map(|r| r.0).unwrap_or(0.0);
    let t1 = rows.last().map(|r| r.0).unwrap_or(1.0).max(t0 + 1e-12);
    let finite = rows
        .iter()
        .flat_map(|r| r.1.iter())
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(t0..t1, (lo - pad)..(hi + pad))
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("t")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                rows.iter()
                    .map(|r| (r.0, r.1[i]))
                    .filter(|p| p.1.is_finite()),
                color.stroke_width(2),
            ))
            .map_err(|x| e(&x))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    area.present().map_err(|x| e(&x))?;
    Ok(())
}

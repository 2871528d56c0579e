//! The trace of a `:run`: a bounded record of its rows, a table, a small terminal chart,
//! and an SVG drawing for `:plot` (written by hand: a polyline per series, no fonts needed).

use std::fmt::Write;

/// Most rows kept; past that every other row is dropped and the stride doubles.
const KEEP: usize = 4096;

/// The recorded rows of a run (thinned for long runs; the last row is always kept).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The system that ran.
    pub system: String,
    /// Column names (without `t`).
    pub names: Vec<String>,
    /// Kept rows: time and values.
    pub rows: Vec<(f64, Vec<f64>)>,
    stride: usize,
    seen: usize,
    last: Option<(f64, Vec<f64>)>,
}

/// A number for a table cell: integers exactly, others with 6 significant digits.
pub fn cell(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if !(1e-4..1e9).contains(&a) {
        return format!("{v:.5e}");
    }
    let digits = (5 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

impl Trace {
    /// An empty trace of `system`.
    pub fn new(system: &str) -> Self {
        Trace {
            system: system.into(),
            stride: 1,
            ..Default::default()
        }
    }

    /// Records a row.
    pub fn push(&mut self, t: f64, vals: &[f64]) {
        if self.seen.is_multiple_of(self.stride) {
            self.rows.push((t, vals.to_vec()));
            if self.rows.len() >= KEEP {
                let mut i = 0;
                self.rows.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.seen += 1;
        self.last = Some((t, vals.to_vec()));
    }

    /// The kept rows and the last one.
    fn all(&self) -> Vec<&(f64, Vec<f64>)> {
        let mut v: Vec<&(f64, Vec<f64>)> = self.rows.iter().collect();
        if let Some(l) = &self.last
            && v.last().is_none_or(|r| r.0 != l.0)
        {
            v.push(l);
        }
        v
    }

    /// The time of the last row.
    pub fn last_time(&self) -> Option<f64> {
        self.last.as_ref().map(|l| l.0)
    }

    /// At most `n` rows, evenly spread, first and last included, as a right-aligned table.
    pub fn table(&self, n: usize) -> String {
        let all = self.all();
        if all.is_empty() {
            return "(no rows)\n".into();
        }
        let pick: Vec<&(f64, Vec<f64>)> = if all.len() <= n || n < 2 {
            all.clone()
        } else {
            let mut idx: Vec<usize> = (0..n).map(|k| k * (all.len() - 1) / (n - 1)).collect();
            idx.dedup();
            idx.into_iter().map(|i| all[i]).collect()
        };
        let mut cols: Vec<Vec<String>> = vec![
            std::iter::once("t".to_string())
                .chain(pick.iter().map(|r| cell(r.0)))
                .collect(),
        ];
        for (j, name) in self.names.iter().enumerate() {
            cols.push(
                std::iter::once(name.clone())
                    .chain(
                        pick.iter()
                            .map(|r| r.1.get(j).map(|v| cell(*v)).unwrap_or_default()),
                    )
                    .collect(),
            );
        }
        let widths: Vec<usize> = cols
            .iter()
            .map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(1))
            .collect();
        let mut out = String::new();
        for row in 0..=pick.len() {
            let line: Vec<String> = cols
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{:>w$}", c[row], w = *w))
                .collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        if all.len() > pick.len() {
            let _ = writeln!(out, "({} rows recorded, {} shown)", self.seen, pick.len());
        }
        out
    }

    /// A `w`×`h` character chart of up to four series, with the y range and a legend.
    pub fn chart(&self, w: usize, h: usize) -> String {
        const MARKS: [char; 4] = ['*', '+', 'o', 'x'];
        let all = self.all();
        let series = self.names.len().min(MARKS.len());
        if all.len() < 2 || series == 0 || w < 2 || h < 2 {
            return String::new();
        }
        let (t0, t1) = (all[0].0, all[all.len() - 1].0);
        let finite = all
            .iter()
            .flat_map(|r| r.1.iter().take(series))
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if !lo.is_finite() || !hi.is_finite() {
            return String::new();
        }
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        };
        let mut grid = vec![vec![' '; w]; h];
        for r in &all {
            let x = if t1 > t0 {
                ((r.0 - t0) / (t1 - t0) * (w - 1) as f64).round() as usize
            } else {
                0
            };
            for (s, mark) in MARKS.iter().enumerate().take(series) {
                let Some(v) = r.1.get(s).copied().filter(|v| v.is_finite()) else {
                    continue;
                };
                let y = ((v - lo) / (hi - lo) * (h - 1) as f64).round() as usize;
                grid[h - 1 - y.min(h - 1)][x.min(w - 1)] = *mark;
            }
        }
        let (top, bottom) = (cell(hi), cell(lo));
        let lw = top.len().max(bottom.len());
        let mut out = String::new();
        for (i, row) in grid.iter().enumerate() {
            let label = if i == 0 {
                top.as_str()
            } else if i == h - 1 {
                bottom.as_str()
            } else {
                ""
            };
            let line: String = row.iter().collect();
            let _ = writeln!(out, "{label:>lw$} ┤{}", line.trim_end());
        }
        let _ = writeln!(out, "{:>lw$} └{}", "", "─".repeat(w));
        let (a, b) = (cell(t0), cell(t1));
        let gap = (w + 1).saturating_sub(a.len() + b.len()).max(1);
        let _ = writeln!(out, "{:>lw$}  {a}{}{b}", "", " ".repeat(gap));
        let legend: Vec<String> = MARKS
            .iter()
            .zip(&self.names)
            .take(series)
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        let more = if self.names.len() > series {
            format!("  (and {} more)", self.names.len() - series)
        } else {
            String::new()
        };
        let _ = writeln!(out, "{:>lw$}  {}{more}", "", legend.join("   "));
        out
    }

    /// An SVG drawing of every series (800×400, axes with the ranges, a legend).
    pub fn svg(&self) -> String {
        const COLORS: [&str; 6] = [
            "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
        ];
        let all = self.all();
        let (w, h, m) = (800.0, 400.0, 50.0);
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let (t0, t1) = match (all.first(), all.last()) {
            (Some(a), Some(b)) => (a.0, b.0),
            _ => (0.0, 1.0),
        };
        let vals = all
            .iter()
            .flat_map(|r| r.1.iter())
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (lo.min(0.0) - 1.0, lo.max(0.0) + 1.0)
        };
        let span_t = if t1 > t0 { t1 - t0 } else { 1.0 };
        let x = |t: f64| m + (t - t0) / span_t * (w - 2.0 * m);
        let y = |v: f64| h - m - (v - lo) / (hi - lo) * (h - 2.0 * m);
        let _ = writeln!(
            out,
            "<path d=\"M{m} {m} V{} H{}\" stroke=\"black\" fill=\"none\"/>",
            h - m,
            w - m
        );
        let text = |out: &mut String, x: f64, y: f64, anchor: &str, s: &str| {
            let s = s
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let _ = writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{y:.1}\" font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"{anchor}\">{s}</text>"
            );
        };
        text(&mut out, m - 4.0, m + 4.0, "end", &cell(hi));
        text(&mut out, m - 4.0, h - m, "end", &cell(lo));
        text(&mut out, m, h - m + 16.0, "middle", &cell(t0));
        text(&mut out, w - m, h - m + 16.0, "middle", &cell(t1));
        text(&mut out, w / 2.0, h - 12.0, "middle", "t");
        text(&mut out, w / 2.0, 24.0, "middle", &self.system);
        for (s, name) in self.names.iter().enumerate() {
            let color = COLORS[s % COLORS.len()];
            let pts: Vec<String> = all
                .iter()
                .filter_map(|r| {
                    r.1.get(s)
                        .filter(|v| v.is_finite())
                        .map(|v| format!("{:.2},{:.2}", x(r.0), y(*v)))
                })
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                pts.join(" ")
            );
            let ly = m + 16.0 * s as f64;
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{ly:.1}\" x2=\"{}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                w - m - 110.0,
                w - m - 90.0
            );
            text(&mut out, w - m - 85.0, ly + 4.0, "start", name);
        }
        out.push_str("</svg>\n");
        out
    }
}

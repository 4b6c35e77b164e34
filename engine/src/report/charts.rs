//! The report's charts: box plots with every case as a point, line charts (training curves),
//! scatter charts (STDR's sorted distances) and the patient × slice grid of a query's picks.
//! Everything is drawn at [`S`] pixels per font pixel: 16-pixel text, fit for a paper.

use super::canvas::{text_width, Canvas, Rgb, BLACK, GREY, LIGHT, WHITE};
use crate::metrics::stats::percentile;

/// Scale of text and strokes.
pub const S: i64 = 2;

/// A rectangle of data coordinates mapped onto a rectangle of pixels.
struct Axes {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64) -> f64 {
        self.x as f64 + (x - self.xr.0) / (self.xr.1 - self.xr.0).max(1e-12) * self.w as f64
    }

    fn py(&self, y: f64) -> f64 {
        (self.y + self.h) as f64 - (y - self.yr.0) / (self.yr.1 - self.yr.0).max(1e-12) * self.h as f64
    }

    /// The frame, the y ticks (and x ticks unless `x_ticks` is false), the title and labels.
    fn draw(&self, c: &mut Canvas, title: &str, x_label: &str, y_label: &str, x_ticks: bool) {
        let (yt, ys) = ticks(self.yr);
        for t in yt {
            let y = self.py(t).round() as i64;
            c.rect(self.x, y, self.w, 1, LIGHT);
            let label = tick_label(t, ys);
            c.text(self.x - text_width(&label, S) - 6 * S, y - 4 * S, &label, S, BLACK);
        }
        if x_ticks {
            let (xt, xs) = ticks(self.xr);
            for t in xt {
                let x = self.px(t).round() as i64;
                c.rect(x, self.y + self.h, 1, 4 * S, BLACK);
                c.text_centred(x, self.y + self.h + 6 * S, &tick_label(t, xs), S, BLACK);
            }
        }
        c.frame(self.x, self.y, self.w, self.h, 1, BLACK);
        c.text_centred(self.x + self.w / 2, 10 * S, title, S, BLACK);
        c.text_centred(self.x + self.w / 2, self.y + self.h + 20 * S, x_label, S, BLACK);
        c.text_vertical(10 * S, self.y + self.h / 2, y_label, S, BLACK);
    }
}

/// About five round tick values across `range`, and their step.
fn ticks((lo, hi): (f64, f64)) -> (Vec<f64>, f64) {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t + 0.0);
        t += step;
    }
    (out, step)
}

/// `t` with as many decimals as the tick step needs (scientific below 0.001).
fn tick_label(t: f64, step: f64) -> String {
    if step < 1e-3 {
        return if t == 0.0 { "0".into() } else { format!("{t:.1e}") };
    }
    let decimals = (0..6).find(|d| {
        let scaled = step * 10f64.powi(*d as i32);
        (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
    });
    format!("{t:.*}", decimals.unwrap_or(6))
}

/// One box of a box plot: a method's values per case (`None`: undefined, not drawn;
/// infinite: a failure, drawn as × in the band above the axis).
#[derive(Debug, Clone)]
pub struct BoxSeries {
    pub label: String,
    pub colour: Rgb,
    pub values: Vec<(String, Option<f64>)>,
}

/// What a box plot drew: points per series (finite and infinite).
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub points: Vec<usize>,
}

/// A box plot (median, quartiles, whiskers to the last point within 1.5 IQR) per series,
/// every case a point; outliers and failures carry their case id.
pub fn box_plot(title: &str, y_label: &str, series: &[BoxSeries], fixed: Option<(f64, f64)>) -> (Canvas, Drawn) {
    let column = 120 * S;
    let legend = 12 * S * series.len() as i64 + 10 * S;
    let (left, top, plot_h) = (70 * S, 40 * S, 220 * S);
    let width = left + column * series.len().max(1) as i64 + 60 * S;
    let mut c = Canvas::new(width as usize, (top + plot_h + 40 * S + legend) as usize);
    let finite: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().filter_map(|v| v.1).filter(|v| v.is_finite()))
        .collect();
    let yr = fixed.unwrap_or_else(|| {
        let hi = finite.iter().copied().fold(0.0f64, f64::max);
        (0.0, if hi > 0.0 { hi * 1.05 } else { 1.0 })
    });
    let band = 24 * S; // where infinite values go, above the axes
    let axes = Axes {
        x: left,
        y: top + band,
        w: column * series.len().max(1) as i64,
        h: plot_h - band,
        xr: (0.0, series.len().max(1) as f64),
        yr,
    };
    axes.draw(&mut c, title, "", y_label, false);
    c.text(
        left - text_width("inf", S) - 6 * S,
        top + band / 2 - 4 * S,
        "inf",
        S,
        BLACK,
    );
    let mut drawn = Drawn { points: vec![] };
    for (n, s) in series.iter().enumerate() {
        let centre = axes.px(n as f64 + 0.5);
        let vals: Vec<f64> = s.values.iter().filter_map(|v| v.1).filter(|v| v.is_finite()).collect();
        let q = |p| percentile(&vals, p);
        if let (Some(q1), Some(med), Some(q3)) = (q(25.0), q(50.0), q(75.0)) {
            let iqr = q3 - q1;
            let inside = |v: &&f64| **v >= q1 - 1.5 * iqr && **v <= q3 + 1.5 * iqr;
            let lo = vals.iter().filter(inside).copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().filter(inside).copied().fold(f64::NEG_INFINITY, f64::max);
            let half = (column / 4) as f64;
            c.line((centre, axes.py(lo)), (centre, axes.py(q1)), S, BLACK);
            c.line((centre, axes.py(q3)), (centre, axes.py(hi)), S, BLACK);
            let (y3, y1) = (axes.py(q3).round() as i64, axes.py(q1).round() as i64);
            c.rect(
                (centre - half) as i64,
                y3,
                (2.0 * half) as i64,
                (y1 - y3).max(1),
                lighten(s.colour),
            );
            c.frame(
                (centre - half) as i64,
                y3,
                (2.0 * half) as i64,
                (y1 - y3).max(1) + 1,
                S,
                BLACK,
            );
            c.line(
                (centre - half, axes.py(med)),
                (centre + half, axes.py(med)),
                2 * S,
                BLACK,
            );
            for w in [lo, hi] {
                c.line(
                    (centre - half / 2.0, axes.py(w)),
                    (centre + half / 2.0, axes.py(w)),
                    S,
                    BLACK,
                );
            }
            for (k, (case, v)) in s.values.iter().enumerate() {
                let Some(v) = v.filter(|v| v.is_finite()) else { continue };
                if v < q1 - 1.5 * iqr || v > q3 + 1.5 * iqr {
                    let x = (centre + jitter(k, column) + 5.0 * S as f64) as i64;
                    c.text(x, axes.py(v) as i64 - 4 * S, case, S, BLACK);
                }
            }
        }
        let mut count = 0;
        let failures: Vec<&str> = s
            .values
            .iter()
            .filter(|v| v.1.is_some_and(f64::is_infinite))
            .map(|v| v.0.as_str())
            .collect();
        for (k, (_, v)) in s.values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let x = centre + jitter(k, column);
            if v.is_finite() {
                c.disc(x, axes.py(v), 3.0 * S as f64, BLACK);
                c.disc(x, axes.py(v), 2.0 * S as f64, s.colour);
            } else {
                c.cross(x, (top + band / 2) as f64, 3.0 * S as f64, S, s.colour);
            }
            count += 1;
        }
        // Failures by case id when they fit, else counted.
        let label = match failures.as_slice() {
            [] => String::new(),
            [one] => one.to_string(),
            many => format!("{} inf", many.len()),
        };
        c.text(centre as i64 + (column / 4), top + band / 2 - 4 * S, &label, S, BLACK);
        c.text_centred(centre as i64, top + plot_h + 6 * S, &(n + 1).to_string(), S, BLACK);
        drawn.points.push(count);
    }
    legend_rows(
        &mut c,
        left,
        top + plot_h + 24 * S,
        series.iter().map(|s| (s.label.as_str(), s.colour)),
        true,
    );
    (c, drawn)
}

/// A deterministic horizontal offset for the `k`-th point of a box.
fn jitter(k: usize, column: i64) -> f64 {
    let u = ((k * 7919) % 23) as f64 / 22.0 - 0.5;
    u * column as f64 * 0.3
}

fn lighten(c: Rgb) -> Rgb {
    c.map(|v| (v as u16 + (255 - v as u16) * 2 / 3) as u8)
}

/// Numbered legend rows ("1 ■ label") from `(x, y)` down.
fn legend_rows<'a>(c: &mut Canvas, x: i64, y: i64, rows: impl Iterator<Item = (&'a str, Rgb)>, numbered: bool) {
    for (n, (label, colour)) in rows.enumerate() {
        let y = y + n as i64 * 12 * S;
        let mut at = x;
        if numbered {
            c.text(at, y, &format!("{}", n + 1), S, BLACK);
            at += 24 * S;
        }
        c.rect(at, y, 8 * S, 8 * S, colour);
        c.text(at + 12 * S, y, label, S, BLACK);
    }
}

/// One line (or set of markers) of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub colour: Rgb,
    pub points: Vec<(f64, f64)>,
    /// Markers of this radius instead of a line.
    pub markers: Option<f64>,
}

/// A chart of lines and markers with a legend below.
pub fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Canvas {
    let (left, top, w, h) = (70 * S, 40 * S, 420 * S, 200 * S);
    let legend = 12 * S * series.len() as i64;
    let mut c = Canvas::new(
        (left + w + 30 * S) as usize,
        (top + h + 34 * S + legend + 6 * S) as usize,
    );
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.1.is_finite())
        .collect();
    let range = |f: fn(&(f64, f64)) -> f64| {
        let lo = all.iter().map(f).fold(f64::INFINITY, f64::min);
        let hi = all.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            (lo - 0.5, lo + 0.5)
        } else {
            (0.0, 1.0)
        }
    };
    let (yr, xr) = (range(|p| p.1), range(|p| p.0));
    let pad = (yr.1 - yr.0) * 0.05;
    let axes = Axes {
        x: left,
        y: top,
        w,
        h,
        xr,
        yr: (yr.0 - pad, yr.1 + pad),
    };
    axes.draw(&mut c, title, x_label, y_label, true);
    for s in series {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| (axes.px(x), axes.py(y)))
            .collect();
        match s.markers {
            Some(r) => pts.iter().for_each(|&(x, y)| c.disc(x, y, r * S as f64, s.colour)),
            None => pts.windows(2).for_each(|p| c.line(p[0], p[1], S, s.colour)),
        }
    }
    legend_rows(
        &mut c,
        left,
        top + h + 34 * S,
        series.iter().map(|s| (s.label.as_str(), s.colour)),
        false,
    );
    c
}

/// A query's picks on its pool: a row per case, a column per slice; slices with tumour (in
/// the domain's label) shaded, picked ones filled with their reason's colour.
pub fn picks_grid(
    title: &str,
    cases: &[(String, Vec<bool>)],
    picks: &[(usize, usize, Rgb)],
    legend: &[(&str, Rgb)],
) -> Canvas {
    let cell = 6 * S;
    let label_w = cases.iter().map(|(id, _)| text_width(id, 1)).max().unwrap_or(0) + 6 * S;
    let slices = cases.iter().map(|(_, t)| t.len()).max().unwrap_or(0) as i64;
    let (top, grid_h) = (30 * S, cell * cases.len() as i64);
    let widest = legend
        .iter()
        .map(|l| text_width(l.0, S))
        .chain([text_width("tumour in the label", S)])
        .max();
    let width = (label_w + slices * cell + 20 * S)
        .max(text_width(title, S) + 20 * S)
        .max(label_w + widest.unwrap_or(0) + 20 * S);
    let mut c = Canvas::new(
        width as usize,
        (top + grid_h + 16 * S + 12 * S * legend.len() as i64) as usize,
    );
    c.text(6 * S, 8 * S, title, S, BLACK);
    for (r, (id, tumour)) in cases.iter().enumerate() {
        let y = top + r as i64 * cell;
        c.text(2 * S, y + (cell - 8) / 2, id, 1, BLACK);
        for (k, t) in tumour.iter().enumerate() {
            let x = label_w + k as i64 * cell;
            c.rect(x, y, cell, cell, if *t { [190, 190, 190] } else { WHITE });
            c.frame(x, y, cell + 1, cell + 1, 1, LIGHT);
        }
    }
    for &(r, k, colour) in picks {
        let (x, y) = (label_w + k as i64 * cell, top + r as i64 * cell);
        c.rect(x + 1, y + 1, cell - 1, cell - 1, colour);
    }
    c.frame(label_w, top, slices * cell + 1, grid_h + 1, 1, GREY);
    let rows = legend.iter().copied().chain([("tumour in the label", [190, 190, 190])]);
    legend_rows(&mut c, label_w, top + grid_h + 8 * S, rows, false);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_plot_draws_every_case_including_failures() {
        let series = vec![
            BoxSeries {
                label: "a".into(),
                colour: super::super::canvas::colour(0),
                values: (0..7).map(|i| (format!("c{i}"), Some(i as f64 / 10.0))).collect(),
            },
            BoxSeries {
                label: "b".into(),
                colour: super::super::canvas::colour(1),
                values: vec![
                    ("x".into(), Some(f64::INFINITY)),
                    ("y".into(), None),
                    ("z".into(), Some(0.5)),
                ],
            },
        ];
        let (c, drawn) = box_plot("DSC", "DSC", &series, Some((0.0, 1.0)));
        assert_eq!(drawn.points, vec![7, 2], "undefined values are not points");
        let colour_b = super::super::canvas::colour(1);
        assert!(c.pixels.contains(&colour_b));
    }

    #[test]
    fn ticks_are_round() {
        let (t, step) = ticks((0.0, 1.0));
        let labels: Vec<String> = t.iter().map(|t| tick_label(*t, step)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(ticks((0.0, 23.0)).0[1], 5.0);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(0.75, 0.25), "0.75");
        assert_eq!(tick_label(20.0, 5.0), "20");
        assert_eq!(tick_label(5e-5, 1e-5), "5.0e-5");
    }
}

//! SVG pictures of a run, as strings (no drawing crate): the equity curve over its drawdown
//! ([`equity_chart`]), an optimizer heatmap over two parameters ([`heatmap`]) and Monte Carlo percentile bands
//! ([`montecarlo_chart`]).
//!
//! Every chart is a standalone, well-formed SVG document: text is XML-escaped (control characters dropped), every
//! number written is finite, and the size is bounded — long series are downsampled to at most
//! [`MAX_PLOT_POINTS`] points per line (the minimum and maximum of each bucket, so spikes survive), heatmaps have at
//! most [`MAX_HEATMAP_AXIS`] values per axis.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::montecarlo::Bands;

/// Most points drawn per line after downsampling.
pub const MAX_PLOT_POINTS: usize = 1_500;
/// Most input points per series.
pub const MAX_INPUT_POINTS: usize = 10_000_000;
/// Most values per heatmap axis.
pub const MAX_HEATMAP_AXIS: usize = 250;
/// Most characters in a title or label.
pub const MAX_LABEL_CHARS: usize = 200;
/// Heatmaps up to this many columns and rows print each cell's value.
const HEATMAP_VALUES_UP_TO: usize = 20;

/// Size and title of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartOptions {
    /// Width in pixels, 200 ..= 4,000.
    pub width: u32,
    /// Height in pixels, 150 ..= 3,000.
    pub height: u32,
    /// Title at the top (at most [`MAX_LABEL_CHARS`] characters; empty: none).
    pub title: String,
}

impl Default for ChartOptions {
    /// 900 × 500, no title.
    fn default() -> Self {
        ChartOptions { width: 900, height: 500, title: String::new() }
    }
}

/// Why a chart was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChartError {
    /// Width or height out of range.
    #[error("chart size {width}×{height} is out of range (200–4000 × 150–3000 pixels)")]
    Size {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// A title or label is too long.
    #[error("the {what} has {chars} characters; at most {max} are accepted")]
    LabelTooLong {
        /// Which text.
        what: &'static str,
        /// Its length.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Two series that must be parallel differ in length.
    #[error("{what} has {found} points but {expected} were expected")]
    LengthMismatch {
        /// Which series.
        what: &'static str,
        /// The reference length.
        expected: usize,
        /// Its length.
        found: usize,
    },
    /// A series is longer than [`MAX_INPUT_POINTS`] (or a heatmap axis than [`MAX_HEATMAP_AXIS`]).
    #[error("{what} has {count} points; at most {max} are accepted")]
    TooManyPoints {
        /// Which series.
        what: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A value is NaN or infinite.
    #[error("{what}[{index}] is not a finite number")]
    NonFinite {
        /// Which series.
        what: &'static str,
        /// The position.
        index: usize,
    },
}

/// An optimizer heatmap: the objective over a grid of two parameters (row-major, `y` rows × `x` columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatmapData {
    /// Name of the parameter along the horizontal axis.
    pub x_label: String,
    /// Its values, one per column.
    pub x_values: Vec<f64>,
    /// Name of the parameter along the vertical axis.
    pub y_label: String,
    /// Its values, one per row (the first row is drawn at the bottom).
    pub y_values: Vec<f64>,
    /// `values[row * x_values.len() + column]`: the objective, `None` where the combination was skipped or failed
    /// (non-finite values are drawn the same way).
    pub values: Vec<Option<f64>>,
    /// Name of the objective (the legend's title).
    pub value_label: String,
    /// Colour scale direction: `true` when higher values are better (brighter).
    pub higher_is_better: bool,
}

// ------------------------------------------------------------------------------------------------------------------
// SVG writing.

/// A number as SVG wants it: at most 2 decimals, trailing zeros dropped, never NaN or infinite.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let s = format!("{v:.2}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" { "0".into() } else { s }
}

/// XML-escapes `text` for element content and attribute values; drops characters XML 1.0 does not allow.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

struct Svg {
    out: String,
}

impl Svg {
    fn new(width: u32, height: u32) -> Self {
        let mut out = String::with_capacity(16 * 1024);
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(out, r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##);
        Svg { out }
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, content: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}"{extra}>{}</text>"#,
            num(x),
            num(y),
            escape(content)
        );
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = write!(
            self.out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}"{extra}/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2)
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{extra}/>"#,
            num(x),
            num(y),
            num(w.max(0.0)),
            num(h.max(0.0))
        );
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, extra: &str) {
        if points.is_empty() {
            return;
        }
        self.out.push_str(r#"<polyline fill="none" points=""#);
        push_points(&mut self.out, points);
        let _ = write!(self.out, r#"" stroke="{stroke}"{extra}/>"#);
    }

    fn polygon(&mut self, points: &[(f64, f64)], fill: &str, extra: &str) {
        if points.is_empty() {
            return;
        }
        self.out.push_str(r#"<polygon points=""#);
        push_points(&mut self.out, points);
        let _ = write!(self.out, r#"" fill="{fill}"{extra}/>"#);
    }

    fn title(&mut self, width: u32, title: &str) {
        if !title.is_empty() {
            self.text(f64::from(width) / 2.0, 22.0, "middle", r#" font-size="15" font-weight="bold""#, title);
        }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

fn push_points(out: &mut String, points: &[(f64, f64)]) {
    for (i, (x, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&num(*x));
        out.push(',');
        out.push_str(&num(*y));
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Scales, ticks and labels.

/// "Nice" ticks covering `[lo, hi]`: returns the widened domain and the tick values (about `target` of them,
/// steps of 1, 2, 2.5 or 5 × 10ᵏ). A flat or degenerate range is widened first.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>) {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
    if hi - lo <= f64::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        let pad = if lo.abs() > 0.0 { lo.abs() * 0.05 } else { 1.0 };
        lo -= pad;
        hi += pad;
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 2.5 {
            2.5
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let count = ((last - first) as usize).min(50);
    let ticks: Vec<f64> = (0..=count).map(|k| (first + k as f64) * step).collect();
    let (dlo, dhi) = (first * step, (first + count as f64) * step);
    if !(dlo.is_finite() && dhi.is_finite() && dhi > dlo) {
        return (lo, hi, vec![lo, hi]);
    }
    (dlo, dhi, ticks)
}

/// Decimals to print for values on a tick grid of `step`.
fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) || step >= 1.0 {
        return 0;
    }
    // 0.25 → 2, 0.5 → 1, 0.001 → 3.
    let mut d = 0;
    let mut s = step;
    while d < 8 && (s - s.round()).abs() > 1e-9 * s.abs().max(1.0) {
        s *= 10.0;
        d += 1;
    }
    d
}

/// `1234567.8` with `decimals` → `1,234,567.80`; NaN/∞ → `n/a`.
fn group_thousands(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let negative = v < 0.0 && s.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&grouped);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A money tick label: grouped thousands, `12.5M` from ten million up.
fn money_label(v: f64, step: f64) -> String {
    if v.abs() >= 1e7 && step >= 1e5 {
        return format!("{}M", trim_number(v / 1e6, 2));
    }
    group_thousands(v, decimals_for(step))
}

/// At most `decimals` decimals, trailing zeros dropped.
fn trim_number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" { "0".into() } else { s }
}

/// A cell or legend value in about 3–4 significant figures.
fn compact(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim_number(v / 1e6, 2))
    } else if a >= 1e4 {
        format!("{}k", trim_number(v / 1e3, 1))
    } else if a >= 100.0 {
        trim_number(v, 0)
    } else if a >= 1.0 {
        trim_number(v, 2)
    } else {
        trim_number(v, 3)
    }
}

/// An axis value of a parameter (`5`, `0.25`).
fn param_label(v: f64) -> String {
    trim_number(v, 6)
}

/// Linear map of `[d0, d1]` onto `[r0, r1]`.
#[derive(Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    fn map(self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if span == 0.0 || !span.is_finite() {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (v - self.d0) / span * (self.r1 - self.r0)
    }
}

/// Indices of the points to draw: all when they fit, else the first, the last and the minimum and maximum of each
/// of about `max_points / 2` buckets, ascending.
fn downsample(values: &[f64], max_points: usize) -> Vec<usize> {
    let n = values.len();
    if n <= max_points {
        return (0..n).collect();
    }
    let buckets = (max_points.saturating_sub(2) / 2).max(1);
    let mut out = Vec::with_capacity(buckets * 2 + 2);
    out.push(0);
    for b in 0..buckets {
        let start = b * n / buckets;
        let end = ((b + 1) * n / buckets).max(start + 1).min(n);
        let mut lo = start;
        let mut hi = start;
        for i in start..end {
            if values[i] < values[lo] {
                lo = i;
            }
            if values[i] > values[hi] {
                hi = i;
            }
        }
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(a);
        out.push(b);
    }
    out.push(n - 1);
    out.sort_unstable();
    out.dedup();
    out
}

fn check_options(options: &ChartOptions) -> Result<(), ChartError> {
    if !(200..=4_000).contains(&options.width) || !(150..=3_000).contains(&options.height) {
        return Err(ChartError::Size { width: options.width, height: options.height });
    }
    check_label("title", &options.title)
}

fn check_label(what: &'static str, text: &str) -> Result<(), ChartError> {
    let chars = text.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(ChartError::LabelTooLong { what, chars, max: MAX_LABEL_CHARS });
    }
    Ok(())
}

fn check_series(what: &'static str, values: &[f64], expected: usize) -> Result<(), ChartError> {
    if values.len() != expected {
        return Err(ChartError::LengthMismatch { what, expected, found: values.len() });
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ChartError::NonFinite { what, index }),
        None => Ok(()),
    }
}

fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

const AXIS: &str = "#444444";
const GRID: &str = "#e5e5e5";
const EQUITY: &str = "#1f77b4";
const DRAWDOWN: &str = "#d62728";

/// Horizontal grid lines and left-hand labels of a value axis.
fn y_axis(svg: &mut Svg, scale: Scale, ticks: &[f64], left: f64, right: f64, label: impl Fn(f64) -> String) {
    for &t in ticks {
        let y = scale.map(t);
        svg.line(left, y, right, y, GRID, "");
        svg.text(left - 6.0, y + 4.0, "end", "", &label(t));
    }
    svg.line(left, scale.r0, left, scale.r1, AXIS, "");
}

// ------------------------------------------------------------------------------------------------------------------
// Equity and drawdown.

/// The equity curve over its drawdown: `times`, `equity` (account currency) and `drawdown` (fractions 0 … 1 of the
/// running peak) are parallel, one point per bar. Points are placed by bar index (no gaps for weekends); the
/// bottom axis labels the bars' dates. An empty series draws empty panels with a "No data" note.
pub fn equity_chart(
    times: &[DateTime<Utc>],
    equity: &[f64],
    drawdown: &[f64],
    options: &ChartOptions,
) -> Result<String, ChartError> {
    check_options(options)?;
    let n = times.len();
    if n > MAX_INPUT_POINTS {
        return Err(ChartError::TooManyPoints { what: "times", count: n, max: MAX_INPUT_POINTS });
    }
    check_series("equity", equity, n)?;
    check_series("drawdown", drawdown, n)?;

    let (w, h) = (f64::from(options.width), f64::from(options.height));
    let (left, right, top, bottom) = (80.0, w - 20.0, if options.title.is_empty() { 16.0 } else { 40.0 }, h - 36.0);
    let gap = 18.0;
    let plot_h = (bottom - top - gap).max(10.0);
    let eq_bottom = top + plot_h * 0.7;
    let dd_top = eq_bottom + gap;

    let mut svg = Svg::new(options.width, options.height);
    svg.title(options.width, &options.title);

    let x_scale = Scale { d0: 0.0, d1: n.saturating_sub(1) as f64, r0: left, r1: right };

    // Equity panel.
    let (e_lo, e_hi) = min_max(equity.iter().copied()).unwrap_or((0.0, 1.0));
    let (d0, d1, e_ticks) = nice_ticks(e_lo, e_hi, 5);
    let e_step = if e_ticks.len() > 1 { e_ticks[1] - e_ticks[0] } else { 1.0 };
    let e_scale = Scale { d0, d1, r0: eq_bottom, r1: top };
    y_axis(&mut svg, e_scale, &e_ticks, left, right, |v| money_label(v, e_step));
    svg.text(14.0, (top + eq_bottom) / 2.0, "middle", &rotate(14.0, (top + eq_bottom) / 2.0), "Equity");

    // Drawdown panel: 0 at its top, the deepest drawdown at its bottom, labelled as negative percents.
    let dd_max = drawdown.iter().fold(0.0f64, |m, &d| m.max(d)) * 100.0;
    let (_, p1, dd_ticks) = nice_ticks(0.0, if dd_max > 0.0 { dd_max } else { 1.0 }, 3);
    let dd_ticks: Vec<f64> = dd_ticks.into_iter().filter(|t| *t >= 0.0).collect();
    let dd_step = if dd_ticks.len() > 1 { dd_ticks[1] - dd_ticks[0] } else { 1.0 };
    let dd_scale = Scale { d0: 0.0, d1: p1, r0: dd_top, r1: bottom };
    for &t in &dd_ticks {
        let y = dd_scale.map(t);
        svg.line(left, y, right, y, GRID, "");
        let label = if t == 0.0 { "0%".to_string() } else { format!("-{}%", trim_number(t, decimals_for(dd_step))) };
        svg.text(left - 6.0, y + 4.0, "end", "", &label);
    }
    svg.line(left, dd_top, left, bottom, AXIS, "");
    svg.text(14.0, (dd_top + bottom) / 2.0, "middle", &rotate(14.0, (dd_top + bottom) / 2.0), "Drawdown");

    if n == 0 {
        svg.text((left + right) / 2.0, (top + eq_bottom) / 2.0, "middle", r##" fill="#888888""##, "No data");
    } else {
        let idx = downsample(equity, MAX_PLOT_POINTS);
        let pts: Vec<(f64, f64)> = idx.iter().map(|&i| (x_scale.map(i as f64), e_scale.map(equity[i]))).collect();
        svg.polyline(&pts, EQUITY, r#" stroke-width="1.5""#);

        let percent: Vec<f64> = drawdown.iter().map(|d| d * 100.0).collect();
        let idx = downsample(&percent, MAX_PLOT_POINTS);
        let mut area = Vec::with_capacity(idx.len() + 2);
        area.push((x_scale.map(idx[0] as f64), dd_scale.map(0.0)));
        area.extend(idx.iter().map(|&i| (x_scale.map(i as f64), dd_scale.map(percent[i]))));
        area.push((x_scale.map(idx[idx.len() - 1] as f64), dd_scale.map(0.0)));
        svg.polygon(&area, DRAWDOWN, r##" fill-opacity="0.35" stroke="#d62728" stroke-width="0.8""##);
    }

    // Bottom axis with dates, at evenly spaced bars.
    svg.line(left, bottom, right, bottom, AXIS, "");
    svg.line(left, eq_bottom, right, eq_bottom, AXIS, "");
    if n > 0 {
        let span = (times[n - 1] - times[0]).num_seconds().abs();
        let format = if span >= 2 * 86_400 { "%Y-%m-%d" } else { "%m-%d %H:%M" };
        let slots = (((right - left) / 110.0).floor() as usize).clamp(1, 8);
        let mut positions: Vec<usize> =
            if n == 1 { vec![0] } else { (0..=slots).map(|k| k * (n - 1) / slots).collect() };
        positions.dedup();
        let last = positions.len() - 1;
        for (k, i) in positions.into_iter().enumerate() {
            let x = x_scale.map(i as f64);
            svg.line(x, bottom, x, bottom + 4.0, AXIS, "");
            // The outermost labels align inwards so they stay inside the picture.
            let anchor = if last > 0 && k == 0 {
                "start"
            } else if last > 0 && k == last {
                "end"
            } else {
                "middle"
            };
            svg.text(x, bottom + 16.0, anchor, "", &times[i].format(format).to_string());
        }
    }
    Ok(svg.finish())
}

fn rotate(x: f64, y: f64) -> String {
    format!(r#" transform="rotate(-90 {} {})""#, num(x), num(y))
}

// ------------------------------------------------------------------------------------------------------------------
// Heatmap.

/// Viridis, sampled at five stops.
const PALETTE: [(u8, u8, u8); 5] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)];
const MISSING: &str = "#d9d9d9";

/// The colour of `t` in [0, 1] on [`PALETTE`].
fn color(t: f64) -> String {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (PALETTE.len() - 1) as f64;
    let i = (pos.floor() as usize).min(PALETTE.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (PALETTE[i], PALETTE[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The optimizer heatmap: one coloured cell per combination of the two parameters, a colour legend, the parameter
/// values along both axes, and each cell's value when the grid is at most 20 × 20.
pub fn heatmap(data: &HeatmapData, options: &ChartOptions) -> Result<String, ChartError> {
    check_options(options)?;
    check_label("x label", &data.x_label)?;
    check_label("y label", &data.y_label)?;
    check_label("value label", &data.value_label)?;
    let (nx, ny) = (data.x_values.len(), data.y_values.len());
    for (what, len) in [("x values", nx), ("y values", ny)] {
        if len > MAX_HEATMAP_AXIS {
            return Err(ChartError::TooManyPoints { what, count: len, max: MAX_HEATMAP_AXIS });
        }
    }
    check_series("x values", &data.x_values, nx)?;
    check_series("y values", &data.y_values, ny)?;
    if data.values.len() != nx * ny {
        return Err(ChartError::LengthMismatch { what: "values", expected: nx * ny, found: data.values.len() });
    }

    let (w, h) = (f64::from(options.width), f64::from(options.height));
    let (left, right, top, bottom) = (80.0, w - 120.0, if options.title.is_empty() { 16.0 } else { 40.0 }, h - 50.0);
    let mut svg = Svg::new(options.width, options.height);
    svg.title(options.width, &options.title);

    let finite = || data.values.iter().filter_map(|v| v.filter(|x| x.is_finite()));
    let range = min_max(finite());
    let to_t = |v: f64| match range {
        Some((lo, hi)) if hi > lo => {
            let t = (v - lo) / (hi - lo);
            if data.higher_is_better { t } else { 1.0 - t }
        }
        _ => 0.5,
    };

    if nx == 0 || ny == 0 {
        svg.text((left + right) / 2.0, (top + bottom) / 2.0, "middle", r##" fill="#888888""##, "No data");
    } else {
        let cw = (right - left) / nx as f64;
        let ch = (bottom - top) / ny as f64;
        let show_values = nx <= HEATMAP_VALUES_UP_TO && ny <= HEATMAP_VALUES_UP_TO && cw >= 28.0 && ch >= 14.0;
        let tooltips = nx * ny <= 2_500;
        // Crisp edges: no anti-aliased seams between neighbouring cells.
        svg.out.push_str(r#"<g shape-rendering="crispEdges">"#);
        for (row, &yv) in data.y_values.iter().enumerate() {
            // Row 0 at the bottom.
            let y = bottom - (row + 1) as f64 * ch;
            for (col, &xv) in data.x_values.iter().enumerate() {
                let x = left + col as f64 * cw;
                let value = data.values[row * nx + col].filter(|v| v.is_finite());
                let (fill, t) = match value {
                    Some(v) => {
                        let t = to_t(v);
                        (color(t), t)
                    }
                    None => (MISSING.to_string(), 1.0),
                };
                if tooltips {
                    let tip = format!(
                        "{}={}, {}={}: {}",
                        data.x_label,
                        param_label(xv),
                        data.y_label,
                        param_label(yv),
                        value.map_or("n/a".to_string(), compact)
                    );
                    let _ = write!(
                        svg.out,
                        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"><title>{}</title></rect>"#,
                        num(x),
                        num(y),
                        num(cw),
                        num(ch),
                        escape(&tip)
                    );
                } else {
                    svg.rect(x, y, cw, ch, &fill, "");
                }
                if show_values {
                    let ink = if value.is_some() && t < 0.6 { "#ffffff" } else { "#222222" };
                    let text = value.map_or("n/a".to_string(), compact);
                    svg.text(x + cw / 2.0, y + ch / 2.0 + 4.0, "middle", &format!(r#" fill="{ink}""#), &text);
                }
            }
        }
        svg.out.push_str("</g>");
        // Axis labels, thinned to fit.
        let every_x = ((42.0 / cw).ceil() as usize).max(1);
        for (col, &xv) in data.x_values.iter().enumerate().filter(|(c, _)| c % every_x == 0) {
            svg.text(left + (col as f64 + 0.5) * cw, bottom + 15.0, "middle", "", &param_label(xv));
        }
        let every_y = ((16.0 / ch).ceil() as usize).max(1);
        for (row, &yv) in data.y_values.iter().enumerate().filter(|(r, _)| r % every_y == 0) {
            svg.text(left - 6.0, bottom - (row as f64 + 0.5) * ch + 4.0, "end", "", &param_label(yv));
        }
    }
    svg.line(left, bottom, right, bottom, AXIS, "");
    svg.line(left, top, left, bottom, AXIS, "");
    svg.text((left + right) / 2.0, bottom + 36.0, "middle", r#" font-size="12""#, &data.x_label);
    let mid = (top + bottom) / 2.0;
    svg.text(16.0, mid, "middle", &format!(r#" font-size="12"{}"#, rotate(16.0, mid)), &data.y_label);

    // Legend: a vertical gradient from the worst (bottom) to the best (top) value, and the "n/a" swatch.
    let lx = right + 30.0;
    let (ltop, lbottom) = (top + 20.0, (bottom - 40.0).max(top + 60.0));
    svg.text(lx, top + 8.0, "start", r#" font-size="12""#, &data.value_label);
    svg.out.push_str(r#"<defs><linearGradient id="heat" x1="0" y1="1" x2="0" y2="0">"#);
    for (k, _) in PALETTE.iter().enumerate() {
        let t = k as f64 / (PALETTE.len() - 1) as f64;
        let _ = write!(svg.out, r#"<stop offset="{}" stop-color="{}"/>"#, num(t), color(t));
    }
    svg.out.push_str("</linearGradient></defs>");
    svg.rect(lx, ltop, 16.0, lbottom - ltop, "url(#heat)", r##" stroke="#444444" stroke-width="0.5""##);
    if let Some((lo, hi)) = range {
        let (best, worst) = if data.higher_is_better { (hi, lo) } else { (lo, hi) };
        svg.text(lx + 22.0, ltop + 4.0, "start", "", &compact(best));
        svg.text(lx + 22.0, lbottom + 4.0, "start", "", &compact(worst));
        if hi > lo {
            svg.text(lx + 22.0, (ltop + lbottom) / 2.0 + 4.0, "start", "", &compact((lo + hi) / 2.0));
        }
    }
    svg.rect(lx, lbottom + 14.0, 16.0, 12.0, MISSING, "");
    svg.text(lx + 22.0, lbottom + 24.0, "start", "", "n/a");
    Ok(svg.finish())
}

// ------------------------------------------------------------------------------------------------------------------
// Monte Carlo bands.

/// The Monte Carlo percentile bands: the 5th–95th percentile band of equity by trade count, the median path and the
/// realised path.
pub fn montecarlo_chart(bands: &Bands, options: &ChartOptions) -> Result<String, ChartError> {
    check_options(options)?;
    let n = bands.trade_index.len();
    if n > MAX_INPUT_POINTS {
        return Err(ChartError::TooManyPoints { what: "trade index", count: n, max: MAX_INPUT_POINTS });
    }
    check_series("p5", &bands.p5, n)?;
    check_series("p50", &bands.p50, n)?;
    check_series("p95", &bands.p95, n)?;
    check_series("actual", &bands.actual, n)?;

    let (w, h) = (f64::from(options.width), f64::from(options.height));
    let (left, right, top, bottom) = (80.0, w - 20.0, if options.title.is_empty() { 30.0 } else { 50.0 }, h - 40.0);
    let mut svg = Svg::new(options.width, options.height);
    svg.title(options.width, &options.title);

    let last_trade = bands.trade_index.last().copied().unwrap_or(0) as f64;
    let first_trade = bands.trade_index.first().copied().unwrap_or(0) as f64;
    let (x0, x1, x_ticks) = nice_ticks(first_trade, last_trade.max(first_trade + 1.0), 6);
    let x_scale = Scale { d0: x0, d1: x1, r0: left, r1: right };
    let all = bands.p5.iter().chain(&bands.p95).chain(&bands.actual).chain(&bands.p50).copied();
    let (lo, hi) = min_max(all).unwrap_or((0.0, 1.0));
    let (d0, d1, y_ticks) = nice_ticks(lo, hi, 5);
    let y_step = if y_ticks.len() > 1 { y_ticks[1] - y_ticks[0] } else { 1.0 };
    let y_scale = Scale { d0, d1, r0: bottom, r1: top };
    y_axis(&mut svg, y_scale, &y_ticks, left, right, |v| money_label(v, y_step));
    svg.line(left, bottom, right, bottom, AXIS, "");
    let x_step = if x_ticks.len() > 1 { x_ticks[1] - x_ticks[0] } else { 1.0 };
    for &t in x_ticks.iter().filter(|t| **t >= first_trade - 1e-9 && **t <= x1 + 1e-9) {
        let x = x_scale.map(t);
        svg.line(x, bottom, x, bottom + 4.0, AXIS, "");
        svg.text(x, bottom + 16.0, "middle", "", &trim_number(t, decimals_for(x_step)));
    }
    svg.text((left + right) / 2.0, bottom + 34.0, "middle", "", "Trades");

    if n == 0 {
        svg.text((left + right) / 2.0, (top + bottom) / 2.0, "middle", r##" fill="#888888""##, "No data");
    } else {
        let idx = downsample(&bands.p50, MAX_PLOT_POINTS);
        let at = |series: &[f64], i: usize| (x_scale.map(bands.trade_index[i] as f64), y_scale.map(series[i]));
        let mut band: Vec<(f64, f64)> = idx.iter().map(|&i| at(&bands.p95, i)).collect();
        band.extend(idx.iter().rev().map(|&i| at(&bands.p5, i)));
        svg.polygon(&band, EQUITY, r#" fill-opacity="0.2""#);
        let p50: Vec<(f64, f64)> = idx.iter().map(|&i| at(&bands.p50, i)).collect();
        svg.polyline(&p50, EQUITY, r#" stroke-width="1.5""#);
        let actual: Vec<(f64, f64)> = idx.iter().map(|&i| at(&bands.actual, i)).collect();
        svg.polyline(&actual, "#222222", r#" stroke-width="1.2" stroke-dasharray="4 3""#);
    }

    // Legend.
    let ly = top - 12.0;
    svg.rect(left, ly - 8.0, 14.0, 10.0, EQUITY, r#" fill-opacity="0.2""#);
    svg.text(left + 18.0, ly, "start", "", "5th–95th percentile");
    svg.line(left + 150.0, ly - 3.0, left + 166.0, ly - 3.0, EQUITY, r#" stroke-width="1.5""#);
    svg.text(left + 170.0, ly, "start", "", "median");
    svg.line(left + 230.0, ly - 3.0, left + 246.0, ly - 3.0, "#222222", r#" stroke-dasharray="4 3""#);
    svg.text(left + 250.0, ly, "start", "", "actual");
    Ok(svg.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A minimal XML well-formedness check: balanced, properly nested tags; quoted attributes without `<`; only
    /// the five named entities and numeric references; a single root element.
    fn assert_well_formed(svg: &str) {
        let b = svg.as_bytes();
        let mut stack: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut i = 0;
        let check_text = |text: &str| {
            let mut rest = text;
            while let Some(p) = rest.find('&') {
                let after = &rest[p + 1..];
                let end = after.find(';').expect("unterminated entity");
                let name = &after[..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                    || (name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit()) && name.len() > 1);
                assert!(ok, "bad entity &{name};");
                rest = &after[end + 1..];
            }
        };
        while i < b.len() {
            if b[i] == b'<' {
                let end = svg[i..].find('>').map(|e| i + e).expect("unclosed tag");
                let tag = &svg[i + 1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    let open = stack.pop().expect("close without open");
                    assert_eq!(open, name.trim(), "mismatched close tag");
                } else {
                    let self_closing = tag.ends_with('/');
                    let body = tag.trim_end_matches('/');
                    let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
                    assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()), "bad name {name}");
                    // Attributes: name="value" pairs.
                    let mut attrs = body[name.len()..].trim();
                    let mut seen = std::collections::HashSet::new();
                    while !attrs.is_empty() {
                        let eq = attrs.find('=').expect("attribute without value");
                        let an = attrs[..eq].trim();
                        assert!(seen.insert(an.to_string()), "duplicate attribute {an} in <{name}>");
                        assert_eq!(&attrs[eq + 1..eq + 2], "\"", "unquoted attribute");
                        let close = attrs[eq + 2..].find('"').expect("unterminated attribute") + eq + 2;
                        let value = &attrs[eq + 2..close];
                        assert!(!value.contains('<'));
                        check_text(value);
                        attrs = attrs[close + 1..].trim_start();
                    }
                    if stack.is_empty() {
                        roots += 1;
                    }
                    if !self_closing {
                        stack.push(name);
                    }
                }
                i = end + 1;
            } else {
                let end = svg[i..].find('<').map_or(b.len(), |e| i + e);
                let text = &svg[i..end];
                assert!(!stack.is_empty() || text.trim().is_empty(), "text outside the root");
                assert!(!text.contains('>'), "raw > in text");
                check_text(text);
                i = end;
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert_eq!(roots, 1);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    fn assert_numbers_finite(svg: &str) {
        for bad in ["NaN", "inf", "Infinity"] {
            assert!(!svg.contains(bad), "{bad} in output");
        }
    }

    fn times(n: usize) -> Vec<DateTime<Utc>> {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        (0..n).map(|i| start + chrono::Duration::hours(i as i64)).collect()
    }

    #[test]
    fn checker_rejects_broken_xml() {
        for bad in ["<svg><g></svg>", "<svg a=1></svg>", "<svg>&foo;</svg>", "<svg></svg><svg></svg>", "<svg>"] {
            assert!(std::panic::catch_unwind(|| assert_well_formed(bad)).is_err(), "{bad}");
        }
        assert_well_formed(r#"<svg a="&amp;"><g/><text>x &lt; y</text></svg>"#);
    }

    #[test]
    fn equity_chart_is_well_formed_with_ticks_and_title() {
        let n = 500;
        let eq: Vec<f64> = (0..n).map(|i| 10_000.0 + (i as f64 * 0.1).sin() * 500.0 + i as f64).collect();
        let mut peak = f64::MIN;
        let dd: Vec<f64> = eq
            .iter()
            .map(|&e| {
                peak = peak.max(e);
                (peak - e) / peak
            })
            .collect();
        let opts = ChartOptions { title: "EURUSD <SMA> & \"cross\"".into(), ..ChartOptions::default() };
        let svg = equity_chart(&times(n), &eq, &dd, &opts).unwrap();
        assert_well_formed(&svg);
        assert_numbers_finite(&svg);
        assert!(svg.contains("EURUSD &lt;SMA&gt; &amp; &quot;cross&quot;"));
        assert!(svg.contains("2024-01-01"));
        assert!(svg.contains("10,"), "money ticks with grouped thousands");
        assert!(svg.contains("%</text>"), "percent ticks");
        assert!(svg.contains("<polyline") && svg.contains("<polygon"));
    }

    #[test]
    fn equity_chart_downsamples_and_keeps_spikes() {
        let n = 200_000;
        let mut eq = vec![1_000.0; n];
        eq[123_457] = 5_000.0; // a one-bar spike
        let dd = vec![0.0; n];
        let svg = equity_chart(&times(n), &eq, &dd, &ChartOptions::default()).unwrap();
        assert_well_formed(&svg);
        assert!(svg.len() < 120_000, "size {}", svg.len());
        let line = svg.split("<polyline").nth(1).unwrap();
        let points = line.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(points.split(' ').count() <= MAX_PLOT_POINTS + 2);
        // The spike maps to the top of the equity scale: the smallest y among the points.
        let ys: Vec<f64> = points.split(' ').map(|p| p.split(',').nth(1).unwrap().parse().unwrap()).collect();
        let min_y = ys.iter().copied().fold(f64::MAX, f64::min);
        assert!(min_y < ys[0] - 100.0, "spike lost: {min_y} vs {}", ys[0]);
    }

    #[test]
    fn equity_chart_handles_flat_empty_and_single() {
        for n in [0usize, 1, 2, 50] {
            let eq = vec![10_000.0; n];
            let dd = vec![0.0; n];
            let svg = equity_chart(&times(n), &eq, &dd, &ChartOptions::default()).unwrap();
            assert_well_formed(&svg);
            assert_numbers_finite(&svg);
            assert_eq!(svg.contains("No data"), n == 0);
        }
        let zero = vec![0.0; 10];
        let svg = equity_chart(&times(10), &zero, &zero, &ChartOptions::default()).unwrap();
        assert_numbers_finite(&svg);
    }

    #[test]
    fn equity_chart_refuses_bad_input() {
        let o = ChartOptions::default();
        assert!(matches!(
            equity_chart(&times(3), &[1.0, 2.0], &[0.0; 3], &o),
            Err(ChartError::LengthMismatch { what: "equity", .. })
        ));
        assert_eq!(
            equity_chart(&times(3), &[1.0, f64::NAN, 2.0], &[0.0; 3], &o),
            Err(ChartError::NonFinite { what: "equity", index: 1 })
        );
        let small = ChartOptions { width: 10, ..ChartOptions::default() };
        assert!(matches!(equity_chart(&[], &[], &[], &small), Err(ChartError::Size { .. })));
        let long = ChartOptions { title: "x".repeat(MAX_LABEL_CHARS + 1), ..ChartOptions::default() };
        assert!(matches!(equity_chart(&[], &[], &[], &long), Err(ChartError::LabelTooLong { .. })));
    }

    fn heat(nx: usize, ny: usize) -> HeatmapData {
        let values =
            (0..nx * ny).map(|k| if k % 7 == 3 { None } else { Some((k as f64 * 0.37).sin() * 2.0) }).collect();
        HeatmapData {
            x_label: "fast".into(),
            x_values: (1..=nx).map(|v| v as f64).collect(),
            y_label: "slow <period>".into(),
            y_values: (1..=ny).map(|v| v as f64 * 2.5).collect(),
            values,
            value_label: "sharpe_ratio".into(),
            higher_is_better: true,
        }
    }

    #[test]
    fn heatmap_small_grid_prints_values_and_legend() {
        let svg = heatmap(&heat(5, 4), &ChartOptions { title: "Heat".into(), ..ChartOptions::default() }).unwrap();
        assert_well_formed(&svg);
        assert_numbers_finite(&svg);
        assert_eq!(svg.matches("<title>").count(), 20);
        assert!(svg.contains(">n/a</text>"));
        assert!(svg.contains("slow &lt;period&gt;"));
        assert!(svg.contains("linearGradient"));
        assert!(svg.contains(">7.5</text>"), "y axis label");
    }

    #[test]
    fn heatmap_large_grid_is_bounded_and_has_no_cell_text() {
        let d = heat(MAX_HEATMAP_AXIS, MAX_HEATMAP_AXIS);
        let svg = heatmap(&d, &ChartOptions { width: 1200, height: 900, title: String::new() }).unwrap();
        assert_well_formed(&svg);
        assert_numbers_finite(&svg);
        assert!(svg.len() < 6_000_000, "size {}", svg.len());
        assert!(!svg.contains("<title>"));
        let mut too_big = d;
        too_big.x_values.push(999.0);
        assert!(matches!(heatmap(&too_big, &ChartOptions::default()), Err(ChartError::TooManyPoints { .. })));
    }

    #[test]
    fn heatmap_edge_cases() {
        // All missing, all equal, empty, non-finite Some, mismatched length.
        let mut d = heat(3, 3);
        d.values = vec![None; 9];
        assert_well_formed(&heatmap(&d, &ChartOptions::default()).unwrap());
        d.values = vec![Some(1.0); 9];
        assert_numbers_finite(&heatmap(&d, &ChartOptions::default()).unwrap());
        d.values[4] = Some(f64::INFINITY);
        let svg = heatmap(&d, &ChartOptions::default()).unwrap();
        assert_numbers_finite(&svg);
        let empty = HeatmapData { x_values: vec![], y_values: vec![], values: vec![], ..heat(1, 1) };
        assert!(heatmap(&empty, &ChartOptions::default()).unwrap().contains("No data"));
        d.values.pop();
        assert!(matches!(heatmap(&d, &ChartOptions::default()), Err(ChartError::LengthMismatch { .. })));
    }

    #[test]
    fn heatmap_colours_follow_direction() {
        let mut d = heat(2, 1);
        d.values = vec![Some(0.0), Some(10.0)];
        let up = heatmap(&d, &ChartOptions::default()).unwrap();
        d.higher_is_better = false;
        let down = heatmap(&d, &ChartOptions::default()).unwrap();
        let first_fill =
            |s: &str| s.split("<title>").next().unwrap().rsplit("fill=\"").next().unwrap()[..7].to_string();
        assert_eq!(first_fill(&up), color(0.0));
        assert_eq!(first_fill(&down), color(1.0));
    }

    #[test]
    fn montecarlo_chart_draws_bands() {
        let pnls: Vec<f64> = (0..300).map(|i| if i % 3 == 0 { -50.0 } else { 40.0 }).collect();
        let cfg = crate::montecarlo::MonteCarloConfig {
            method: crate::montecarlo::Method::Bootstrap,
            simulations: 200,
            ..Default::default()
        };
        let r = crate::montecarlo::run(&pnls, 10_000.0, &cfg).unwrap();
        let svg = montecarlo_chart(&r.bands, &ChartOptions { title: "MC".into(), ..ChartOptions::default() }).unwrap();
        assert_well_formed(&svg);
        assert_numbers_finite(&svg);
        assert!(svg.contains("<polygon") && svg.matches("<polyline").count() == 2);
        assert!(svg.contains(">300</text>") || svg.contains(">250</text>"), "trade ticks");
        let empty = montecarlo_chart(&Bands::default(), &ChartOptions::default()).unwrap();
        assert_well_formed(&empty);
        assert!(empty.contains("No data"));
        let mut bad = r.bands.clone();
        bad.p5.pop();
        assert!(matches!(montecarlo_chart(&bad, &ChartOptions::default()), Err(ChartError::LengthMismatch { .. })));
    }

    #[test]
    fn helpers() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(-12.3456), "-12.35");
        assert_eq!(group_thousands(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(group_thousands(-1_000.0, 0), "-1,000");
        assert_eq!(group_thousands(-0.001, 0), "0");
        assert_eq!(money_label(25_000_000.0, 5e6), "25M");
        assert_eq!(escape("a\u{1}b\tc'"), "ab c&apos;");
        let (lo, hi, t) = nice_ticks(3.0, 97.0, 5);
        assert_eq!((lo, hi), (0.0, 100.0));
        assert_eq!(t, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let (lo, hi, t) = nice_ticks(5.0, 5.0, 5);
        assert!(lo < 5.0 && hi > 5.0 && t.len() >= 2);
        assert_eq!(decimals_for(0.25), 2);
        assert_eq!(decimals_for(0.5), 1);
        assert_eq!(decimals_for(20.0), 0);
        let idx = downsample(&[0.0, 5.0, 1.0, -3.0, 2.0, 2.0, 9.0, 0.0, 1.0, 1.0], 6);
        assert!(idx.contains(&0) && idx.contains(&9) && idx.contains(&3) && idx.contains(&6));
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }
}

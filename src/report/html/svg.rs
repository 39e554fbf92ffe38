//! Just enough SVG to draw the report's charts in Rust: a plot frame,
//! linear and log scales with readable ticks, and a string builder. Inline
//! SVG keeps report.html one self-contained file with no script, so it
//! opens from a CI artifact, an email or a laptop offline.

use std::fmt::Write;

use crate::report::escape::xml;

/// A chart's pixel box and the plot area inside its margins.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub w: f64,
    pub h: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn x0(&self) -> f64 {
        self.left
    }
    pub fn x1(&self) -> f64 {
        self.w - self.right
    }
    /// The bottom of the plot area (SVG's y grows downwards).
    pub fn y0(&self) -> f64 {
        self.h - self.bottom
    }
    pub fn y1(&self) -> f64 {
        self.top
    }
}

/// Maps data values onto pixels, linearly or by log10.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub min: f64,
    pub max: f64,
    pub log: bool,
    pub from: f64,
    pub to: f64,
}

impl Scale {
    pub fn linear(min: f64, max: f64, from: f64, to: f64) -> Scale {
        let max = if max > min { max } else { min + 1.0 };
        Scale {
            min,
            max,
            log: false,
            from,
            to,
        }
    }

    /// `min` must be positive; values below it are drawn at the edge.
    pub fn log(min: f64, max: f64, from: f64, to: f64) -> Scale {
        let min = min.max(f64::MIN_POSITIVE);
        let max = if max > min { max } else { min * 10.0 };
        Scale {
            min,
            max,
            log: true,
            from,
            to,
        }
    }

    pub fn px(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        self.from + f.clamp(0.0, 1.0) * (self.to - self.from)
    }
}

/// About `n` round ticks (1, 2, 5 × 10^k steps) covering `min..=max`.
pub fn linear_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    if max <= min {
        return vec![min];
    }
    let raw = (max - min) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (min / step).ceil() * step;
    let mut out = Vec::new();
    while t <= max + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// The decade below `v` (`v` > 0).
pub fn decade_floor(v: f64) -> f64 {
    10f64.powf(v.max(f64::MIN_POSITIVE).log10().floor())
}

/// The decade above `v`.
pub fn decade_ceil(v: f64) -> f64 {
    10f64.powf(v.max(f64::MIN_POSITIVE).log10().ceil())
}

/// The largest 1-2-5 value at or below `v` (`v` > 0): a log axis's bottom.
pub fn step_floor(v: f64) -> f64 {
    let d = decade_floor(v);
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * d)
        .find(|s| *s <= v * 1.0001)
        .unwrap_or(d)
}

/// The smallest 1-2-5 value at or above `v`: a log axis's top.
pub fn step_ceil(v: f64) -> f64 {
    let d = decade_floor(v);
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * d)
        .find(|s| *s >= v * 0.9999)
        .unwrap_or(10.0 * d)
}

/// Ticks on a log axis: 1-2-5 per decade when few decades, decades only
/// when many.
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let (lo, hi) = (decade_floor(min), decade_ceil(max));
    let decades = (hi / lo).log10().round() as i32;
    let steps: &[f64] = if decades <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    let mut d = lo;
    while d <= hi * 1.0001 {
        for s in steps {
            let v = d * s;
            if v >= min * 0.9999 && v <= max * 1.0001 {
                out.push(v);
            }
        }
        d *= 10.0;
    }
    out
}

/// An `<svg>` being written.
pub struct Svg {
    buf: String,
}

impl Svg {
    /// A chart that scales to its container's width; `label` is what a
    /// screen reader says.
    pub fn new(f: &Frame, label: &str) -> Svg {
        Svg {
            buf: format!(
                r#"<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
                f.w,
                f.h,
                xml(label)
            ),
        }
    }

    /// Defines a diagonal hatch usable as `class="hatch-{id}"` (the CSS
    /// points the class at the pattern); ids must be unique on the page.
    pub fn hatch(&mut self, id: &str) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<defs><pattern id="hatch-{id}" width="7" height="7" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="7" height="7" class="hatch-bg"/><line x1="0" y1="0" x2="0" y2="7" class="hatch-line"/></pattern></defs>"#
        );
        self
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, class: &str) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" class="{class}"/>"#,
            w.max(0.0),
            h.max(0.0)
        );
        self
    }

    /// A rectangle with an explicit fill, for series colours.
    pub fn rect_fill(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: &str,
        opacity: f64,
    ) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" fill-opacity="{opacity}" rx="2"/>"#,
            w.max(0.0),
            h.max(0.0)
        );
        self
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" class="{class}"/>"#
        );
        self
    }

    /// An open polyline through `pts`.
    pub fn polyline(&mut self, pts: &[(f64, f64)], stroke: &str, width: f64) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<polyline fill="none" stroke="{stroke}" stroke-width="{width}" stroke-linejoin="round" points=""#
        );
        for (x, y) in pts {
            let _ = write!(self.buf, "{x:.1},{y:.1} ");
        }
        self.buf.push_str(r#""/>"#);
        self
    }

    /// A filled area between `top` (left to right) and `bottom` (left to right).
    pub fn band(&mut self, top: &[(f64, f64)], bottom: &[(f64, f64)], fill: &str) -> &mut Svg {
        let _ = write!(self.buf, r#"<path fill="{fill}" d=""#);
        for (i, (x, y)) in top.iter().enumerate() {
            let _ = write!(self.buf, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" });
        }
        for (x, y) in bottom.iter().rev() {
            let _ = write!(self.buf, "L{x:.1},{y:.1}");
        }
        self.buf.push_str(r#"Z"/>"#);
        self
    }

    pub fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="{fill}"/>"#
        );
        self
    }

    /// Text; `anchor` is start, middle or end.
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, s: &str) -> &mut Svg {
        let _ = write!(
            self.buf,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            xml(s)
        );
        self
    }

    /// A `<title>` tooltip on the element written by `f`.
    pub fn titled(&mut self, title: &str, f: impl FnOnce(&mut Svg)) -> &mut Svg {
        self.buf.push_str("<g><title>");
        self.buf.push_str(&xml(title));
        self.buf.push_str("</title>");
        f(self);
        self.buf.push_str("</g>");
        self
    }

    pub fn finish(mut self) -> String {
        self.buf.push_str("</svg>");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            linear_ticks(0.0, 200.0, 4),
            [0.0, 50.0, 100.0, 150.0, 200.0]
        );
        assert_eq!(log_ticks(1_000.0, 20_000.0), [1e3, 2e3, 5e3, 1e4, 2e4]);
        assert_eq!(log_ticks(10.0, 1e7), [1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7]);
        assert_eq!((step_floor(700.0), step_ceil(700.0)), (500.0, 1000.0));
        assert_eq!((step_floor(2000.0), step_ceil(2000.0)), (2000.0, 2000.0));
        let s = Scale::log(1.0, 100.0, 0.0, 200.0);
        assert!((s.px(10.0) - 100.0).abs() < 1e-9);
        assert_eq!(s.px(0.0), 0.0, "below the range sits on the edge");
    }
}

//! latency/<metric>.hgrm: each histogram's percentile distribution in the
//! text format of Java HdrHistogram's
//! `outputPercentileDistribution(out, 5, 1000.0)`: values recorded in µs,
//! printed in ms. Being byte-for-byte that format is the point: the
//! HdrHistogram plotter (hdrhistogram.github.io/HdrHistogram/plotFiles.html)
//! and every tool built around it read these files as they are.

use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::check::Latencies;

/// Percentile ticks per half distance to 100 % (Java's usual 5).
pub const TICKS_PER_HALF: u32 = 5;
/// µs recorded, ms printed.
pub const OUTPUT_SCALE: f64 = 1000.0;

/// Writes one .hgrm per non-empty histogram into `dir` (created if needed).
pub fn write_dir(dir: &Path, latencies: &Latencies) -> std::io::Result<()> {
    if latencies.hists.values().all(|h| h.is_empty()) {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for (key, h) in latencies.hists.iter().filter(|(_, h)| !h.is_empty()) {
        let path = dir.join(format!("{}.hgrm", key.file_stem()));
        std::fs::write(path, render(h, TICKS_PER_HALF, OUTPUT_SCALE))?;
    }
    Ok(())
}

/// The percentile distribution of one histogram, as Java prints it.
pub fn render(h: &Histogram<u64>, ticks_per_half: u32, scale: f64) -> String {
    let digits = h.sigfig() as usize;
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(ticks_per_half) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / scale;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// Java's subBucketCount for a lowest discernible value of 1: the power of
/// two that holds 2·10^digits (2048 for 3 digits). The Rust crate keeps it
/// private.
fn sub_buckets(digits: u8) -> u64 {
    let largest = 2 * 10u64.pow(digits as u32);
    1 << (largest as f64).log2().ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::latency::new_histogram;

    /// The shape Java prints: the header, a first line at percentile 0, a
    /// last line at 1.0 without the 1/(1-p) column, and the footer.
    #[test]
    fn java_layout_in_milliseconds() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us * 100).unwrap();
        }
        let text = render(&h, 5, 1000.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       0.100 0.000000000000          1           1.00"
        );
        let at_half = lines
            .iter()
            .find(|l| l.contains(" 0.500000000000 "))
            .unwrap();
        assert_eq!(
            *at_half,
            "     500.223 0.500000000000       5002           2.00"
        );
        let last = lines.iter().rfind(|l| !l.starts_with('#')).unwrap();
        assert_eq!(*last, "    1000.447 1.000000000000      10000");
        assert_eq!(
            lines[lines.len() - 3],
            "#[Mean    =      500.052, StdDeviation   =      288.675]"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =     1000.447, Total count    =        10000]"
        );
        assert_eq!(
            lines[lines.len() - 1],
            "#[Buckets =           22, SubBuckets     =         2048]"
        );
    }
}

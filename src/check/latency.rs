//! Latency histograms (HdrHistogram, µs, 3 significant digits), one per
//! metric and per tag (fault kind, cohort), so a report can say "reconnects
//! after a blackhole in cohort edge" as well as "all reconnects".

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::verdict::MetricSummary;

/// Highest value recorded: one hour in µs (longer samples are clamped).
pub const MAX_US: u64 = 3_600_000_000;

/// A histogram's name: the metric and, for a tagged one, its tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricKey {
    /// One of [`super::rules::METRICS`]; static so a lookup allocates nothing.
    pub metric: &'static str,
    /// None: every sample; Some("fault:offline"), Some("cohort:edge").
    pub tag: Option<String>,
}

impl MetricKey {
    pub fn all(metric: &'static str) -> MetricKey {
        MetricKey { metric, tag: None }
    }

    /// A file-name-safe name: `reconnect`, `reconnect.fault-offline`.
    pub fn file_stem(&self) -> String {
        match &self.tag {
            None => self.metric.to_owned(),
            Some(t) => format!(
                "{}.{}",
                self.metric,
                t.chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    })
                    .collect::<String>()
            ),
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Every latency histogram of a run.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub hists: BTreeMap<MetricKey, Histogram<u64>>,
}

impl Latencies {
    /// Records one sample under the metric's overall histogram and under each tag.
    pub fn record(&mut self, metric: &'static str, tags: &[String], us: u64) {
        let v = us.clamp(1, MAX_US);
        let mut put = |key: MetricKey| match self.hists.get_mut(&key) {
            Some(h) => h.record(v).expect("clamped into range"),
            None => {
                let mut h = new_histogram();
                h.record(v).expect("clamped into range");
                self.hists.insert(key, h);
            }
        };
        put(MetricKey::all(metric));
        for t in tags {
            put(MetricKey {
                metric,
                tag: Some(t.clone()),
            });
        }
    }

    /// Adds another run's (or shard's) histograms exactly.
    pub fn merge(&mut self, other: &Latencies) {
        for (k, h) in &other.hists {
            self.hists
                .entry(k.clone())
                .or_insert_with(new_histogram)
                .add(h)
                .expect("same bounds");
        }
    }

    pub fn get(&self, metric: &str) -> Option<&Histogram<u64>> {
        self.hists
            .iter()
            .find(|(k, _)| k.metric == metric && k.tag.is_none())
            .map(|(_, h)| h)
    }

    pub fn summaries(&self) -> Vec<MetricSummary> {
        self.hists
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(k, h)| summarize(k, h))
            .collect()
    }
}

pub fn summarize(k: &MetricKey, h: &Histogram<u64>) -> MetricSummary {
    MetricSummary {
        metric: k.metric.to_owned(),
        tag: k.tag.clone(),
        count: h.len(),
        min: h.min(),
        mean: h.mean(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// The value of one statistic (`p99`, `max`, `count`...) of a histogram.
pub fn stat(h: &Histogram<u64>, stat: &str) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        "min" => h.min() as f64,
        "mean" => h.mean(),
        "p50" => h.value_at_quantile(0.50) as f64,
        "p90" => h.value_at_quantile(0.90) as f64,
        "p99" => h.value_at_quantile(0.99) as f64,
        "p999" => h.value_at_quantile(0.999) as f64,
        "max" => h.max() as f64,
        "count" => h.len() as f64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_and_overall_and_exact_merge() {
        let mut a = Latencies::default();
        a.record("reconnect", &["fault:offline".into()], 1_000);
        a.record("reconnect", &[], 3_000);
        let mut b = Latencies::default();
        b.record("reconnect", &[], 2_000);
        a.merge(&b);
        assert_eq!(a.get("reconnect").unwrap().len(), 3);
        let s = a.summaries();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].max, 3_001,
            "3 significant digits: 3000 lands in a bucket whose top is 3001"
        );
        assert_eq!(
            MetricKey {
                metric: "reconnect",
                tag: Some("fault:offline".into())
            }
            .file_stem(),
            "reconnect.fault-offline"
        );
    }
}

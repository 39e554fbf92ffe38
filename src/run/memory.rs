//! The harness's own memory over a run: what a soak is for besides the
//! verdict. A harness whose RSS keeps growing would fall over after enough
//! hours and, long before that, slow down and blame the server, so the run
//! reports how far its resident memory drifted between the start and the
//! end of the chat phase (the ramp is left out: connecting users is meant
//! to take memory).
//!
//! One sample a second (from run::load) is a few bytes; a day is 86,400 of
//! them, so they are simply kept.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// (µs on the run's clock, RSS in KiB), in time order.
pub type Samples = Arc<Mutex<Vec<(u64, u64)>>>;

pub fn push(samples: &Samples, t: u64, rss_kib: u64) {
    samples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((t, rss_kib));
}

/// How the harness's RSS moved over the chat phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryDrift {
    /// Samples inside the chat phase.
    pub samples: usize,
    /// Median RSS of the first and of the last 10 % of the chat phase, KiB
    /// (medians, so one allocation burst does not decide it).
    pub first_kib: u64,
    pub last_kib: u64,
    /// The highest sample of the whole run, KiB.
    pub peak_kib: u64,
    /// last / first − 1.
    pub drift: f64,
    /// The drift as a rate, KiB per hour (between the two windows' middles).
    pub kib_per_hour: f64,
}

impl MemoryDrift {
    /// From the run's samples and the chat phase's bounds (µs); None when
    /// the chat phase has fewer than two samples (a run under 2 s).
    pub fn from_samples(all: &[(u64, u64)], chat: (u64, u64)) -> Option<MemoryDrift> {
        let peak_kib = all.iter().map(|s| s.1).max()?;
        let window: Vec<(u64, u64)> = all
            .iter()
            .copied()
            .filter(|(t, _)| (chat.0..=chat.1).contains(t))
            .collect();
        if window.len() < 2 {
            return None;
        }
        let tenth = (window.len() / 10).max(1);
        let (head, tail) = (&window[..tenth], &window[window.len() - tenth..]);
        let first_kib = median(head);
        let last_kib = median(tail);
        let middle = |w: &[(u64, u64)]| (w[0].0 + w[w.len() - 1].0) as f64 / 2.0;
        let hours = (middle(tail) - middle(head)) / 3.6e9;
        Some(MemoryDrift {
            samples: window.len(),
            first_kib,
            last_kib,
            peak_kib,
            drift: last_kib as f64 / first_kib.max(1) as f64 - 1.0,
            kib_per_hour: if hours > 0.0 {
                (last_kib as f64 - first_kib as f64) / hours
            } else {
                0.0
            },
        })
    }

    /// One line for the end of a run. The hourly rate is left out of runs
    /// under ten minutes: extrapolated from seconds, the warm-up of the
    /// first minute (buffers, the checker's maps) would read as a leak.
    pub fn render(&self) -> String {
        let rate = if self.samples >= 600 {
            format!(", {:+.1} MiB/h", self.kib_per_hour / 1024.0)
        } else {
            String::new()
        };
        format!(
            "harness memory: RSS {} → {} over the chat phase ({:+.1} %{rate}; peak {})",
            mib(self.first_kib),
            mib(self.last_kib),
            self.drift * 100.0,
            mib(self.peak_kib),
        )
    }
}

fn median(w: &[(u64, u64)]) -> u64 {
    let mut v: Vec<u64> = w.iter().map(|s| s.1).collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// memory.csv: one line per second, for plotting a soak's memory.
pub fn write_csv(path: &Path, samples: &[(u64, u64)]) -> std::io::Result<()> {
    let mut out = String::from("second,rss_kib\n");
    for (t, kib) in samples {
        out += &format!("{:.0},{kib}\n", *t as f64 / 1e6);
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn drift_compares_the_ends_of_the_chat_phase() {
        // A ramp from 10 to 100 MiB, then 100 s of chat growing 1 MiB per 10 s.
        let mut all: Vec<(u64, u64)> = (0..10).map(|i| (i * S, 10_240 * (i + 1))).collect();
        all.extend((10..=110).map(|i| (i * S, 102_400 + (i - 10) / 10 * 1024)));
        let d = MemoryDrift::from_samples(&all, (10 * S, 110 * S)).unwrap();
        assert_eq!(d.samples, 101);
        assert_eq!(d.first_kib, 102_400, "the ramp is not counted");
        assert_eq!(d.last_kib, 102_400 + 9 * 1024);
        assert!((d.drift - 0.09).abs() < 1e-9, "{d:?}");
        // 9 MiB between window middles 91 s apart (14.5 s and 105.5 s): 356 MiB/h.
        assert!((d.kib_per_hour / 1024.0 - 356.0).abs() < 1.0, "{d:?}");
        assert_eq!(
            d.render(),
            "harness memory: RSS 100.0 MiB → 109.0 MiB over the chat phase (+9.0 %; peak 110.0 MiB)"
        );
        let mut long = d.clone();
        long.samples = 3600;
        assert!(long.render().contains("+9.0 %, +356."), "{}", long.render());
    }

    #[test]
    fn a_flat_run_has_no_drift_and_a_short_one_none() {
        let all: Vec<(u64, u64)> = (0..30).map(|i| (i * S, 50_000)).collect();
        let d = MemoryDrift::from_samples(&all, (0, 30 * S)).unwrap();
        assert_eq!((d.drift, d.kib_per_hour), (0.0, 0.0));
        assert!(MemoryDrift::from_samples(&all[..1], (0, 30 * S)).is_none());
        assert!(MemoryDrift::from_samples(&[], (0, 30 * S)).is_none());
    }
}

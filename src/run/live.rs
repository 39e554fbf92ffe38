//! The checker fed live from the recorder's writer thread: the same events
//! that go to history.jsonl, in the same order. It gives the progress display
//! its "violations so far", writes the .hlog intervals while the run goes,
//! and at the end is finished into the verdict without reading the file
//! again (tests check that reading the file gives the same verdict).

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crate::check::{Checker, Rules};
use crate::history::{Event, Header};
use crate::report::hlog::HlogWriter;
use crate::user::stats::Stats;

/// Seconds per .hlog interval.
const INTERVAL_S: u64 = 5;

pub struct LiveCheck {
    checker: Checker,
    hlog: Option<HlogWriter>,
    /// The run-clock second the current interval started at.
    interval_start: u64,
    stats: Arc<Stats>,
}

pub type Shared = Arc<Mutex<Option<LiveCheck>>>;

impl LiveCheck {
    pub fn start(dir: &Path, header: &Header, rules: Rules, stats: Arc<Stats>) -> Shared {
        let hlog = HlogWriter::create(&dir.join("latency.hlog"), header.started_at_ms)
            .map_err(|e| tracing::warn!("latency.hlog: {e}"))
            .ok();
        Arc::new(Mutex::new(Some(LiveCheck {
            checker: Checker::new(header, rules),
            hlog,
            interval_start: 0,
            stats,
        })))
    }

    /// The recorder's tap: every batch, then an interval line every few seconds.
    pub fn tap(shared: Shared, start: std::time::Instant) -> crate::history::recorder::Tap {
        Box::new(move |batch: &[Event]| {
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            let Some(live) = guard.as_mut() else { return };
            for e in batch {
                live.checker.observe(e);
            }
            live.stats
                .violations
                .store(live.checker.violations_so_far(), Relaxed);
            let now = start.elapsed().as_secs();
            if now >= live.interval_start + INTERVAL_S {
                live.write_interval(now);
            }
        })
    }

    fn write_interval(&mut self, now: u64) {
        let interval = self.checker.take_interval();
        if let Some(w) = self.hlog.as_mut() {
            let length = (now - self.interval_start) as f64;
            for (key, h) in interval.hists.iter().filter(|(_, h)| !h.is_empty()) {
                if let Err(e) = w.interval(key.metric, self.interval_start as f64, length, h) {
                    tracing::warn!("latency.hlog: {e}");
                    self.hlog = None;
                    break;
                }
            }
            if let Some(w) = self.hlog.as_mut() {
                let _ = w.flush();
            }
        }
        self.interval_start = now;
    }

    /// Writes the last interval and hands the checker over for the verdict.
    pub fn finish(shared: &Shared, elapsed_s: u64) -> Option<Checker> {
        let mut live = shared.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        live.write_interval(elapsed_s.max(live.interval_start + 1));
        Some(live.checker)
    }
}

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
use crate::report::hlog::IntervalLog;
use crate::user::stats::Stats;

pub struct LiveCheck {
    checker: Checker,
    hlog: IntervalLog,
    stats: Arc<Stats>,
}

pub type Shared = Arc<Mutex<Option<LiveCheck>>>;

impl LiveCheck {
    pub fn start(dir: &Path, header: &Header, rules: Rules, stats: Arc<Stats>) -> Shared {
        let hlog = IntervalLog::create(&dir.join("latency.hlog"), header.started_at_ms);
        Arc::new(Mutex::new(Some(LiveCheck {
            checker: Checker::new(header, rules),
            hlog,
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
            live.hlog.tick(&mut live.checker, start.elapsed().as_secs());
        })
    }

    /// Writes the last interval and hands the checker over for the verdict.
    pub fn finish(shared: &Shared, elapsed_s: u64) -> Option<Checker> {
        let mut live = shared.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        live.hlog.finish(&mut live.checker, elapsed_s);
        Some(live.checker)
    }
}

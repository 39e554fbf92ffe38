//! The threads the simulated users run on: one single-threaded tokio
//! runtime per core, each user on one of them for its whole life.
//!
//! On the run's own work-stealing runtime, two workers woke each other for
//! every burst of deliveries (a server broadcast reaches ten sockets at
//! once): one took the events, told the parked other that there was work,
//! the other woke, stole a task or found none, and parked again. At 5,000
//! deliveries a second that was about 11,000 voluntary context switches a
//! second per worker, a fifth of the harness's CPU in the scheduler
//! (`perf`, README "Fifth pass"). A user and its connection never need
//! another thread, so each thread here only wakes for its own sockets and
//! timers. The run's control (ramp, nemesis, drain, progress) stays on the
//! run's runtime.
//!
//! Each thread also measures its own event-loop lag: a user thread that
//! falls behind is what makes latencies suspect, and the run's runtime
//! cannot see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How often each thread checks how late its timer fires.
const TICK: Duration = Duration::from_millis(100);

/// How many user threads: one per core, or `RECONNOITER_USER_THREADS`.
pub fn count() -> usize {
    std::env::var("RECONNOITER_USER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The user threads of one run; stopped with [`UserThreads::stop`] (or
/// when dropped: each thread ends when its stop sender is gone).
pub struct UserThreads {
    /// Where users are spawned, round robin.
    handles: Vec<Handle>,
    /// Dropping one ends that thread's runtime (tasks still there are dropped).
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The worst lag (µs) any thread saw since it was last taken.
    lag_us: Arc<AtomicU64>,
}

impl UserThreads {
    /// Starts `count` threads (at least one).
    pub fn start(count: usize) -> std::io::Result<UserThreads> {
        let lag_us = Arc::new(AtomicU64::new(0));
        let mut threads = UserThreads {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
            lag_us: lag_us.clone(),
        };
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            threads.handles.push(runtime.handle().clone());
            let lag_us = lag_us.clone();
            threads.threads.push(
                std::thread::Builder::new()
                    .name(format!("users-{i}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            tokio::select! {
                                _ = stopped => {}
                                () = watch_lag(&lag_us) => {}
                            }
                        });
                    })?,
            );
            threads.stops.push(stop);
        }
        Ok(threads)
    }

    /// The runtime user `i` runs on.
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }

    /// The worst event-loop lag any user thread saw since the last call.
    pub fn lag(&self) -> Arc<AtomicU64> {
        self.lag_us.clone()
    }

    /// Ends every thread's runtime and waits for the threads.
    pub async fn stop(self) {
        drop(self.stops);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Raises `worst` to how late this thread's 100 ms timer fired.
async fn watch_lag(worst: &AtomicU64) {
    let mut expected = Instant::now() + TICK;
    loop {
        tokio::time::sleep_until(expected.into()).await;
        let now = Instant::now();
        worst.fetch_max(now.saturating_duration_since(expected).as_micros() as u64, Relaxed);
        expected = now + TICK;
    }
}

//! Watches the harness itself: how late a 100 ms timer fires (event-loop
//! lag) and how much CPU the process uses, recorded once a second as a
//! `load` event, so the checker can mark latencies as suspect when the
//! harness, not the server, was the bottleneck. Its resident memory goes
//! beside it as a `memory` event (and into `samples`), so a soak can show
//! whether the harness itself stays flat.

use std::time::{Duration, Instant};

use crate::history::{EventKind, Recorder};

const TICK: Duration = Duration::from_millis(100);

/// Runs until aborted.
pub async fn watch(recorder: Recorder, samples: super::memory::Samples) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut cpu_before = process_cpu();
    let mut wall_before = Instant::now();
    let mut worst = Duration::ZERO;
    let mut ticks = 0;
    let mut expected = Instant::now() + TICK;
    loop {
        tokio::time::sleep_until(expected.into()).await;
        let now = Instant::now();
        worst = worst.max(now.saturating_duration_since(expected));
        expected = now + TICK;
        ticks += 1;
        if ticks == 10 {
            let cpu = process_cpu();
            let wall = now.duration_since(wall_before).as_secs_f64();
            let share = match (cpu, cpu_before) {
                (Some(a), Some(b)) if wall > 0.0 => ((a - b) / wall / cores).clamp(0.0, 1.0),
                _ => 0.0,
            };
            recorder.record(
                u32::MAX,
                EventKind::Load {
                    lag_us: worst.as_micros() as u64,
                    cpu: (share * 1000.0).round() / 1000.0,
                },
            );
            if let Some(rss_kib) = rss_kib() {
                recorder.record(u32::MAX, EventKind::Memory { rss_kib });
                super::memory::push(&samples, recorder.now(), rss_kib);
            }
            (cpu_before, wall_before, worst, ticks) = (cpu, now, Duration::ZERO, 0);
        }
    }
}

/// The process's user + system CPU seconds, from /proc/self/stat (Linux).
fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// The process's resident set in KiB, from /proc/self/statm (Linux).
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * if page > 0 { page as u64 } else { 4096 } / 1024)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_cpu_time() {
        let a = super::process_cpu().expect("linux /proc");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(super::process_cpu().unwrap() >= a);
    }

    #[test]
    fn reads_its_own_resident_memory() {
        let kib = super::rss_kib().expect("linux /proc");
        assert!(kib > 100, "{kib} KiB");
    }
}

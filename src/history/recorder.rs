//! The recorder: users push events into a shared buffer; one writer thread
//! owns the file and drains the buffer every few milliseconds. A blocking
//! thread, not a task, because a slow disk must never stall the async workers
//! that answer pings; a polled buffer rather than a channel, because a
//! channel wakes the writer (a futex syscall) for every event, which the
//! benchmark showed as a visible share of the harness's CPU per message.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::event::{Event, EventKind, Header};

/// How often the writer drains the buffer.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// Sees every batch of events before it is written (an empty batch at least
/// every few milliseconds, so it can keep time): the live checker.
pub type Tap = Box<dyn FnMut(&[Event]) + Send>;

/// Cheap to clone; every user holds one.
#[derive(Clone)]
pub struct Recorder {
    /// Events not yet written; the writer swaps it for an empty one.
    buffer: Arc<Mutex<Vec<Event>>>,
    /// t = 0 of the run's monotonic clock.
    start: Instant,
}

/// Owns the writer thread; `finish` flushes and reports how many events were written.
pub struct RecorderHandle {
    thread: JoinHandle<std::io::Result<u64>>,
}

impl Recorder {
    /// Creates `path`, writes the header, and starts the writer thread.
    pub fn create(
        path: &Path,
        header: &Header,
        start: Instant,
    ) -> std::io::Result<(Recorder, RecorderHandle)> {
        Recorder::create_with_tap(path, header, start, None)
    }

    /// As [`Recorder::create`], with `tap` fed every batch on the writer thread.
    pub fn create_with_tap(
        path: &Path,
        header: &Header,
        start: Instant,
        mut tap: Option<Tap>,
    ) -> std::io::Result<(Recorder, RecorderHandle)> {
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        let buffer = Arc::new(Mutex::new(Vec::<Event>::new()));
        let shared = buffer.clone();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || {
                let mut n = 0u64;
                let mut batch = Vec::new();
                loop {
                    // Once the writer holds the only reference, nobody can
                    // record any more: one last drain and done.
                    let last = Arc::strong_count(&shared) == 1;
                    std::mem::swap(
                        &mut batch,
                        &mut *shared.lock().unwrap_or_else(|p| p.into_inner()),
                    );
                    if let Some(tap) = tap.as_mut() {
                        tap(&batch);
                    }
                    for event in batch.drain(..) {
                        serde_json::to_writer(&mut out, &event)?;
                        out.write_all(b"\n")?;
                        n += 1;
                    }
                    if last {
                        break;
                    }
                    std::thread::sleep(DRAIN_EVERY);
                }
                out.flush()?;
                Ok(n)
            })?;
        Ok((Recorder { buffer, start }, RecorderHandle { thread }))
    }

    /// Microseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Microseconds since the run started at `at`.
    pub fn at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    pub fn record(&self, user: u32, kind: EventKind) {
        let event = Event {
            t: self.now(),
            u: user,
            kind,
        };
        self.buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    pub fn start(&self) -> Instant {
        self.start
    }
}

impl RecorderHandle {
    /// Waits until every recorder clone is dropped and the file is flushed.
    pub fn finish(self) -> std::io::Result<u64> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("history writer panicked")))
    }
}

/// Reads a history file back: the header and the events, refusing other versions.
pub fn read(path: &Path) -> anyhow::Result<(Header, Vec<Event>)> {
    let mut events = Vec::new();
    let header = read_each(path, |_| Ok(()), |e| events.push(e.clone()))?;
    Ok((header, events))
}

/// Streams a history file: `on_header` sees the header first, then `on_event`
/// every event, without holding the file in memory (hours-long soak runs).
/// Events are lent, not given: they are parsed on a thread of their own
/// into reused batches (`history::events`).
pub fn read_each(
    path: &Path,
    on_header: impl FnOnce(&Header) -> anyhow::Result<()>,
    mut on_event: impl FnMut(&Event),
) -> anyhow::Result<Header> {
    let (header, reader) = super::events::open(path)?;
    on_header(&header)?;
    let mut events = super::events::Events::spawn(path, reader, 1, 0);
    while let Some(e) = events.head()? {
        on_event(e);
        events.pop();
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_header_and_events_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let header = Header {
            history_version: super::super::HISTORY_VERSION,
            run_id: "r".into(),
            scenario: "s".into(),
            seed: 1,
            started_at_ms: 0,
            users: 2,
            cohorts: Vec::new(),
            checks: Vec::new(),
            shard: None,
            start_at_ms: None,
            driver: None,
            reconnoiter_version: "0".into(),
        };
        let (rec, handle) = Recorder::create(&path, &header, Instant::now()).unwrap();
        rec.record(0, EventKind::Stopped);
        rec.clone().record(
            1,
            EventKind::Phase {
                name: "drain".into(),
            },
        );
        drop(rec);
        assert_eq!(handle.finish().unwrap(), 2);
        let (h, events) = read(&path).unwrap();
        assert_eq!(h.users, 2);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Stopped);
        assert!(events[0].t <= events[1].t);
    }
}

//! A history file's events, parsed on a thread of their own.
//!
//! Reading a history back (`report merge`, `check_file`) is mostly parsing
//! its lines (`cargo bench --bench checker`): on one thread, parsing and
//! checking took turns. Here a thread per file parses batches of lines while
//! the caller checks the batch before, so on two cores the two overlap, and
//! `report merge` parses every shard's file at once. Batches go back to the
//! parser when used, and each line is parsed over an event of a used batch
//! (`parse::event_into`), so the strings' memory is reused rather than
//! allocated and freed four times per delivery.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::Context;

use super::{Event, EventKind, HISTORY_VERSION, Header};

/// Events per batch: large enough that a channel's wake-up is rare, small
/// enough that the checker starts at once.
const BATCH: usize = 1024;

/// Batches in circulation: one being checked, one being parsed, one ready.
const BATCHES: usize = 3;

/// Opens a history file: its header, refused unless this version's, and
/// a reader at the first event (for [`Events::spawn`]).
pub fn open(path: &Path) -> anyhow::Result<(Header, BufReader<File>)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim().is_empty() {
        anyhow::bail!("{} is empty: not a history file", path.display());
    }
    let version = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("history_version")?.as_u64());
    if version != Some(HISTORY_VERSION as u64) {
        anyhow::bail!(
            "{} is history version {}, this reconnoiter reads version {HISTORY_VERSION} (re-run the scenario with this version)",
            path.display(),
            version.map_or("unknown".into(), |v| v.to_string()),
        );
    }
    let header = serde_json::from_str(&line)
        .with_context(|| format!("{}:1: history header", path.display()))?;
    Ok((header, reader))
}

#[derive(Default)]
struct Batch {
    /// Parsed events; past `len`, events of an earlier use, kept for their memory.
    events: Vec<Event>,
    len: usize,
}

/// The events of one history file after its header, in file order.
pub struct Events {
    /// Parsed batches, or the error that ended the file's reading.
    full: Receiver<anyhow::Result<Batch>>,
    /// Used batches, back to the parser.
    used: SyncSender<Batch>,
    /// The batch being read and the position in it.
    batch: Batch,
    at: usize,
}

impl Events {
    /// Parses `reader` (positioned after line `line`, the header) on a
    /// thread of its own, adding `offset` µs to every event's time; errors
    /// name `path` and the line.
    pub fn spawn(path: &Path, mut reader: BufReader<File>, mut line: usize, offset: u64) -> Events {
        let (full_tx, full) = sync_channel(BATCHES);
        let (used, used_rx) = sync_channel::<Batch>(BATCHES);
        for _ in 0..BATCHES {
            used.send(Batch::default()).expect("room for every batch");
        }
        let path = path.to_owned();
        std::thread::spawn(move || {
            let mut text = String::new();
            // Ends at the end of the file, at an error, or when the reader
            // dropped its `Events` (no batch comes back).
            while let Ok(mut batch) = used_rx.recv() {
                batch.len = 0;
                let mut end = false;
                while batch.len < BATCH {
                    text.clear();
                    line += 1;
                    let read = reader
                        .read_line(&mut text)
                        .with_context(|| format!("{}:{line}", path.display()));
                    match read {
                        Ok(0) => {
                            end = true;
                            break;
                        }
                        Ok(_) if text.trim().is_empty() => continue,
                        Ok(_) => {}
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            return;
                        }
                    }
                    if batch.len == batch.events.len() {
                        batch.events.push(Event {
                            t: 0,
                            u: 0,
                            kind: EventKind::Stopped,
                        });
                    }
                    let e = &mut batch.events[batch.len];
                    if let Err(err) = super::parse::event_into(&text, e) {
                        let err =
                            anyhow::Error::new(err).context(format!("{}:{line}", path.display()));
                        let _ = full_tx.send(Err(err));
                        return;
                    }
                    e.t += offset;
                    batch.len += 1;
                }
                let sent = batch.len == 0 || full_tx.send(Ok(batch)).is_ok();
                if !sent || end {
                    return;
                }
            }
        });
        Events {
            full,
            used,
            batch: Batch::default(),
            at: 0,
        }
    }

    /// The next event, waiting for its batch if need be; `None` at the end.
    pub fn head(&mut self) -> anyhow::Result<Option<&Event>> {
        if self.at == self.batch.len {
            let used = std::mem::take(&mut self.batch);
            if !used.events.is_empty() {
                // Fails only once the parser has finished: nothing to reuse then.
                let _ = self.used.send(used);
            }
            self.at = 0;
            match self.full.recv() {
                Ok(batch) => self.batch = batch?,
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(&self.batch.events[self.at]))
    }

    /// The event `head` returned last, if it has not been popped.
    pub fn peeked(&self) -> Option<&Event> {
        (self.at < self.batch.len).then(|| &self.batch.events[self.at])
    }

    /// Moves past the head.
    pub fn pop(&mut self) {
        if self.at < self.batch.len {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn events_of(text: &str, offset: u64) -> Events {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.rewind().unwrap();
        Events::spawn(Path::new("h.jsonl"), BufReader::new(f), 1, offset)
    }

    /// Every event in order across batch boundaries, blank lines skipped,
    /// the offset added; the end stays the end.
    #[test]
    fn reads_every_event_in_order_across_batches() {
        let n = BATCH * 2 + 7;
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                r#"{{"t":{i},"u":{},"ev":"sent","temp_id":"x{i}","conversation":"c","scheduled":{i}}}"#,
                i % 5
            ));
            text.push('\n');
            if i % 100 == 0 {
                text.push('\n');
            }
        }
        let mut events = events_of(&text, 1_000);
        for i in 0..n {
            let e = events.head().unwrap().expect("an event").clone();
            assert_eq!(events.peeked().map(|p| p.t), Some(e.t));
            assert_eq!(e.t, i as u64 + 1_000);
            match e.kind {
                EventKind::Sent { temp_id, .. } => assert_eq!(temp_id, format!("x{i}")),
                other => panic!("{other:?}"),
            }
            events.pop();
        }
        assert!(events.head().unwrap().is_none());
        assert!(events.head().unwrap().is_none());
        assert!(events.peeked().is_none());
    }

    /// A bad line ends the reading with an error naming its file and line.
    #[test]
    fn a_bad_line_is_an_error_naming_its_line() {
        let text = "{\"t\":1,\"u\":0,\"ev\":\"stopped\"}\n\n{\"t\":2,\"u\":0,\"ev\":\"nope\"}\n";
        let mut events = events_of(text, 0);
        // The header is line 1, so the bad line is line 4.
        let err = loop {
            match events.head() {
                Ok(Some(_)) => events.pop(),
                Ok(None) => panic!("no error"),
                Err(e) => break format!("{e:#}"),
            }
        };
        assert!(err.starts_with("h.jsonl:4: "), "{err}");
    }
}

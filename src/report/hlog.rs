//! HdrHistogram interval logs (.hlog): one line per metric per interval,
//! written while the run goes, so a soak test's drift can be read (and
//! plotted with the usual HdrHistogram tools) even if the run never ends.
//!
//! The format is HdrHistogram's log format v1.3: a `#[StartTime: ...]`
//! comment, the CSV legend, then `Tag=METRIC,start,length,max,HISTFAAA...`
//! lines with V2 deflate-compressed histograms in base64. Values are µs; the
//! max column is in µs too (max value divisor 1).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};

pub struct HlogWriter {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
    buf: Vec<u8>,
}

impl HlogWriter {
    /// Creates the file and writes the header; `start_ms` is the run's wall-clock t = 0.
    pub fn create(path: &Path, start_ms: i64) -> std::io::Result<HlogWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "#[Histogram log format version 1.3]")?;
        writeln!(
            out,
            "#[reconnoiter latency intervals, values in microseconds]"
        )?;
        writeln!(
            out,
            "#[StartTime: {:.3} (seconds since epoch)]",
            start_ms as f64 / 1e3
        )?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        Ok(HlogWriter {
            out,
            serializer: V2DeflateSerializer::new(),
            buf: Vec::new(),
        })
    }

    /// One interval of one metric; `start` and `length` in seconds since t = 0.
    pub fn interval(
        &mut self,
        tag: &str,
        start: f64,
        length: f64,
        h: &Histogram<u64>,
    ) -> std::io::Result<()> {
        self.buf.clear();
        self.serializer
            .serialize(h, &mut self.buf)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        writeln!(
            self.out,
            "Tag={tag},{start:.3},{length:.3},{}.0,{}",
            h.max(),
            base64::engine::general_purpose::STANDARD.encode(&self.buf)
        )
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Seconds per interval.
pub const INTERVAL_S: u64 = 5;

/// latency.hlog written from a checker as its clock passes each interval:
/// live from the run's wall clock, and by `report merge` from the merged
/// history's event times, so a sharded run's log is the union's intervals
/// exactly. A write error stops the log (with a warning), never the run.
pub struct IntervalLog {
    writer: Option<HlogWriter>,
    /// The second (since t = 0) the current interval started at.
    start: u64,
}

impl IntervalLog {
    pub fn create(path: &Path, start_ms: i64) -> IntervalLog {
        let writer = HlogWriter::create(path, start_ms)
            .map_err(|e| tracing::warn!("{}: {e}", path.display()))
            .ok();
        IntervalLog { writer, start: 0 }
    }

    /// At second `now`: the interval's samples written if it is over.
    pub fn tick(&mut self, checker: &mut crate::check::Checker, now: u64) {
        if now >= self.start + INTERVAL_S {
            self.write(checker, now);
        }
    }

    /// The last interval, up to second `end` (at least one second long).
    pub fn finish(&mut self, checker: &mut crate::check::Checker, end: u64) {
        self.write(checker, end.max(self.start + 1));
    }

    fn write(&mut self, checker: &mut crate::check::Checker, now: u64) {
        let interval = checker.take_interval();
        if let Some(w) = self.writer.as_mut() {
            let length = (now - self.start) as f64;
            let written = interval
                .hists
                .iter()
                .filter(|(_, h)| !h.is_empty())
                .try_for_each(|(key, h)| w.interval(key.metric, self.start as f64, length, h))
                .and_then(|()| w.flush());
            if let Err(e) = written {
                tracing::warn!("latency.hlog: {e}");
                self.writer = None;
            }
        }
        self.start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn hdrhistogram_reads_back_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.hlog");
        let mut w = HlogWriter::create(&path, 1_700_000_000_000).unwrap();
        let mut h = crate::check::latency::new_histogram();
        h.record(1_500).unwrap();
        h.record(250_000).unwrap();
        w.interval("reconnect", 0.0, 5.0, &h).unwrap();
        w.interval("delivery", 5.0, 5.0, &h).unwrap();
        w.flush().unwrap();
        let text = std::fs::read(&path).unwrap();
        let mut tags = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            match entry.unwrap() {
                LogEntry::StartTime(s) => assert!((s.as_secs_f64() - 1.7e9).abs() < 1.0),
                LogEntry::Interval(i) => {
                    tags.push(i.tag().unwrap().as_str().to_owned());
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram())
                        .unwrap();
                    let back: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                        .deserialize(&mut &bytes[..])
                        .unwrap();
                    assert_eq!(back.len(), 2);
                }
                _ => {}
            }
        }
        assert_eq!(tags, ["reconnect", "delivery"]);
    }
}

//! violations.csv: one row per violation kept with evidence (the first
//! `EVIDENCE_CAP` of each kind; the exact counts are in summary.json), for a
//! spreadsheet or `grep`. Times are seconds on the run's clock, the same
//! clock as history.jsonl's `t` (µs) divided by a million.

use std::path::Path;

use crate::check::Violation;

pub const HEADER: [&str; 8] = [
    "kind",
    "t_seconds",
    "message_id",
    "temp_id",
    "sender",
    "recipient",
    "conversation",
    "explanation",
];

pub fn write(path: &Path, violations: &[Violation]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(HEADER)?;
    for v in violations {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        w.write_record([
            v.kind.name().to_owned(),
            format!("{:.6}", v.t as f64 / 1e6),
            opt(&v.message_id),
            opt(&v.temp_id),
            opt(&v.sender),
            opt(&v.recipient),
            opt(&v.conversation),
            v.explanation.clone(),
        ])?;
    }
    w.flush()
}

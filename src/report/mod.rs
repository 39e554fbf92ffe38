//! What a run leaves for people and CI to read, written from the summary
//! (the verdict inside it) and the latency histograms. One file per format:
//!
//! | file | module |
//! |---|---|
//! | summary.json | [`summary`] (schema: schemas/summary.schema.json) |
//! | summary.md | [`markdown`] |
//! | junit.xml | [`junit`] |
//! | violations.csv | [`violations_csv`] |
//! | timeline.csv | [`timeline_csv`] |
//! | latency/*.hgrm | [`hgrm`] |
//! | latency.hlog | [`hlog`] (written live by run/live.rs; by [`merge`] from the merged history) |
//! | report.html | [`html`] |
//!
//! Also here: [`progress`], what a run shows while it goes;
//! [`compare`], `report compare` for gating a release on a baseline; and
//! [`merge`], `report merge` for shards.

pub mod capacity;
pub mod compare;
mod escape;
pub mod hgrm;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod progress;
pub mod summary;
pub mod timeline_csv;
pub mod violations_csv;

use std::path::Path;

use crate::check::Latencies;
use summary::Summary;

/// Writes every report file of a run into `dir`. summary.json comes first:
/// it is what `report show`/`compare` and CI read. A file that cannot be
/// written does not stop the others; the first error is returned.
pub fn write_all(dir: &Path, summary: &Summary, latencies: &Latencies) -> std::io::Result<()> {
    let results = [
        summary.write(dir),
        std::fs::write(dir.join("summary.md"), markdown::render(summary)),
        std::fs::write(dir.join("junit.xml"), junit::render(summary)),
        violations_csv::write(&dir.join("violations.csv"), &summary.verdict.violations),
        timeline_csv::write(&dir.join("timeline.csv"), &summary.verdict.timeline),
        hgrm::write_dir(&dir.join("latency"), latencies),
        std::fs::write(dir.join("report.html"), html::render(summary, latencies)),
    ];
    results.into_iter().collect()
}

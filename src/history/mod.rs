//! The history: an append-only record of what every user saw and did, the
//! only input of the checker. Users never judge; they only record.
//!
//! On disk it is JSON lines (`history.jsonl`): a [`Header`] line, then one
//! [`Event`] per line, timestamps in microseconds on the run's monotonic
//! clock. JSON lines because shards append independently, `grep` and `jq`
//! read them, and a killed run still leaves every line written so far.

pub mod event;
pub mod events;
pub mod parse;
pub mod recorder;

pub use event::{Event, EventKind, HISTORY_VERSION, Header, Shard, Via};
pub use recorder::Recorder;

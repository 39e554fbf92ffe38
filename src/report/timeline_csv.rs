//! timeline.csv: the run second by second (users by state, traffic,
//! violations, active faults, reconnect and delivery percentiles), to plot
//! in a spreadsheet or line up with a server's own metrics. Latencies are
//! milliseconds here, since that is what people plot; empty where no sample
//! completed in that second.

use std::path::Path;

use crate::check::verdict::TimelineRow;

pub const HEADER: [&str; 12] = [
    "second",
    "connected",
    "reconnecting",
    "offline",
    "sends",
    "deliveries",
    "violations",
    "active_faults",
    "reconnect_p50_ms",
    "reconnect_p99_ms",
    "delivery_p50_ms",
    "delivery_p99_ms",
];

pub fn write(path: &Path, rows: &[TimelineRow]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(HEADER)?;
    let ms = |v: Option<u64>| v.map_or(String::new(), |us| format!("{:.3}", us as f64 / 1e3));
    for r in rows {
        w.write_record([
            r.second.to_string(),
            r.connected.to_string(),
            r.reconnecting.to_string(),
            r.offline.to_string(),
            r.sends.to_string(),
            r.deliveries.to_string(),
            r.violations.to_string(),
            r.active_faults.join(";"),
            ms(r.reconnect_p50),
            ms(r.reconnect_p99),
            ms(r.delivery_p50),
            ms(r.delivery_p99),
        ])?;
    }
    w.flush()
}

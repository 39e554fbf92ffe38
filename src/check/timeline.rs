//! The run second by second, built while the checker reads the history:
//! users by state, sends, deliveries, violations, active faults and the
//! reconnect and delivery percentiles of that second. One row per second and
//! two reusable histograms, so memory grows with the run's length in seconds,
//! not with its traffic.

use std::collections::BTreeSet;

use hdrhistogram::Histogram;

use super::latency::{MAX_US, new_histogram};
use super::verdict::TimelineRow;

pub struct Timeline {
    pub rows: Vec<TimelineRow>,
    /// The second being filled.
    current: u32,
    /// Gauges carried from second to second.
    pub connected: i64,
    pub reconnecting: i64,
    pub offline: i64,
    /// Faults active now, and those that began during the current second.
    active: BTreeSet<String>,
    touched: BTreeSet<String>,
    reconnect: Histogram<u64>,
    delivery: Histogram<u64>,
}

impl Timeline {
    pub fn new(users: u32) -> Timeline {
        Timeline {
            rows: Vec::new(),
            current: 0,
            connected: 0,
            reconnecting: 0,
            offline: users as i64,
            active: BTreeSet::new(),
            touched: BTreeSet::new(),
            reconnect: new_histogram(),
            delivery: new_histogram(),
        }
    }

    /// Moves the clock to `t` (µs), closing every second before it.
    pub fn advance(&mut self, t: u64) {
        let s = (t / 1_000_000) as u32;
        while self.current < s {
            self.close();
        }
    }

    fn close(&mut self) {
        let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        let mut faults: BTreeSet<String> = self.active.clone();
        faults.append(&mut self.touched);
        let (connected, reconnecting, offline) = (
            self.connected.max(0) as u32,
            self.reconnecting.max(0) as u32,
            self.offline.max(0) as u32,
        );
        let row = self.row_mut(self.current);
        row.connected = connected;
        row.reconnecting = reconnecting;
        row.offline = offline;
        row.active_faults = faults.into_iter().collect();
        let (r50, r99, d50, d99) = (
            q(&self.reconnect, 0.5),
            q(&self.reconnect, 0.99),
            q(&self.delivery, 0.5),
            q(&self.delivery, 0.99),
        );
        let row = self.row_mut(self.current);
        row.reconnect_p50 = r50;
        row.reconnect_p99 = r99;
        row.delivery_p50 = d50;
        row.delivery_p99 = d99;
        self.reconnect.reset();
        self.delivery.reset();
        self.current += 1;
    }

    /// The row of second `s`, created on demand (late events land in their own second).
    fn row_mut(&mut self, s: u32) -> &mut TimelineRow {
        while self.rows.len() <= s as usize {
            let second = self.rows.len() as u32;
            self.rows.push(TimelineRow {
                second,
                ..TimelineRow::default()
            });
        }
        &mut self.rows[s as usize]
    }

    fn at(&mut self, t: u64) -> &mut TimelineRow {
        self.row_mut((t / 1_000_000) as u32)
    }

    pub fn send(&mut self, t: u64) {
        self.at(t).sends += 1;
    }

    pub fn delivery(&mut self, t: u64, latency: Option<u64>) {
        self.at(t).deliveries += 1;
        if let Some(us) = latency {
            let _ = self.delivery.record(us.clamp(1, MAX_US));
        }
    }

    pub fn reconnected(&mut self, us: u64) {
        let _ = self.reconnect.record(us.clamp(1, MAX_US));
    }

    pub fn violation(&mut self, t: u64) {
        self.at(t).violations += 1;
    }

    pub fn fault_started(&mut self, name: String) {
        self.touched.insert(name.clone());
        self.active.insert(name);
    }

    pub fn fault_ended(&mut self, name: &str) {
        self.active.remove(name);
    }

    /// Closes the last second and hands the rows over.
    pub fn finish(mut self, end: u64) -> Vec<TimelineRow> {
        self.advance(end);
        self.close();
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_carry_gauges_and_count_their_own_traffic() {
        let mut t = Timeline::new(2);
        t.advance(100);
        t.offline -= 1;
        t.connected += 1;
        t.send(200);
        t.delivery(300, Some(1_000));
        t.fault_started("offline:edge".into());
        t.advance(2_500_000);
        t.fault_ended("offline:edge");
        let rows = t.finish(2_600_000);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].connected, rows[0].offline, rows[0].sends),
            (1, 1, 1)
        );
        assert_eq!(rows[0].delivery_p50, Some(1_000));
        assert_eq!(rows[1].active_faults, vec!["offline:edge".to_string()]);
        assert!(rows[2].active_faults.is_empty());
        assert_eq!(rows[1].delivery_p50, None);
    }
}

//! Hand-built summaries for the report tests: one with a violation of every
//! kind (and every optional field both set and unset somewhere), so each
//! format is exercised on everything a verdict can hold, without a run.
#![allow(dead_code)]

use std::path::Path;

use reconnoiter::check::verdict::{
    Counts, Excluded, GuaranteeResult, HarnessHealth, MetricSummary, ThresholdResult, TimelineRow,
};
use reconnoiter::check::{Guarantee, Latencies, Mode, Verdict, Violation};
use reconnoiter::report::summary::{SUMMARY_VERSION, Summary};
use reconnoiter::user::stats::StatsSnapshot;

/// A violation of `kind` with every id set (or none, for the odd ones).
fn violation(kind: Guarantee, i: u64) -> Violation {
    let full = i.is_multiple_of(2);
    let s = |v: &str| full.then(|| v.to_owned());
    Violation {
        kind,
        explanation: format!(
            "u{i} saw m{i} in c1 | a \"quoted\" <tag> & comma, {}",
            kind.name()
        ),
        t: 1_500_000 + i * 1_000_000,
        message_id: s(&format!("m{i}")),
        temp_id: s(&format!("u3-{i}")),
        sender: s("u3"),
        recipient: Some(format!("u{i}")),
        conversation: s("c1"),
        evidence: vec![format!(r#"{{"t":{i},"u":{i},"ev":"delivered"}}"#)],
    }
}

/// Every kind violated; duplicates allowed; one threshold missed, one met,
/// one without samples; the harness suspect; some of everything excluded.
pub fn every_kind() -> Summary {
    let guarantees = Guarantee::ALL
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mode = if *g == Guarantee::Duplicates {
                Mode::Allow
            } else {
                Mode::Fail
            };
            GuaranteeResult {
                guarantee: *g,
                mode,
                violations: i as u64 + 1,
                passed: mode == Mode::Allow,
            }
        })
        .collect();
    let violations = Guarantee::ALL
        .iter()
        .enumerate()
        .flat_map(|(i, g)| (0..=i as u64).map(move |j| violation(*g, j)))
        .collect();
    let metric = |name: &str, tag: Option<&str>, base: u64| MetricSummary {
        metric: name.into(),
        tag: tag.map(str::to_owned),
        count: 40,
        min: base / 2,
        mean: base as f64 * 1.1,
        p50: base,
        p90: base * 2,
        p99: base * 4,
        p999: base * 5,
        max: base * 6,
    };
    let mut s = Summary {
        summary_version: SUMMARY_VERSION,
        run_id: "every-kind-20250101-120000-abcd".into(),
        scenario: "every-kind".into(),
        seed: 7,
        target: "http://127.0.0.1:3000".into(),
        users: 10,
        conversations: 2,
        members: 5,
        started_at: "2025-01-01T12:00:00.250+00:00".into(),
        elapsed_seconds: 12.5,
        interrupted: false,
        drained: false,
        fault_failures: vec![],
        faults_cut_users_off: false,
        live: StatsSnapshot {
            connected: 9,
            offline: 1,
            logged_in: 10,
            sent: 50,
            acked: 48,
            delivered: 230,
            expected: 240,
            outbox: 2,
            ..Default::default()
        },
        driver: Default::default(),
        history_events: 1234,
        verdict: Verdict {
            guarantees,
            violations,
            excluded: Excluded {
                membership_in_flight: 1,
                forfeited_by_removal: 2,
                auth_in_flight: 3,
                unordered_deliveries: 4,
                without_temp_id: 5,
                interrupted_pairs: 0,
                recipient_offline: 6,
                sender_gave_up: 7,
                before_run: 8,
            },
            counts: Counts {
                events: 1234,
                users: 10,
                sent: 50,
                accepted: 48,
                acked: 48,
                owed: 240,
                delivered: 230,
                redelivered: 3,
                connects: 14,
                reconnects: 4,
                disconnects: 4,
                recovered: 4,
                faults: 2,
                outlived_blackholes: 1,
                ..Default::default()
            },
            metrics: vec![
                metric("reconnect", None, 900_000),
                metric("reconnect", Some("fault:offline"), 1_200_000),
                metric("delivery", None, 2_000),
                metric("handshake.tcp", None, 150),
            ],
            thresholds: vec![
                ThresholdResult {
                    name: "reconnect.p99".into(),
                    op: "<".into(),
                    limit: 3_000_000.0,
                    actual: Some(3_600_000.0),
                    passed: false,
                },
                ThresholdResult {
                    name: "delivery.p50".into(),
                    op: "<=".into(),
                    limit: 250_000.0,
                    actual: Some(2_000.0),
                    passed: true,
                },
                ThresholdResult {
                    name: "recovery.count".into(),
                    op: "<".into(),
                    limit: 100.0,
                    actual: None,
                    passed: true,
                },
            ],
            harness: HarnessHealth {
                lag_p99: 60_000,
                lag_max: 120_000,
                cpu_max: 0.95,
                cpu_saturated_seconds: 3,
                suspect: true,
                severe: false,
                reasons: vec!["event-loop lag p99 60 ms".into()],
            },
            timeline: (0..12)
                .map(|s| TimelineRow {
                    second: s,
                    connected: if (4..7).contains(&s) { 5 } else { 10 },
                    reconnecting: if (4..7).contains(&s) { 4 } else { 0 },
                    offline: if (4..7).contains(&s) { 1 } else { 0 },
                    sends: 4,
                    deliveries: 19,
                    violations: u32::from(s == 5),
                    active_faults: if (4..7).contains(&s) {
                        vec!["offline:edge".into(), "server-restart".into()]
                    } else {
                        vec![]
                    },
                    reconnect_p50: (s == 7).then_some(900_000),
                    reconnect_p99: (s == 7).then_some(1_900_000),
                    delivery_p50: Some(2_000),
                    delivery_p99: Some(9_000),
                })
                .collect(),
        },
        status: String::new(),
        exit_code: 0,
    };
    s.decide();
    s
}

/// A run where everything held.
pub fn passing() -> Summary {
    let mut s = every_kind();
    s.run_id = "passing-20250101-120000-0001".into();
    s.drained = true;
    let v = &mut s.verdict;
    for g in &mut v.guarantees {
        g.violations = 0;
        g.passed = true;
    }
    v.violations.clear();
    v.thresholds.retain(|t| t.passed);
    v.harness = HarnessHealth::default();
    s.decide();
    s
}

/// Histograms to go with the summaries (three metrics, one tagged).
pub fn latencies() -> Latencies {
    let mut l = Latencies::default();
    for i in 1..=200u64 {
        l.record("reconnect", &["fault:offline".into()], 500_000 + i * 7_000);
        l.record("delivery", &[], 800 + i * i * 3);
        l.record("handshake.tcp", &[], 100 + i);
    }
    l
}

/// Writes `s` as `dir/summary.json` (creating `dir`).
pub fn write(dir: &Path, s: &Summary) {
    std::fs::create_dir_all(dir).unwrap();
    s.write(dir).unwrap();
}

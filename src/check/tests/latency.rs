//! Latency metrics, thresholds and the harness's own health.

use super::*;

#[test]
fn latencies_from_loss_fault_heal_and_recovery_with_thresholds() {
    let cohort = "all".to_string();
    let offline = NetEffect::Offline {
        mode: OfflineMode::Refuse,
    };
    let h = [
        connected(10, 0),
        fault(
            900_000,
            "begin",
            FaultKind::Offline,
            Action::NetStart {
                cohort: cohort.clone(),
                effect: offline.clone(),
            },
        ),
        ev(
            S,
            0,
            EventKind::Disconnected {
                reason: "transport close".into(),
            },
        ),
        fault(
            1_200_000,
            "done",
            FaultKind::Offline,
            Action::NetHeal {
                cohort: cohort.clone(),
                effect: offline.clone(),
            },
        ),
        connected(1_500_000, 0),
        ev(
            2 * S,
            0,
            EventKind::Recovered {
                rejoined: 1,
                synced: 0,
                resent: 0,
            },
        ),
    ];
    let mut rules = Rules::default();
    rules.set("reconnect.p99", "< 100ms").unwrap();
    rules.set("recovery.max", "< 2s").unwrap();
    let (v, lat) = check_with(1, rules, Ending::default(), &h);
    let get = |m: &str| {
        v.metrics
            .iter()
            .find(|s| s.metric == m && s.tag.is_none())
            .unwrap()
            .max
    };
    let near = |a: u64, b: u64| a.abs_diff(b) * 100 <= b;
    assert!(near(get("reconnect"), 500_000), "{}", get("reconnect"));
    assert!(near(get("recovery"), 1_000_000));
    assert!(near(get("detection"), 100_000));
    assert!(near(get("heal_to_recovery"), 800_000));
    assert!(
        lat.hists
            .keys()
            .any(|k| k.metric == "reconnect" && k.tag.as_deref() == Some("fault:offline"))
    );
    assert_eq!(v.thresholds.len(), 2);
    assert!(
        !v.thresholds
            .iter()
            .find(|t| t.name == "reconnect.p99")
            .unwrap()
            .passed
    );
    assert!(
        v.thresholds
            .iter()
            .find(|t| t.name == "recovery.max")
            .unwrap()
            .passed
    );
    assert!(v.thresholds_missed() && !v.violated());
    assert!(
        v.timeline
            .iter()
            .any(|r| r.active_faults.iter().any(|f| f == "offline:all"))
    );
}

#[test]
fn a_lagging_harness_makes_its_latencies_suspect() {
    let mut h = vec![connected(10, 0)];
    for s in 0..10 {
        h.push(ev(
            s * S,
            H,
            EventKind::Load {
                lag_us: 800_000,
                cpu: 0.99,
            },
        ));
    }
    let v = check(1, &h);
    assert!(v.harness.suspect && v.harness.severe, "{:?}", v.harness);
    let v = check(
        1,
        &[
            connected(10, 0),
            ev(
                S,
                H,
                EventKind::Load {
                    lag_us: 2_000,
                    cpu: 0.2,
                },
            ),
        ],
    );
    assert!(!v.harness.suspect);
}

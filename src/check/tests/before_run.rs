//! Messages the server stored before the run began: history, not phantoms.

use super::*;

/// A server that outlives runs: what it stored before this run comes back
/// on a sync (seq below this run's), and is history, not a phantom.
#[test]
fn a_message_stored_before_the_run_is_history_not_a_phantom() {
    let synced = |mut e: Event| {
        if let EventKind::Delivered { via, .. } = &mut e.kind {
            *via = Via::Sync;
        }
        e
    };
    // m1 is this run's (seq 5); m0 (seq 4, an earlier run's temp_id) was
    // fetched by u1's sync, and replayed live to u2 (an old offline queue,
    // on joining: before m1).
    let mut h = one_message(&[]);
    for e in h.iter_mut() {
        if let EventKind::Delivered { seq, .. } = &mut e.kind {
            *seq = Some(5);
        }
    }
    h.push(synced(delivered(
        300,
        1,
        "m0",
        "u0-0.0ld",
        "c0",
        "u0",
        Some(4),
    )));
    h.push(delivered(150, 2, "m0", "u0-0.0ld", "c0", "u0", Some(4)));
    h.sort_by_key(|e| e.t);
    let v = check(3, &h);
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert_eq!(v.excluded.before_run, 1, "one message");
    assert_eq!(v.counts.owed, 3, "only m1 is owed");
    assert_eq!(v.counts.accepted, 1);
    assert_eq!(v.counts.delivered_before_run, 2, "u1's and u2's copies");
    assert_eq!(
        v.counts.deliveries(),
        "3/3 (+0 repeats, +2 from before the run)"
    );

    // A seq above this run's first is no history: an invention.
    let mut h = one_message(&[]);
    h.push(synced(delivered(
        300,
        1,
        "m9",
        "ghost",
        "c0",
        "u0",
        Some(2),
    )));
    assert_eq!(check(3, &h).kinds(), vec![Guarantee::Phantoms]);

    // Where this run stored nothing: a sync's fetch is history, a live
    // delivery nobody sent is a phantom.
    let mut h = vec![members("c0", &[0, 1, 2]), members("c1", &[0, 1, 2])];
    h.extend(one_message(&[]).into_iter().skip(1));
    h.push(synced(delivered(
        300,
        1,
        "m7",
        "u2-3.0ld",
        "c1",
        "u2",
        Some(7),
    )));
    let v = check(3, &h);
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert_eq!(v.excluded.before_run, 1);
    h.push(delivered(300, 1, "m8", "u2-4.0ld", "c1", "u2", Some(8)));
    assert_eq!(check(3, &h).kinds(), vec![Guarantee::Phantoms]);
}

/// A message carrying this run's tag is this run's, whatever its seq: one
/// no send claims (here attributed to u1, who sent nothing) is a phantom,
/// never history. An earlier run's tag, same seq, is history.
#[test]
fn a_message_with_this_runs_tag_is_never_history() {
    let with = |temp: &str| {
        let mut h = retagged(one_message(&[]), Some(5));
        h.push(delivered(150, 2, "m0", temp, "c0", "u1", Some(4)));
        h.sort_by_key(|e| e.t);
        check(3, &h)
    };
    let v = with("u1-0.t4g");
    assert_eq!(v.kinds(), vec![Guarantee::Phantoms], "{:?}", v.violations);
    assert_eq!(v.excluded.before_run, 0);
    let v = with("u1-0.0ld");
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert_eq!(v.excluded.before_run, 1);
}

/// A server that numbers nothing: no seq to compare, so only a temp_id an
/// earlier run of this harness wrote (another tag) marks history, synced
/// or replayed live; a message without that shape, or with this run's tag,
/// is still a phantom.
#[test]
fn without_seq_only_an_earlier_runs_temp_id_is_history() {
    let with = |temp: &str| {
        let mut h = retagged(one_message(&[]), None);
        h.push(delivered(150, 2, "m0", temp, "c0", "u1", None));
        h.sort_by_key(|e| e.t);
        check(3, &h)
    };
    for old in ["u1-0.0ld", "u1-17.5eed7a95"] {
        let v = with(old);
        assert!(v.kinds().is_empty(), "{old}: {:?}", v.violations);
        assert_eq!(v.excluded.before_run, 1, "{old}");
        assert_eq!(v.counts.owed, 3, "only m1 is owed");
    }
    for invented in [
        "u1-0.t4g",
        "phantom-m0",
        "u1.0ld",
        "-0.0ld",
        "u1-x.0ld",
        "u1-0.",
    ] {
        let v = with(invented);
        assert_eq!(
            v.kinds(),
            vec![Guarantee::Phantoms],
            "{invented}: {:?}",
            v.violations
        );
        assert_eq!(v.excluded.before_run, 0, "{invented}");
    }
}

/// `one_message`'s send as this run's (`u0-0.t4g`), its deliveries with `seq`.
fn retagged(h: Vec<Event>, seq: Option<i64>) -> Vec<Event> {
    h.into_iter()
        .map(|mut e| {
            match &mut e.kind {
                EventKind::Sent { temp_id, .. } | EventKind::Acked { temp_id, .. } => {
                    *temp_id = "u0-0.t4g".into()
                }
                EventKind::Delivered {
                    temp_id, seq: s, ..
                } => {
                    *temp_id = Some("u0-0.t4g".into());
                    *s = seq;
                }
                _ => {}
            }
            e
        })
        .collect()
}

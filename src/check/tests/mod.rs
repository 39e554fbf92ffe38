//! The checker on hand-written histories: each guarantee broken once and
//! kept once, and the ambiguous moments it must count instead of guess.

mod before_run;
mod latency;
mod sources;

use super::*;
use crate::history::Via;
use crate::scenario::{Action, Cohort, NetEffect, OfflineMode};

const H: u32 = u32::MAX;
const S: u64 = 1_000_000;
/// Wall-clock ms at t = 0.
const START_MS: i64 = 1_700_000_000_000;

fn header(users: u32) -> Header {
    Header {
        history_version: crate::history::HISTORY_VERSION,
        run_id: "t".into(),
        scenario: "t".into(),
        seed: 1,
        started_at_ms: START_MS,
        users,
        cohorts: vec![Cohort {
            name: "all".into(),
            first: 0,
            count: users,
        }],
        reconnoiter_version: "0".into(),
        checks: Vec::new(),
        shard: None,
        start_at_ms: None,
        driver: None,
    }
}

fn ev(t: u64, u: u32, kind: EventKind) -> Event {
    Event { t, u, kind }
}

fn members(c: &str, users: &[u32]) -> Event {
    ev(
        0,
        H,
        EventKind::Members {
            conversation: c.into(),
            users: users.to_vec(),
        },
    )
}

fn sent(t: u64, u: u32, temp: &str, c: &str) -> Event {
    ev(
        t,
        u,
        EventKind::Sent {
            temp_id: temp.into(),
            conversation: c.into(),
            scheduled: t,
        },
    )
}

fn acked(t: u64, u: u32, temp: &str, c: &str, id: &str) -> Event {
    ev(
        t,
        u,
        EventKind::Acked {
            temp_id: temp.into(),
            conversation: c.into(),
            id: id.into(),
            seq: None,
        },
    )
}

fn delivered(
    t: u64,
    u: u32,
    id: &str,
    temp: &str,
    c: &str,
    sender: &str,
    seq: Option<i64>,
) -> Event {
    ev(
        t,
        u,
        EventKind::Delivered {
            id: id.into(),
            temp_id: Some(temp.into()),
            conversation: c.into(),
            sender: sender.into(),
            seq,
            via: Via::Live,
            dup: false,
        },
    )
}

fn connected(t: u64, u: u32) -> Event {
    ev(
        t,
        u,
        EventKind::Connected {
            attempt: 1,
            sid: "s".into(),
            tcp: 10,
            upgrade: 10,
            open: 10,
            connect: 10,
            recovered: false,
        },
    )
}

fn stopped(t: u64, u: u32) -> Event {
    ev(t, u, EventKind::Stopped)
}

fn fault(t: u64, phase: &str, kind: FaultKind, action: Action) -> Event {
    ev(
        t,
        H,
        EventKind::Fault {
            fault: 0,
            kind,
            phase: phase.into(),
            action,
            error: None,
        },
    )
}

fn check_with(users: u32, rules: Rules, ending: Ending, events: &[Event]) -> (Verdict, Latencies) {
    let mut c = Checker::new(&header(users), rules);
    for e in events {
        c.observe(e);
    }
    c.finish(ending)
}

fn check(users: u32, events: &[Event]) -> Verdict {
    check_with(users, Rules::default(), Ending::default(), events).0
}

/// Three members of c0, all connected; u0 sends m1 and everyone gets it,
/// except the members listed in `missing`.
fn one_message(missing: &[u32]) -> Vec<Event> {
    let mut h = vec![members("c0", &[0, 1, 2])];
    for u in 0..3 {
        h.push(connected(10, u));
    }
    h.push(sent(100, 0, "u0-0", "c0"));
    for u in 0..3 {
        if !missing.contains(&u) {
            h.push(delivered(200, u, "m1", "u0-0", "c0", "u0", Some(1)));
        }
    }
    h.push(acked(250, 0, "u0-0", "c0", "m1"));
    for u in 0..3 {
        h.push(stopped(10 * S, u));
    }
    h
}

#[test]
fn a_clean_history_passes_with_exact_counts() {
    let v = check(3, &one_message(&[]));
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert!(!v.violated());
    assert_eq!(
        (
            v.counts.sent,
            v.counts.accepted,
            v.counts.owed,
            v.counts.delivered
        ),
        (1, 1, 3, 3)
    );
    assert_eq!(
        v.metrics
            .iter()
            .find(|m| m.metric == "delivery")
            .unwrap()
            .count,
        3
    );
}

#[test]
fn a_member_without_the_message_is_a_loss_with_evidence() {
    let v = check(3, &one_message(&[2]));
    assert_eq!(v.kinds(), vec![Guarantee::Loss]);
    assert_eq!(v.count(Guarantee::Loss), 1);
    let viol = &v.violations[0];
    assert_eq!(viol.recipient.as_deref(), Some("u2"));
    assert_eq!(viol.message_id.as_deref(), Some("m1"));
    assert!(
        viol.explanation.contains("never received m1"),
        "{}",
        viol.explanation
    );
    assert!(!viol.evidence.is_empty(), "the recipient's recent events");
}

#[test]
fn interrupted_runs_and_users_who_never_came_back_are_not_judged_for_loss() {
    let (v, _) = check_with(
        3,
        Rules::default(),
        Ending { interrupted: true },
        &one_message(&[2]),
    );
    assert!(v.kinds().is_empty());
    assert_eq!(v.excluded.interrupted_pairs, 1);

    let mut h = one_message(&[2]);
    h.push(ev(
        300,
        2,
        EventKind::Disconnected {
            reason: "transport close".into(),
        },
    ));
    h.push(ev(400, 2, EventKind::ReconnectFailed { attempts: 3 }));
    let v = check(3, &h);
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert_eq!(v.excluded.recipient_offline, 1);
}

#[test]
fn two_ids_for_one_send_and_one_id_shown_twice_are_duplicates() {
    let mut h = one_message(&[]);
    // The same send stored again as m2 (a resend the server did not recognise).
    for u in 0..3 {
        h.push(delivered(300, u, "m2", "u0-0", "c0", "u0", Some(2)));
    }
    let v = check(3, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Duplicates]);
    assert_eq!(
        v.count(Guarantee::Duplicates),
        1,
        "one stored duplicate, counted once"
    );
    assert!(v.violations[0].explanation.contains("stored twice"));

    let mut h = one_message(&[]);
    h.push(delivered(300, 1, "m1", "u0-0", "c0", "u0", Some(1)));
    let v = check(3, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Duplicates]);
    assert!(v.violations[0].explanation.contains("more than once"));
    assert_eq!(v.counts.redelivered, 1);

    let rules = {
        let mut r = Rules::default();
        r.set("duplicates", "allow").unwrap();
        r
    };
    let (v, _) = check_with(3, rules, Ending::default(), &h);
    assert!(!v.violated(), "allowed duplicates are reported, not failed");
    assert_eq!(v.count(Guarantee::Duplicates), 1);
}

#[test]
fn a_resend_under_a_new_temp_id_stored_twice_is_one_send_stored_twice() {
    let mut h = vec![members("c0", &[0, 1]), connected(1, 0), connected(1, 1)];
    h.push(sent(100, 0, "u0-0", "c0"));
    h.push(delivered(150, 1, "m1", "u0-0", "c0", "u0", Some(1)));
    h.push(delivered(150, 0, "m1", "u0-0", "c0", "u0", Some(1)));
    // The ack was lost; the guide's client resends under a fresh temp_id.
    h.push(ev(
        400,
        0,
        EventKind::Renamed {
            old_temp_id: "u0-0".into(),
            temp_id: "u0-1".into(),
        },
    ));
    h.push(acked(500, 0, "u0-1", "c0", "m2"));
    h.push(delivered(450, 1, "m2", "u0-1", "c0", "u0", Some(2)));
    h.push(delivered(450, 0, "m2", "u0-1", "c0", "u0", Some(2)));
    let v = check(2, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Duplicates]);
}

#[test]
fn a_message_nobody_sent_is_a_phantom_and_nothing_else() {
    let mut h = one_message(&[]);
    h.push(delivered(300, 1, "m9", "ghost-1", "c0", "u0", Some(2)));
    h.push(delivered(300, 2, "m9", "ghost-1", "c0", "u0", Some(2)));
    let v = check(3, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Phantoms]);
    assert_eq!(
        v.count(Guarantee::Phantoms),
        1,
        "one per message, not per recipient"
    );
}

#[test]
fn going_backwards_on_one_connection_breaks_order_but_a_new_connection_starts_over() {
    let mut h = vec![members("c0", &[0, 1]), connected(1, 0), connected(1, 1)];
    h.push(sent(100, 0, "u0-0", "c0"));
    h.push(sent(110, 0, "u0-1", "c0"));
    h.push(delivered(200, 1, "m2", "u0-1", "c0", "u0", Some(2)));
    h.push(delivered(210, 1, "m1", "u0-0", "c0", "u0", Some(1)));
    h.push(delivered(200, 0, "m1", "u0-0", "c0", "u0", Some(1)));
    h.push(delivered(210, 0, "m2", "u0-1", "c0", "u0", Some(2)));
    let v = check(2, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Order]);
    assert_eq!(v.violations[0].recipient.as_deref(), Some("u1"));

    let mut h = vec![members("c0", &[0, 1]), connected(1, 0), connected(1, 1)];
    h.push(sent(100, 0, "u0-0", "c0"));
    h.push(sent(110, 0, "u0-1", "c0"));
    h.push(delivered(200, 1, "m2", "u0-1", "c0", "u0", Some(2)));
    h.push(ev(
        220,
        1,
        EventKind::Disconnected {
            reason: "transport close".into(),
        },
    ));
    h.push(connected(300, 1));
    h.push(delivered(310, 1, "m1", "u0-0", "c0", "u0", Some(1)));
    h.push(delivered(200, 0, "m1", "u0-0", "c0", "u0", Some(1)));
    h.push(delivered(210, 0, "m2", "u0-1", "c0", "u0", Some(2)));
    assert!(
        check(2, &h).kinds().is_empty(),
        "a queued replay on a new connection"
    );
}

#[test]
fn membership_windows_decide_leaks_and_count_what_was_in_flight() {
    let pair = || vec![("c0".to_string(), 2u32)];
    let mut h = vec![members("c0", &[0, 1, 2])];
    for u in 0..3 {
        h.push(connected(1, u));
    }
    // Before the removal: u2 is owed m1 but never gets it (forfeited).
    h.push(sent(100, 0, "u0-0", "c0"));
    h.push(acked(150, 0, "u0-0", "c0", "m1"));
    h.push(delivered(150, 0, "m1", "u0-0", "c0", "u0", None));
    h.push(delivered(150, 1, "m1", "u0-0", "c0", "u0", None));
    h.push(fault(
        S,
        "begin",
        FaultKind::Membership,
        Action::RemoveMembers { pairs: pair() },
    ));
    // Accepted while the removal call was in flight: undecided.
    h.push(sent(S + 10, 0, "u0-1", "c0"));
    h.push(acked(S + 20, 0, "u0-1", "c0", "m2"));
    h.push(delivered(S + 20, 0, "m2", "u0-1", "c0", "u0", None));
    h.push(delivered(S + 20, 1, "m2", "u0-1", "c0", "u0", None));
    h.push(delivered(S + 20, 2, "m2", "u0-1", "c0", "u0", None));
    h.push(fault(
        S + 50,
        "done",
        FaultKind::Membership,
        Action::RemoveMembers { pairs: pair() },
    ));
    // After: u2 must not get it.
    h.push(sent(2 * S, 0, "u0-2", "c0"));
    h.push(acked(2 * S + 10, 0, "u0-2", "c0", "m3"));
    h.push(delivered(2 * S + 10, 0, "m3", "u0-2", "c0", "u0", None));
    h.push(delivered(2 * S + 10, 1, "m3", "u0-2", "c0", "u0", None));
    h.push(delivered(2 * S + 10, 2, "m3", "u0-2", "c0", "u0", None));
    // A user never in the roster.
    h.push(delivered(2 * S + 10, 3, "m3", "u0-2", "c0", "u0", None));
    for u in 0..4 {
        h.push(stopped(5 * S, u));
    }
    let v = check(4, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Leaks]);
    assert_eq!(
        v.count(Guarantee::Leaks),
        2,
        "u2 after its removal, u3 ever"
    );
    assert_eq!(v.excluded.membership_in_flight, 1, "m2 to u2");
    assert_eq!(v.excluded.forfeited_by_removal, 1, "m1 to u2");
    assert_eq!(v.count(Guarantee::Loss), 0);
    // Deliveries owed: m1 to u0-u2 (u2's forfeited), m2 and m3 to u0, u1.
    // m2 to u2 (in flight) and m3 to u2 and u3 (leaks) came unowed.
    assert_eq!(v.counts.owed, 7);
    assert_eq!(v.counts.delivered, 9);
    assert_eq!(v.counts.delivered_owed, Some(6));
    assert_eq!(
        v.counts.deliveries(),
        "6/7 (+0 repeats, +3 not owed: membership changing or leaked)"
    );
}

#[test]
fn a_send_never_accepted_is_stranded_unless_it_was_delivered() {
    let mut h = vec![members("c0", &[0, 1]), connected(1, 0), connected(1, 1)];
    h.push(sent(100, 0, "u0-0", "c0"));
    h.push(sent(110, 0, "u0-1", "c0"));
    // u0-1 was stored (its ack lost at the stop): accepted, not stranded.
    h.push(delivered(200, 1, "m1", "u0-1", "c0", "u0", None));
    h.push(delivered(200, 0, "m1", "u0-1", "c0", "u0", None));
    for t in ["u0-0", "u0-1"] {
        h.push(ev(
            300,
            0,
            EventKind::Stranded {
                temp_id: t.into(),
                conversation: "c0".into(),
            },
        ));
    }
    let v = check(2, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Stranded]);
    assert_eq!(v.count(Guarantee::Stranded), 1);
    assert_eq!(v.violations[0].temp_id.as_deref(), Some("u0-0"));
}

#[test]
fn sends_of_a_client_that_gave_up_are_excluded_not_stranded() {
    let mut h = vec![members("c0", &[0, 1]), connected(1, 0), connected(1, 1)];
    h.push(ev(
        50,
        0,
        EventKind::Disconnected {
            reason: "transport close".into(),
        },
    ));
    h.push(sent(100, 0, "u0-0", "c0"));
    h.push(ev(200, 0, EventKind::ReconnectFailed { attempts: 2 }));
    h.push(ev(
        300,
        0,
        EventKind::Stranded {
            temp_id: "u0-0".into(),
            conversation: "c0".into(),
        },
    ));
    let v = check(2, &h);
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert_eq!(v.excluded.sender_gave_up, 1);
}

#[test]
fn an_expired_or_revoked_token_accepted_is_an_auth_violation() {
    let login = |t: u64, exp_ms: i64| {
        ev(
            t,
            0,
            EventKind::LoggedIn {
                expires_at_ms: exp_ms,
            },
        )
    };
    let attempt = |t: u64| {
        ev(
            t,
            0,
            EventKind::Connecting {
                attempt: 1,
                scheduled: t,
            },
        )
    };
    // Expired 2 s before the attempt (beyond the 1 s skew).
    let h = [
        login(0, START_MS + 1_000),
        attempt(3 * S),
        connected(3 * S + 500, 0),
    ];
    let v = check(1, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Auth]);
    assert!(v.violations[0].explanation.contains("expired"));
    // Still valid at the attempt: fine.
    assert!(
        check(
            1,
            &[
                login(0, START_MS + 60_000),
                attempt(S),
                connected(S + 10, 0)
            ]
        )
        .kinds()
        .is_empty()
    );
    // Expiring while the attempt was in flight: counted, not judged.
    let v = check(
        1,
        &[
            login(0, START_MS + 3_000),
            attempt(3 * S),
            connected(3 * S + 100, 0),
        ],
    );
    assert!(v.kinds().is_empty());
    assert_eq!(v.excluded.auth_in_flight, 1);
    // Revoked at 2 s; the old token is accepted at 3 s.
    let revoke = || Action::Revoke { users: vec![0] };
    let h = [
        login(0, START_MS + 600_000),
        fault(2 * S, "begin", FaultKind::TokenExpiry, revoke()),
        fault(2 * S + 10, "done", FaultKind::TokenExpiry, revoke()),
        attempt(3 * S),
        connected(3 * S + 10, 0),
    ];
    let v = check(1, &h);
    assert_eq!(v.kinds(), vec![Guarantee::Auth]);
    assert!(v.violations[0].explanation.contains("revoked"));
    // A fresh token after the revocation is fine.
    let h = [
        login(0, START_MS + 600_000),
        fault(2 * S, "begin", FaultKind::TokenExpiry, revoke()),
        fault(2 * S + 10, "done", FaultKind::TokenExpiry, revoke()),
        ev(
            2 * S + 500,
            0,
            EventKind::TokenRefreshed {
                expires_at_ms: START_MS + 600_000,
            },
        ),
        attempt(3 * S),
        connected(3 * S + 10, 0),
    ];
    assert!(check(1, &h).kinds().is_empty());
}

//! The four scenario shapes (offline flapping, token expiry, a server crash
//! with queued messages, membership removal) and many outstanding acks, run
//! with `[users] driver = "rust_socketio"` against the reference server. The
//! verdicts are asserted as they come out: where rust_socketio 0.6 gets stuck
//! or mixes up acks, the test asserts exactly that finding, and the same
//! scenario with the native driver passes, so the finding is the library's
//! and not the server's (docs/rust_socketio-findings.md).

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::history::{Event, EventKind};
use reconnoiter::report::summary::Summary;
use reconnoiter::user::rust_socketio::PANICKED;

/// Runs `scenario` with `driver` in place of `DRIVER`; the summary and the history.
async fn run(scenario: &str, driver: &str) -> (Summary, Vec<Event>) {
    let text = scenario.replace("DRIVER", driver);
    let plan = reconnoiter::scenario::parse(Path::new("driver.toml"), &text).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let outcome = reconnoiter::run::run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.exit.code(), outcome.summary.exit_code);
    let (header, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    assert_eq!(header.driver.as_deref(), Some(driver));
    assert_eq!(outcome.summary.driver.name, driver);
    (outcome.summary, events)
}

fn of_user(events: &[Event]) -> HashMap<u32, Vec<&Event>> {
    let mut m: HashMap<u32, Vec<&Event>> = HashMap::new();
    for e in events {
        m.entry(e.u).or_default().push(e);
    }
    m
}

/// Every `duplicates` violation's send was delivered under at most one id:
/// the server stored it once; the other id is an ack answer gone astray.
fn assert_stored_once(s: &Summary, events: &[Event]) {
    let mut ids: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for e in events {
        if let EventKind::Delivered {
            id,
            temp_id: Some(t),
            sender,
            ..
        } = &e.kind
        {
            ids.entry((sender, t)).or_default().insert(id);
        }
    }
    for v in s
        .verdict
        .violations
        .iter()
        .filter(|v| v.kind == Guarantee::Duplicates)
    {
        let key = (
            v.sender.as_deref().unwrap_or_default(),
            v.temp_id.as_deref().unwrap_or_default(),
        );
        assert!(
            ids.get(&key).is_none_or(|i| i.len() <= 1),
            "the server stored {key:?} as {:?}: {}",
            ids.get(&key),
            v.explanation
        );
    }
}

/// Every violation but `duplicates` (see [`assert_stored_once`]) is about
/// one of `users`: what they missed (loss) or what they sent.
fn assert_only_about(s: &Summary, events: &[Event], users: &BTreeSet<String>) {
    for v in s
        .verdict
        .violations
        .iter()
        .filter(|v| v.kind != Guarantee::Duplicates)
    {
        let who = match v.kind {
            Guarantee::Loss => v.recipient.as_ref(),
            _ => v.sender.as_ref(),
        };
        assert!(
            who.is_some_and(|u| users.contains(u)),
            "{} is not about a stuck user ({users:?}); what {} did:\n{}",
            v.explanation,
            who.map_or("nobody", String::as_str),
            who.map(|u| what_they_did(events, u)).unwrap_or_default()
        );
    }
}

/// A user's connection and recovery events, one per line: the evidence a
/// failure here needs (the run's folder is a temporary one, gone by then).
fn what_they_did(events: &[Event], user: &str) -> String {
    let Some(u) = user.strip_prefix('u').and_then(|n| n.parse::<u32>().ok()) else {
        return String::new();
    };
    events
        .iter()
        .filter(|e| e.u == u || e.u == u32::MAX)
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::Delivered { .. }
                    | EventKind::Sent { .. }
                    | EventKind::Acked { .. }
                    | EventKind::Emitted { .. }
                    | EventKind::Load { .. }
                    | EventKind::Memory { .. }
            )
        })
        .map(|e| format!("  {:.6}s {:?}\n", e.t as f64 / 1e6, e.kind))
        .collect()
}

/// What rust_socketio's random ack ids may do to any run (see the acks
/// test), and nothing more: duplicates the server stored once, and loss or
/// stranded sends about a user whose task panicked (reported `stuck`) or
/// one of `also`. Returns the users whose task panicked.
fn assert_only_collision_harm(
    s: &Summary,
    events: &[Event],
    also: &BTreeSet<String>,
) -> BTreeSet<String> {
    assert!(
        s.verdict.kinds().iter().all(|k| matches!(
            k,
            Guarantee::Duplicates | Guarantee::Loss | Guarantee::Stranded
        )),
        "{}",
        s.render()
    );
    assert_stored_once(s, events);
    let deaf = stuck_users(events, PANICKED);
    assert!(s.live.stuck >= deaf.len() as u64, "{}", s.render());
    assert_only_about(s, events, &deaf.union(also).cloned().collect());
    deaf
}

/// Users with a `stuck` event, as the checker names them ("u7").
fn stuck_users(events: &[Event], op: &str) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Stuck { op: o, .. } if o.contains(op)))
        .map(|e| format!("u{}", e.u))
        .collect()
}

fn assert_passes(s: &Summary) {
    assert!(s.verdict.kinds().is_empty(), "{}", s.render());
    assert_eq!(s.exit(), Exit::Pass, "{}", s.render());
    assert_eq!(s.live.stuck, 0, "{}", s.render());
}

/// Ten users flap between refused and blackholed (3 s down, 3 s up); the
/// heartbeat is 1 s + 1 s, so each blackhole is noticed while it lasts.
const FLAPPING: &str = r#"
[run]
duration = "12s"
drain = "4s"
seed = 7
[target]
ping_interval = "1s"
ping_timeout = "1s"
[users]
count = 20
conversations = 2
members = 10
send_rate = "1/s"
driver = "DRIVER"
[users.reconnection]
timeout = "2s"
[[cohorts]]
name = "flaky"
users = 10
[[faults]]
kind = "flapping"
cohort = "flaky"
modes = ["refuse", "blackhole"]
down = "3s"
up = "3s"
at = "1s"
for = "9s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_flapping_leaves_rust_socketio_stuck_in_a_blackholed_attempt() {
    let (s, events) = run(FLAPPING, "rust_socketio").await;
    // The library's reconnection attempt that began inside the blackhole
    // has no timeout: it never ends, not even after the heal. Those users
    // never receive what the others send (loss) and never get their own
    // outbox accepted (stranded); the driver reports them stuck. Its random
    // ack ids may also collide among the resends (duplicates the server did
    // not cause: one full e2e run of 2026-11-29 had one), as in the acks test.
    let mut kinds = s.verdict.kinds();
    kinds.retain(|k| *k != Guarantee::Duplicates);
    assert_eq!(
        kinds,
        vec![Guarantee::Loss, Guarantee::Stranded],
        "{}",
        s.render()
    );
    assert_eq!(s.exit(), Exit::Violation);
    let stuck = stuck_users(&events, "no per-attempt timeout");
    assert!(!stuck.is_empty(), "{}", s.render());
    assert!(s.live.stuck >= stuck.len() as u64);
    // At the end of the run, disconnect() cannot stop a client that is
    // reconnecting: each stuck user is reported stuck a second time. So
    // may be a user the library had not brought back yet whose attempt had
    // not outlived the driver's watchdog (7 s) when the run stopped (CI,
    // 2026-11-29: u5).
    let at_end = stuck_users(&events, "disconnect while reconnecting");
    assert!(stuck.is_subset(&at_end), "{stuck:?} {at_end:?}");
    // Only the flapping cohort (u0..u9) can be stuck, and every violation
    // is about a stuck user: the server lost nothing. (A user whose
    // library task panicked, see the restart test, is reported stuck too,
    // and may be any user.)
    assert!(
        at_end.iter().all(|u| u[1..].parse::<u32>().unwrap() < 10),
        "{at_end:?}"
    );
    let deaf = assert_only_collision_harm(&s, &events, &at_end);
    let not_back: BTreeSet<String> = at_end.union(&deaf).cloned().collect();
    // The users who were not stuck came back from every outage.
    let users = of_user(&events);
    for u in (0..10).filter(|u| !not_back.contains(&format!("u{u}"))) {
        assert!(
            users[&u]
                .iter()
                .any(|e| matches!(e.kind, EventKind::Recovered { .. })),
            "u{u} never recovered"
        );
    }

    // Side by side: the native driver's attempts time out after 2 s and
    // the same flapping passes.
    let (native, _) = run(FLAPPING, "native").await;
    assert_passes(&native);
    assert!(native.verdict.counts.reconnects >= 10);
}

/// The first ten users' tokens are revoked at 1 s (not expired: the
/// library presents them again), then the server crashes at 3 s.
const TOKEN_EXPIRY: &str = r#"
[run]
duration = "7s"
drain = "6s"
seed = 5
[target]
[users]
count = 20
conversations = 2
members = 10
send_rate = "1/s"
driver = "DRIVER"
[users.reconnection]
timeout = "2s"
[[cohorts]]
name = "revoked"
users = 10
[[faults]]
kind = "token-expiry"
cohort = "revoked"
users = "100%"
at = "1s"
[[faults]]
kind = "server-restart"
mode = "crash"
at = "3s"
down = "500ms"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_refusals_reach_the_driver_and_everyone_comes_back() {
    let (s, events) = run(TOKEN_EXPIRY, "rust_socketio").await;
    // As everywhere with this library, its colliding ack ids may make its
    // task panic (finding 4); that user is reported stuck and excused from
    // the rest. Without a panic the run passes.
    let deaf = assert_only_collision_harm(&s, &events, &BTreeSet::new());
    if deaf.is_empty() {
        assert_passes(&s);
    }
    let users = of_user(&events);
    for u in (0..10).filter(|u| !deaf.contains(&format!("u{u}"))) {
        let evs = &users[&u];
        // The library hands CONNECT_ERROR to its `error` callback and stops
        // reconnecting; the driver sees the refusal, the user logs in again
        // and a new client connects.
        let refused = evs
            .iter()
            .position(|e| matches!(e.kind, EventKind::ConnectFailed { refused: true, .. }))
            .unwrap_or_else(|| panic!("u{u} was never refused its revoked token"));
        assert!(
            evs[refused..]
                .iter()
                .any(|e| matches!(e.kind, EventKind::LoggedIn { .. })),
            "u{u} did not log in again"
        );
        assert!(
            evs[refused..]
                .iter()
                .any(|e| matches!(e.kind, EventKind::Recovered { .. })),
            "u{u} never came back"
        );
    }
    // The others were never refused.
    for u in 10..20 {
        assert!(
            !users[&u]
                .iter()
                .any(|e| matches!(e.kind, EventKind::ConnectFailed { refused: true, .. })),
            "u{u} was refused"
        );
    }
}

/// A crash (SIGKILL, 2 s down) and a graceful restart; users rely on the
/// server's replay of what it queued for them (`sync = "none"`).
const RESTART: &str = r#"
[run]
duration = "8s"
drain = "8s"
seed = 9
[target]
[users]
count = 20
conversations = 2
members = 10
send_rate = "2/s"
sync = "none"
driver = "DRIVER"
[users.reconnection]
timeout = "2s"
[[faults]]
kind = "server-restart"
mode = "crash"
at = "2s"
down = "2s"
[[faults]]
kind = "server-restart"
mode = "graceful"
at = "6s"
down = "500ms"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restarts_with_queued_messages_are_recovered_by_the_library() {
    let (s, events) = run(RESTART, "rust_socketio").await;
    // Usually a pass. The resends after each restart put several acks in
    // flight, and the library's random ack ids sometimes collide: one send
    // "acked" with another's id (duplicates the server did not cause), or
    // its ack-removal panic, which kills the client's task (CI, 2026-11-29:
    // u13 deaf from 7.1 s, 41 losses). Every other violation must be about
    // a user whose death the driver saw and reported as stuck.
    let stuck = stuck_users(&events, "");
    assert!(s.live.stuck >= stuck.len() as u64, "{}", s.render());
    assert_only_collision_harm(&s, &events, &stuck);
    // Every user was cut off by the crash and came back on the library's own
    // reconnection, which only shows itself through on_reconnect.
    assert!(
        s.verdict.counts.reconnects >= 20 - stuck.len() as u64,
        "{}",
        s.render()
    );
    let users = of_user(&events);
    for u in (0..20).filter(|u| !stuck.contains(&format!("u{u}"))) {
        let evs = &users[&u];
        assert!(
            evs.iter().any(|e| matches!(
                &e.kind,
                EventKind::Disconnected { reason } if reason == reconnoiter::user::rust_socketio::RECONNECTING
            )),
            "u{u}"
        );
        assert!(
            evs.iter()
                .any(|e| matches!(e.kind, EventKind::Recovered { .. })),
            "u{u} never recovered"
        );
    }
    // Nothing came by REST: the queue the server replays is what delivered.
    assert!(events.iter().all(|e| !matches!(
        e.kind,
        EventKind::Delivered {
            via: reconnoiter::history::Via::Sync,
            ..
        }
    )));
    // What the driver cannot see is said, not invented.
    let partial: Vec<&str> = s.driver.partial.iter().map(|p| p.figure.as_str()).collect();
    assert!(partial.contains(&"connect_failures"), "{partial:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::ConnectFailed { error, .. } if error.contains("reports no reason")))
    );
}

/// Four members of the first cohort are removed at 1 s; the cohort's
/// connections are reset at 2 s, so they reconnect and rejoin.
const MEMBERSHIP: &str = r#"
[run]
duration = "8s"
drain = "6s"
seed = 4
[target]
ping_interval = "1s"
ping_timeout = "1s"
[users]
count = 20
conversations = 2
members = 10
send_rate = "1/s"
driver = "DRIVER"
[users.reconnection]
timeout = "2s"
[[cohorts]]
name = "moved"
users = 10
[[faults]]
kind = "membership"
cohort = "moved"
users = 4
at = "1s"
[[faults]]
kind = "offline"
cohort = "moved"
mode = "reset"
at = "2s"
for = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_removal_holds_with_the_library() {
    let (s, events) = run(MEMBERSHIP, "rust_socketio").await;
    // The guarantees hold. A user may still be stuck: in one full e2e run
    // (2026-11-29) 2 of 20 were, the library's own finding (an attempt
    // with no timeout, or a disconnect it cannot do while reconnecting;
    // see the flapping test), never seen when this test runs alone. Such a
    // user must be reported by a `stuck` event. The only violations allowed
    // are what the library's colliding ack ids do (restart test): sends
    // "acked" with another's id that the server stored once, and what a
    // client whose task panicked missed or could not send. Never a leak.
    assert_only_collision_harm(&s, &events, &BTreeSet::new());
    if s.verdict.kinds().is_empty() {
        assert_eq!(s.exit(), Exit::Pass, "{}", s.render());
    }
    assert!(
        s.live.stuck <= stuck_users(&events, "").len() as u64 * 2,
        "{}",
        s.render()
    );
    // Not ">= 10" (one per moved user): the library randomises its delays
    // with its own unseeded rng, and in one CI run only 7 of the 10 were
    // back before the run ended. The guarantees above are what is asserted.
    assert!(s.verdict.counts.reconnects >= 1, "{}", s.render());
    // The removed members learn it from the server's answers, not the library.
    let removed = events
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::Rejected { action: Some(a), .. } if a == "removed")
                || matches!(&e.kind, EventKind::JoinRefused { action, .. } if action == "removed")
        })
        .count();
    assert!(removed >= 1, "{}", s.render());
}

/// Many acks outstanding at once: a second of latency on every link for
/// 4 s while each user sends 20 messages a second (about 20 acks in flight
/// each); the latency ends before the chat does.
const ACKS: &str = r#"
[run]
duration = "6s"
drain = "6s"
seed = 11
[target]
[users]
count = 10
conversations = 2
members = 5
send_rate = "20/s"
driver = "DRIVER"
[[cohorts]]
name = "slow"
users = "100%"
[[faults]]
kind = "latency"
cohort = "slow"
latency = "1s"
jitter = "0ms"
at = "0s"
for = "4s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_outstanding_acks_collide_in_rust_socketio() {
    let (s, events) = run(ACKS, "rust_socketio").await;
    // rust_socketio draws each ack id at random from 0..999, so outstanding
    // acks share ids; an answer then runs the callback of every ack with its
    // id: another send is "acked" with this message's id, and the checker
    // sees one send stored under two ids. Removing the matched acks by
    // index can also remove the wrong one, or panic the library's task
    // (index out of bounds), after which that client hears nothing more:
    // loss and stranded sends, varying with where the collisions fall.
    assert!(
        s.verdict.kinds().contains(&Guarantee::Duplicates),
        "{}",
        s.render()
    );
    for v in s
        .verdict
        .violations
        .iter()
        .filter(|v| v.kind == Guarantee::Duplicates)
    {
        assert!(v.explanation.contains("stored twice"), "{}", v.explanation);
    }
    // Loss and stranded sends only come from a dead task, and the driver
    // saw every such death (its panic hook) and reported the user stuck.
    assert_only_collision_harm(&s, &events, &BTreeSet::new());

    let (native, _) = run(ACKS, "native").await;
    assert_passes(&native);
}

/// `connect()` returns Ok as soon as CONNECT is sent: a refused token is
/// only an `error` callback afterwards, and the client stays "connected".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_returns_ok_before_the_server_answers() {
    use futures_util::FutureExt;
    use rust_socketio::asynchronous::ClientBuilder;
    use rust_socketio::{Event, TransportType};

    let server = common::ServerProcess::start(&[]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (t1, t2) = (tx.clone(), tx);
    let client = ClientBuilder::new(server.url())
        .transport_type(TransportType::Websocket)
        .auth(serde_json::json!({ "token": "not-a-token" }))
        .on(Event::Connect, move |_, _| {
            let _ = t1.send("open".into());
            async {}.boxed()
        })
        .on(Event::Error, move |p, _| {
            let _ = t2.send(format!("error {p:?}"));
            async {}.boxed()
        })
        .connect()
        .await;
    assert!(
        client.is_ok(),
        "connect() itself does not wait for the answer"
    );
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("an answer within 5 s")
        .unwrap();
    assert!(
        first.starts_with("error") && first.contains("Authentication failed"),
        "{first}"
    );
    // Emitting now fails: the namespace was never joined.
    let emitted = client
        .unwrap()
        .emit("send-message", serde_json::json!({}))
        .await;
    assert!(emitted.is_err());
}

/// Two users lose the server for 8 s with `attempts = 2`.
const MAX_ATTEMPTS: &str = r#"
[run]
duration = "12s"
drain = "3s"
seed = 2
[target]
[users]
count = 4
conversations = 1
members = 4
send_rate = "1/s"
driver = "DRIVER"
[users.reconnection]
attempts = 2
timeout = "2s"
[[cohorts]]
name = "down"
users = 2
[[faults]]
kind = "offline"
cohort = "down"
mode = "refuse"
at = "1s"
for = "8s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_reconnect_attempts_bounds_a_round_not_the_outage() {
    let (s, events) = run(MAX_ATTEMPTS, "rust_socketio").await;
    // Passes, but for what colliding ack ids do (restart test; CI of
    // 2026-11-29 saw the panic here too): duplicates the server stored
    // once, and the losses of a user whose task died, reported stuck.
    let deaf = assert_only_collision_harm(&s, &events, &BTreeSet::new());
    if deaf.is_empty() && s.verdict.kinds().is_empty() {
        assert_passes(&s);
    }
    let users = of_user(&events);
    for u in 0..2 {
        let evs = &users[&u];
        let lost = evs
            .iter()
            .position(|e| matches!(e.kind, EventKind::Disconnected { .. }))
            .unwrap();
        let back = lost
            + evs[lost..]
                .iter()
                .position(|e| matches!(e.kind, EventKind::Connected { .. }))
                .unwrap_or_else(|| panic!("u{u} never came back"));
        let attempts = evs[lost..back]
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Connecting { .. }))
            .count();
        // After two failures the library's loop starts a new round of two:
        // it never gives up (and never says `reconnect_failed`).
        assert!(attempts > 3, "u{u} made {attempts} attempts");
        assert!(
            !evs.iter()
                .any(|e| matches!(e.kind, EventKind::ReconnectFailed { .. }))
        );
    }

    // socket.io-client's Manager (native) gives up after its attempts.
    let (native, events) = run(MAX_ATTEMPTS, "native").await;
    assert!(native.verdict.kinds().is_empty(), "{}", native.render());
    let gave_up: BTreeSet<u32> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ReconnectFailed { .. }))
        .map(|e| e.u)
        .collect();
    assert_eq!(gave_up, BTreeSet::from([0, 1]));
}

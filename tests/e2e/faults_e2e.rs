//! Every fault kind end to end against the embedded server, through real
//! proxies, with assertions on what the users recorded.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use reconnoiter::exit::Exit;
use reconnoiter::history::{Event, EventKind};
use reconnoiter::run::{RunOptions, run};

const S: u64 = 1_000_000;

fn options(dir: &Path) -> RunOptions {
    common::run_options(dir)
}

/// When the nemesis began a step (asked for it), by (fault, action).
fn begin_at(events: &[Event], fault: u32, action: &str) -> u64 {
    step_at(events, fault, action, "begin")
}

/// When the nemesis finished a step (its `done` record).
fn done_at(events: &[Event], fault: u32, action: &str) -> u64 {
    step_at(events, fault, action, "done")
}

fn step_at(events: &[Event], fault: u32, action: &str, phase: &str) -> u64 {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Fault {
                fault: f,
                phase: p,
                action: a,
                ..
            } if *f == fault
                && p == phase
                && serde_json::to_value(a).unwrap()["action"] == action =>
            {
                Some(e.t)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("fault {fault} {action} never {phase}"))
}

fn of_user(events: &[Event]) -> HashMap<u32, Vec<&Event>> {
    let mut m: HashMap<u32, Vec<&Event>> = HashMap::new();
    for e in events {
        m.entry(e.u).or_default().push(e);
    }
    m
}

fn first_after<'a>(
    evs: &'a [&'a Event],
    t: u64,
    pred: impl Fn(&EventKind) -> bool,
) -> Option<&'a Event> {
    evs.iter().copied().find(|e| e.t >= t && pred(&e.kind))
}

const SCENARIO: &str = r#"
[run]
duration = "14s"
drain = "20s"
seed = 5
[target]
ping_interval = "1s"
ping_timeout = "1s"
[users]
count = 50
conversations = 5
members = 10
send_rate = "1/s"
[users.reconnection]
timeout = "2s"
[[cohorts]]
name = "refused"
users = 10
[[cohorts]]
name = "blackholed"
users = 10
[[cohorts]]
name = "reset"
users = 10
[[cohorts]]
name = "tabs"
users = 10
# fault 0
[[faults]]
kind = "offline"
cohort = "refused"
mode = "refuse"
at = "1s"
for = "3s"
# fault 1
[[faults]]
kind = "offline"
cohort = "blackholed"
mode = "blackhole"
at = "1s"
for = "4s"
# fault 2
[[faults]]
kind = "offline"
cohort = "reset"
mode = "reset"
at = "1s"
for = "3s"
# fault 3
[[faults]]
kind = "client-disconnect"
cohort = "tabs"
at = "1s"
for = "2s"
# fault 4: the "rest" cohort (users 40..49) loses its tokens
[[faults]]
kind = "token-expiry"
cohort = "rest"
users = "100%"
at = "9s"
# fault 5
[[faults]]
kind = "membership"
cohort = "rest"
users = 3
at = "9s"
# fault 6: everyone must come back, the revoked and the removed included
[[faults]]
kind = "server-restart"
mode = "crash"
at = "10s"
down = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_does_what_it_says_to_the_users() {
    let reports = tempfile::tempdir().unwrap();
    let plan = reconnoiter::scenario::parse(Path::new("faults.toml"), SCENARIO).unwrap();
    let removed: Vec<(String, u32)> = plan
        .timeline
        .iter()
        .find_map(|s| match &s.action {
            reconnoiter::scenario::Action::RemoveMembers { pairs } => Some(pairs.clone()),
            _ => None,
        })
        .unwrap();
    let outcome = run(plan, options(reports.path()), std::future::pending())
        .await
        .unwrap();
    assert!(
        outcome.summary.fault_failures.is_empty(),
        "{:?}",
        outcome.summary.fault_failures
    );
    assert_eq!(outcome.exit, Exit::Pass, "{}", outcome.summary.render());
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    let users = of_user(&events);
    let disconnected = |k: &EventKind| matches!(k, EventKind::Disconnected { .. });
    let connected = |k: &EventKind| matches!(k, EventKind::Connected { .. });

    // refuse: dropped at once, refused while down, back within the schedule after heal.
    let (down, healed) = (
        begin_at(&events, 0, "net-start"),
        done_at(&events, 0, "net-heal"),
    );
    for u in 0..10 {
        let evs = &users[&u];
        let lost = first_after(evs, down, disconnected).expect("refused user disconnected");
        assert!(lost.t < down + S / 2, "u{u} noticed the refusal at once");
        let refused = evs.iter().any(|e| {
            e.t > down && e.t < healed && matches!(&e.kind, EventKind::ConnectFailed { error, .. } if error.contains("refused"))
        });
        assert!(
            refused,
            "u{u} saw connection refused while the proxy was down"
        );
        let back = first_after(evs, healed, connected).expect("reconnected after heal");
        // socket.io-client's delay is capped at 5 s (delay_max), plus the handshake.
        assert!(
            back.t - healed < 5 * S + S / 2,
            "u{u} reconnected {} µs after heal",
            back.t - healed
        );
    }

    // blackhole: nothing happens until a heartbeat gives up: the client's
    // (no ping within 1 s + 1 s) or the server's (no pong within 1 s), whose
    // close passes through a `timeout` toxic as in Toxiproxy 2.x.
    let start = begin_at(&events, 1, "net-start");
    for u in 10..20 {
        let evs = &users[&u];
        let lost = first_after(evs, start, disconnected).expect("blackholed user noticed");
        let EventKind::Disconnected { reason } = &lost.kind else {
            unreachable!()
        };
        assert!(
            reason == "ping timeout" || reason == "transport close",
            "u{u}: {reason}"
        );
        let after = lost.t - start;
        assert!(
            after > S / 2 && after < 3 * S,
            "u{u} noticed {after} µs after the blackhole began"
        );
    }

    // reset: the connection is reset at the next packet (a ping within 1 s).
    let start = begin_at(&events, 2, "net-start");
    for u in 20..30 {
        let lost = first_after(&users[&u], start, disconnected).expect("reset user disconnected");
        assert!(lost.t - start < 2 * S, "u{u}");
    }

    // client disconnect: the tab closes, then reopens and connects at once.
    let (closed, opened) = (
        begin_at(&events, 3, "tab-close"),
        begin_at(&events, 3, "tab-open"),
    );
    for u in 30..40 {
        let evs = &users[&u];
        let lost = first_after(evs, closed, disconnected).unwrap();
        assert!(
            matches!(&lost.kind, EventKind::Disconnected { reason } if reason == "io client disconnect")
        );
        assert!(
            first_after(evs, lost.t + 1, connected).unwrap().t < opened + S,
            "u{u} reconnected on reopen"
        );
        assert!(
            first_after(evs, lost.t + 1, connected).unwrap().t >= opened,
            "u{u} stayed away while closed"
        );
    }

    // The crash restart: every connected user loses its connection and comes back.
    let (crash, up) = (
        begin_at(&events, 6, "server-down"),
        done_at(&events, 6, "server-up"),
    );
    for u in 0..50 {
        let evs = &users[&u];
        let was_connected = evs
            .iter()
            .rev()
            .filter(|e| e.t < crash)
            .find(|e| connected(&e.kind) || disconnected(&e.kind))
            .is_some_and(|e| connected(&e.kind));
        if was_connected {
            assert!(
                first_after(evs, crash, disconnected).is_some_and(|e| e.t < up + S),
                "u{u} lost the server"
            );
        }
        assert!(
            first_after(evs, up, connected).is_some(),
            "u{u} reconnected after the restart"
        );
    }

    // Revoked users are refused with `Authentication failed`, log in again, and get back.
    for u in 40..50 {
        let evs = &users[&u];
        let refused = first_after(
            evs,
            crash,
            |k| matches!(k, EventKind::ConnectFailed { refused: true, error, .. } if error.contains("Authentication failed")),
        );
        let refused = refused.unwrap_or_else(|| panic!("u{u} was not refused after revocation"));
        assert!(
            first_after(evs, refused.t, |k| matches!(k, EventKind::LoggedIn { .. })).is_some(),
            "u{u} logged in again"
        );
        assert!(
            first_after(evs, refused.t, connected).is_some(),
            "u{u} reconnected with a new token"
        );
    }

    // Removed members learn it from the server (a send rejected or a rejoin
    // refused with `removed`) and are never let back in.
    assert_eq!(removed.len(), 3);
    let removal = begin_at(&events, 5, "remove-members");
    for (conversation, u) in &removed {
        let evs = &users[u];
        let told = first_after(evs, removal, |k| match k {
            EventKind::JoinRefused {
                conversation: c,
                action,
            } => c == conversation && action == "removed",
            EventKind::Rejected {
                conversation: c,
                action,
                ..
            } => c == conversation && action.as_deref() == Some("removed"),
            _ => false,
        });
        assert!(told.is_some(), "u{u} was never told it left {conversation}");
        let rejoined = first_after(
            evs,
            removal,
            |k| matches!(k, EventKind::Joined { conversation: c } if c == conversation),
        );
        assert!(rejoined.is_none(), "u{u} was let back into {conversation}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_against_a_hand_started_proxy_through_toxiproxy_url() {
    // `reconnoiter proxy` started by hand, exactly as a real Toxiproxy would be.
    let (proxy, api) = crate::proxy_support::hand_started_proxy();

    let scenario = r#"
[run]
duration = "6s"
drain = "15s"
[users]
count = 20
conversations = 2
members = 10
send_rate = "1/s"
[[cohorts]]
name = "down"
users = "50%"
[[faults]]
kind = "offline"
cohort = "down"
mode = "refuse"
at = "1s"
for = "2s"
[[faults]]
kind = "server-restart"
mode = "graceful"
at = "4s"
down = "500ms"
"#;
    let plan = reconnoiter::scenario::parse(Path::new("ext.toml"), scenario).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut opts = options(reports.path());
    opts.toxiproxy = Some(format!("http://{api}"));
    let outcome = run(plan, opts, std::future::pending()).await.unwrap();
    assert_eq!(outcome.exit, Exit::Pass, "{}", outcome.summary.render());
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    let users = of_user(&events);
    let down = begin_at(&events, 0, "net-start");
    for u in 0..10 {
        assert!(
            first_after(&users[&u], down, |k| matches!(
                k,
                EventKind::Disconnected { .. }
            ))
            .is_some(),
            "u{u}"
        );
    }
    // A graceful restart announces itself before closing.
    let notices = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Notice { name } if name == "server-shutdown"))
        .count();
    assert!(notices >= 10, "{notices} users saw server-shutdown");
    // The run cleaned up: our proxies are gone from the hand-started Toxiproxy.
    let proxies: serde_json::Value = reqwest::get(format!("http://{api}/proxies"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(proxies, serde_json::json!({}));
    drop(proxy);
}

/// The fault proxy dies mid-run: every user behind it is cut off and
/// misses messages, which is the harness's failure, not the server's. The
/// run exits 4 and says the violations are not trusted, where it used to
/// fail a correct server with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_proxy_that_dies_mid_run_is_the_harness_failing_not_the_server() {
    let (mut proxy, api) = crate::proxy_support::hand_started_proxy();
    let scenario = r#"
[run]
duration = "5s"
drain = "3s"
[users]
count = 20
conversations = 2
members = 10
send_rate = "2/s"
[[cohorts]]
name = "down"
users = "50%"
[[faults]]
kind = "offline"
cohort = "down"
mode = "refuse"
at = "1s"
for = "2s"
"#;
    let plan = reconnoiter::scenario::parse(Path::new("dies.toml"), scenario).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut opts = options(reports.path());
    opts.toxiproxy = Some(format!("http://{api}"));
    // Killed in the middle of the chat, after the fault's heal: no step
    // fails, yet every user behind it is cut off for the rest of the run.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(4500));
        let _ = proxy.0.kill();
        let _ = proxy.0.wait();
    });
    let outcome = run(plan, opts, std::future::pending()).await.unwrap();
    killer.join().unwrap();
    let s = &outcome.summary;
    assert!(s.faults_cut_users_off, "{}", s.render());
    assert!(
        s.fault_failures
            .iter()
            .any(|f| f.contains("at the end of the drain")),
        "{:?}",
        s.fault_failures
    );
    assert_eq!(outcome.exit, Exit::Harness, "{}", s.render());
    let headline = s.headline();
    assert!(
        headline.starts_with("HARNESS: faults failed:"),
        "{headline}"
    );
    if s.verdict.violated() {
        assert!(
            headline.contains("violations found are not trusted"),
            "{headline}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_flapping_and_readd_across_several_proxy_processes() {
    let scenario = r#"
[run]
duration = "8s"
drain = "20s"
seed = 9
[target]
ping_interval = "1s"
ping_timeout = "1s"
[users]
count = 20
conversations = 2
members = 10
send_rate = "4/s"
[users.reconnection]
delay = "200ms"
delay_max = "500ms"
timeout = "2s"
[[cohorts]]
name = "slow"
users = 10
[[cohorts]]
name = "flap"
users = 10
# fault 0
[[faults]]
kind = "latency"
cohort = "slow"
latency = "400ms"
at = "1s"
for = "3s"
# fault 1
[[faults]]
kind = "flapping"
cohort = "flap"
modes = ["refuse", "reset"]
down = "300ms..600ms"
up = "800ms..1s"
at = "1s"
for = "5s"
# fault 2
[[faults]]
kind = "membership"
cohort = "flap"
users = 2
at = "1s"
readd_after = "2s"
"#;
    let plan = reconnoiter::scenario::parse(Path::new("mix.toml"), scenario).unwrap();
    let pairs: Vec<(String, u32)> = plan
        .timeline
        .iter()
        .find_map(|s| match &s.action {
            reconnoiter::scenario::Action::ReaddMembers { pairs } => Some(pairs.clone()),
            _ => None,
        })
        .unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut opts = options(reports.path());
    // Five users per proxy process: the 20 users need four processes.
    opts.proxy_capacity = Some(5);
    let outcome = run(plan, opts, std::future::pending()).await.unwrap();
    assert!(
        outcome.summary.fault_failures.is_empty(),
        "{:?}",
        outcome.summary.fault_failures
    );
    assert_eq!(outcome.exit, Exit::Pass, "{}", outcome.summary.render());
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    let users = of_user(&events);

    // Latency: acks of sends emitted inside the window take at least 400 ms
    // for the slow cohort (the answer crosses the toxic), and far less for the others.
    let (from, to) = (
        done_at(&events, 0, "net-start"),
        begin_at(&events, 0, "net-heal"),
    );
    let ack_times = |u: u32| -> Vec<u64> {
        let evs = &users[&u];
        let mut emitted: HashMap<&str, u64> = HashMap::new();
        let mut out = Vec::new();
        for e in evs {
            match &e.kind {
                EventKind::Emitted { temp_id, .. } if e.t > from && e.t + 500_000 < to => {
                    emitted.insert(temp_id, e.t);
                }
                EventKind::Acked { temp_id, .. } => {
                    if let Some(t) = emitted.remove(temp_id.as_str()) {
                        out.push(e.t - t);
                    }
                }
                _ => {}
            }
        }
        out
    };
    let slow: Vec<u64> = (0..10).flat_map(ack_times).collect();
    assert!(!slow.is_empty());
    assert!(slow.iter().all(|&d| d >= 400_000), "slow acks {slow:?}");

    // Flapping: every flapping user lost its connection more than once.
    for u in 10..20 {
        let drops = users[&u]
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Disconnected { .. }))
            .count();
        assert!(drops >= 2, "u{u} dropped {drops} times");
    }

    // Re-added members join their conversation again on a later reconnect.
    let readded = done_at(&events, 2, "readd-members");
    for (conversation, u) in &pairs {
        let back = first_after(
            &users[u],
            readded,
            |k| matches!(k, EventKind::Joined { conversation: c } if c == conversation),
        );
        assert!(
            back.is_some(),
            "u{u} did not rejoin {conversation} after being re-added"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused_then_refreshed_at_once() {
    // Tokens live 1.5 s; the crash at 3 s makes everyone reconnect holding an
    // expired token. Like the guide's client, each presents it, is refused
    // with `Authentication failed`, refreshes, and connects again at once.
    let scenario = r#"
[run]
duration = "6s"
drain = "15s"
[target]
token_ttl = "1500ms"
[users]
count = 20
conversations = 2
members = 10
send_rate = "1/s"
[[faults]]
kind = "server-restart"
mode = "crash"
at = "3s"
down = "500ms"
"#;
    let plan = reconnoiter::scenario::parse(Path::new("ttl.toml"), scenario).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let outcome = run(plan, options(reports.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(outcome.exit, Exit::Pass, "{}", outcome.summary.render());
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    let users = of_user(&events);
    let crash = begin_at(&events, 0, "server-down");
    for u in 0..20 {
        let evs = &users[&u];
        let refused = first_after(evs, crash, |k| {
            matches!(k, EventKind::ConnectFailed { refused: true, .. })
        })
        .unwrap_or_else(|| panic!("u{u} was never refused its expired token"));
        let refreshed = first_after(evs, refused.t, |k| {
            matches!(k, EventKind::TokenRefreshed { .. })
        })
        .unwrap_or_else(|| panic!("u{u} did not refresh after the refusal"));
        let back = first_after(evs, refreshed.t, |k| {
            matches!(k, EventKind::Connected { .. })
        })
        .unwrap_or_else(|| panic!("u{u} never came back"));
        assert!(
            back.t - refused.t < 1_000_000,
            "u{u} waited {} ms after the refusal: the retry must not wait for the backoff",
            (back.t - refused.t) / 1_000
        );
    }
}

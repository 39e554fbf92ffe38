//! `run` end to end, in-process, against the embedded server (a real child
//! process): assertions on the recorded history, not just "it ran".

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::history::{Event, EventKind, Via};
use reconnoiter::run::{RunOptions, run};
use reconnoiter::target::ManagedServer;

fn plan(text: &str) -> reconnoiter::scenario::Plan {
    reconnoiter::scenario::parse(Path::new("e2e.toml"), text).unwrap()
}

fn options(dir: &Path) -> RunOptions {
    common::run_options(dir)
}

pub(crate) const SMALL: &str = r#"
[run]
duration = "3s"
ramp = "100/s"
drain = "10s"
seed = 7
[users]
count = 20
conversations = 4
members = 5
send_rate = "2/s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_reaches_exactly_its_members_once() {
    let reports = tempfile::tempdir().unwrap();
    let plan = plan(SMALL);
    let roster: BTreeMap<String, Vec<String>> = ManagedServer::roster(&plan).into_iter().collect();
    let outcome = run(plan, options(reports.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(outcome.exit, Exit::Pass, "{}", outcome.summary.render());
    assert!(outcome.summary.drained && !outcome.summary.interrupted);

    let (header, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    assert_eq!(header.users, 20);
    assert_eq!(events.len() as u64, outcome.summary.history_events);
    let mut by_user: HashMap<u32, Vec<&Event>> = HashMap::new();
    for e in &events {
        by_user.entry(e.u).or_default().push(e);
    }
    assert!(
        events
            .windows(2)
            .all(|w| w[0].t <= w[1].t || w[0].u != w[1].u),
        "per-user times are monotonic"
    );

    // Each user's life starts with the exact handshake sequence and ends stopped.
    for u in 0..20u32 {
        let mine = &by_user[&u];
        let name = format!("u{u}");
        let expected_convs: HashSet<&str> = roster
            .iter()
            .filter(|(_, m)| m.contains(&name))
            .map(|(c, _)| c.as_str())
            .collect();
        let kinds: Vec<String> = mine.iter().map(|e| ev_name(&e.kind)).collect();
        assert_eq!(
            &kinds[..3],
            ["logged_in", "connecting", "connected"],
            "user {u}: {kinds:?}"
        );
        let joined: HashSet<&str> = mine
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Joined { conversation } => Some(conversation.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(joined, expected_convs, "user {u} joined its conversations");
        assert_eq!(kinds.last().map(String::as_str), Some("stopped"));
        assert!(
            !kinds.iter().any(|k| k == "stranded" || k == "disconnected"),
            "user {u}: {kinds:?}"
        );
    }

    // Every ack names a message that each member of its conversation got exactly once, live.
    let mut acked: HashMap<String, (String, String)> = HashMap::new(); // id → (conversation, temp_id)
    let mut sent = 0;
    for e in &events {
        match &e.kind {
            EventKind::Sent { .. } => sent += 1,
            EventKind::Acked {
                id,
                conversation,
                temp_id,
                ..
            } => {
                acked.insert(id.clone(), (conversation.clone(), temp_id.clone()));
            }
            _ => {}
        }
    }
    assert!(sent >= 20, "users chatted: {sent} sends");
    assert_eq!(acked.len(), sent, "every send was acked once");
    let mut got: HashMap<&str, Vec<String>> = HashMap::new();
    for e in &events {
        if let EventKind::Delivered {
            id,
            temp_id,
            via,
            dup,
            ..
        } = &e.kind
        {
            assert_eq!((*via, *dup), (Via::Live, false));
            assert_eq!(
                temp_id.as_ref(),
                Some(&acked[id].1),
                "temp_id travels with the message"
            );
            got.entry(id.as_str())
                .or_default()
                .push(format!("u{}", e.u));
        }
    }
    for (id, (conversation, _)) in &acked {
        let mut receivers = got.remove(id.as_str()).unwrap_or_default();
        receivers.sort();
        let mut members = roster[conversation].clone();
        members.sort();
        assert_eq!(receivers, members, "{id} in {conversation}");
    }
    assert!(got.is_empty(), "deliveries of unknown messages: {got:?}");
    assert!(outcome.dir.join("summary.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_writes_a_partial_report_marked_interrupted() {
    let reports = tempfile::tempdir().unwrap();
    let plan = plan(&SMALL.replace("duration = \"3s\"", "duration = \"60s\""));
    let started = std::time::Instant::now();
    let outcome = run(
        plan,
        options(reports.path()),
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the interrupt cut the 60 s run short"
    );
    assert!(outcome.summary.interrupted);
    assert_eq!(outcome.exit, Exit::Harness);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(outcome.dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["interrupted"], true);
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Stopped))
            .count(),
        20
    );
}

#[tokio::test]
async fn unreachable_target_is_reported_before_users_spawn() {
    let reports = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = options(reports.path());
    opts.target_url = Some(format!("http://{closed}"));
    let err = run(plan(SMALL), opts, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(reconnoiter::exit::code_for(&err), Exit::Harness);
    assert!(err.to_string().contains("unreachable"), "{err}");
    let runs: Vec<_> = std::fs::read_dir(reports.path()).unwrap().collect();
    assert!(
        runs.iter()
            .all(|r| !r.as_ref().unwrap().path().join("history.jsonl").exists())
    );
}

#[tokio::test]
async fn a_user_count_that_cannot_fit_is_refused_with_the_number_that_fits() {
    let reports = tempfile::tempdir().unwrap();
    let err = run(
        plan("[users]\ncount = 5000000\n"),
        options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(reconnoiter::exit::code_for(&err), Exit::BadInput);
    assert!(
        err.to_string().contains("users fit in one process"),
        "{err}"
    );
}

fn ev_name(k: &EventKind) -> String {
    serde_json::to_value(k).unwrap()["ev"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_broadcasts_fail_the_run_with_the_missing_count() {
    let reports = tempfile::tempdir().unwrap();
    let text = SMALL
        .replace("[users]", "[target]\nbugs = [\"drop-under-load\"]\n[users]")
        .replace("drain = \"10s\"", "drain = \"3s\"");
    let outcome = run(plan(&text), options(reports.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        outcome.exit,
        Exit::Violation,
        "{}",
        outcome.summary.render()
    );
    let v = &outcome.summary.verdict;
    assert_eq!(v.kinds(), vec![Guarantee::Loss], "loss and nothing else");
    assert!(!outcome.summary.drained, "a lossy run cannot drain");
    // The history agrees: some acked message lacks a member's delivery.
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    let acked = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Acked { .. }))
        .count() as u64;
    let delivered = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Delivered { .. }))
        .count() as u64;
    assert_eq!(
        acked * 5 - delivered,
        v.count(Guarantee::Loss),
        "5 members per conversation: one loss per missing (message, member)"
    );
}

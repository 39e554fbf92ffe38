//! A blackhole shorter than the server's heartbeat: the connections outlive
//! it with a hole in their streams. The harness closes them at the heal and
//! resyncs (`user::blackhole`), so the correct server passes (it used to get
//! one `loss` per swallowed delivery), while a server whose sync skips a
//! message is still caught on that very resync.

use crate::common::{self, ServerProcess};

use std::path::Path;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::history::{Event, EventKind};
use reconnoiter::report::summary::Summary;
use reconnoiter::user::blackhole::OUTLIVED;

/// Ten users blackholed for 2 s, under a 5 s + 5 s heartbeat. A server of
/// your own (`url`) is not held to the embedded server's blackhole rule.
const HOLED: &str = r#"
[run]
duration = "8s"
drain = "5s"
seed = 3
[target]
url = "URL"
[users]
count = 20
conversations = 2
members = 10
send_rate = "2/s"
[[cohorts]]
name = "holed"
users = 10
[[faults]]
kind = "offline"
cohort = "holed"
mode = "blackhole"
at = "2s"
for = "2s"
"#;

fn server(bugs: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--users",
        "20",
        "--conversations",
        "2",
        "--members",
        "10",
        "--seed",
        "3",
        "--ping-interval",
        "5s",
        "--ping-timeout",
        "5s",
    ];
    for b in bugs {
        args.extend(["--bug", b]);
    }
    ServerProcess::start(&args)
}

async fn run(server: &ServerProcess) -> (Summary, Vec<Event>) {
    let text = HOLED.replace("URL", &server.url());
    let plan = reconnoiter::scenario::parse(Path::new("holed.toml"), &text).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let outcome = reconnoiter::run::run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    let (_, events) =
        reconnoiter::history::recorder::read(&outcome.dir.join("history.jsonl")).unwrap();
    (outcome.summary, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_outlives_a_blackhole_is_closed_and_resynced() {
    let (good, skipping) = (server(&[]), server(&["sync-off-by-one"]));
    let ((s, events), (bad, _)) = tokio::join!(run(&good), run(&skipping));

    assert!(s.verdict.kinds().is_empty(), "{}", s.render());
    assert_eq!(s.exit(), Exit::Pass, "{}", s.render());
    assert_eq!(s.verdict.counts.outlived_blackholes, 10, "{}", s.render());
    assert!(s.render().contains("10 connections outlived a blackhole"));
    for u in 0..20u32 {
        let mine: Vec<&Event> = events.iter().filter(|e| e.u == u).collect();
        let closed = mine.iter().position(
            |e| matches!(&e.kind, EventKind::Disconnected { reason } if reason == OUTLIVED),
        );
        if u >= 10 {
            assert!(closed.is_none(), "u{u} is not in the blackholed cohort");
            continue;
        }
        // Closed once, reconnected, and the resync brought what the hole swallowed.
        let closed = closed.unwrap_or_else(|| panic!("u{u} was not closed at the heal"));
        let after = &mine[closed..];
        assert!(
            after
                .iter()
                .any(|e| matches!(e.kind, EventKind::SyncDone { new, .. } if new > 0)),
            "u{u}: the resync fetched nothing new"
        );
        assert!(
            after
                .iter()
                .any(|e| matches!(e.kind, EventKind::Recovered { .. }))
        );
    }

    // The resync is the server's to get right: one that skips a message is caught.
    assert_eq!(
        bad.verdict.kinds(),
        vec![Guarantee::Loss],
        "{}",
        bad.render()
    );
    assert_eq!(bad.exit(), Exit::Violation);
}

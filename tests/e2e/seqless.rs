//! A server that numbers nothing (`serve --no-seq`), as many chat servers
//! do: users dedupe by id and sync by `since=` time. The correct one passes
//! a scenario of connections reset mid-chat (it used to fail with
//! duplicates: the queued replay racing a sync was not known by id), and one
//! whose sync skips a message is still caught as loss.

use crate::common::{self, ServerProcess};

use std::path::Path;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::report::summary::Summary;

/// Half the users lose their connections for a second mid-chat, and sync
/// with `since=` when they are back.
const FLAKY: &str = r#"
[run]
duration = "5s"
drain = "5s"
seed = 5
[target]
url = "URL"
[users]
count = 20
conversations = 4
members = 5
send_rate = "2/s"
[[cohorts]]
name = "flaky"
users = "50%"
[[faults]]
kind = "offline"
cohort = "flaky"
mode = "reset"
at = "1s"
for = "1s"
"#;

fn server(bugs: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--users",
        "20",
        "--conversations",
        "4",
        "--members",
        "5",
        "--seed",
        "5",
        "--no-seq",
    ];
    for b in bugs {
        args.extend(["--bug", b]);
    }
    ServerProcess::start(&args)
}

async fn run(server: &ServerProcess) -> Summary {
    let text = FLAKY.replace("URL", &server.url());
    let plan = reconnoiter::scenario::parse(Path::new("flaky.toml"), &text).unwrap();
    let reports = tempfile::tempdir().unwrap();
    reconnoiter::run::run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap()
    .summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_seq_is_judged_by_ids_and_times() {
    let (good, skipping) = (server(&[]), server(&["sync-off-by-one"]));
    let (s, bad) = tokio::join!(run(&good), run(&skipping));

    assert!(s.verdict.kinds().is_empty(), "{}", s.render());
    assert_eq!(s.exit(), Exit::Pass, "{}", s.render());
    let c = &s.verdict.counts;
    assert!(c.reconnects >= 10, "every flaky user came back: {c:?}");
    assert_eq!(c.delivered_owed, Some(c.owed), "{c:?}");

    assert_eq!(
        bad.verdict.kinds(),
        vec![Guarantee::Loss],
        "{}",
        bad.render()
    );
    assert_eq!(bad.exit(), Exit::Violation);
}

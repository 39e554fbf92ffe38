//! Every guarantee the checker enforces, proven both ways against the real
//! reference server: with the bug switch that breaks it, the run fails with
//! exit 1 and exactly that violation kind; without it, the same scenario
//! passes with no violation at all.

use crate::common;

use std::path::Path;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::report::summary::Summary;

/// Runs `scenario` with `bugs` switched on in the embedded server.
async fn verdict(scenario: &str, bugs: &[&str]) -> Summary {
    let text = if bugs.is_empty() {
        scenario.to_owned()
    } else {
        let list = bugs
            .iter()
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ");
        scenario.replace("[target]", &format!("[target]\nbugs = [{list}]"))
    };
    let plan = reconnoiter::scenario::parse(Path::new("bugs.toml"), &text).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let outcome = reconnoiter::run::run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.exit.code(), outcome.summary.exit_code);
    outcome.summary
}

async fn assert_catches(scenario: &str, bug: &str, kind: Guarantee) {
    let s = verdict(scenario, &[bug]).await;
    let v = &s.verdict;
    assert_eq!(v.kinds(), vec![kind], "{bug}: {}", s.render());
    assert_eq!(s.exit(), Exit::Violation, "{bug}");
    let example = v
        .violations
        .iter()
        .find(|x| x.kind == kind)
        .expect("evidence kept");
    assert!(!example.explanation.is_empty() && !example.evidence.is_empty());
}

async fn assert_passes(scenario: &str) {
    let s = verdict(scenario, &[]).await;
    assert!(s.verdict.kinds().is_empty(), "{}", s.render());
    assert_eq!(s.exit(), Exit::Pass, "{}", s.render());
    assert!(s.verdict.counts.accepted > 0 && s.verdict.counts.delivered > 0);
}

/// Thirty users chatting briskly; a short ack timeout so a swallowed send
/// is retried (and still never accepted) within the run.
const CHAT: &str = r#"
[run]
duration = "5s"
ramp = "200/s"
drain = "4s"
seed = 3
[target]
[users]
count = 30
conversations = 3
members = 10
send_rate = "2/s"
ack_timeout = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_guarantees_hold_on_the_correct_server() {
    assert_passes(CHAT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_broadcasts_are_loss() {
    assert_catches(CHAT, "drop-under-load", Guarantee::Loss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swallowed_sends_are_stranded() {
    assert_catches(CHAT, "swallow-sends", Guarantee::Stranded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_nobody_sent_are_phantoms() {
    assert_catches(CHAT, "phantom-messages", Guarantee::Phantoms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overtaken_broadcasts_break_order() {
    assert_catches(CHAT, "reorder", Guarantee::Order).await;
}

/// Acks come back slower than the ack timeout for half the users, so they
/// resend under the same temp_id: only idempotency keeps one copy.
const SLOW_ACKS: &str = r#"
[run]
duration = "5s"
ramp = "200/s"
drain = "8s"
seed = 4
[target]
[users]
count = 20
conversations = 2
members = 10
send_rate = "2/s"
ack_timeout = "300ms"
[[cohorts]]
name = "slow"
users = 10
[[faults]]
kind = "latency"
cohort = "slow"
latency = "600ms"
at = "1s"
for = "2s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_hold_on_the_correct_server() {
    assert_passes(SLOW_ACKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_stored_twice_are_duplicates() {
    assert_catches(SLOW_ACKS, "no-idempotency", Guarantee::Duplicates).await;
}

/// Three users lose a membership while connected and chatting.
const REMOVAL: &str = r#"
[run]
duration = "5s"
ramp = "200/s"
drain = "4s"
seed = 6
[target]
[users]
count = 20
conversations = 2
members = 10
send_rate = "2/s"
[[faults]]
kind = "membership"
users = 3
at = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_hold_on_the_correct_server() {
    assert_passes(REMOVAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_members_still_receiving_are_leaks() {
    assert_catches(REMOVAL, "skip-membership-check", Guarantee::Leaks).await;
}

/// Tokens live two seconds; a cohort is offline for three, so it comes
/// back holding expired tokens.
const EXPIRY: &str = r#"
[run]
duration = "6s"
ramp = "200/s"
drain = "8s"
seed = 8
[target]
token_ttl = "2s"
[users]
count = 20
conversations = 2
members = 10
send_rate = "1/s"
[users.reconnection]
delay = "200ms"
delay_max = "500ms"
[[cohorts]]
name = "away"
users = 10
[[faults]]
kind = "offline"
cohort = "away"
mode = "refuse"
at = "1s"
for = "3s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused_by_the_correct_server() {
    assert_passes(EXPIRY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_accepted_are_auth_violations() {
    assert_catches(EXPIRY, "accept-expired-tokens", Guarantee::Auth).await;
}

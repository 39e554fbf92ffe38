//! Interop: the harness against the official Node.js Socket.IO server
//! (`interop/node-server/`, socket.io 4 + express + better-sqlite3), started
//! through a scenario's `[target] command` exactly as a user would start
//! their own server. Skipped (with a message) only when `node` is absent;
//! the server's npm dependencies are installed with `npm ci` when missing.
//!
//! History and summary are read as JSON, the way a CI script reads them.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use reconnoiter::exit::Exit;
use reconnoiter::run::run;
use reconnoiter::scenario::Plan;
use reconnoiter::target::ManagedServer;

fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/node-server")
}

/// `node <absolute path to server.js>`, or None (after saying why) when this
/// machine has no `node`. Installs the server's dependencies once if needed.
fn node_server() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED: `node` is not on PATH; the interop tests need Node.js 20+ (see .ci/run)"
        );
        return None;
    }
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = server_dir();
    if !dir
        .join("node_modules/better-sqlite3/package.json")
        .exists()
        || !dir.join("node_modules/socket.io/package.json").exists()
    {
        eprintln!(
            "installing the Node server's dependencies: npm ci in {}",
            dir.display()
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "`npm ci` failed in {}: run it there by hand to see why",
            dir.display()
        );
    }
    Some(format!("node {}", dir.join("server.js").display()))
}

/// A scenario whose `[target]` starts the Node server with `flags`.
fn plan(command: &str, flags: &str, target: &str, rest: &str) -> Plan {
    let text = format!("[target]\ncommand = \"{command}{flags}\"\n{target}\n{rest}");
    reconnoiter::scenario::parse(Path::new("interop.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// history.jsonl's events (the header line left out).
fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| e["ev"] == kind)
}

/// When the nemesis recorded `phase` of `action` (µs).
fn fault_at(events: &[Value], action: &str, phase: &str) -> u64 {
    of_kind(events, "fault")
        .find(|e| e["action"]["action"] == action && e["phase"] == phase)
        .and_then(|e| e["t"].as_u64())
        .unwrap_or_else(|| panic!("no fault {action} {phase}"))
}

/// The verdict every interop run must have: exit 0, and in summary.json
/// every acknowledged message delivered, nothing stranded, no fault failed.
/// Then, from the history: each acknowledged id reached every member of its
/// conversation (at least once; exactly once when `exactly_once`). Returns
/// the summary and the events.
fn assert_verdict(
    outcome: &reconnoiter::run::RunOutcome,
    plan_roster: &BTreeMap<String, Vec<String>>,
    exactly_once: bool,
) -> (Value, Vec<Value>) {
    let summary = read_json(&outcome.dir.join("summary.json"));
    let log = std::fs::read_to_string(outcome.dir.join("server.log")).unwrap_or_default();
    let context = format!("{summary:#}\nserver.log:\n{log}");
    assert_eq!(outcome.exit, Exit::Pass, "{context}");
    assert_eq!(outcome.exit.code(), 0);
    // The checker's verdict, from the history alone: every guarantee held.
    let verdict = &summary["verdict"];
    let counts = &verdict["counts"];
    assert!(counts["acked"].as_u64().unwrap() > 0, "{context}");
    for g in verdict["guarantees"].as_array().unwrap() {
        assert_eq!(g["violations"], 0, "{} {context}", g["guarantee"]);
    }
    assert_eq!(summary["live"]["outbox"], 0, "{context}");
    assert_eq!(counts["delivered"], counts["owed"], "{context}");
    assert_eq!(summary["fault_failures"], json!([]), "{context}");
    assert_eq!(summary["drained"], true, "{context}");

    let events = history(&outcome.dir);
    let acked: HashMap<&str, &str> = of_kind(&events, "acked")
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["conversation"].as_str().unwrap(),
            )
        })
        .collect();
    let mut seen: HashMap<(u64, &str), u32> = HashMap::new();
    for e in of_kind(&events, "delivered") {
        *seen
            .entry((e["u"].as_u64().unwrap(), e["id"].as_str().unwrap()))
            .or_default() += 1;
    }
    for (id, conversation) in &acked {
        for member in &plan_roster[*conversation] {
            let u: u64 = member[1..].parse().unwrap();
            let n = seen.get(&(u, id)).copied().unwrap_or(0);
            assert!(n >= 1, "{member} never got {id} ({conversation})");
            if exactly_once {
                assert_eq!(n, 1, "{member} got {id} ({conversation}) {n} times");
            }
        }
    }
    (summary, events)
}

fn roster(plan: &Plan) -> BTreeMap<String, Vec<String>> {
    ManagedServer::roster(plan).into_iter().collect()
}

/// Users of `range` each have an event of `kind` matching `pred` at or after `t`.
fn each_user_after(
    events: &[Value],
    users: std::ops::Range<u64>,
    t: u64,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) {
    for u in users {
        assert!(
            of_kind(events, kind).any(|e| e["u"] == u && e["t"].as_u64().unwrap() >= t && pred(e)),
            "u{u} has no {kind} after {t} µs"
        );
    }
}

const CHAT: &str = r#"
[run]
duration = "5s"
ramp = "100/s"
drain = "15s"
seed = 11
[users]
count = 30
conversations = 6
members = 5
send_rate = "2/s"
[users.reconnection]
delay = "200ms"
delay_max = "1s"
timeout = "2s"
"#;

const HEARTBEAT: &str = "ping_interval = \"1s\"\nping_timeout = \"1s\"";

/// The managed-server contract against the Node server itself: it seeds the
/// roster the harness computes, refuses a bad token with the guide's
/// CONNECT_ERROR, keeps its state across a crash restart on the same port,
/// and says `server-shutdown` on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_server_keeps_the_managed_server_contract() {
    let Some(command) = node_server() else { return };
    let plan = plan(&command, "", "token_ttl = \"2s\"", CHAT);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ManagedServer::start(Path::new(common::BIN), &plan, dir.path()).unwrap();
    let base = server.url();
    let addr = server.addr.clone();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    let (status, health) = common::get(&base, "/health", "").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");

    // The roster: every user's conversations, as the harness computed them.
    let expected = roster(&plan);
    for u in 0..30 {
        let user = format!("u{u}");
        let token = common::token(&base, &user).await;
        let (status, body) = common::get(&base, "/api/conversations", &token).await;
        assert_eq!(status, 200, "{body}");
        let got: Vec<&str> = body["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = expected
            .iter()
            .filter(|(_, m)| m.contains(&user))
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(got, want, "{user}");
    }

    // A token past its (2 s) lifetime: refused as the guide's client expects,
    // by our client and over REST.
    let login = common::login(&base, "u0").await;
    let token = login["token"].as_str().unwrap().to_owned();
    let refresh = login["refreshToken"].as_str().unwrap().to_owned();
    let first_conversation = expected
        .iter()
        .find(|(_, m)| m.contains(&"u0".to_owned()))
        .map(|(c, _)| c.clone())
        .unwrap();
    let mut client = common::RawClient::with_token(&addr, &token).await;
    assert_eq!(client.join(&first_conversation).await["success"], true);
    let ack = client
        .send(&first_conversation, "t-1", "before the crash")
        .await;
    assert_eq!(ack["seq"], 1, "{ack}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let opts = reconnoiter::sio::ConnectOptions {
        auth: Some(json!({ "token": token })),
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    match reconnoiter::sio::connect(&base, &opts).await {
        Err(reconnoiter::sio::ConnectError::Refused { message, .. }) => {
            assert_eq!(message, "Authentication failed")
        }
        other => panic!("an expired token was not refused: {other:?}"),
    }
    let (status, _) = common::get(&base, "/api/conversations", &token).await;
    assert_eq!(status, 401);

    // SIGKILL, then the same command again: same port, same state (the
    // refresh token still good), and the resend of an acknowledged temp_id
    // gets the original id.
    server.kill().unwrap();
    assert!(!server.is_running());
    server.restart().unwrap();
    assert_eq!(server.addr, addr, "restarted on the same port");
    let refreshed: Value = common::http()
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({ "refreshToken": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = refreshed["token"].as_str().unwrap().to_owned();
    let mut client = common::RawClient::with_token(&addr, &token).await;
    assert_eq!(client.join(&first_conversation).await["success"], true);
    let again = client.send(&first_conversation, "t-1", "resent").await;
    assert_eq!(
        (&again["id"], &again["seq"]),
        (&ack["id"], &ack["seq"]),
        "{again}"
    );
    let seqs = common::sync_seq(&base, &token, &first_conversation, 0).await;
    assert_eq!(seqs, [1]);

    // SIGTERM: `server-shutdown` reaches the client before the close.
    server.stop(Duration::from_secs(5)).unwrap();
    assert!(!server.is_running());
    let notices = client
        .wait_for("server-shutdown", 1, Duration::from_secs(2))
        .await;
    assert_eq!(notices.len(), 1, "{:?}", client.events);
}

/// Smoke: 30 users chat against the Node server; the verdict passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_against_the_node_server() {
    let Some(command) = node_server() else { return };
    let plan = plan(&command, "", "", CHAT);
    let expected = roster(&plan);
    let reports = tempfile::tempdir().unwrap();
    let outcome = run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    let (summary, events) = assert_verdict(&outcome, &expected, true);
    assert_eq!(summary["verdict"]["counts"]["reconnects"], 0, "{summary:#}");
    // 6 conversations of 5 members: 30 joins, no more.
    assert_eq!(of_kind(&events, "joined").count(), 6 * 5);
}

/// Tokens live 2 s; two cohorts lose the network for 3 s. Users 0..10 come
/// back with an expired token and refresh it; users 10..20 had theirs revoked
/// too, so the refresh is refused and they log in again. All reconnect, sync
/// what they missed, and the verdict passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_against_the_node_server() {
    let Some(command) = node_server() else { return };
    let faults = r#"
[[cohorts]]
name = "expired"
users = 10
[[cohorts]]
name = "revoked"
users = 10
[[faults]]
kind = "token-expiry"
cohort = "revoked"
users = "100%"
at = "500ms"
[[faults]]
kind = "offline"
cohort = "expired"
mode = "refuse"
at = "1s"
for = "3s"
[[faults]]
kind = "offline"
cohort = "revoked"
mode = "refuse"
at = "1s"
for = "3s"
"#;
    let target = format!("token_ttl = \"2s\"\n{HEARTBEAT}");
    let plan = plan(&command, "", &target, &format!("{CHAT}{faults}"));
    let expected = roster(&plan);
    let reports = tempfile::tempdir().unwrap();
    let outcome = run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    let (_, events) = assert_verdict(&outcome, &expected, false);
    // The heal's "begin", not its "done": a quick user may reconnect between
    // the proxy coming back and the nemesis recording it.
    let down = fault_at(&events, "net-start", "begin");
    let healed = fault_at(&events, "net-heal", "begin");
    let any = |_: &Value| true;
    each_user_after(&events, 0..20, down, "disconnected", any);
    each_user_after(&events, 0..10, down, "token_refreshed", any);
    each_user_after(&events, 10..20, down, "token_refresh_failed", any);
    each_user_after(&events, 10..20, down, "logged_in", any);
    assert!(
        !of_kind(&events, "token_refreshed").any(|e| (10..20).contains(&e["u"].as_u64().unwrap())),
        "a revoked refresh token was honoured"
    );
    each_user_after(&events, 0..20, healed, "connected", any);
    each_user_after(&events, 0..20, healed, "recovered", any);
}

/// The server is SIGKILLed 2 s into the chat and started again 1 s later by
/// the same command; everyone reconnects and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restart_of_the_node_server() {
    let Some(command) = node_server() else { return };
    let faults = r#"
[[faults]]
kind = "server-restart"
mode = "crash"
at = "2s"
down = "1s"
"#;
    let plan = plan(&command, "", HEARTBEAT, &format!("{CHAT}{faults}"));
    let expected = roster(&plan);
    let reports = tempfile::tempdir().unwrap();
    let outcome = run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    let (summary, events) = assert_verdict(&outcome, &expected, false);
    let crash = fault_at(&events, "server-down", "begin");
    let up = fault_at(&events, "server-up", "begin");
    each_user_after(&events, 0..30, crash, "disconnected", |_| true);
    each_user_after(&events, 0..30, up, "connected", |_| true);
    assert!(summary["verdict"]["counts"]["reconnects"].as_u64().unwrap() >= 30);
    let log = std::fs::read_to_string(outcome.dir.join("server.log")).unwrap();
    assert_eq!(log.matches("socket.io chat server on").count(), 2, "{log}");
}

/// socket.io's connection-state recovery: with it on and an outage shorter
/// than maxDisconnectionDuration, the users that lost the network get their
/// session back (`recovered: true`) and the missed packets exactly once,
/// from the server's replay alone (no REST sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_state_recovery_replays_missed_packets_exactly_once() {
    let Some(command) = node_server() else { return };
    let rest = CHAT.replace(
        "send_rate = \"2/s\"",
        "send_rate = \"2/s\"\nsync = \"none\"",
    );
    let faults = r#"
[[cohorts]]
name = "away"
users = 10
[[faults]]
kind = "offline"
cohort = "away"
mode = "refuse"
at = "1500ms"
for = "1500ms"
"#;
    let plan = plan(
        &command,
        " --recovery",
        HEARTBEAT,
        &format!("{rest}{faults}"),
    );
    let expected = roster(&plan);
    let reports = tempfile::tempdir().unwrap();
    let outcome = run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    let (summary, events) = assert_verdict(&outcome, &expected, true);
    assert_eq!(
        summary["verdict"]["counts"]["redelivered"], 0,
        "{summary:#}"
    );
    assert!(
        of_kind(&events, "delivered").all(|e| e["dup"] == false && e["via"] == "live"),
        "a duplicate or a synced delivery"
    );
    let healed = fault_at(&events, "net-heal", "begin");
    each_user_after(&events, 0..10, healed, "connected", |e| {
        e["recovered"] == true
    });
    // The away users missed messages while they were away, and got them replayed.
    let down = fault_at(&events, "net-start", "begin");
    let away: HashSet<u64> = (0..10).collect();
    let missed = of_kind(&events, "acked")
        .filter(|e| {
            let t = e["t"].as_u64().unwrap();
            t > down && t < healed && !away.contains(&e["u"].as_u64().unwrap())
        })
        .count();
    assert!(missed > 0, "nothing was sent while the cohort was away");
}

//! The scenario library (scenarios/*.toml), each proven to catch what it is
//! for: the real file, scaled down to fit CI (fewer users, every time in
//! the fault timeline shrunk by one factor), passes against the correct
//! reference server and fails with exit 1 and exactly the expected kind of
//! violation against the bug switch that breaks its promise.

use crate::common;

use std::path::Path;
use std::time::Duration;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::history::EventKind;
use reconnoiter::report::summary::Summary;
use toml::Value;

/// The scenario file `name`, scaled: every duration in `[run] duration` and
/// in the faults (`at`, `for`, `every`, `down`, `up`, `readd_after`) times
/// `factor`, the token lifetime too (so outages still outlast it); then the
/// `edits` (dotted paths; a number indexes an array: "faults.1.users").
fn scaled(name: &str, factor: f64, edits: &[(&str, Value)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let scale = |v: &mut Value| {
        if let Value::String(s) = v {
            *s = s
                .split("..")
                .map(|d| {
                    let d = humantime::parse_duration(d.trim()).unwrap();
                    format!("{}ms", (d.as_secs_f64() * factor * 1e3).round() as u64)
                })
                .collect::<Vec<_>>()
                .join("..");
        }
    };
    if let Some(d) = doc.get_mut("run").and_then(|r| r.get_mut("duration")) {
        scale(d);
    }
    if let Some(t) = doc.get_mut("target").and_then(|r| r.get_mut("token_ttl")) {
        scale(t);
    }
    if let Some(Value::Array(faults)) = doc.get_mut("faults") {
        for f in faults.iter_mut().filter_map(Value::as_table_mut) {
            for key in ["at", "for", "every", "down", "up", "readd_after"] {
                if let Some(v) = f.get_mut(key) {
                    scale(v);
                }
            }
        }
    }
    for (path, value) in edits {
        set(&mut doc, path, value.clone());
    }
    toml::to_string(&doc).unwrap()
}

fn set(doc: &mut toml::Table, path: &str, value: Value) {
    let mut keys = path.split('.').peekable();
    let mut at: &mut Value = doc
        .entry(keys.next().unwrap())
        .or_insert_with(|| Value::Table(Default::default()));
    while let Some(k) = keys.next() {
        let last = keys.peek().is_none();
        at = match at {
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            Value::Table(t) if last => {
                t.insert(k.to_owned(), value);
                return;
            }
            Value::Table(t) => t
                .entry(k)
                .or_insert_with(|| Value::Table(Default::default())),
            other => panic!("{path}: {other:?} has no {k}"),
        };
    }
    *at = value;
}

fn bugs(list: &[&str]) -> (&'static str, Value) {
    (
        "target.bugs",
        Value::Array(list.iter().map(|b| Value::String(b.to_string())).collect()),
    )
}

fn text(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// Runs a scaled scenario; its report stays under the target directory
/// (`scenario-tests/`), so a failure can be read afterwards (and a CI job
/// can keep it as an artifact).
async fn run(name: &str, text: String) -> Summary {
    let text = text.as_str();
    let plan = reconnoiter::scenario::parse(Path::new(&format!("{name}.toml")), text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-tests");
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        reconnoiter::run::run(plan, common::run_options(&reports), std::future::pending()),
    )
    .await
    .expect("a scaled scenario finishes in two minutes")
    .unwrap();
    assert_eq!(outcome.exit.code(), outcome.summary.exit_code);
    let mut summary = outcome.summary;
    // Failure messages end with where to look.
    summary.scenario = format!("{} [{}]", summary.scenario, outcome.dir.display());
    summary
}

fn assert_passes(s: &Summary) {
    assert!(s.verdict.kinds().is_empty(), "{}", s.render());
    assert_eq!(s.exit(), Exit::Pass, "{}", s.render());
    let c = &s.verdict.counts;
    assert!(
        c.accepted > 0 && c.delivered > 0 && c.reconnects > 0,
        "{c:?}"
    );
    assert!(s.fault_failures.is_empty(), "{:?}", s.fault_failures);
}

fn assert_fails_with(s: &Summary, kind: Guarantee) {
    assert_eq!(s.verdict.kinds(), vec![kind], "{}", s.render());
    assert_eq!(s.exit(), Exit::Violation, "{}", s.render());
    let example = s
        .verdict
        .violations
        .iter()
        .find(|v| v.kind == kind)
        .unwrap();
    assert!(!example.explanation.is_empty() && !example.evidence.is_empty());
}

/// Every file in scenarios/ parses, with the settings its comment promises.
#[test]
fn every_scenario_file_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# ") && text.contains("Your own server"),
            "{}: starts with what it proves and how to aim it at your server",
            path.display()
        );
        let plan = reconnoiter::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        names.push(plan.name.clone());
        if plan.name == "capacity" {
            let cap = plan.capacity.as_ref().expect("[capacity]");
            assert_eq!(cap.stages().first(), Some(&500));
            assert_eq!(cap.stages().last(), Some(&5000));
        }
        if plan.name == "soak" {
            assert!(plan.duration >= Duration::from_secs(3600));
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "capacity",
            "membership-removal",
            "node",
            "offline-flapping",
            "server-restart",
            "smoke",
            "soak",
            "token-expiry"
        ]
    );
}

// offline-flapping: 40 users, 18 s of chat. Outages keep their full
// length: blackholes must outlast the 1 s + 1 s heartbeat (a shorter one is
// refused: plan::check_blackholes), and the network must stay up long
// enough between outages for the backoff (up to 4.5 s) to find it up.

fn offline_flapping(bug: &[&str]) -> String {
    scaled(
        "offline-flapping",
        0.3,
        &[
            ("users.count", Value::Integer(40)),
            ("users.conversations", Value::Integer(4)),
            ("faults.0.down", text("2600ms..3s")),
            ("faults.0.up", text("3s..5s")),
            ("faults.1.for", text("2600ms")),
            bugs(bug),
        ],
    )
}

// Each test runs its correct-server run and its bug runs side by side:
// they mostly wait on their fault timelines, so this halves the suite's time.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_flapping_passes_and_catches_a_sync_that_skips_a_message() {
    let (good, bad) = tokio::join!(
        run("offline-flapping", offline_flapping(&[])),
        run("offline-flapping", offline_flapping(&["sync-off-by-one"])),
    );
    assert_passes(&good);
    assert_fails_with(&bad, Guarantee::Loss);
}

// token-expiry: 40 users, 24 s of chat, tokens of 2 s.

fn token_expiry(bug: &[&str]) -> String {
    scaled(
        "token-expiry",
        0.4,
        &[
            ("users.count", Value::Integer(40)),
            ("users.conversations", Value::Integer(4)),
            bugs(bug),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_passes_and_catches_expired_tokens_accepted() {
    let (good, bad) = tokio::join!(
        run("token-expiry", token_expiry(&[])),
        run("token-expiry", token_expiry(&["accept-expired-tokens"])),
    );
    assert_passes(&good);
    assert!(good.verdict.counts.token_refreshes > 0, "{}", good.render());
    assert_fails_with(&bad, Guarantee::Auth);
}

// server-restart: 40 users sending once a second (so sends are in flight
// at the crash), 14 s of chat.

fn server_restart(edits: &[(&str, Value)]) -> String {
    let mut all = vec![
        ("users.count", Value::Integer(40)),
        ("users.conversations", Value::Integer(4)),
        ("users.send_rate", text("1/s")),
    ];
    all.extend(edits.iter().cloned());
    scaled("server-restart", 0.35, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_passes_and_catches_a_lost_queue_and_resends_stored_twice() {
    let (good, volatile, twice) = tokio::join!(
        run("server-restart", server_restart(&[])),
        run(
            "server-restart",
            server_restart(&[bugs(&["volatile-queue"])])
        ),
        // A resend is what this bug stores twice. The crash loses an ack
        // only if it falls between the store and the ack's write (a CI run
        // once had none, and the bug went unseen), so the slow cohort's acks
        // (400 ms late) also time out at 300 ms: every slow send is resent,
        // with or without a crash.
        run(
            "server-restart",
            server_restart(&[
                bugs(&["no-idempotency"]),
                ("users.ack_timeout", text("300ms"))
            ])
        ),
    );
    assert_passes(&good);
    // The cohort away during the restarts got the messages queued for it
    // through the server's replay alone.
    assert!(good.verdict.counts.recovered > 0);
    assert_fails_with(&volatile, Guarantee::Loss);
    assert_fails_with(&twice, Guarantee::Duplicates);
}

/// The guide's own client resends under a new temp_id, so a send the
/// server stored but whose ack died with it is stored again: duplicates on
/// the correct server, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_with_the_guides_new_temp_ids_duplicates() {
    // As with `no-idempotency` above: a crash loses an ack only if it falls
    // between the store and the ack's write (a CI run had none), so the slow
    // cohort's acks (400 ms late) also time out at 300 ms and every slow
    // send is resent under a new temp_id, crash or not.
    let s = run(
        "server-restart",
        server_restart(&[
            ("users.resend", text("new-temp-id")),
            ("users.ack_timeout", text("300ms")),
        ]),
    )
    .await;
    println!("{}", s.render());
    assert_fails_with(&s, Guarantee::Duplicates);
    for v in s.verdict.violations.iter() {
        assert!(
            v.explanation.contains("was stored twice"),
            "two ids for one send: {}",
            v.explanation
        );
    }
}

// membership-removal: 40 users, 14 s of chat.

fn membership_removal(bug: &[&str]) -> String {
    scaled(
        "membership-removal",
        0.35,
        &[
            ("users.count", Value::Integer(40)),
            ("users.conversations", Value::Integer(4)),
            ("faults.1.users", Value::Integer(4)),
            ("faults.2.users", Value::Integer(4)),
            ("faults.3.users", Value::Integer(3)),
            bugs(bug),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_removal_passes_and_catches_removed_users_still_receiving() {
    let (good, bad) = tokio::join!(
        run("membership-removal", membership_removal(&[])),
        run(
            "membership-removal",
            membership_removal(&["skip-membership-check"])
        ),
    );
    assert_passes(&good);
    assert_fails_with(&bad, Guarantee::Leaks);
}

// smoke: run as it is written, as CI's every-commit check would.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_as_written_and_catches_dropped_broadcasts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let written = std::fs::read_to_string(path).unwrap();
    let mut doc: toml::Table = toml::from_str(&written).unwrap();
    set(&mut doc, "target.bugs", bugs(&["drop-under-load"]).1);
    let dropping = toml::to_string(&doc).unwrap();
    let (good, bad) = tokio::join!(run("smoke", written), run("smoke", dropping));
    assert_passes(&good);
    // The fault steps were carried out: two outages (down, heal), a
    // revocation, a removal, a crash (down, up).
    assert!(good.verdict.counts.faults >= 5, "{:?}", good.verdict.counts);
    assert_fails_with(&bad, Guarantee::Loss);
}

// capacity: two stages of 20 and 40 users, 3 s of chat each.

async fn capacity(knee: &str, bug: &[&str]) -> reconnoiter::run::capacity::CapacityOutcome {
    let text = scaled(
        "capacity",
        1.0,
        &[
            ("users.count", Value::Integer(20)),
            ("run.drain", text("10s")),
            // Ramps of 0.4 s and 0.8 s: long enough that a user sending
            // every 0.5 s from its join would send during its stage's ramp.
            ("run.ramp", text("50/s")),
            ("capacity.step", Value::Integer(20)),
            ("capacity.max", Value::Integer(40)),
            ("capacity.hold", text("3s")),
            ("capacity.knee", text(knee)),
            ("users.send_rate", text("2/s")),
            bugs(bug),
        ],
    );
    let plan = reconnoiter::scenario::parse(Path::new("capacity.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-tests");
    tokio::time::timeout(
        Duration::from_secs(120),
        reconnoiter::run::capacity::run_capacity(
            plan,
            common::run_options(&reports),
            std::future::pending(),
        ),
    )
    .await
    .expect("two small stages finish in two minutes")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_steps_up_and_reports_every_stage() {
    use reconnoiter::run::capacity::Knee;
    let out = capacity("delivery.p99 < 30s", &[]).await;
    assert_eq!(out.result, Knee::NotReached, "{out:?}");
    assert_eq!(out.exit(), Exit::Pass);
    let users: Vec<u32> = out.stages.iter().map(|s| s.users).collect();
    assert_eq!(users, [20, 40]);
    for s in &out.stages {
        assert_eq!(s.exit_code, 0, "{s:?}");
        assert!(
            s.delivered_per_s > 0.0 && s.knee_actual_us.unwrap() > 0.0,
            "{s:?}"
        );
        assert!(out.dir.join(&s.dir).join("summary.json").is_file());
        // A stage measures its users held, not arriving: no one sends
        // before the ramp is over (the chat phase's mark in the history).
        let (_, events) =
            reconnoiter::history::recorder::read(&out.dir.join(&s.dir).join("history.jsonl"))
                .unwrap();
        let chat = events
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Phase { name } if name == "chat"))
            .expect("the chat phase is marked")
            .t;
        let first_send = events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Sent { .. }))
            .expect("the stage's users sent")
            .t;
        // The mark is written when the ramp's last sleep wakes: a few ms of
        // scheduling either way, against a ramp of 400 or 800 ms.
        assert!(
            first_send + 5_000 >= chat,
            "stage {}: first send at {first_send} before the ramp ended at {chat}",
            s.stage
        );
    }
    let csv = std::fs::read_to_string(out.dir.join("capacity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(out.dir.join("capacity.html").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_stops_at_a_broken_threshold_or_a_violation() {
    use reconnoiter::run::capacity::Knee;
    // No delivery takes under a microsecond: the first stage breaks it.
    // Loss under load is a bug, not a capacity.
    let (out, lossy) = tokio::join!(
        capacity("delivery.p99 < 1us", &[]),
        capacity("delivery.p99 < 30s", &["drop-under-load"])
    );
    assert_eq!(out.result, Knee::FirstStageBroke, "{out:?}");
    assert_eq!(out.exit(), Exit::Threshold);
    assert_eq!(out.stages.len(), 1);
    let out = lossy;
    assert_eq!(out.result, Knee::Violation, "{out:?}");
    assert_eq!(out.exit(), Exit::Violation);
}

/// Against a server seeded for the first stage only, the second stage is
/// refused by the preflight: the error names that stage, and the first
/// stage's row is still written (it used to be lost with the error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_stage_that_cannot_run_keeps_the_stages_before_it() {
    let server = common::ServerProcess::start(&[
        "--users",
        "20",
        "--conversations",
        "2",
        "--members",
        "10",
        "--seed",
        "16",
    ]);
    let text = r#"
[run]
name = "cap-target"
duration = "3s"
ramp = "100/s"
drain = "5s"
seed = 16
[users]
count = 20
conversations = 2
members = 10
send_rate = "2/s"
[capacity]
step = 20
max = 40
hold = "2s"
knee = "delivery.p99 < 30s"
"#;
    let plan = reconnoiter::scenario::parse(Path::new("cap-target.toml"), text).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut opts = common::run_options(reports.path());
    opts.target_url = Some(server.url());
    let err = reconnoiter::run::capacity::run_capacity(plan, opts, std::future::pending())
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("capacity stage 2/2 (40 users) could not run"),
        "{msg}"
    );
    assert!(msg.contains("memberships"), "{msg}");
    assert_eq!(reconnoiter::exit::code_for(&err), Exit::Harness);
    let dir = std::fs::read_dir(reports.path())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let csv = std::fs::read_to_string(dir.join("capacity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "the header and stage 1: {csv}");
    assert!(dir.join("capacity.html").is_file());
    // The headline names the stage that did not run, not stage 1 (which held).
    let json = std::fs::read_to_string(dir.join("capacity.json")).unwrap();
    let out: reconnoiter::run::capacity::CapacityOutcome = serde_json::from_str(&json).unwrap();
    let headline = out.headline();
    assert!(
        headline.starts_with("HARNESS: stage 2/2 (40 users) could not run")
            && headline.contains("the knee is at least 20 users"),
        "{headline}"
    );
}

/// `--target` makes the server external: a restart fault then needs
/// `restart_command`, and saying so comes before anything is spawned
/// (before even asking whether the target is up).
#[test]
fn a_restart_against_target_without_restart_command_is_bad_input() {
    let reports = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-tests");
    let out = std::process::Command::new(common::BIN)
        .args(["run", "scenarios/server-restart.toml", "-q", "--target"])
        .arg("http://127.0.0.1:1")
        .arg("--reports")
        .arg(&reports)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server-restart.toml") && err.contains("restart_command"),
        "{err}"
    );
}

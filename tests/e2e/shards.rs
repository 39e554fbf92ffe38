//! A run split into shards gives the verdict of the same run in one process:
//! four real `reconnoiter run --shard K/4` processes against one shared
//! server, merged with the checker re-run on the union; a message sent on one
//! shard and missing on another is a loss of the merge; mismatched shards are
//! refused.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use reconnoiter::check::Guarantee;
use reconnoiter::exit::Exit;
use reconnoiter::report::merge::merge;

const USERS: &str = "40";
const SCENARIO: &str = r#"
[run]
name = "sharded"
duration = "4s"
ramp = "100/s"
drain = "8s"
seed = 21
[users]
count = 40
conversations = 4
members = 10
send_rate = "2/s"
messages = 4
# A server-wide fault: shard 0 carries it out, the others record it as remote.
[[faults]]
kind = "token-expiry"
users = "20%"
at = "2s"
"#;

fn server() -> common::ServerProcess {
    common::ServerProcess::start(&[
        "--users",
        USERS,
        "--conversations",
        "4",
        "--members",
        "10",
        "--seed",
        "21",
    ])
}

/// Runs the scenario file with extra arguments as a real process; returns its run folder.
fn run_process(scenario: &Path, reports: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(common::BIN)
        .arg("run")
        .arg(scenario)
        .arg("--reports")
        .arg(reports)
        .arg("-q")
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn only_dir(reports: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["history.jsonl", "summary.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// The samples of one metric in an .hlog, and in how many intervals.
fn hlog_samples(text: &[u8], tag: &str) -> (u64, usize) {
    use base64::Engine;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let (mut samples, mut intervals) = (0, 0);
    for entry in IntervalLogIterator::new(text) {
        if let LogEntry::Interval(i) = entry.unwrap()
            && i.tag().map(|t| t.as_str()) == Some(tag)
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(i.encoded_histogram())
                .unwrap();
            let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                .deserialize(&mut &bytes[..])
                .unwrap();
            samples += h.len();
            intervals += 1;
        }
    }
    (samples, intervals)
}

#[test]
fn four_shards_merge_to_the_verdict_of_one_process() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("sharded.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();

    // One process.
    let single_server = server();
    let single_reports = work.path().join("single");
    let status = run_process(
        &scenario,
        &single_reports,
        &["--target", &single_server.url()],
    )
    .wait()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    let single = reconnoiter::report::summary::Summary::read(&only_dir(&single_reports)).unwrap();

    // Four shard processes, one shared server, one start time.
    let shared = server();
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let mut shard_dirs = Vec::new();
    let children: Vec<_> = (0..4)
        .map(|k| {
            let reports = work.path().join(format!("shard{k}"));
            shard_dirs.push(reports.clone());
            let shard = format!("{k}/4");
            run_process(
                &scenario,
                &reports,
                &[
                    "--target",
                    &shared.url(),
                    "--shard",
                    &shard,
                    "--start-at",
                    &start_at,
                ],
            )
        })
        .collect();
    for mut c in children {
        let status = c.wait().unwrap();
        assert_eq!(status.code(), Some(0), "every shard passes on its own");
    }
    let shard_dirs: Vec<PathBuf> = shard_dirs.iter().map(|r| only_dir(r)).collect();
    let (merged, _) = merge(&shard_dirs, &work.path().join("merged"), &[]).unwrap();
    // Each shard counts the messages its own users had accepted, so the
    // shards' counts add up to the merge's (a shard used to count every
    // message it saw delivered: "sent 164, accepted 331").
    let shard_accepted: u64 = shard_dirs
        .iter()
        .map(|d| {
            reconnoiter::report::summary::Summary::read(d)
                .unwrap()
                .verdict
                .counts
                .accepted
        })
        .sum();
    assert_eq!(shard_accepted, merged.verdict.counts.accepted);

    assert_eq!(merged.exit(), Exit::Pass, "{}", merged.render());
    assert_eq!(merged.exit(), single.exit());
    let (m, s) = (&merged.verdict.counts, &single.verdict.counts);
    assert_eq!(m.sent, 40 * 4, "each user sends exactly `messages`");
    assert_eq!(
        (m.sent, m.accepted, m.acked, m.owed, m.delivered, m.connects),
        (s.sent, s.accepted, s.acked, s.owed, s.delivered, s.connects),
        "merged {m:?}\nsingle {s:?}"
    );
    assert_eq!(merged.verdict.kinds(), single.verdict.kinds());
    assert!(
        merged
            .verdict
            .metrics
            .iter()
            .any(|x| x.metric == "delivery" && x.count == m.delivered)
    );
    // The merged latency.hlog holds the union's intervals: its delivery
    // samples add up to the merged histogram's.
    let delivery = merged
        .verdict
        .metrics
        .iter()
        .find(|x| x.metric == "delivery" && x.tag.is_none())
        .unwrap();
    let hlog = std::fs::read(work.path().join("merged/latency.hlog")).unwrap();
    let (samples, intervals) = hlog_samples(&hlog, "delivery");
    assert_eq!(samples, delivery.count);
    assert!(intervals >= 1);
    // The revocation happened once, on shard 0, and the merge kept only that.
    let (_, events) =
        reconnoiter::history::recorder::read(&work.path().join("merged/history.jsonl")).unwrap();
    let phases: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            reconnoiter::history::EventKind::Fault { phase, .. } => Some(phase.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(phases, ["begin", "done"]);

    // A message sent on one shard that never reached a member on another: lost.
    let tampered: Vec<PathBuf> = shard_dirs
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let to = work.path().join(format!("tampered{k}"));
            copy_dir(d, &to);
            to
        })
        .collect();
    let history = tampered[1].join("history.jsonl");
    let text = std::fs::read_to_string(&history).unwrap();
    let mut dropped = None;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            if dropped.is_none()
                && line.contains("\"ev\":\"delivered\"")
                && !line.contains("\"sender\":\"u1\"")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["sender"]
                    .as_str()
                    .and_then(|s| s[1..].parse::<u32>().ok())
                    .is_some_and(|s| s % 4 != 1)
            {
                dropped = Some((v["id"].as_str().unwrap().to_owned(), format!("u{}", v["u"])));
                return false;
            }
            true
        })
        .collect();
    std::fs::write(&history, kept.join("\n") + "\n").unwrap();
    let (id, recipient) = dropped.expect("a cross-shard delivery to drop");
    let (lossy, _) = merge(&tampered, &work.path().join("lossy"), &[]).unwrap();
    assert_eq!(
        lossy.verdict.kinds(),
        vec![Guarantee::Loss],
        "{}",
        lossy.render()
    );
    assert_eq!(lossy.verdict.count(Guarantee::Loss), 1);
    let v = &lossy.verdict.violations[0];
    assert_eq!(
        (v.message_id.as_deref(), v.recipient.as_deref()),
        (Some(id.as_str()), Some(recipient.as_str()))
    );
    assert_eq!(lossy.exit(), Exit::Violation);

    // Mismatched shards are refused with a clear error (exit 2).
    let refused = |dirs: &[PathBuf], needle: &str| {
        let err = merge(dirs, &work.path().join("refused"), &[]).unwrap_err();
        assert_eq!(reconnoiter::exit::code_for(&err), Exit::BadInput, "{err:#}");
        assert!(format!("{err:#}").contains(needle), "{err:#}");
    };
    refused(&shard_dirs[..3], "shards missing: 3/4");
    refused(
        &[
            shard_dirs[0].clone(),
            shard_dirs[0].clone(),
            shard_dirs[2].clone(),
            shard_dirs[3].clone(),
        ],
        "given twice",
    );
    let other_seed = work.path().join("seed");
    copy_dir(&shard_dirs[3], &other_seed);
    let h = other_seed.join("history.jsonl");
    std::fs::write(
        &h,
        std::fs::read_to_string(&h)
            .unwrap()
            .replacen("\"seed\":21", "\"seed\":22", 1),
    )
    .unwrap();
    refused(
        &[
            shard_dirs[0].clone(),
            shard_dirs[1].clone(),
            shard_dirs[2].clone(),
            other_seed,
        ],
        "seed 21 vs 22",
    );
    // The same scenario and seed run twice: shard 3 of another run (another
    // --start-at), or, without --start-at, of one that ran an hour later.
    let edited = |name: &str, edit: &dyn Fn(usize, &mut serde_json::Value)| {
        (0..4)
            .map(|k| {
                let to = work.path().join(format!("{name}{k}"));
                copy_dir(&shard_dirs[k], &to);
                let h = to.join("history.jsonl");
                let text = std::fs::read_to_string(&h).unwrap();
                let (first, rest) = text.split_once('\n').unwrap();
                let mut header: serde_json::Value = serde_json::from_str(first).unwrap();
                edit(k, &mut header);
                std::fs::write(&h, format!("{header}\n{rest}")).unwrap();
                to
            })
            .collect::<Vec<_>>()
    };
    let other_run = edited("other-run", &|k, h| {
        if k == 3 {
            h["start_at_ms"] = (h["start_at_ms"].as_i64().unwrap() + 60_000).into();
        }
    });
    refused(&other_run, "--start-at");
    let later = edited("later", &|k, h| {
        h.as_object_mut().unwrap().remove("start_at_ms");
        if k == 3 {
            h["started_at_ms"] = (h["started_at_ms"].as_i64().unwrap() + 3_600_000).into();
        }
    });
    refused(&later, "before the second began");
    let old = work.path().join("old");
    copy_dir(&shard_dirs[3], &old);
    let h = old.join("history.jsonl");
    std::fs::write(
        &h,
        std::fs::read_to_string(&h).unwrap().replacen(
            "\"history_version\":2",
            "\"history_version\":1",
            1,
        ),
    )
    .unwrap();
    refused(
        &[
            shard_dirs[0].clone(),
            shard_dirs[1].clone(),
            shard_dirs[2].clone(),
            old,
        ],
        "history version 1",
    );
}

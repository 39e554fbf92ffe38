//! `reconnoiter report show` and `report compare` as CI runs them: the
//! built binary on summaries written by hand into a temp dir, judged by
//! exit code and output.

use crate::report_support;

use std::path::Path;
use std::process::{Command, Output};

use reconnoiter::report::summary::Summary;

const BIN: &str = env!("CARGO_BIN_EXE_reconnoiter");

fn reconnoiter(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run_dir(root: &Path, name: &str, s: &Summary) -> String {
    let dir = root.join(name);
    report_support::write(&dir, s);
    dir.to_string_lossy().into_owned()
}

/// `passing()` with every overall metric's p50, p99 and max scaled.
fn slower(by: f64) -> Summary {
    let mut s = report_support::passing();
    for m in &mut s.verdict.metrics {
        m.p50 = (m.p50 as f64 * by) as u64;
        m.p99 = (m.p99 as f64 * by) as u64;
        m.max = (m.max as f64 * by) as u64;
    }
    s
}

#[test]
fn show_prints_the_summary_and_exits_with_the_runs_code() {
    let root = tempfile::tempdir().unwrap();
    let failed = run_dir(root.path(), "failed", &report_support::every_kind());
    let o = reconnoiter(&["report", "show", &failed]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("every-kind (10 users"), "{out}");
    assert!(
        out.trim_end()
            .ends_with("FAIL: 1 loss, 2 stranded, 4 leaks, 5 phantoms, 6 order, 7 auth"),
        "{out}"
    );

    let passed = run_dir(root.path(), "passed", &report_support::passing());
    let o = reconnoiter(&["report", "show", &format!("{passed}/summary.json")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).trim_end().ends_with("PASS"));

    let mut missed = report_support::passing();
    missed.verdict.thresholds[0].passed = false;
    missed.decide();
    let missed = run_dir(root.path(), "missed", &missed);
    assert_eq!(
        reconnoiter(&["report", "show", &missed]).status.code(),
        Some(3)
    );
}

#[test]
fn show_and_compare_refuse_unreadable_summaries_with_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let good = run_dir(root.path(), "good", &report_support::passing());

    let missing = root.path().join("nope").to_string_lossy().into_owned();
    let o = reconnoiter(&["report", "show", &missing]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot use this run summary"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("summary.json"), "{}", stderr(&o));

    // Another file is named as what it is, not swapped for its folder's summary.
    let other = root.path().join("good").join("summary.md");
    std::fs::write(&other, "# not a summary").unwrap();
    let o = reconnoiter(&["report", "show", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("summary.md is a file but not a summary.json"),
        "{}",
        stderr(&o)
    );

    let mut json = serde_json::to_value(report_support::passing()).unwrap();
    json["summary_version"] = 99.into();
    let future = root.path().join("future");
    std::fs::create_dir_all(&future).unwrap();
    std::fs::write(future.join("summary.json"), json.to_string()).unwrap();
    let future = future.to_string_lossy().into_owned();
    for args in [
        vec!["report", "show", &future],
        vec!["report", "compare", &good, &future],
        vec!["report", "compare", &future, &good],
    ] {
        let o = reconnoiter(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("summary_version 99; this reconnoiter reads version 1"),
            "{}",
            stderr(&o)
        );
    }

    let garbage = root.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("summary.json"), "{ not json").unwrap();
    let o = reconnoiter(&["report", "show", garbage.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not JSON"), "{}", stderr(&o));
}

#[test]
fn compare_passes_within_tolerance_and_fails_with_3_beyond_it() {
    let root = tempfile::tempdir().unwrap();
    let base = run_dir(root.path(), "base", &report_support::passing());
    let same = run_dir(root.path(), "same", &slower(1.05));
    let worse = run_dir(root.path(), "worse", &slower(1.2));

    let o = reconnoiter(&["report", "compare", &base, &same]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("metric") && out.contains("ratio"), "{out}");
    assert!(out.contains("reconnect          p99"), "{out}");
    assert!(
        !out.contains("fault:offline"),
        "tagged metrics are not compared: {out}"
    );
    assert!(
        out.trim_end()
            .ends_with("PASS: 6 figures within tolerance of the baseline"),
        "{out}"
    );
    assert!(out.contains("handshake.tcp      p50"), "shown: {out}");
    assert!(
        out.contains("info: the handshake phases are shown, not judged"),
        "{out}"
    );

    // 20 % slower: reconnect (900 ms p50) three times; delivery's p99 and
    // max (8 and 12 ms) but not its p50 (2.0 → 2.4 ms, within the 1 ms
    // floor); the handshake phase not at all.
    let o = reconnoiter(&["report", "compare", &base, &worse]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("WORSE").count(), 5, "{out}");
    assert!(out.contains("1.200    1.10  WORSE"), "{out}");
    assert!(out.contains("1.200    info\n"), "{out}");
    // No floor: the ratio alone, so delivery's p50 too; naming the
    // handshake phases judges them.
    let o = reconnoiter(&["report", "compare", &base, &worse, "--floor", "0s"]);
    assert_eq!(stdout(&o).matches("WORSE").count(), 6, "{}", stdout(&o));
    let o = reconnoiter(&[
        "report",
        "compare",
        &base,
        &worse,
        "--floor",
        "0s",
        "--tolerance",
        "handshake=10%",
    ]);
    assert_eq!(stdout(&o).matches("WORSE").count(), 9, "{}", stdout(&o));

    // A looser tolerance for everything, or just for what regressed.
    let o = reconnoiter(&["report", "compare", &base, &worse, "--tolerance", "25%"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = reconnoiter(&[
        "report",
        "compare",
        &base,
        &worse,
        "--tolerance",
        "reconnect=25%",
        "--tolerance",
        "delivery.p50=30%",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o).matches("WORSE").count(), 2, "{}", stdout(&o));

    let o = reconnoiter(&["report", "compare", &base, &worse, "--tolerance", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("write e.g. 10%"), "{}", stderr(&o));
}

#[test]
fn compare_fails_with_1_on_violations_the_baseline_did_not_have() {
    let root = tempfile::tempdir().unwrap();
    let base = run_dir(root.path(), "base", &report_support::passing());
    let mut broken = report_support::passing();
    broken.verdict.guarantees[0].violations = 3;
    broken.verdict.guarantees[0].passed = false;
    broken.decide();
    let new = run_dir(root.path(), "new", &broken);
    let o = reconnoiter(&["report", "compare", &base, &new]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("new violations: 3 loss (the baseline had none)"));
    // The other way round nothing is new.
    assert_eq!(
        reconnoiter(&["report", "compare", &new, &base])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn compare_will_not_gate_on_an_interrupted_or_saturated_run() {
    let root = tempfile::tempdir().unwrap();
    let base = run_dir(root.path(), "base", &report_support::passing());
    let mut cut = report_support::passing();
    cut.interrupted = true;
    cut.decide();
    let cut = run_dir(root.path(), "cut", &cut);
    let mut saturated = report_support::passing();
    saturated.verdict.harness.severe = true;
    saturated.verdict.harness.reasons = vec!["event-loop lag p99 2.1s".into()];
    saturated.decide();
    let saturated = run_dir(root.path(), "saturated", &saturated);

    for (a, b, which) in [(&base, &cut, "NEW"), (&cut, &base, "BASE")] {
        let o = reconnoiter(&["report", "compare", a, b]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(4), "{out}");
        assert!(out.contains(&format!("cannot gate: {which} (")), "{out}");
        assert!(out.contains("was interrupted"), "{out}");
        assert!(
            out.trim_end().ends_with("run it again to the end)"),
            "{out}"
        );
    }
    let o = reconnoiter(&["report", "compare", &base, &saturated]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    assert!(stdout(&o).contains("too saturated to judge latency (event-loop lag p99 2.1s)"));

    // The order of a run's own exit code: interrupted wins over new
    // violations, new violations over a saturated harness.
    let broken = |interrupted: bool, severe: bool| {
        let mut s = report_support::passing();
        s.interrupted = interrupted;
        s.verdict.harness.severe = severe;
        s.verdict.guarantees[0].violations = 3;
        s.verdict.guarantees[0].passed = false;
        s.decide();
        s
    };
    let cut_broken = run_dir(root.path(), "cut-broken", &broken(true, false));
    let o = reconnoiter(&["report", "compare", &base, &cut_broken]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    let saturated_broken = run_dir(root.path(), "saturated-broken", &broken(false, true));
    let o = reconnoiter(&["report", "compare", &base, &saturated_broken]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // A run whose fault proxy died: its violations are the harness's, so
    // neither the run nor the comparison fails the server on them.
    let mut proxy_died = broken(false, false);
    proxy_died.fault_failures = vec!["at the end of the drain: proxy rcn-down-0 gone".into()];
    proxy_died.faults_cut_users_off = true;
    proxy_died.decide();
    assert_eq!(proxy_died.exit_code, 4);
    assert!(
        proxy_died
            .headline()
            .contains("3 violations found are not trusted")
    );
    let proxy_died = run_dir(root.path(), "proxy-died", &proxy_died);
    let o = reconnoiter(&["report", "compare", &base, &proxy_died]);
    assert_eq!(o.status.code(), Some(4), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("a failed fault left users cut off by the harness"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn merge_of_folders_that_are_not_runs_is_bad_input() {
    let o = reconnoiter(&["report", "merge", "a", "b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("history.jsonl"), "{}", stderr(&o));
}

#[test]
fn report_show_on_a_capacity_run_says_where_its_results_are() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("capacity.json"), "{}").unwrap();
    std::fs::create_dir(root.path().join("stage-01")).unwrap();
    let dir = root.path().to_str().unwrap();
    let o = reconnoiter(&["report", "show", dir]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is a capacity run: its results are capacity.csv and capacity.html"),
        "{}",
        stderr(&o)
    );
}

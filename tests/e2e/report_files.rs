//! Every file a run writes, read back by an independent reader: summary.json
//! against the committed JSON Schema (jsonschema), junit.xml with a JUnit
//! parser, the CSVs with the csv crate. On a hand-built summary holding
//! every kind of violation, and on a real run with faults and a bug switch.

use crate::common;
use crate::report_support;

use std::path::Path;

use reconnoiter::check::Guarantee;
use reconnoiter::report::summary::Summary;
use serde_json::Value;

fn schema() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/summary.schema.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every schema error at once, so a drift between Summary and the schema
/// is fixed in one go.
fn schema_errors(instance: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn written_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_schema_is_valid_draft_2020_12() {
    jsonschema::meta::validate(&schema()).unwrap();
}

#[test]
fn a_summary_with_every_kind_of_violation_validates() {
    let dir = tempfile::tempdir().unwrap();
    let s = report_support::every_kind();
    assert_eq!(s.status, "violated");
    reconnoiter::report::write_all(dir.path(), &s, &report_support::latencies()).unwrap();
    let json = written_json(dir.path());
    assert_eq!(schema_errors(&json), Vec::<String>::new());
    let kinds: std::collections::BTreeSet<&str> = json["verdict"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), Guarantee::ALL.len(), "{kinds:?}");
    assert_eq!(Summary::read(dir.path()).unwrap(), s);
}

#[test]
fn the_schema_refuses_what_summary_never_writes() {
    let mut json = serde_json::to_value(report_support::every_kind()).unwrap();
    json["status"] = "pass".into();
    json["verdict"]["guarantees"][0]["guarantee"] = "lossy".into();
    json["verdict"]["surprise"] = 1.into();
    json["verdict"]["metrics"][0]["tag"] = "edge".into();
    let errors = schema_errors(&json);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn junit_has_one_case_per_guarantee_and_threshold_and_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let s = report_support::every_kind();
    reconnoiter::report::write_all(dir.path(), &s, &report_support::latencies()).unwrap();
    let file = std::fs::File::open(dir.path().join("junit.xml")).unwrap();
    let suites = junit_parser::from_reader(std::io::BufReader::new(file)).unwrap();
    assert_eq!(suites.suites.len(), 1);
    let suite = &suites.suites[0];
    assert_eq!(suite.name, "reconnoiter");
    assert_eq!(suite.cases.len(), 7 + 3 + 1);
    assert_eq!(suite.tests, 11);
    // Six guarantees fail; duplicates are allowed; one threshold missed; a
    // suspect (not severe) harness does not fail, as the exit code does not.
    assert_eq!(suite.failures, 7);
    let failed: Vec<&str> = suite
        .cases
        .iter()
        .filter(|c| c.status.is_failure())
        .map(|c| c.original_name.split(':').next().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "loss",
            "stranded",
            "leaks",
            "phantoms",
            "order",
            "auth",
            "reconnect.p99 < 3.00s"
        ]
    );
    let allowed = suite
        .cases
        .iter()
        .find(|c| c.original_name.starts_with("duplicates"))
        .unwrap();
    assert!(allowed.status.is_success());
    assert!(
        allowed
            .system_out
            .as_deref()
            .unwrap()
            .contains("3 violations, allowed"),
        "{allowed:?}"
    );
    let loss = suite
        .cases
        .iter()
        .find(|c| c.original_name.starts_with("loss"))
        .unwrap();
    let failure = loss.status.failure_as_ref();
    assert_eq!(failure.message, "1 violation");
    assert!(failure.text.contains("message=m0"), "{}", failure.text);
    let harness = suite.cases.last().unwrap();
    assert!(harness.original_name.starts_with("harness"));
    assert!(harness.status.is_success());
    assert!(harness.system_out.as_deref().unwrap().contains("suspect"));
}

#[test]
fn junit_fails_the_harness_case_when_faults_failed() {
    let mut s = report_support::passing();
    s.fault_failures = vec!["offline edge: proxy down".into()];
    s.decide();
    let xml = reconnoiter::report::junit::render(&s);
    let suites = junit_parser::from_reader(xml.as_bytes()).unwrap();
    let cases = &suites.suites[0].cases;
    assert_eq!(suites.suites[0].failures, 1);
    let harness = cases.last().unwrap();
    assert_eq!(
        harness.status.failure_as_ref().message,
        "fault failed: offline edge: proxy down"
    );
}

#[test]
fn csvs_round_trip_quotes_commas_and_empty_ids() {
    let dir = tempfile::tempdir().unwrap();
    let s = report_support::every_kind();
    reconnoiter::report::write_all(dir.path(), &s, &report_support::latencies()).unwrap();

    let mut r = csv::Reader::from_path(dir.path().join("violations.csv")).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        reconnoiter::report::violations_csv::HEADER
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), s.verdict.violations.len());
    for (row, v) in rows.iter().zip(&s.verdict.violations) {
        assert_eq!(&row[0], v.kind.name());
        assert_eq!(row[1].parse::<f64>().unwrap(), v.t as f64 / 1e6);
        assert_eq!(&row[2], v.message_id.as_deref().unwrap_or(""));
        assert_eq!(&row[7], v.explanation);
    }

    let mut r = csv::Reader::from_path(dir.path().join("timeline.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), s.verdict.timeline.len());
    assert_eq!(&rows[5][7], "offline:edge;server-restart");
    assert_eq!(&rows[7][8], "900.000", "reconnect p50 in ms");
    assert_eq!(&rows[0][8], "", "no reconnect completed in second 0");
}

#[test]
fn summary_md_leads_with_the_outcome() {
    let s = report_support::every_kind();
    let md = reconnoiter::report::markdown::render(&s);
    let first = md.lines().next().unwrap();
    assert!(
        first.starts_with("### ❌ reconnoiter `every-kind`: FAIL: 1 loss, 2 stranded"),
        "{first}"
    );
    assert!(
        !first.contains("duplicates"),
        "allowed kinds did not fail it"
    );
    for needle in [
        "| duplicates |",
        "➖ allowed",
        "| `reconnect.p99` | < 3.00s | 3.60s | ❌ missed |",
        "| reconnect | 40 | 900.0ms | 3.60s | 5.40s |",
        "| recipient never came back | 6 |",
        "**First violations**",
        "saw m0 in c1 \\| a",
    ] {
        assert!(md.contains(needle), "{needle} not in\n{md}");
    }
    assert!(
        !md.contains("fault:offline"),
        "the latency table shows overall figures only"
    );
}

#[test]
fn one_hgrm_per_histogram_in_latency() {
    let dir = tempfile::tempdir().unwrap();
    let s = report_support::every_kind();
    reconnoiter::report::write_all(dir.path(), &s, &report_support::latencies()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("latency"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "delivery.hgrm",
            "handshake.tcp.hgrm",
            "reconnect.fault-offline.hgrm",
            "reconnect.hgrm"
        ]
    );
    let text = std::fs::read_to_string(dir.path().join("latency/reconnect.hgrm")).unwrap();
    assert!(
        text.contains("#[Max     =     1900.543, Total count    =          200]"),
        "{text}"
    );
}

/// A real run: a cohort goes offline and the server drops broadcasts, so
/// the timeline has faults and the verdict has violations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_writes_every_file_and_its_summary_validates() {
    let scenario = r#"
[run]
duration = "4s"
ramp = "100/s"
drain = "8s"
seed = 3
[target]
ping_interval = "1s"
ping_timeout = "1s"
bugs = ["drop-under-load"]
[users]
count = 20
conversations = 4
members = 5
send_rate = "3/s"
[users.reconnection]
delay = "200ms"
delay_max = "500ms"
[[cohorts]]
name = "edge"
users = "50%"
[[faults]]
kind = "offline"
cohort = "edge"
mode = "refuse"
at = "1s"
for = "1500ms"
"#;
    let plan = reconnoiter::scenario::parse(Path::new("report.toml"), scenario).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let outcome = reconnoiter::run::run(
        plan,
        common::run_options(reports.path()),
        std::future::pending(),
    )
    .await
    .unwrap();
    let dir = &outcome.dir;
    let json = written_json(dir);
    assert_eq!(
        schema_errors(&json),
        Vec::<String>::new(),
        "{}",
        outcome.summary.render()
    );
    for f in [
        "summary.json",
        "summary.md",
        "junit.xml",
        "violations.csv",
        "timeline.csv",
        "latency.hlog",
        "latency/reconnect.hgrm",
        "latency/delivery.hgrm",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let junit = std::fs::File::open(dir.join("junit.xml")).unwrap();
    let suites = junit_parser::from_reader(std::io::BufReader::new(junit)).unwrap();
    let v = &outcome.summary.verdict;
    assert_eq!(
        suites.suites[0].cases.len(),
        v.guarantees.len() + v.thresholds.len() + 1
    );
    let failed = v.guarantees.iter().filter(|g| !g.passed).count();
    assert_eq!(suites.suites[0].failures as usize, failed);
    let timeline = csv::Reader::from_path(dir.join("timeline.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(timeline, v.timeline.len());
    assert!(
        v.timeline
            .iter()
            .any(|r| r.active_faults.iter().any(|f| f.contains("edge"))),
        "the offline fault shows in the timeline"
    );
}

#[test]
fn report_html_is_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = report_support::every_kind();
    reconnoiter::report::write_all(dir.path(), &s, &report_support::latencies()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for banned in ["<script", "<link", "@import", "src=\"http", "url(http"] {
        assert!(
            !html.contains(banned),
            "report.html must not fetch: {banned}"
        );
    }
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    for needle in [
        "FAIL: 1 loss, 2 stranded",
        "Users over time",
        "offline:edge",
        "Latency percentile spectrum",
        "fault:offline",
        "Violations by kind",
        "&quot;quoted&quot; &lt;tag&gt; &amp; comma",
        "reconnect.p99",
        "recipient never came back",
    ] {
        assert!(html.contains(needle), "{needle} missing from report.html");
    }
    assert!(!html.contains("<tag>"), "explanations are escaped");
}

//! junit.xml: every guarantee and threshold as a test case, so a CI
//! pipeline's test view lists them one by one (Jenkins, GitLab, GitHub
//! test-report actions all read this format). A case fails exactly when it
//! is a reason for the run's exit code, so the test view and the job's
//! status never disagree: allowed violations and a merely suspect harness
//! pass, with a note in system-out.

use std::fmt::Write;

use super::escape::xml;
use super::summary::{Summary, fmt_limit};
use crate::check::{Guarantee, Mode};

/// Violations quoted in a failed guarantee's body.
const EXAMPLES: usize = 5;

struct Case {
    class: &'static str,
    name: String,
    failure: Option<(String, String)>,
    out: Option<String>,
}

pub fn render(s: &Summary) -> String {
    let cases = cases(s);
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"reconnoiter\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">",
        cases.len(),
        s.elapsed_seconds
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"reconnoiter\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
        cases.len(),
        s.elapsed_seconds,
        xml(&timestamp(&s.started_at))
    );
    out += "    <properties>\n";
    for (k, v) in [
        ("run_id", s.run_id.clone()),
        ("scenario", s.scenario.clone()),
        ("target", s.target.clone()),
        ("seed", s.seed.to_string()),
        ("users", s.users.to_string()),
        ("status", s.status.clone()),
        ("exit_code", s.exit_code.to_string()),
    ] {
        let _ = writeln!(out, "      <property name=\"{k}\" value=\"{}\"/>", xml(&v));
    }
    out += "    </properties>\n";
    for c in &cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            c.class,
            xml(&c.name)
        );
        if c.failure.is_none() && c.out.is_none() {
            out += "/>\n";
            continue;
        }
        out += ">\n";
        if let Some((message, body)) = &c.failure {
            let _ = writeln!(
                out,
                "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                xml(message),
                c.class,
                xml(body)
            );
        }
        if let Some(text) = &c.out {
            let _ = writeln!(out, "      <system-out>{}</system-out>", xml(text));
        }
        out += "    </testcase>\n";
    }
    out += "  </testsuite>\n</testsuites>\n";
    out
}

fn cases(s: &Summary) -> Vec<Case> {
    let v = &s.verdict;
    let mut cases = Vec::new();
    for g in &v.guarantees {
        let examples = examples(s, g.guarantee);
        let name = format!("{}: {}", g.guarantee.name(), g.guarantee.promise());
        let (failure, out) = match (g.violations, g.passed, g.mode) {
            (0, _, _) => (None, None),
            (n, false, _) => (Some((violations(n), examples)), None),
            (n, true, Mode::Allow) => (
                None,
                Some(format!(
                    "{}, allowed by the scenario\n{examples}",
                    violations(n)
                )),
            ),
            (n, true, Mode::Fail) => (None, Some(format!("{}\n{examples}", violations(n)))),
        };
        cases.push(Case {
            class: "reconnoiter.guarantee",
            name,
            failure,
            out,
        });
    }
    for t in &v.thresholds {
        let limit = format!("{} {} {}", t.name, t.op, fmt_limit(&t.name, t.limit));
        let actual = t
            .actual
            .map_or("no samples".into(), |a| fmt_limit(&t.name, a));
        cases.push(Case {
            class: "reconnoiter.threshold",
            name: limit.clone(),
            failure: (!t.passed)
                .then(|| (format!("{limit} missed: actual {actual}"), String::new())),
            out: Some(format!("actual {actual}")),
        });
    }
    let h = &v.harness;
    let mut problems = Vec::new();
    if s.interrupted {
        problems.push("interrupted: partial results".to_owned());
    }
    problems.extend(
        s.fault_failures
            .iter()
            .map(|f| format!("fault failed: {f}")),
    );
    if h.severe {
        problems.push(format!("harness saturated: {}", h.reasons.join("; ")));
    }
    let note = format!(
        "event-loop lag p99 {} µs, max {} µs; CPU max {:.0} %, {} s above 90 %{}",
        h.lag_p99,
        h.lag_max,
        h.cpu_max * 100.0,
        h.cpu_saturated_seconds,
        if h.suspect && !h.severe {
            format!("; latencies suspect: {}", h.reasons.join("; "))
        } else {
            String::new()
        }
    );
    cases.push(Case {
        class: "reconnoiter.harness",
        name: "harness: did its job (faults applied, kept up, not interrupted)".into(),
        failure: (!problems.is_empty()).then(|| (problems.join("; "), problems.join("\n"))),
        out: Some(note),
    });
    cases
}

fn violations(n: u64) -> String {
    format!("{n} violation{}", if n == 1 { "" } else { "s" })
}

/// The first violations of one kind, one per line with their ids.
fn examples(s: &Summary, g: Guarantee) -> String {
    s.verdict
        .violations
        .iter()
        .filter(|v| v.kind == g)
        .take(EXAMPLES)
        .map(|v| {
            let ids = [
                ("message", &v.message_id),
                ("temp_id", &v.temp_id),
                ("sender", &v.sender),
                ("recipient", &v.recipient),
                ("conversation", &v.conversation),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
            format!("{:.3}s {} [{ids}]\n", v.t as f64 / 1e6, v.explanation)
        })
        .collect()
}

/// JUnit's timestamp is ISO 8601 without a zone (the schema Jenkins and
/// GitLab validate against); ours is RFC 3339 in UTC.
fn timestamp(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

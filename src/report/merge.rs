//! `report merge`: many shards' folders become one verdict. The shards'
//! histories are merged in time order (each shard's clock aligned by its
//! wall-clock start) and the checker runs once on the union, so a message
//! sent on one shard and delivered on another is matched, and the latency
//! histograms are the union's exactly (never averaged percentiles).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::summary::{SUMMARY_VERSION, Summary};
use crate::check::{Checker, Ending, Latencies, Rules};
use crate::exit::ExitError;
use crate::history::events::Events;
use crate::history::{Event, EventKind, HISTORY_VERSION, Header};
use crate::report::hlog::IntervalLog;
use crate::user::stats::StatsSnapshot;

/// One shard's folder, opened.
struct Input {
    dir: PathBuf,
    header: Header,
    summary: Summary,
    /// The history after its header, until `start` hands it to `events`.
    reader: Option<BufReader<File>>,
    /// µs to add to this shard's times to put them on the merged clock.
    offset: u64,
    /// Parsed on a thread of this shard's own, so shards parse at once.
    events: Option<Events>,
}

impl Input {
    fn open(dir: &Path) -> anyhow::Result<Input> {
        let path = dir.join("history.jsonl");
        let (header, reader) = crate::history::events::open(&path)?;
        let summary = Summary::read(dir).map_err(|e| ExitError::bad_input(format!("{e:#}")))?;
        Ok(Input {
            dir: dir.to_owned(),
            header,
            summary,
            reader: Some(reader),
            offset: 0,
            events: None,
        })
    }

    /// Starts parsing, on the merged clock (`offset` is set by then).
    fn start(&mut self) {
        let reader = self.reader.take().expect("started once");
        let path = self.dir.join("history.jsonl");
        self.events = Some(Events::spawn(&path, reader, 1, self.offset));
    }

    /// Loads the next event, skipping other shards' `remote` placeholders.
    fn load(&mut self) -> anyhow::Result<()> {
        let events = self.events.as_mut().expect("started");
        while let Some(e) = events.head()? {
            if !matches!(&e.kind, EventKind::Fault { phase, .. } if phase == "remote") {
                break;
            }
            events.pop();
        }
        Ok(())
    }

    /// The event `load` loaded, if any is left.
    fn next(&self) -> Option<&Event> {
        self.events.as_ref()?.peeked()
    }
}

/// Checks that the folders are the shards of one run and nothing else.
fn validate(inputs: &[Input]) -> Result<u32, ExitError> {
    let first = inputs[0].header.clone();
    let count = match first.shard {
        Some(s) => s.count,
        None => {
            return Err(ExitError::bad_input(format!(
                "{} is not a shard (run with --shard K/N); nothing to merge",
                inputs[0].dir.display()
            )));
        }
    };
    let mut seen = vec![false; count as usize];
    for i in inputs {
        let h = &i.header;
        let mismatch = |what: &str, a: String, b: String| {
            ExitError::bad_input(format!(
                "{} and {} are not shards of one run: {what} {a} vs {b}",
                inputs[0].dir.display(),
                i.dir.display()
            ))
        };
        if h.scenario != first.scenario {
            return Err(mismatch(
                "scenario",
                first.scenario.clone(),
                h.scenario.clone(),
            ));
        }
        if h.seed != first.seed {
            return Err(mismatch("seed", first.seed.to_string(), h.seed.to_string()));
        }
        if h.users != first.users {
            return Err(mismatch(
                "users",
                first.users.to_string(),
                h.users.to_string(),
            ));
        }
        if h.reconnoiter_version != first.reconnoiter_version {
            return Err(mismatch(
                "reconnoiter version",
                first.reconnoiter_version.clone(),
                h.reconnoiter_version.clone(),
            ));
        }
        if h.start_at_ms != first.start_at_ms {
            let at = |ms: Option<i64>| {
                ms.and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or("none".into(), |t| t.to_rfc3339())
            };
            return Err(mismatch(
                "--start-at",
                at(first.start_at_ms),
                at(h.start_at_ms),
            ));
        }
        let Some(s) = h.shard.filter(|s| s.count == count) else {
            return Err(mismatch(
                "shard count",
                count.to_string(),
                h.shard.map_or("none".into(), |s| s.count.to_string()),
            ));
        };
        if std::mem::replace(&mut seen[s.index as usize], true) {
            return Err(ExitError::bad_input(format!(
                "shard {}/{count} is given twice ({})",
                s.index,
                i.dir.display()
            )));
        }
    }
    // Without --start-at, shards of one run still run at the same time: one
    // that ended before another began belongs to another run.
    let span = |i: &Input| {
        let start = i.header.started_at_ms;
        (start, start + (i.summary.elapsed_seconds * 1e3) as i64)
    };
    for a in inputs {
        for b in inputs {
            let ((_, a1), (b0, _)) = (span(a), span(b));
            if a1 < b0 {
                return Err(ExitError::bad_input(format!(
                    "{} and {} are not shards of one run: the first ended {:.0} s before the second began, and a run's shards run at the same time (give them one --start-at, and start every one before it)",
                    a.dir.display(),
                    b.dir.display(),
                    (b0 - a1) as f64 / 1e3
                )));
            }
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|k| !seen[*k as usize])
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(ExitError::bad_input(format!(
            "shards missing: {} (a verdict on part of the users would call their messages lost)",
            missing.join(", ")
        )));
    }
    Ok(count)
}

/// Merges shard folders into `out` and returns the merged summary (written
/// there with every report) and its histograms. `checks` are `--check`
/// overrides on top of the rules the shards ran with.
pub fn merge(
    dirs: &[PathBuf],
    out: &Path,
    checks: &[String],
) -> anyhow::Result<(Summary, Latencies)> {
    if dirs.is_empty() {
        return Err(ExitError::bad_input("report merge needs the shards' folders").into());
    }
    let mut inputs = dirs
        .iter()
        .map(|d| {
            // A folder that cannot be read as a shard is the caller's mistake.
            Input::open(d).map_err(|e| match e.downcast::<ExitError>() {
                Ok(x) => x,
                Err(e) => ExitError::bad_input(format!("{e:#}")),
            })
        })
        .collect::<Result<Vec<_>, ExitError>>()?;
    let count = validate(&inputs)?;
    let start_ms = inputs
        .iter()
        .map(|i| i.header.started_at_ms)
        .min()
        .unwrap_or(0);
    for i in &mut inputs {
        i.offset = ((i.header.started_at_ms - start_ms) * 1_000) as u64;
        i.start();
    }
    for i in &mut inputs {
        i.load()?;
    }
    let mut rules = Rules::from_pairs(&inputs[0].header.checks).map_err(ExitError::bad_input)?;
    for c in checks {
        rules.set_arg(c).map_err(ExitError::bad_input)?;
    }
    let first = inputs[0].header.clone();
    let run_id = format!(
        "{}-merged-{}",
        inputs[0].summary.scenario,
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    let header = Header {
        history_version: HISTORY_VERSION,
        run_id: run_id.clone(),
        scenario: first.scenario.clone(),
        seed: first.seed,
        started_at_ms: start_ms,
        users: first.users,
        cohorts: first.cohorts.clone(),
        checks: rules.to_pairs(),
        shard: None,
        start_at_ms: None,
        driver: first.driver.clone(),
        reconnoiter_version: first.reconnoiter_version.clone(),
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut history = BufWriter::new(File::create(out.join("history.jsonl"))?);
    serde_json::to_writer(&mut history, &header)?;
    history.write_all(b"\n")?;
    let mut checker = Checker::new(&header, rules);
    let mut hlog = IntervalLog::create(&out.join("latency.hlog"), start_ms);
    let mut events = 0u64;
    // The next event overall is the earliest head; each shard's own order
    // (one user's events are all on one shard) is never changed.
    while let Some(k) = inputs
        .iter()
        .enumerate()
        .filter_map(|(k, i)| i.next().map(|e| (e.t, k)))
        .min()
        .map(|(_, k)| k)
    {
        let e = inputs[k].next().expect("a head");
        hlog.tick(&mut checker, e.t / 1_000_000);
        checker.observe(e);
        serde_json::to_writer(&mut history, e)?;
        history.write_all(b"\n")?;
        events += 1;
        inputs[k].events.as_mut().expect("started").pop();
        inputs[k].load()?;
    }
    history.flush()?;
    let elapsed = inputs
        .iter()
        .map(|i| i.summary.elapsed_seconds + i.offset as f64 / 1e6)
        .fold(0.0, f64::max);
    hlog.finish(&mut checker, elapsed.ceil() as u64);
    let interrupted = inputs.iter().any(|i| i.summary.interrupted);
    let (verdict, latencies) = checker.finish(Ending { interrupted });
    let live = inputs
        .iter()
        .fold(StatsSnapshot::default(), |a, i| add(a, &i.summary.live));
    let mut summary = Summary {
        summary_version: SUMMARY_VERSION,
        run_id,
        scenario: inputs[0].summary.scenario.clone(),
        seed: first.seed,
        target: inputs[0].summary.target.clone(),
        users: first.users,
        conversations: inputs[0].summary.conversations,
        members: inputs[0].summary.members,
        started_at: chrono::DateTime::from_timestamp_millis(start_ms)
            .unwrap_or_default()
            .to_rfc3339(),
        elapsed_seconds: inputs
            .iter()
            .map(|i| i.summary.elapsed_seconds)
            .fold(0.0, f64::max),
        interrupted,
        drained: inputs.iter().all(|i| i.summary.drained),
        fault_failures: inputs
            .iter()
            .flat_map(|i| {
                let k = i.header.shard.map_or(0, |s| s.index);
                i.summary
                    .fault_failures
                    .iter()
                    .map(move |f| format!("shard {k}/{count}: {f}"))
            })
            .collect(),
        faults_cut_users_off: inputs.iter().any(|i| i.summary.faults_cut_users_off),
        live,
        driver: inputs[0].summary.driver.clone(),
        history_events: events,
        verdict,
        status: String::new(),
        exit_code: 0,
    };
    summary.decide();
    super::write_all(out, &summary, &latencies)?;
    Ok((summary, latencies))
}

fn add(a: StatsSnapshot, b: &StatsSnapshot) -> StatsSnapshot {
    StatsSnapshot {
        connected: a.connected + b.connected,
        offline: a.offline + b.offline,
        logged_in: a.logged_in + b.logged_in,
        connect_failures: a.connect_failures + b.connect_failures,
        reconnects: a.reconnects + b.reconnects,
        reconnect_failed: a.reconnect_failed + b.reconnect_failed,
        stuck: a.stuck + b.stuck,
        sent: a.sent + b.sent,
        acked: a.acked + b.acked,
        rejected: a.rejected + b.rejected,
        delivered: a.delivered + b.delivered,
        duplicates: a.duplicates + b.duplicates,
        expected: a.expected + b.expected,
        outbox: a.outbox + b.outbox,
    }
}

//! The report's tables: thresholds, what was excluded, the
//! harness's own health, and the run's facts. Plain HTML tables, so they
//! copy into a spreadsheet or a ticket as they are.

use std::fmt::Write;

use crate::report::escape::xml;
use crate::report::summary::{Summary, fmt_limit, fmt_us};

fn pill(class: &str, text: &str) -> String {
    format!(r#"<span class="pill {class}">{text}</span>"#)
}

pub fn thresholds(s: &Summary) -> String {
    let t = &s.verdict.thresholds;
    if t.is_empty() {
        return r#"<p class="quiet">No thresholds set (add them under <code>[checks]</code> or with <code>--check</code>).</p>"#.into();
    }
    let mut out = String::from(
        "<table><thead><tr><th>threshold</th><th class=\"num\">limit</th><th class=\"num\">actual</th><th>result</th></tr></thead><tbody>",
    );
    for t in t {
        let actual = t
            .actual
            .map_or("no samples".into(), |a| fmt_limit(&t.name, a));
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"num\">{} {}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            xml(&t.name),
            xml(&t.op),
            fmt_limit(&t.name, t.limit),
            actual,
            if t.passed {
                pill("ok", "met")
            } else {
                pill("bad", "missed")
            }
        );
    }
    out + "</tbody></table>"
}

pub fn excluded(s: &Summary) -> String {
    let e = &s.verdict.excluded;
    let rows = [
        (
            "membership change in flight",
            "(message, member) pairs whose membership changed while the message was being accepted",
            e.membership_in_flight,
        ),
        (
            "forfeited by removal",
            "owed to a member removed before receiving it",
            e.forfeited_by_removal,
        ),
        (
            "token expired in flight",
            "connects whose token expired between attempt and answer",
            e.auth_in_flight,
        ),
        (
            "no server order",
            "live deliveries without seq: order not checked",
            e.unordered_deliveries,
        ),
        (
            "no temp_id",
            "deliveries not checked for phantoms or stored duplicates",
            e.without_temp_id,
        ),
        (
            "interrupted",
            "pairs not judged because the run stopped before its drain",
            e.interrupted_pairs,
        ),
        (
            "recipient never came back",
            "owed to users that gave up reconnecting",
            e.recipient_offline,
        ),
        (
            "sender's client gave up",
            "sends left in the outbox of a client that gave up reconnecting",
            e.sender_gave_up,
        ),
        (
            "from before the run",
            "messages the server stored before this run, fetched or replayed: no user of this run sent them",
            e.before_run,
        ),
    ];
    let mut out = String::from(
        "<table><thead><tr><th>not decided</th><th>what</th><th class=\"num\">count</th></tr></thead><tbody>",
    );
    for (name, what, n) in rows {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{name}</td><td class=\"quiet\">{what}</td><td class=\"num\">{n}</td></tr>",
            if n == 0 { "zero" } else { "" }
        );
    }
    out + "</tbody></table>"
}

pub fn harness(s: &Summary) -> String {
    let h = &s.verdict.harness;
    let state = if h.severe {
        pill("bad", "saturated")
    } else if h.suspect {
        pill("warn", "suspect")
    } else {
        pill("ok", "kept up")
    };
    let mut out = format!(
        "<table><tbody><tr><td>state</td><td>{state}</td></tr>\
         <tr><td>event-loop lag</td><td class=\"num\">p99 {} · max {}</td></tr>\
         <tr><td>CPU</td><td class=\"num\">max {:.0} % · {} s above 90 %</td></tr>",
        fmt_us(h.lag_p99),
        fmt_us(h.lag_max),
        h.cpu_max * 100.0,
        h.cpu_saturated_seconds
    );
    for r in &h.reasons {
        let _ = write!(out, "<tr><td>why</td><td>{}</td></tr>", xml(r));
    }
    for f in &s.fault_failures {
        let _ = write!(out, "<tr><td>fault failed</td><td>{}</td></tr>", xml(f));
    }
    out + "</tbody></table>"
}

pub fn facts(s: &Summary) -> String {
    let c = &s.verdict.counts;
    let rows = [
        ("run", s.run_id.clone()),
        ("scenario", s.scenario.clone()),
        ("target", s.target.clone()),
        ("started", s.started_at.clone()),
        ("seed", s.seed.to_string()),
        (
            "users",
            format!(
                "{} in {} conversations of {}",
                s.users, s.conversations, s.members
            ),
        ),
        ("drained", if s.drained { "yes" } else { "no" }.to_owned()),
        ("history events", s.history_events.to_string()),
        (
            "connects",
            format!(
                "{} ({} reconnects, {} failures, {} disconnects, {} recovered, {} outlived a blackhole)",
                c.connects,
                c.reconnects,
                c.connect_failures,
                c.disconnects,
                c.recovered,
                c.outlived_blackholes
            ),
        ),
        (
            "messages",
            format!(
                "{} sent, {} accepted, {} acked, {} rejected",
                c.sent, c.accepted, c.acked, c.rejected
            ),
        ),
        ("deliveries", c.deliveries()),
        ("token refreshes", c.token_refreshes.to_string()),
    ];
    let mut out = String::from("<table class=\"facts\"><tbody>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{k}</td><td>{}</td></tr>", xml(&v));
    }
    out + "</tbody></table>"
}

//! `[capacity]`: the stages, the knee, and what a capacity scenario may not have.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::CapacityPlan;
use crate::scenario::error::ScenarioError;
use crate::scenario::file::CapacitySection;

/// Checks `[capacity]`: stages that grow, a knee the checker can measure,
/// and no faults or cohorts (a knee under faults mixes two questions:
/// capacity is asked of the server alone, and cohorts only serve faults).
pub(super) fn resolve_capacity(
    path: &Path,
    text: &str,
    c: &Spanned<CapacitySection>,
    first: u32,
    duration: Duration,
    checks: &crate::check::Rules,
    has_faults_or_cohorts: bool,
) -> Result<CapacityPlan, ScenarioError> {
    let err = |span: Range<usize>, msg: String, fix: &str| {
        ScenarioError::at(path, text, Some(span), msg).with_fix(fix)
    };
    if has_faults_or_cohorts {
        return Err(err(
            c.span(),
            "a [capacity] scenario cannot have [[faults]] or [[cohorts]]".into(),
            "measure capacity without faults; put faults in their own scenario",
        ));
    }
    let s = c.get_ref();
    let (step, max) = (*s.step.get_ref(), *s.max.get_ref());
    if step == 0 {
        return Err(err(
            s.step.span(),
            "capacity.step must be at least 1".into(),
            "set step to the users added per stage, e.g. step = 200",
        ));
    }
    if max < first {
        return Err(err(
            s.max.span(),
            format!("capacity.max ({max}) is less than the first stage's [users] count ({first})"),
            "raise max, or lower [users] count (the first stage)",
        ));
    }
    let knee_text = s.knee.get_ref().trim();
    if let Some((key, value)) = knee_text.split_once('>') {
        return Err(err(
            s.knee.span(),
            format!(
                "capacity.knee {knee_text:?} says where the knee is broken; it is written as what a stage must stay under"
            ),
            &format!(
                "write knee = \"{} < {}\"",
                key.trim(),
                value.trim_start_matches('=').trim()
            ),
        ));
    }
    let at = knee_text.find(['<', '=']).unwrap_or(knee_text.len());
    let (key, value) = knee_text.split_at(at);
    let value = value.strip_prefix('=').unwrap_or(value).trim();
    let key = key.trim();
    // Parsed now, with the checker's own rules, so a typo is an error here
    // and not a run later.
    let mut probe = checks.clone();
    let parsed = probe.set(key, value);
    if key.is_empty() || value.is_empty() || parsed.is_err() || !key.contains('.') {
        return Err(err(
            s.knee.span(),
            format!(
                "capacity.knee {knee_text:?} is not a latency threshold{}",
                parsed.err().map(|e| format!(": {e}")).unwrap_or_default()
            ),
            "write METRIC.STAT < LIMIT, e.g. knee = \"delivery.p99 < 250ms\"",
        ));
    }
    let hold = s.hold.as_ref().map(|h| h.get_ref().0).unwrap_or(duration);
    if hold.is_zero() {
        let span = s.hold.as_ref().map_or(c.span(), |h| h.span());
        return Err(err(
            span,
            "capacity.hold must be more than zero".into(),
            "write e.g. hold = \"30s\"",
        ));
    }
    Ok(CapacityPlan {
        first,
        step,
        max,
        hold,
        knee: (key.to_owned(), value.to_owned()),
    })
}

//! Cohorts and the fault timeline, resolved. Recurring faults and flapping
//! are expanded here, with the scenario's seed, into a concrete list of
//! steps; who gets revoked or removed is picked here too. So the plan shows
//! exactly what will be done and when, and the same seed does the same.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use toml::Spanned;

use super::error::ScenarioError;
use super::faults_file::{FaultKind, FaultSection};

mod cohorts;
pub use cohorts::{Cohort, cohorts};

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OfflineMode {
    /// The proxy is disabled: connections closed, new ones refused.
    Refuse,
    /// Data is held and never delivered (`timeout` 0): users notice by ping timeout.
    Blackhole,
    /// Connections are reset (`reset_peer`).
    Reset,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// SIGKILL.
    Crash,
    /// SIGTERM: the server says `server-shutdown` and closes sockets.
    Graceful,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "effect", rename_all = "kebab-case")]
pub enum NetEffect {
    Offline {
        mode: OfflineMode,
    },
    Latency {
        latency_ms: u64,
        jitter_ms: u64,
    },
    Bandwidth {
        rate: u64,
    },
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay_us: u64,
    },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    NetStart { cohort: String, effect: NetEffect },
    NetHeal { cohort: String, effect: NetEffect },
    ServerDown { mode: RestartMode },
    ServerUp,
    Revoke { users: Vec<u32> },
    RemoveMembers { pairs: Vec<(String, u32)> },
    ReaddMembers { pairs: Vec<(String, u32)> },
    TabClose { cohort: String },
    TabOpen { cohort: String },
}

/// One thing the nemesis does at one time (counted from the chat phase).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    /// Index of the `[[faults]]` entry it comes from.
    pub fault: u32,
    pub kind: FaultKind,
    pub action: Action,
}

/// What faults need to know about the rest of the plan.
pub struct Context<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub users: u32,
    pub duration: Duration,
    pub seed: u64,
    /// conversation → members (user indexes), as seeded.
    pub roster: &'a [(String, Vec<u32>)],
}

impl Context<'_> {
    fn err(&self, span: Range<usize>, msg: String, fix: &str) -> ScenarioError {
        ScenarioError::at(self.path, self.text, Some(span), msg).with_fix(fix)
    }
}

fn required<'a, T>(
    cx: &Context<'_>,
    f: &'a FaultSection,
    v: &'a Option<Spanned<T>>,
    key: &str,
    example: &str,
) -> Result<&'a T, ScenarioError> {
    required_spanned(cx, f, v, key, example).map(Spanned::get_ref)
}

/// How many of the `available` a fault's `users` picks. A count larger
/// than what there is would silently shrink to it, and the run would test
/// less than the file says: refused, with the number there is (but for a
/// recurring fault, below).
fn picked(
    cx: &Context<'_>,
    f: &FaultSection,
    available: usize,
    what: &str,
    example: &str,
) -> Result<usize, ScenarioError> {
    let share = required_spanned(cx, f, &f.users, "users", example)?;
    let n = share.get_ref().of(available as u32) as usize;
    // A fault that picks nobody does nothing, and the run would pass
    // without testing it.
    if n == 0 {
        return Err(cx.err(
            share.span(),
            format!(
                "`users = {}` picks none of the {available} {what} this fault can pick from",
                share.get_ref()
            ),
            "ask for at least 1 (a count, or a larger share)",
        ));
    }
    // A recurring fault may run out over a long soak (memberships removed
    // for good): each occurrence takes what is left, so that `duration`
    // alone can be changed, as the soak scenario says.
    if f.every.is_some() {
        return Ok(n.min(available));
    }
    if n > available {
        return Err(cx.err(
            share.span(),
            format!("`users = {n}`, but this fault has only {available} {what} to pick from"),
            &format!("ask for at most {available}, or a share such as \"50%\""),
        ));
    }
    Ok(n)
}

fn offline_mode(cx: &Context<'_>, s: &Spanned<String>) -> Result<OfflineMode, ScenarioError> {
    match s.get_ref().as_str() {
        "refuse" => Ok(OfflineMode::Refuse),
        "blackhole" => Ok(OfflineMode::Blackhole),
        "reset" => Ok(OfflineMode::Reset),
        other => Err(cx.err(
            s.span(),
            format!("unknown offline mode {other:?}"),
            "use \"refuse\", \"blackhole\" or \"reset\"",
        )),
    }
}

/// Expands every `[[faults]]` entry into timed steps, sorted by time.
pub fn timeline(
    cx: &Context<'_>,
    cohorts: &[Cohort],
    faults: &[FaultSection],
) -> Result<Vec<Step>, ScenarioError> {
    let mut rng = StdRng::seed_from_u64(cx.seed ^ 0x6e656d65736973);
    let mut steps = Vec::new();
    // Memberships already taken away, and when: a pair removed again while
    // it is still removed would fail (the server has nothing to remove), so
    // a fault never picks a pair another removal holds at that time.
    let mut held: Vec<((String, u32), Duration, Duration)> = Vec::new();
    // Network windows already placed, per cohort. A heal restores a
    // cohort's whole link (every toxic removed, the proxy enabled), so two
    // network faults on one cohort must not overlap: the first heal would
    // cut the other short, and a blackhole cut short of the heartbeat loses
    // messages no real network would. Faults without `every` are placed
    // first and may not overlap each other (an error); an occurrence of a
    // recurring fault that would overlap is skipped.
    let mut busy: std::collections::HashMap<String, Vec<(Duration, Duration)>> = Default::default();
    let order = (0..faults.len())
        .filter(|&i| faults[i].every.is_none())
        .chain((0..faults.len()).filter(|&i| faults[i].every.is_some()));
    for i in order {
        let f = &faults[i];
        let kind = *f.kind.get_ref();
        let at_span = f.at.as_ref().map(|a| a.span()).unwrap_or(f.kind.span());
        let at = f.at.as_ref().map(|a| a.get_ref().0).unwrap_or_default();
        let cohort = match &f.cohort {
            Some(c) if !cohorts.iter().any(|k| &k.name == c.get_ref()) => {
                let known: Vec<&str> = cohorts.iter().map(|k| k.name.as_str()).collect();
                return Err(cx.err(
                    c.span(),
                    format!("no cohort named {:?}", c.get_ref()),
                    &format!("use one of {known:?}, or add a [[cohorts]] entry"),
                ));
            }
            Some(c) => Some(c.get_ref().clone()),
            None => None,
        };
        // Network and client faults act on a cohort, for a while.
        let on_cohort = matches!(
            kind,
            FaultKind::Offline
                | FaultKind::Flapping
                | FaultKind::Latency
                | FaultKind::Bandwidth
                | FaultKind::Slicer
                | FaultKind::ClientDisconnect
        );
        let cohort_name = match (&cohort, on_cohort) {
            (Some(c), _) => c.clone(),
            (None, true) if cohorts.len() == 1 => cohorts[0].name.clone(),
            (None, true) => {
                return Err(cx.err(
                    f.kind.span(),
                    format!("a {kind:?} fault needs `cohort`"),
                    "name the cohort it hits: cohort = \"...\"",
                ));
            }
            (None, false) => String::new(),
        };
        let length = if on_cohort {
            required(cx, f, &f.duration, "for", "\"10s\"")?.0
        } else {
            Duration::ZERO
        };
        if at + length > cx.duration {
            let span = f.duration.as_ref().map(|d| d.span()).unwrap_or(at_span);
            return Err(cx.err(
                span,
                format!("this fault runs until {:?}, past the end of the run ({:?})", at + length, cx.duration),
                "start it earlier, shorten it, or lengthen run.duration (faults count from the start of the chat phase)",
            ));
        }
        // Start times: once, or every `every` until the run ends.
        let mut starts = vec![at];
        if let Some(every) = &f.every {
            let r = every.get_ref();
            if r.low.is_zero() || r.low < length {
                return Err(cx.err(
                    every.span(),
                    "`every` must be longer than the fault itself".into(),
                    "make every's lower bound more than `for`",
                ));
            }
            let mut t = at;
            loop {
                t += if r.high > r.low {
                    rng.random_range(r.low..=r.high)
                } else {
                    r.low
                };
                if t + length > cx.duration {
                    break;
                }
                starts.push(t);
            }
        }
        let fault = i as u32;
        let mut push = |at: Duration, action: Action| {
            steps.push(Step {
                at,
                fault,
                kind,
                action,
            })
        };
        let on_link = matches!(
            kind,
            FaultKind::Offline
                | FaultKind::Flapping
                | FaultKind::Latency
                | FaultKind::Bandwidth
                | FaultKind::Slicer
        );
        for start in starts {
            if on_link {
                let windows = busy.entry(cohort_name.clone()).or_default();
                let end = start + length;
                // Touching counts: a heal and a start at the same instant
                // could run in either order.
                if let Some(&(a, b)) = windows.iter().find(|(a, b)| start <= *b && *a <= end) {
                    if f.every.is_some() {
                        continue;
                    }
                    return Err(cx.err(
                        f.kind.span(),
                        format!(
                            "this fault ({start:?}..{end:?}) overlaps another network fault on cohort {cohort_name:?} ({a:?}..{b:?})"
                        ),
                        "a cohort has one network condition at a time (a heal restores its whole link): move one of them, or put them on different cohorts",
                    ));
                }
                windows.push((start, end));
            }
            match kind {
                FaultKind::Offline
                | FaultKind::Latency
                | FaultKind::Bandwidth
                | FaultKind::Slicer => {
                    let effect = match kind {
                        FaultKind::Offline => NetEffect::Offline {
                            mode: offline_mode(
                                cx,
                                required_spanned(cx, f, &f.mode, "mode", "\"refuse\"")?,
                            )?,
                        },
                        FaultKind::Latency => NetEffect::Latency {
                            latency_ms: required(cx, f, &f.latency, "latency", "\"200ms\"")?
                                .0
                                .as_millis() as u64,
                            jitter_ms: f
                                .jitter
                                .as_ref()
                                .map(|j| j.get_ref().0.as_millis() as u64)
                                .unwrap_or(0),
                        },
                        FaultKind::Bandwidth => NetEffect::Bandwidth {
                            rate: *required(cx, f, &f.rate, "rate", "64")?,
                        },
                        _ => NetEffect::Slicer {
                            average_size: f
                                .average_size
                                .as_ref()
                                .map(|v| *v.get_ref())
                                .unwrap_or(64),
                            size_variation: f
                                .size_variation
                                .as_ref()
                                .map(|v| *v.get_ref())
                                .unwrap_or(32),
                            delay_us: f
                                .delay
                                .as_ref()
                                .map(|d| d.get_ref().0.as_micros() as u64)
                                .unwrap_or(10_000),
                        },
                    };
                    push(
                        start,
                        Action::NetStart {
                            cohort: cohort_name.clone(),
                            effect: effect.clone(),
                        },
                    );
                    push(
                        start + length,
                        Action::NetHeal {
                            cohort: cohort_name.clone(),
                            effect,
                        },
                    );
                }
                FaultKind::Flapping => {
                    let down = required(cx, f, &f.down, "down", "\"2s..5s\"")?;
                    let up = required(cx, f, &f.up, "up", "\"3s..8s\"")?;
                    let modes = match &f.modes {
                        Some(m) => m
                            .get_ref()
                            .iter()
                            .map(|s| offline_mode(cx, &Spanned::new(m.span(), s.clone())))
                            .collect::<Result<Vec<_>, _>>()?,
                        None => vec![OfflineMode::Refuse],
                    };
                    let mut t = start;
                    let mut n = 0;
                    while t < start + length {
                        let d = if down.high > down.low {
                            rng.random_range(down.low..=down.high)
                        } else {
                            down.low
                        };
                        let end = (t + d).min(start + length);
                        let effect = NetEffect::Offline {
                            mode: modes[n % modes.len().max(1)],
                        };
                        push(
                            t,
                            Action::NetStart {
                                cohort: cohort_name.clone(),
                                effect: effect.clone(),
                            },
                        );
                        push(
                            end,
                            Action::NetHeal {
                                cohort: cohort_name.clone(),
                                effect,
                            },
                        );
                        t = end
                            + if up.high > up.low {
                                rng.random_range(up.low..=up.high)
                            } else {
                                up.low
                            };
                        n += 1;
                    }
                }
                FaultKind::ClientDisconnect => {
                    push(
                        start,
                        Action::TabClose {
                            cohort: cohort_name.clone(),
                        },
                    );
                    push(
                        start + length,
                        Action::TabOpen {
                            cohort: cohort_name.clone(),
                        },
                    );
                }
                FaultKind::ServerRestart => {
                    let mode = match f.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
                        None | Some(("crash", _)) => RestartMode::Crash,
                        Some(("graceful", _)) => RestartMode::Graceful,
                        Some((other, span)) => {
                            return Err(cx.err(
                                span,
                                format!("unknown restart mode {other:?}"),
                                "use \"crash\" (SIGKILL) or \"graceful\" (SIGTERM)",
                            ));
                        }
                    };
                    let down = f
                        .down
                        .as_ref()
                        .map(|d| d.get_ref().low)
                        .unwrap_or(Duration::from_secs(1));
                    if start + down > cx.duration {
                        return Err(cx.err(
                            at_span,
                            "the server would come back after the run ends".into(),
                            "restart earlier or shorten `down`",
                        ));
                    }
                    push(start, Action::ServerDown { mode });
                    push(start + down, Action::ServerUp);
                }
                FaultKind::TokenExpiry => {
                    let pool: Vec<u32> = pool(cohorts, cohort.as_deref(), cx.users);
                    let n = picked(cx, f, pool.len(), "users", "\"10%\"")?;
                    let mut picked = pool;
                    picked.shuffle(&mut rng);
                    picked.truncate(n);
                    picked.sort();
                    push(start, Action::Revoke { users: picked });
                }
                FaultKind::Membership => {
                    let members = pool(cohorts, cohort.as_deref(), cx.users);
                    let until = f
                        .readd_after
                        .as_ref()
                        .map_or(Duration::MAX, |a| start + a.get_ref().0);
                    let taken = |pair: &(String, u32)| {
                        held.iter()
                            .any(|(p, from, to)| p == pair && *from <= until && start <= *to)
                    };
                    let mut pairs: Vec<(String, u32)> = cx
                        .roster
                        .iter()
                        .flat_map(|(c, ms)| {
                            ms.iter()
                                .filter(|u| members.contains(u))
                                .map(move |u| (c.clone(), *u))
                        })
                        .filter(|p| !taken(p))
                        .collect();
                    let n = picked(
                        cx,
                        f,
                        pairs.len(),
                        "memberships (its users' in the roster, less those an earlier removal still holds then)",
                        "3",
                    )?;
                    pairs.shuffle(&mut rng);
                    pairs.truncate(n);
                    pairs.sort();
                    held.extend(pairs.iter().map(|p| (p.clone(), start, until)));
                    push(
                        start,
                        Action::RemoveMembers {
                            pairs: pairs.clone(),
                        },
                    );
                    if let Some(after) = &f.readd_after {
                        push(start + after.get_ref().0, Action::ReaddMembers { pairs });
                    }
                }
            }
        }
    }
    steps.sort_by_key(|s| s.at);
    Ok(steps)
}

fn required_spanned<'a, T>(
    cx: &Context<'_>,
    f: &FaultSection,
    v: &'a Option<Spanned<T>>,
    key: &str,
    example: &str,
) -> Result<&'a Spanned<T>, ScenarioError> {
    v.as_ref().ok_or_else(|| {
        cx.err(
            f.kind.span(),
            format!(
                "a fault of kind \"{}\" needs `{key}`",
                kind_name(*f.kind.get_ref())
            ),
            &format!("add {key} = {example}"),
        )
    })
}

/// The users a fault may pick from: a cohort, or everyone.
fn pool(cohorts: &[Cohort], cohort: Option<&str>, users: u32) -> Vec<u32> {
    match cohort.and_then(|c| cohorts.iter().find(|k| k.name == c)) {
        Some(c) => (c.first..c.first + c.count).collect(),
        None => (0..users).collect(),
    }
}

#[cfg(test)]
mod tests;

/// A kind as the file spells it (`server-restart`), for messages.
fn kind_name(kind: crate::scenario::FaultKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

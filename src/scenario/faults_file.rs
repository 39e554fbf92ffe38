//! `[[cohorts]]` and `[[faults]]` as written. A fault is one flat table with a
//! `kind` and the keys that kind takes; `plan::faults` checks that each kind
//! got the keys it needs and none it ignores (a flat table, not a serde
//! tagged enum, because tagged enums lose the positions errors point at).

use serde::Deserialize;
use toml::Spanned;

use super::units::{Dur, DurRange};

/// A number of users, or a percentage: `60` or `"30%"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    Count(u32),
    Percent(f64),
}

impl Share {
    /// How many of `total` this share is (percentages round to nearest).
    pub fn of(self, total: u32) -> u32 {
        match self {
            Share::Count(n) => n,
            Share::Percent(p) => ((p / 100.0) * total as f64).round() as u32,
        }
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Share::Count(n) => write!(f, "{n}"),
            Share::Percent(p) => write!(f, "\"{p}%\""),
        }
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0 => Ok(Share::Count(n as u32)),
            Raw::N(_) => Err(D::Error::custom("a count of users must be 0 or more")),
            Raw::S(s) => {
                let p: f64 = s
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse().ok())
                    .ok_or_else(|| {
                        D::Error::custom(format!(
                            "{s:?}: write a count (60) or a percentage (\"30%\")"
                        ))
                    })?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(D::Error::custom(format!(
                        "{s:?} is not a share of [users] count: write a percentage from 0% to 100% (\"30%\") or a count (60)"
                    )));
                }
                Ok(Share::Percent(p))
            }
        }
    }
}

/// Users that share one proxy; network faults hit a cohort.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSection {
    pub name: Spanned<String>,
    pub users: Spanned<Share>,
    /// How this cohort's clients fetch what they missed, when it differs
    /// from `[users] sync`: a fleet of mixed clients (say, an app that
    /// relies on the server's replay beside the web client that syncs).
    pub sync: Option<super::file::SyncMode>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A cohort's network goes away (`mode`: refuse, blackhole, reset).
    Offline,
    /// A cohort goes offline and online again and again (`down`, `up` ranges).
    Flapping,
    /// Added latency (`latency`, `jitter`).
    Latency,
    /// A bandwidth cap (`rate`, KB/s).
    Bandwidth,
    /// Writes cut into small pieces (`average_size`, `size_variation`, `delay`).
    Slicer,
    /// The managed server is killed (`mode`: crash, graceful) and restarted after `down`.
    ServerRestart,
    /// A share of users (`users`) has every token revoked.
    TokenExpiry,
    /// `users` memberships are removed (and re-added after `readd_after`).
    Membership,
    /// The users of a cohort close their tab (client disconnect) for `for`.
    ClientDisconnect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSection {
    pub kind: Spanned<FaultKind>,
    /// When it starts, counted from the start of the chat phase.
    pub at: Option<Spanned<Dur>>,
    /// How long it lasts before it heals.
    #[serde(rename = "for")]
    pub duration: Option<Spanned<Dur>>,
    /// Repeat: a new start drawn from this range after each start, until the run ends.
    pub every: Option<Spanned<DurRange>>,
    pub cohort: Option<Spanned<String>>,
    /// offline: refuse | blackhole | reset; server-restart: crash | graceful.
    pub mode: Option<Spanned<String>>,
    /// flapping: the offline modes to rotate through.
    pub modes: Option<Spanned<Vec<String>>>,
    /// flapping: how long each outage lasts.
    pub down: Option<Spanned<DurRange>>,
    /// flapping: how long the network stays up between outages.
    pub up: Option<Spanned<DurRange>>,
    pub latency: Option<Spanned<Dur>>,
    pub jitter: Option<Spanned<Dur>>,
    /// bandwidth: KB/s.
    pub rate: Option<Spanned<u64>>,
    pub average_size: Option<Spanned<u64>>,
    pub size_variation: Option<Spanned<u64>>,
    /// slicer: pause between slices.
    pub delay: Option<Spanned<Dur>>,
    /// token-expiry, membership: how many users.
    pub users: Option<Spanned<Share>>,
    /// membership: put them back after this long.
    pub readd_after: Option<Spanned<Dur>>,
}

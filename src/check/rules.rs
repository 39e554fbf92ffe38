//! What gates a run: which guarantees fail it and which latency thresholds
//! it must meet. Comes from the scenario's `[checks]` table, then `--check`
//! on the command line adds or overrides.
//!
//! ```toml
//! [checks]
//! duplicates = "allow"          # an at-least-once server
//! reconnect.p99 = "< 3s"
//! recovery.max = "20s"          # a bare duration means "<"
//! clock_skew = "1s"             # server clock vs ours, for token expiry
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use super::verdict::{Guarantee, Mode};

/// Latency metrics a threshold can name.
pub const METRICS: [&str; 9] = [
    "reconnect",
    "recovery",
    "heal_to_recovery",
    "detection",
    "delivery",
    "handshake.tcp",
    "handshake.upgrade",
    "handshake.open",
    "handshake.connect",
];

/// Statistics a threshold can name.
pub const STATS: [&str; 8] = ["min", "mean", "p50", "p90", "p99", "p999", "max", "count"];

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: String,
    pub stat: String,
    /// Strict `<` unless `<=` was written.
    pub inclusive: bool,
    /// µs for latency statistics; a plain number for `count`.
    pub limit: f64,
}

impl Threshold {
    pub fn name(&self) -> String {
        format!("{}.{}", self.metric, self.stat)
    }

    pub fn op(&self) -> &'static str {
        if self.inclusive { "<=" } else { "<" }
    }

    pub fn holds(&self, actual: f64) -> bool {
        if self.inclusive {
            actual <= self.limit
        } else {
            actual < self.limit
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub modes: BTreeMap<Guarantee, Mode>,
    pub thresholds: Vec<Threshold>,
    /// How far the server's clock may be from ours when judging token expiry.
    pub clock_skew: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            modes: Guarantee::ALL.iter().map(|g| (*g, Mode::Fail)).collect(),
            thresholds: Vec::new(),
            clock_skew: Duration::from_secs(1),
        }
    }
}

impl Rules {
    pub fn mode(&self, g: Guarantee) -> Mode {
        self.modes.get(&g).copied().unwrap_or_default()
    }

    /// Sets one rule from `key` and its textual value; the error says what
    /// would be accepted. Used for both `[checks]` entries and `--check`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        if let Some(g) = Guarantee::parse(key) {
            let mode = match value {
                "fail" => Mode::Fail,
                "allow" => Mode::Allow,
                other => {
                    return Err(format!(
                        "`{key}` must be \"fail\" or \"allow\", not \"{other}\""
                    ));
                }
            };
            self.modes.insert(g, mode);
            return Ok(());
        }
        if key == "clock_skew" {
            self.clock_skew = humantime::parse_duration(value)
                .map_err(|e| format!("clock_skew: {e} (write e.g. \"1s\")"))?;
            return Ok(());
        }
        let Some((metric, stat)) = key.rsplit_once('.') else {
            return Err(unknown(key));
        };
        if !METRICS.contains(&metric) || !STATS.contains(&stat) {
            return Err(unknown(key));
        }
        let (inclusive, rest) = if let Some(r) = value.strip_prefix("<=") {
            (true, r)
        } else if let Some(r) = value.strip_prefix('<') {
            (false, r)
        } else {
            (false, value)
        };
        let rest = rest.trim();
        let limit = if stat == "count" {
            rest.parse::<f64>()
                .map_err(|_| format!("`{key}` needs a number, e.g. \"< 100\", not \"{value}\""))?
        } else {
            humantime::parse_duration(rest)
                .map_err(|_| {
                    format!(
                        "`{key}` needs a duration, e.g. \"< 3s\" or \"<= 250ms\", not \"{value}\""
                    )
                })?
                .as_micros() as f64
        };
        self.thresholds.retain(|t| t.name() != key);
        self.thresholds.push(Threshold {
            metric: metric.to_owned(),
            stat: stat.to_owned(),
            inclusive,
            limit,
        });
        Ok(())
    }

    /// The rules as `[checks]` key/value pairs, so a history can carry them
    /// and `report merge` applies the same ones.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .modes
            .iter()
            .map(|(g, m)| {
                let mode = match m {
                    Mode::Fail => "fail",
                    Mode::Allow => "allow",
                };
                (g.name().to_owned(), mode.to_owned())
            })
            .collect();
        for t in &self.thresholds {
            let limit = if t.stat == "count" {
                format!("{}", t.limit)
            } else {
                format!("{}us", t.limit as u64)
            };
            out.push((t.name(), format!("{} {limit}", t.op())));
        }
        out.push((
            "clock_skew".into(),
            format!("{}ms", self.clock_skew.as_millis()),
        ));
        out
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Rules, String> {
        let mut r = Rules::default();
        for (k, v) in pairs {
            r.set(k, v)?;
        }
        Ok(r)
    }

    /// One `--check` argument: `duplicates=allow`, `reconnect.p99<3s`,
    /// `recovery.max<=20s`.
    pub fn set_arg(&mut self, arg: &str) -> Result<(), String> {
        let at = arg
            .find(['=', '<'])
            .ok_or_else(|| format!("--check {arg}: write NAME=VALUE or METRIC.STAT<LIMIT"))?;
        let (key, rest) = arg.split_at(at);
        let value = rest.strip_prefix('=').unwrap_or(rest);
        self.set(key.trim(), value)
            .map_err(|e| format!("--check {arg}: {e}"))
    }

    /// Flattens a `[checks]` table (dotted keys become nested tables) into
    /// (key, value) pairs in file order.
    pub fn flatten(table: &toml::Table) -> Vec<(String, toml::Value)> {
        fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(inner) => walk(&key, inner, out),
                    other => out.push((key, other.clone())),
                }
            }
        }
        let mut out = Vec::new();
        walk("", table, &mut out);
        out
    }
}

fn unknown(key: &str) -> String {
    format!(
        "unknown check `{key}`: guarantees are {}; thresholds are METRIC.STAT with METRIC one of {} and STAT one of {}; or clock_skew",
        Guarantee::ALL.map(|g| g.name()).join(", "),
        METRICS.join(", "),
        STATS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarantees_thresholds_and_overrides() {
        let mut r = Rules::default();
        r.set("duplicates", "allow").unwrap();
        r.set("reconnect.p99", "< 3s").unwrap();
        r.set("recovery.max", "20s").unwrap();
        r.set_arg("reconnect.p99<=500ms").unwrap();
        assert_eq!(r.mode(Guarantee::Duplicates), Mode::Allow);
        assert_eq!(r.mode(Guarantee::Loss), Mode::Fail);
        assert_eq!(
            r.thresholds.len(),
            2,
            "the command line overrides, not adds"
        );
        let p99 = r.thresholds.iter().find(|t| t.stat == "p99").unwrap();
        assert_eq!((p99.inclusive, p99.limit), (true, 500_000.0));
        assert!(p99.holds(500_000.0));
        let max = r.thresholds.iter().find(|t| t.stat == "max").unwrap();
        assert!(!max.holds(20_000_000.0), "a bare duration is strict");
    }

    #[test]
    fn pairs_round_trip() {
        let mut r = Rules::default();
        r.set("duplicates", "allow").unwrap();
        r.set("reconnect.p99", "<= 3s").unwrap();
        r.set("clock_skew", "250ms").unwrap();
        assert_eq!(Rules::from_pairs(&r.to_pairs()).unwrap(), r);
    }

    #[test]
    fn mistakes_say_what_is_accepted() {
        let mut r = Rules::default();
        assert!(
            r.set("reconect.p99", "3s")
                .unwrap_err()
                .contains("reconnect")
        );
        assert!(r.set("loss", "maybe").unwrap_err().contains("\"allow\""));
        assert!(r.set("delivery.p99", "fast").unwrap_err().contains("< 3s"));
        assert!(r.set_arg("loss").unwrap_err().contains("NAME=VALUE"));
    }

    #[test]
    fn dotted_keys_flatten() {
        let t: toml::Table = toml::from_str(
            "duplicates = \"allow\"\nreconnect.p99 = \"< 3s\"\n[handshake.tcp]\np50 = \"1ms\"\n",
        )
        .unwrap();
        let keys: Vec<_> = Rules::flatten(&t).into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"reconnect.p99".to_string()));
        assert!(keys.contains(&"handshake.tcp.p50".to_string()));
    }
}

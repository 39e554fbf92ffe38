//! The value syntaxes a scenario file accepts: durations ("30s", "1m30s"),
//! rates ("2/s", "1/10s", "30/m"), ranges ("1s..3s") and attempt counts.
//! Each parses in `Deserialize`, so a bad value's error carries the value's
//! position in the file (toml attaches the span) and the accepted forms.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A duration written as text: "30s", "1m30s", "250ms".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim().starts_with('-') {
        return Err(format!(
            "duration {s:?} is negative; a duration counts forward from its start: write it like \"30s\""
        ));
    }
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); write it like \"30s\", \"1m30s\" or \"250ms\"")
    })
}

/// Events per second, written as "COUNT/PERIOD": "2/s", "1/10s", "30/m", "500/1m".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl Rate {
    /// The mean time between two events.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_rate(&s).map(Rate).map_err(de::Error::custom)
    }
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    let hint = || {
        format!(
            "invalid rate {s:?}; write it like \"2/s\", \"1/10s\" or \"30/m\" (count per period)"
        )
    };
    let (count, period) = s.trim().split_once('/').ok_or_else(hint)?;
    let count: f64 = count.trim().parse().map_err(|_| hint())?;
    let period = period.trim();
    let period = match period {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        p => humantime::parse_duration(p).map_err(|_| hint())?,
    };
    if !(count > 0.0 && count.is_finite()) || period.is_zero() {
        return Err(format!(
            "rate {s:?} must be a positive count over a non-zero period, like \"1/10s\" (for users that only listen, leave send_rate out)"
        ));
    }
    Ok(count / period.as_secs_f64())
}

/// A duration range "1s..3s" (uniform between the two) or one duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurRange {
    pub low: Duration,
    pub high: Duration,
}

impl<'de> Deserialize<'de> for DurRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let range = match s.split_once("..") {
            Some((a, b)) => DurRange {
                low: parse_duration(a).map_err(de::Error::custom)?,
                high: parse_duration(b).map_err(de::Error::custom)?,
            },
            None => {
                let v = parse_duration(&s).map_err(de::Error::custom)?;
                DurRange { low: v, high: v }
            }
        };
        if range.low > range.high {
            return Err(de::Error::custom(format!(
                "range {s:?} runs backwards; write the smaller duration first"
            )));
        }
        Ok(range)
    }
}

/// How many reconnection attempts: a count, or "infinite" (socket.io-client's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts(pub Option<u32>);

impl<'de> Deserialize<'de> for Attempts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Attempts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of attempts or \"infinite\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Attempts, E> {
                u32::try_from(v)
                    .map(|n| Attempts(Some(n)))
                    .map_err(|_| E::custom("attempts must be 0 or more"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Attempts, E> {
                u32::try_from(v)
                    .map(|n| Attempts(Some(n)))
                    .map_err(|_| E::custom("attempts is too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Attempts, E> {
                if v.is_infinite() && v > 0.0 {
                    Ok(Attempts(None))
                } else {
                    Err(E::custom("attempts must be a whole number or \"infinite\""))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Attempts, E> {
                match v {
                    "infinite" | "inf" | "Infinity" => Ok(Attempts(None)),
                    _ => Err(E::custom(format!(
                        "attempts {v:?}: write a whole number or \"infinite\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2/s").unwrap(), 2.0);
        assert_eq!(parse_rate("1/10s").unwrap(), 0.1);
        assert_eq!(parse_rate("30/m").unwrap(), 0.5);
        assert_eq!(parse_rate("500/1m").unwrap(), 500.0 / 60.0);
        for bad in ["2", "x/s", "0/s", "2/0s", "2/fortnight"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_and_ranges() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("3 parsecs").unwrap_err().contains("\"30s\""));
        #[derive(Deserialize)]
        struct T {
            r: DurRange,
            a: Attempts,
        }
        let t: T = toml::from_str("r = \"1s..3s\"\na = \"infinite\"").unwrap();
        assert_eq!(
            t.r,
            DurRange {
                low: Duration::from_secs(1),
                high: Duration::from_secs(3)
            }
        );
        assert_eq!(t.a, Attempts(None));
        let t: T = toml::from_str("r = \"2s\"\na = 5").unwrap();
        assert_eq!(
            (t.r.low, t.r.high, t.a),
            (
                Duration::from_secs(2),
                Duration::from_secs(2),
                Attempts(Some(5))
            )
        );
        assert!(toml::from_str::<T>("r = \"3s..1s\"\na = 1").is_err());
        assert!(toml::from_str::<T>("r = \"1s\"\na = -1").is_err());
    }
}

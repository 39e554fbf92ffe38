//! The common line, read without serde.
//!
//! Almost every line the recorder writes is compact JSON whose strings need
//! no escapes and whose numbers are plain integers, and most of them are
//! deliveries. serde_json's generic machinery (a visitor per value, an
//! `Option` dance per field, every string copied into its own `String`)
//! cost more than the checker itself (`cargo bench --bench checker`). This
//! scanner reads that common shape directly, borrowing the strings from the
//! line, and gives up (`None`) on anything else: an escape, a float, a
//! `null` where writers never put one, a nested value, an unknown or
//! repeated key, anything malformed. The caller then runs serde on the
//! line, so what is accepted, and every error message, stays exactly
//! serde's; this only has to be right about the lines it takes, which the
//! unit tests hold against serde.

use std::borrow::Cow;

use super::{Flat, Tag};
use crate::history::Via;

/// Reads the line's fields into `f` (fresh), if it has the common shape
/// (see the module doc); on `None`, `f` holds a part of them.
pub(super) fn fill<'a>(line: &'a str, f: &mut Flat<'a>) -> Option<()> {
    let mut p = Cursor { s: line, i: 0 };
    let (mut t, mut u, mut ev) = (None, None, None);
    /// Sets a field seen for the first time; a repeated key is serde's to refuse.
    macro_rules! once {
        ($slot:expr, $value:expr) => {{
            if $slot.is_some() {
                return None;
            }
            $slot = Some($value);
        }};
    }
    /// As `once!`, for the optional fields a writer leaves `null`
    /// (a delivery without `seq` or `temp_id`).
    macro_rules! nullable {
        ($seen:ident, $slot:expr, $value:expr) => {{
            if $seen {
                return None;
            }
            $seen = true;
            $slot = if p.null() { None } else { Some($value) };
        }};
    }
    let (mut seq_seen, mut temp_id_seen) = (false, false);
    p.ws();
    p.eat(b'{')?;
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        // The keys of a delivery first: a string match tests arms in order.
        match key {
            "t" => once!(t, p.uint()?),
            "u" => once!(u, u32::try_from(p.uint()?).ok()?),
            "ev" => once!(ev, tag(p.string()?)?),
            "id" => once!(f.id, p.cow()?),
            "temp_id" => nullable!(temp_id_seen, f.temp_id, p.cow()?),
            "conversation" => once!(f.conversation, p.cow()?),
            "sender" => once!(f.sender, p.cow()?),
            "seq" => nullable!(seq_seen, f.seq, p.int()?),
            "via" => once!(
                f.via,
                match p.string()? {
                    "live" => Via::Live,
                    "sync" => Via::Sync,
                    _ => return None,
                }
            ),
            "dup" => once!(f.dup, p.bool()?),
            "scheduled" => once!(f.scheduled, p.uint()?),
            "name" => once!(f.name, p.cow()?),
            "op" => once!(f.op, p.cow()?),
            "error" => once!(f.error, p.cow()?),
            "sid" => once!(f.sid, p.cow()?),
            "reason" => once!(f.reason, p.cow()?),
            "old_temp_id" => once!(f.old_temp_id, p.cow()?),
            "phase" => once!(f.phase, p.cow()?),
            "lag_us" => once!(f.lag_us, p.uint()?),
            "rss_kib" => once!(f.rss_kib, p.uint()?),
            "waited_ms" => once!(f.waited_ms, p.uint()?),
            "tcp" => once!(f.tcp, p.uint()?),
            "upgrade" => once!(f.upgrade, p.uint()?),
            "open" => once!(f.open, p.uint()?),
            "connect" => once!(f.connect, p.uint()?),
            "expires_at_ms" => once!(f.expires_at_ms, p.int()?),
            "attempt" => once!(f.attempt, p.u32()?),
            "attempts" => once!(f.attempts, p.u32()?),
            "fetched" => once!(f.fetched, p.u32()?),
            "new" => once!(f.new, p.u32()?),
            "rejoined" => once!(f.rejoined, p.u32()?),
            "synced" => once!(f.synced, p.u32()?),
            "resent" => once!(f.resent, p.u32()?),
            "fault" => once!(f.fault, p.u32()?),
            "recovered" => once!(f.recovered, p.bool()?),
            "refused" => once!(f.refused, p.bool()?),
            "resend" => once!(f.resend, p.bool()?),
            // users, cpu, action, kind (arrays, floats, objects: rare lines)
            // and keys this version does not know.
            _ => return None,
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != line.len() {
        return None;
    }
    (f.t, f.u, f.ev) = (t?, u?, ev?);
    Some(())
}

/// The kind named by `ev` (serde's snake_case names).
fn tag(s: &str) -> Option<Tag> {
    Some(match s {
        "delivered" => Tag::Delivered,
        "sent" => Tag::Sent,
        "acked" => Tag::Acked,
        "emitted" => Tag::Emitted,
        "phase" => Tag::Phase,
        "members" => Tag::Members,
        "load" => Tag::Load,
        "memory" => Tag::Memory,
        "logged_in" => Tag::LoggedIn,
        "login_failed" => Tag::LoginFailed,
        "token_refreshed" => Tag::TokenRefreshed,
        "token_refresh_failed" => Tag::TokenRefreshFailed,
        "connecting" => Tag::Connecting,
        "connected" => Tag::Connected,
        "connect_failed" => Tag::ConnectFailed,
        "disconnected" => Tag::Disconnected,
        "reconnect_failed" => Tag::ReconnectFailed,
        "stuck" => Tag::Stuck,
        "joined" => Tag::Joined,
        "join_refused" => Tag::JoinRefused,
        "join_failed" => Tag::JoinFailed,
        "renamed" => Tag::Renamed,
        "rejected" => Tag::Rejected,
        "ack_timeout" => Tag::AckTimeout,
        "sync_done" => Tag::SyncDone,
        "sync_failed" => Tag::SyncFailed,
        "recovered" => Tag::Recovered,
        "notice" => Tag::Notice,
        "fault" => Tag::Fault,
        "stranded" => Tag::Stranded,
        "stopped" => Tag::Stopped,
        _ => return None,
    })
}

/// A byte that ends the plain part of a string: its closing quote, an
/// escape, or a control character (an error in JSON).
fn stop(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The `stop` bytes of eight (little-endian), as their high bits. Only the
/// lowest one is exact (a borrow can flag bytes above it), which is the
/// only one wanted.
fn stops(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.s.as_bytes().get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON's whitespace, as serde_json skips it.
    fn ws(&mut self) {
        let b = self.s.as_bytes();
        while matches!(b.get(self.i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters, borrowed. Scanned
    /// eight bytes at a time: looking for its end byte by byte was the
    /// largest share of reading a line.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let b = self.s.as_bytes();
        let start = self.i;
        let mut i = start;
        loop {
            let Some(chunk) = b.get(i..i + 8) else {
                i += b[i..].iter().position(|&c| stop(c))?;
                break;
            };
            let found = stops(u64::from_le_bytes(chunk.try_into().ok()?));
            if found != 0 {
                i += found.trailing_zeros() as usize / 8;
                break;
            }
            i += 8;
        }
        self.i = i;
        self.eat(b'"')?;
        // Both ends sit next to an ASCII quote, so on char boundaries.
        self.s.get(start..i)
    }

    fn cow(&mut self) -> Option<Cow<'a, str>> {
        self.string().map(Cow::Borrowed)
    }

    /// A non-negative integer as serde_json reads one for an integer
    /// field: no leading zero, not followed by a fraction or an exponent
    /// (a float), no overflow (serde_json would read a float).
    fn uint(&mut self) -> Option<u64> {
        let b = self.s.as_bytes();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c) = b.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        if matches!(b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(v)
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.uint()?).ok()
    }

    /// A signed integer; `-0` and the very edges are left to serde.
    fn int(&mut self) -> Option<i64> {
        let negative = self.s.as_bytes().get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let v = i64::try_from(self.uint()?).ok()?;
        match (negative, v) {
            (true, 0) => None,
            (true, v) => Some(-v),
            (false, v) => Some(v),
        }
    }

    fn null(&mut self) -> bool {
        let null = self.s.as_bytes()[self.i..].starts_with(b"null");
        if null {
            self.i += 4;
        }
        null
    }

    fn bool(&mut self) -> Option<bool> {
        let rest = &self.s.as_bytes()[self.i..];
        let (v, n) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.i += n;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time scan finds the first stop byte exactly, whatever
    /// surrounds it (borrows, bytes of multi-byte characters).
    #[test]
    fn stops_finds_the_first_stop_byte() {
        let fillers = [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xc3, 0xff];
        for v in 0..=255u8 {
            for at in 0..8 {
                for &fill in &fillers {
                    for &after in &[fill, b'"', 0, b'\\', 0x1f] {
                        let mut w = [fill; 8];
                        w[at] = v;
                        for x in &mut w[at + 1..] {
                            *x = after;
                        }
                        let want = w.iter().position(|&c| stop(c));
                        let found = stops(u64::from_le_bytes(w));
                        let got = (found != 0).then(|| found.trailing_zeros() as usize / 8);
                        assert_eq!(got, want, "{w:?}");
                    }
                }
            }
        }
    }
}

//! The one-pass parser against serde's derived deserializer: equal events,
//! equal refusals.

use super::*;
use crate::scenario::{NetEffect, OfflineMode, RestartMode};

/// One event of every kind (the match below fails to compile when a
/// kind is added, so a new kind cannot skip this test).
fn every_kind() -> Vec<EventKind> {
    use EventKind as K;
    let s = |x: &str| x.to_owned();
    let all = vec![
        K::Phase { name: s("chat") },
        K::Members {
            conversation: s("c1"),
            users: vec![0, 7, 4_000_000],
        },
        K::Load {
            lag_us: 1234,
            cpu: 0.4375,
        },
        K::Memory { rss_kib: 43_210 },
        K::LoggedIn { expires_at_ms: -5 },
        K::LoginFailed {
            error: s("HTTP 500: \"oops\"\n\tline2 \u{e9}\u{1F600}"),
        },
        K::TokenRefreshed {
            expires_at_ms: 1_700_000_000_000,
        },
        K::TokenRefreshFailed { error: s("x") },
        K::Connecting {
            attempt: 3,
            scheduled: u64::MAX,
        },
        K::Connected {
            attempt: 0,
            sid: s("abc/def"),
            tcp: 1,
            upgrade: 2,
            open: 3,
            connect: 4,
            recovered: true,
        },
        K::ConnectFailed {
            attempt: 1,
            error: s("Authentication failed"),
            refused: false,
        },
        K::Disconnected {
            reason: s("transport close"),
        },
        K::ReconnectFailed { attempts: 9 },
        K::Stuck {
            op: s("connect"),
            waited_ms: 20_000,
        },
        K::Joined {
            conversation: s("c2"),
        },
        K::JoinRefused {
            conversation: s("c2"),
            action: s("removed"),
        },
        K::JoinFailed {
            conversation: s("c2"),
            error: s("timeout"),
        },
        K::Sent {
            temp_id: s("u1-1"),
            conversation: s("c0"),
            scheduled: 99,
        },
        K::Emitted {
            temp_id: s("u1-1"),
            conversation: s("c0"),
            resend: true,
        },
        K::Renamed {
            old_temp_id: s("u1-1"),
            temp_id: s("u1-1r"),
        },
        K::Acked {
            temp_id: s("u1-1"),
            conversation: s("c0"),
            id: s("42"),
            seq: Some(-3),
        },
        K::Rejected {
            temp_id: s("u1-2"),
            conversation: s("c0"),
            error: s("not a member"),
            action: Some(s("removed")),
        },
        K::AckTimeout { temp_id: s("u1-3") },
        K::Delivered {
            id: s("42"),
            temp_id: Some(s("u1-1")),
            conversation: s("c0"),
            sender: s("u1"),
            seq: Some(7),
            via: Via::Live,
            dup: false,
        },
        K::SyncDone {
            conversation: s("c0"),
            fetched: 5,
            new: 2,
        },
        K::SyncFailed {
            conversation: s("c0"),
            error: s("HTTP 401"),
        },
        K::Recovered {
            rejoined: 1,
            synced: 2,
            resent: 3,
        },
        K::Notice {
            name: s("duplicate-connection"),
        },
        K::Fault {
            fault: 2,
            kind: FaultKind::Offline,
            phase: s("begin"),
            action: Action::NetStart {
                cohort: s("mobile"),
                effect: NetEffect::Offline {
                    mode: OfflineMode::Blackhole,
                },
            },
            error: Some(s("proxy said no")),
        },
        K::Stranded {
            temp_id: s("u1-4"),
            conversation: s("c0"),
        },
        K::Stopped,
    ];
    for k in &all {
        match k {
            K::Phase { .. }
            | K::Members { .. }
            | K::Load { .. }
            | K::Memory { .. }
            | K::LoggedIn { .. }
            | K::LoginFailed { .. }
            | K::TokenRefreshed { .. }
            | K::TokenRefreshFailed { .. }
            | K::Connecting { .. }
            | K::Connected { .. }
            | K::ConnectFailed { .. }
            | K::Disconnected { .. }
            | K::ReconnectFailed { .. }
            | K::Stuck { .. }
            | K::Joined { .. }
            | K::JoinRefused { .. }
            | K::JoinFailed { .. }
            | K::Sent { .. }
            | K::Emitted { .. }
            | K::Renamed { .. }
            | K::Acked { .. }
            | K::Rejected { .. }
            | K::AckTimeout { .. }
            | K::Delivered { .. }
            | K::SyncDone { .. }
            | K::SyncFailed { .. }
            | K::Recovered { .. }
            | K::Notice { .. }
            | K::Fault { .. }
            | K::Stranded { .. }
            | K::Stopped => {}
        }
    }
    all
}

/// The variants of a kind: optional fields as None, other fault actions.
fn variants() -> Vec<EventKind> {
    use EventKind as K;
    let s = |x: &str| x.to_owned();
    vec![
        K::Acked {
            temp_id: s("a"),
            conversation: s("c"),
            id: s("i"),
            seq: None,
        },
        K::Rejected {
            temp_id: s("a"),
            conversation: s("c"),
            error: s("e"),
            action: None,
        },
        K::Delivered {
            id: s("i"),
            temp_id: None,
            conversation: s("c"),
            sender: s("u9"),
            seq: None,
            via: Via::Sync,
            dup: true,
        },
        K::Fault {
            fault: 0,
            kind: FaultKind::ServerRestart,
            phase: s("done"),
            action: Action::ServerDown {
                mode: RestartMode::Crash,
            },
            error: None,
        },
        K::Fault {
            fault: 1,
            kind: FaultKind::Membership,
            phase: s("remote"),
            action: Action::RemoveMembers {
                pairs: vec![(s("c1"), 3)],
            },
            error: None,
        },
        K::Fault {
            fault: 1,
            kind: FaultKind::TokenExpiry,
            phase: s("begin"),
            action: Action::Revoke { users: vec![1, 2] },
            error: None,
        },
        K::Fault {
            fault: 1,
            kind: FaultKind::ServerRestart,
            phase: s("begin"),
            action: Action::ServerUp,
            error: None,
        },
    ]
}

#[test]
fn equals_serde_on_every_kind() {
    for (i, kind) in every_kind().into_iter().chain(variants()).enumerate() {
        let e = Event {
            t: 1000 + i as u64,
            u: if i % 2 == 0 { u32::MAX } else { i as u32 },
            kind,
        };
        let line = serde_json::to_string(&e).unwrap();
        let derived: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(derived, e, "{line}");
        assert_eq!(event(&line).unwrap(), derived, "{line}");
        // Fields in another order, and a field this version does not know.
        let mut v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).unwrap();
        let mut pairs: Vec<_> = std::mem::take(&mut v).into_iter().collect();
        pairs.reverse();
        pairs.push(("later".into(), serde_json::json!({"x": [1, "y"]})));
        let shuffled =
            serde_json::to_string(&pairs.into_iter().collect::<serde_json::Map<_, _>>()).unwrap();
        assert_eq!(event(&shuffled).unwrap(), derived, "{shuffled}");
        assert_eq!(serde_json::from_str::<Event>(&shuffled).unwrap(), derived);
    }
}

#[test]
fn refuses_what_serde_refuses() {
    // Every required field removed in turn, a bad tag, wrong types.
    for kind in every_kind().into_iter().chain(variants()) {
        let e = Event { t: 1, u: 2, kind };
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        for key in v.keys() {
            let mut w = v.clone();
            w.remove(key);
            let line = serde_json::to_string(&w).unwrap();
            let derived = serde_json::from_str::<Event>(&line);
            assert_eq!(
                event(&line).is_ok(),
                derived.is_ok(),
                "without {key}: {line}"
            );
            if let Ok(d) = derived {
                assert_eq!(event(&line).unwrap(), d);
            }
            // Each value replaced by a value of another type.
            for bad in [
                serde_json::json!(null),
                serde_json::json!("s"),
                serde_json::json!(-1),
                serde_json::json!({}),
            ] {
                let mut w = v.clone();
                w.insert(key.clone(), bad);
                let line = serde_json::to_string(&w).unwrap();
                let derived = serde_json::from_str::<Event>(&line);
                assert_eq!(event(&line).is_ok(), derived.is_ok(), "{line}");
                if let Ok(d) = derived {
                    assert_eq!(event(&line).unwrap(), d, "{line}");
                }
            }
        }
    }
    for line in [
        r#"{"t":1,"u":2,"ev":"no_such_kind"}"#,
        r#"{"t":1,"u":2}"#,
        r#"{"t":1,"u":2,"ev":"stopped""#,
        r#"{"t":1,"u":2,"ev":"stopped","t":3}"#,
        r#"[1,2]"#,
        "",
    ] {
        assert!(event(line).is_err(), "{line}");
        assert!(serde_json::from_str::<Event>(line).is_err(), "{line}");
    }
}

/// The one-pass scanner must really take the common lines (else the speed
/// is lost without a test noticing): every kind without a float, array or
/// object field (`action`, even `null`, is left to serde: rare lines).
#[test]
fn fast_path_takes_the_common_lines() {
    use EventKind as K;
    for (i, kind) in every_kind().into_iter().chain(variants()).enumerate() {
        let rare = matches!(
            kind,
            K::Members { .. }
                | K::Load { .. }
                | K::Fault { .. }
                | K::JoinRefused { .. }
                | K::Rejected { .. }
        );
        let e = Event {
            t: 7 + i as u64,
            u: i as u32,
            kind,
        };
        let line = serde_json::to_string(&e).unwrap();
        let mut f = Flat::default();
        let took = super::fast::fill(&line, &mut f).is_some();
        if rare {
            assert!(!took, "{line}");
            continue;
        }
        assert!(
            took && !line.contains('\\') || !took && line.contains('\\'),
            "{line}"
        );
        if took {
            assert_eq!(f.take_event().unwrap(), e, "{line}");
        }
    }
}

/// Odd but possible lines: each is read as serde reads it (taken by the
/// scanner or handed back to serde), or refused as serde refuses it.
#[test]
fn odd_lines_agree_with_serde() {
    let base = r#""ev":"delivered","id":"m1","temp_id":"u1-1","conversation":"c0","sender":"u1","seq":3,"via":"live","dup":false"#;
    let mut lines: Vec<String> = Vec::new();
    for (t, u) in [
        ("1", "2"),
        ("01", "2"),
        ("0", "0"),
        ("-0", "2"),
        ("-1", "2"),
        ("+1", "2"),
        ("1.0", "2"),
        ("1e3", "2"),
        ("1E3", "2"),
        ("18446744073709551615", "4294967295"),
        ("18446744073709551616", "2"),
        ("1", "4294967296"),
        ("1", "-1"),
        ("1x", "2"),
        ("1", "null"),
        ("\"1\"", "2"),
    ] {
        lines.push(format!(r#"{{"t":{t},"u":{u},{base}}}"#));
    }
    for seq in [
        "-0",
        "-5",
        "null",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "0.5",
        "-",
        "--1",
        "-01",
    ] {
        lines.push(base.replace(r#""seq":3"#, &format!(r#""seq":{seq}"#)));
    }
    for (from, to) in [
        (r#""m1""#, r#""m\"1""#),
        (r#""m1""#, r#""\u006d1""#),
        (r#""m1""#, "\"m\t1\""),
        (r#""m1""#, r#""é😀""#),
        (r#""m1""#, r#""abcdefghijklmnopqrstuvwxyz-é😀-0123456789""#),
        (r#""m1""#, r#""abcdefghijklmnopq\"rs""#),
        (r#""m1""#, "\"abcdefghijklm\u{1}xyz\""),
        (r#""m1""#, "\"abcdefghijklmnop"),
        (r#""m1""#, r#""""#),
        (r#""m1""#, "1"),
        (r#""id""#, r#""\u0069d""#),
        (r#""u1-1""#, "null"),
        (r#""dup":false"#, r#""dup":true"#),
        (r#""dup":false"#, r#""dup":tru"#),
        (r#""dup":false"#, r#""dup":falsey"#),
        (r#""dup":false"#, r#""dup":0"#),
        (r#""live""#, r#""Live""#),
        (r#""live""#, r#""sync""#),
        (r#""delivered""#, r#""Delivered""#),
        (r#""delivered""#, r#""stopped""#),
        (r#""delivered""#, r#""sent""#),
        (r#""delivered""#, r#""acked""#),
        (r#","via":"live""#, ""),
        (r#","temp_id":"u1-1""#, ""),
        (r#","seq":3"#, ""),
        (r#""seq":3"#, r#""seq":3,"seq":4"#),
        (r#""seq":3"#, r#""seq":null,"seq":4"#),
        (r#""seq":3"#, r#""seq":null,"seq":null"#),
        (r#""seq":3"#, r#""seq":nul"#),
        (r#""seq":3"#, r#""seq":nullx"#),
        (r#""u1-1""#, r#"null,"temp_id":null"#),
        (r#""u1-1""#, r#"null,"temp_id":"u1-1""#),
        (r#""m1""#, r#"null"#),
        (r#""seq":3"#, r#""seq":3,"later":1"#),
        (r#""seq":3"#, r#""seq":3,"":1"#),
        (r#""seq":3"#, r#""seq":3,"scheduled":5"#),
        (r#""seq":3"#, r#""seq":3,"users":[1]"#),
        (r#""seq":3"#, r#""seq":3,"#),
        (r#""seq":3"#, r#""seq" : 3"#),
        (",", " ,\t"),
    ] {
        assert!(base.contains(from), "{from}");
        lines.push(format!(r#"{{"t":1,"u":2,{}}}"#, base.replacen(from, to, 1)));
    }
    let whole = format!(r#"{{"t":1,"u":2,{base}}}"#);
    for (pre, post) in [
        (" ", "\n"),
        ("\r\n\t", "\r\n"),
        ("", "}"),
        ("", "x"),
        ("", ","),
        ("[", "]"),
    ] {
        lines.push(format!("{pre}{whole}{post}"));
    }
    lines.push(whole[..whole.len() - 1].to_owned());
    lines.push(whole.replace(":", " : ").replace(",", " , "));
    lines
        .push(r#"{"t":1,"u":2,"ev":"sent","temp_id":"a","conversation":"c","scheduled":0}"#.into());
    lines.push(
        r#"{"t":1,"u":2,"ev":"sent","temp_id":"a","conversation":"c","scheduled":00}"#.into(),
    );
    lines.push(
        r#"{"t":1,"u":2,"ev":"acked","temp_id":"a","conversation":"c","id":"i","seq":null}"#.into(),
    );
    lines.push(r#"{"t":1,"u":2,"ev":"stopped"}"#.into());
    lines.push(r#"{}"#.into());
    for line in &lines {
        let derived = serde_json::from_str::<Event>(line);
        let ours = event(line);
        assert_eq!(ours.is_ok(), derived.is_ok(), "{line}: {ours:?}");
        if let Ok(d) = derived {
            assert_eq!(ours.unwrap(), d, "{line}");
        }
    }
}

/// Reading over the previous event (the file reader's way) gives the same
/// events as reading each line afresh, whatever the kinds' order, and
/// leaves the event alone on an error.
#[test]
fn event_into_equals_event() {
    let mut lines: Vec<String> = Vec::new();
    for (i, kind) in every_kind().into_iter().chain(variants()).enumerate() {
        let e = Event {
            t: i as u64,
            u: 3,
            kind,
        };
        let line = serde_json::to_string(&e).unwrap();
        // Each kind twice in a row (reused), then after another kind.
        lines.push(line.clone());
        lines.push(line.replace("\"t\":", "\"t\":1"));
    }
    let all = lines.clone();
    lines.extend(all.iter().rev().cloned());
    lines.extend(all.iter().step_by(3).cloned());
    let mut e = Event {
        t: 0,
        u: 0,
        kind: EventKind::Stopped,
    };
    for line in &lines {
        event_into(line, &mut e).unwrap();
        assert_eq!(e, serde_json::from_str::<Event>(line).unwrap(), "{line}");
        let before = e.clone();
        assert!(event_into(r#"{"t":1,"u":2,"ev":"delivered","id":"x"}"#, &mut e).is_err());
        assert!(event_into("{", &mut e).is_err());
        assert_eq!(e, before);
    }
}

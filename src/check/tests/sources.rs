//! Where the events come from: the history file against the live feed,
//! and shards' merged histories (a delivery sorted before its send).

use super::*;

#[test]
fn the_file_gives_the_same_verdict_as_the_live_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let (rec, handle) =
        crate::history::Recorder::create(&path, &header(3), std::time::Instant::now()).unwrap();
    drop(rec);
    handle.finish().unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    let events = one_message(&[1]);
    for e in &events {
        text += &serde_json::to_string(e).unwrap();
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let (_, from_file, _) = check_file(&path, Rules::default(), Ending::default()).unwrap();
    assert_eq!(from_file, check(3, &events));
    assert_eq!(from_file.kinds(), vec![Guarantee::Loss]);
}

#[test]
fn a_delivery_merged_before_its_send_is_not_a_phantom() {
    // Two shards' clocks differ by a few ms: u1's delivery sorts before u0's send.
    let h = vec![
        members("c0", &[0, 1]),
        connected(1, 0),
        connected(1, 1),
        delivered(95, 1, "m1", "u0-0", "c0", "u0", Some(1)),
        delivered(97, 2, "m1", "u0-0", "c0", "u0", Some(1)),
        sent(100, 0, "u0-0", "c0"),
        delivered(120, 0, "m1", "u0-0", "c0", "u0", Some(1)),
        acked(130, 0, "u0-0", "c0", "m1"),
        stopped(S, 0),
        stopped(S, 1),
        stopped(S, 2),
    ];
    let mut h = h;
    h[0] = members("c0", &[0, 1, 2]);
    h.insert(3, connected(1, 2));
    let v = check(3, &h);
    assert!(v.kinds().is_empty(), "{:?}", v.violations);
    assert_eq!(v.counts.delivered, 3);
    // Every delivery has its latency, the early ones too, once their send
    // is known (tests/e2e/shards.rs compares this count with `delivered`).
    let delivery = v.metrics.iter().find(|m| m.metric == "delivery").unwrap();
    assert_eq!(delivery.count, 3);
}

//! Every bug switch changes exactly the behaviour it names: one probe measures
//! all the server's guarantees, the correct server keeps them all, and each
//! bug breaks its own one and no other.

use crate::common;

use std::time::Duration;

use common::{RawClient, ServerProcess, add, http, sync_seq, token};
use serde_json::json;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Guarantees {
    expired_refused: bool,
    membership_enforced: bool,
    broadcasts_complete: bool,
    idempotent: bool,
    sync_exact: bool,
    queue_live: bool,
    queue_durable: bool,
    acked_survive_crash: bool,
}

const ALL_KEPT: Guarantees = Guarantees {
    expired_refused: true,
    membership_enforced: true,
    broadcasts_complete: true,
    idempotent: true,
    sync_exact: true,
    queue_live: true,
    queue_durable: true,
    acked_survive_crash: true,
};

async fn probe(bugs: &[&str]) -> Guarantees {
    let mut args = vec!["--token-ttl", "1s", "--seed", "3"];
    for b in bugs {
        args.extend(["--bug", b]);
    }
    let mut server = ServerProcess::start(&args);
    let base = server.url();
    let addr = server.addr.clone();
    for (c, u) in [
        ("c1", "u0"),
        ("c1", "u1"),
        ("c2", "u0"),
        ("c2", "u3"),
        ("c2", "u5"),
        ("c3", "u0"),
        ("c3", "u4"),
    ] {
        add(&base, c, u).await;
    }

    // Expiry: a token used after its lifetime.
    let stale = token(&base, "u9").await;
    let expired_at = tokio::time::Instant::now() + Duration::from_millis(1_100);

    // Membership: a stranger's join, and a member removed while online.
    let mut u0 = RawClient::with_token(&addr, &token(&base, "u0").await).await;
    let mut u2 = RawClient::with_token(&addr, &token(&base, "u2").await).await;
    let mut u4 = RawClient::with_token(&addr, &token(&base, "u4").await).await;
    let stranger = u2.join("c1").await;
    assert_eq!(u0.join("c3").await["success"], true);
    assert_eq!(u4.join("c3").await["success"], true);
    let r = http()
        .delete(format!("{base}/api/conversations/c3/participants/u4"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    u0.send("c3", "after-removal", "secret").await;
    u4.drain(Duration::from_millis(300)).await;
    let membership_enforced = stranger["action"] == "removed" && u4.seqs("c3").is_empty();

    // Broadcast completeness and idempotency in c1.
    let mut u1 = RawClient::with_token(&addr, &token(&base, "u1").await).await;
    assert_eq!(u0.join("c1").await["success"], true);
    assert_eq!(u1.join("c1").await["success"], true);
    let mut acked = Vec::new();
    for i in 0..200 {
        let a = u0.send("c1", &format!("t{i}"), "hello").await;
        acked.push(a["seq"].as_i64().unwrap());
    }
    let got = u1
        .wait_for("message:new", 200, Duration::from_secs(3))
        .await;
    let broadcasts_complete = got.len() == 200 && u1.seqs("c1") == acked;
    let first = u0.send("c1", "dup", "once").await;
    let again = u0.send("c1", "dup", "once").await;
    let idempotent = first["id"] == again["id"];

    // Sync, by sequence number and by time (inclusive of the boundary).
    let tok = token(&base, "u1").await;
    let last = *acked.last().unwrap();
    let by_seq = sync_seq(&base, &tok, "c1", 100).await;
    let (_, all) = common::get(
        &base,
        "/api/messages?conversationId=c1&sinceSeq=99&limit=1",
        &tok,
    )
    .await;
    let since = all["messages"][0]["createdAt"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, body) = common::get(
        &base,
        &format!("/api/messages?conversationId=c1&since={since}&limit=1000"),
        &tok,
    )
    .await;
    let by_time: Vec<i64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    let max_seq = again["seq"]
        .as_i64()
        .unwrap()
        .max(first["seq"].as_i64().unwrap())
        .max(last);
    let from_boundary: Vec<i64> = by_time.iter().copied().filter(|&s| s >= 100).collect();
    let sync_exact = by_seq == (101..=max_seq).collect::<Vec<_>>()
        && from_boundary == (100..=max_seq).collect::<Vec<_>>();

    // Offline queue: u5 and u3 are members of c2 who are not connected.
    for i in 0..3 {
        u0.send("c2", &format!("q{i}"), "queued").await;
    }
    let mut u5 = RawClient::with_token(&addr, &token(&base, "u5").await).await;
    assert_eq!(u5.join("c2").await["success"], true);
    let queue_live = u5
        .wait_for("message:new", 3, Duration::from_secs(2))
        .await
        .len()
        == 3;

    server.crash_restart();
    let mut u3 = RawClient::with_token(&addr, &token(&base, "u3").await).await;
    assert_eq!(u3.join("c2").await["success"], true);
    let queue_durable = u3
        .wait_for("message:new", 3, Duration::from_secs(2))
        .await
        .len()
        == 3;
    // Read the SQLite file itself, so this does not lean on the sync endpoint.
    let db = rusqlite::Connection::open(server.db()).unwrap();
    let stored: Vec<i64> = db
        .prepare("SELECT seq FROM messages WHERE conversation_id = 'c1' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let acked_survive_crash = acked.iter().all(|s| stored.binary_search(s).is_ok());

    tokio::time::sleep_until(expired_at).await;
    let expired_refused = matches!(
        RawClient::connect(&addr, json!({ "token": stale })).await,
        common::Connected::Refused(_)
    );

    Guarantees {
        expired_refused,
        membership_enforced,
        broadcasts_complete,
        idempotent,
        sync_exact,
        queue_live,
        queue_durable,
        acked_survive_crash,
    }
}

#[tokio::test]
async fn the_correct_server_keeps_every_guarantee() {
    assert_eq!(probe(&[]).await, ALL_KEPT);
}

#[tokio::test]
async fn skip_membership_check_breaks_only_membership() {
    assert_eq!(
        probe(&["skip-membership-check"]).await,
        Guarantees {
            membership_enforced: false,
            ..ALL_KEPT
        }
    );
}

#[tokio::test]
async fn volatile_queue_breaks_only_the_queue_across_restarts() {
    assert_eq!(
        probe(&["volatile-queue"]).await,
        Guarantees {
            queue_durable: false,
            ..ALL_KEPT
        }
    );
}

#[tokio::test]
async fn accept_expired_tokens_breaks_only_expiry() {
    assert_eq!(
        probe(&["accept-expired-tokens"]).await,
        Guarantees {
            expired_refused: false,
            ..ALL_KEPT
        }
    );
}

#[tokio::test]
async fn no_idempotency_breaks_only_idempotency() {
    assert_eq!(
        probe(&["no-idempotency"]).await,
        Guarantees {
            idempotent: false,
            ..ALL_KEPT
        }
    );
}

#[tokio::test]
async fn sync_off_by_one_breaks_only_sync() {
    assert_eq!(
        probe(&["sync-off-by-one"]).await,
        Guarantees {
            sync_exact: false,
            ..ALL_KEPT
        }
    );
}

#[tokio::test]
async fn drop_under_load_breaks_only_live_broadcasts() {
    assert_eq!(
        probe(&["drop-under-load"]).await,
        Guarantees {
            broadcasts_complete: false,
            ..ALL_KEPT
        }
    );
}

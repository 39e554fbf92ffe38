//! The reference server over real sockets: auth, rooms, presence, the
//! duplicate-connection policy, shutdown, seeding, and bad input.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, RawClient, ServerProcess, add, http, login, token};
use serde_json::{Value, json};

#[tokio::test]
async fn auth_accepts_valid_and_refuses_bad_missing_expired_and_revoked_tokens() {
    let server = ServerProcess::start(&["--token-ttl", "1s"]);
    let (base, addr) = (server.url(), server.addr.clone());
    let auth_failed = json!({ "message": "Authentication failed" });

    let pair = login(&base, "u1").await;
    assert!(pair["expiresAt"].as_str().unwrap().ends_with('Z'));
    RawClient::with_token(&addr, pair["token"].as_str().unwrap())
        .await
        .close()
        .await;

    for bad in [
        json!({ "token": "not-a-jwt" }),
        json!({}),
        json!({ "token": pair["refreshToken"] }),
    ] {
        let refusal = RawClient::connect(&addr, bad.clone()).await.refusal();
        assert_eq!(refusal, auth_failed, "for auth {bad}");
    }

    // Refresh trades the refresh credential for a new working token; an
    // access token is not a refresh credential.
    let refreshed: Value = http()
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({ "refreshToken": pair["refreshToken"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = refreshed["token"].as_str().unwrap().to_string();
    RawClient::with_token(&addr, &fresh).await.close().await;
    let wrong = http()
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({ "refreshToken": pair["token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        RawClient::connect(&addr, json!({ "token": fresh }))
            .await
            .refusal(),
        auth_failed
    );
    let (status, _) = common::get(&base, "/api/conversations", &fresh).await;
    assert_eq!(status, 401, "REST refuses an expired token too");

    // Revocation kills both the access token and the refresh credential.
    let pair = login(&base, "u2").await;
    let r = http()
        .post(format!("{base}/api/auth/revoke"))
        .json(&json!({ "userId": "u2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        RawClient::connect(&addr, json!({ "token": pair["token"] }))
            .await
            .refusal(),
        auth_failed
    );
    let r = http()
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({ "refreshToken": pair["refreshToken"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A new login after revocation works again.
    RawClient::with_token(&addr, &token(&base, "u2").await)
        .await
        .close()
        .await;
}

#[tokio::test]
async fn broadcast_reaches_room_members_only_with_temp_id() {
    let server = ServerProcess::start(&[]);
    let (base, addr) = (server.url(), server.addr.clone());
    add(&base, "room", "alice").await;
    add(&base, "room", "bob").await;
    let mut alice = RawClient::with_token(&addr, &token(&base, "alice").await).await;
    let mut bob = RawClient::with_token(&addr, &token(&base, "bob").await).await;
    let mut eve = RawClient::with_token(&addr, &token(&base, "eve").await).await;
    assert_eq!(
        alice.join("room").await,
        json!({ "success": true, "conversationId": "room" })
    );
    assert_eq!(bob.join("room").await["success"], true);
    let refused = eve.join("room").await;
    assert_eq!(refused["action"], "removed");
    assert!(refused["error"].is_string());

    let ack = alice.send("room", "tmp-1", "hello").await;
    assert_eq!(ack["seq"], 1);
    let id = ack["id"].as_str().unwrap().to_string();
    for c in [&mut alice, &mut bob] {
        let got = c.wait_for("message:new", 1, Duration::from_secs(2)).await;
        let m = &got[0];
        assert_eq!(
            (
                m["id"].as_str(),
                m["temp_id"].as_str(),
                m["senderId"].as_str(),
                m["content"].as_str(),
                m["seq"].as_i64()
            ),
            (
                Some(id.as_str()),
                Some("tmp-1"),
                Some("alice"),
                Some("hello"),
                Some(1)
            )
        );
        assert!(m["createdAt"].as_str().unwrap().ends_with('Z'));
    }
    eve.drain(Duration::from_millis(300)).await;
    assert!(
        eve.named("message:new").is_empty(),
        "a non-member received {:?}",
        eve.events
    );

    // A stranger cannot send into the room either, nor read it over REST.
    assert_eq!(
        eve.send("room", "x", "intrusion").await["action"],
        "removed"
    );
    let (status, _) = common::get(
        &base,
        "/api/messages?conversationId=room&sinceSeq=0",
        &token(&base, "eve").await,
    )
    .await;
    assert_eq!(status, 403);
    // Leaving the room stops live delivery (membership stays).
    assert_eq!(
        bob.emit_ack("leave-room", json!({ "conversationId": "room" }))
            .await["success"],
        true
    );
    alice.send("room", "tmp-2", "bye").await;
    bob.drain(Duration::from_millis(300)).await;
    assert_eq!(bob.seqs("room"), [1]);
}

#[tokio::test]
async fn presence_and_duplicate_connection_policy() {
    let server = ServerProcess::start(&[]);
    let (base, addr) = (server.url(), server.addr.clone());
    add(&base, "c", "a").await;
    add(&base, "c", "b").await;
    let mut a = RawClient::with_token(&addr, &token(&base, "a").await).await;
    a.join("c").await;
    let b = RawClient::with_token(&addr, &token(&base, "b").await).await;
    // Only b's presence matters here: a's own "online" can race a's join
    // (socketioxide runs the connect handler after CONNECT is answered).
    let of_b = |a: &RawClient| -> Vec<String> {
        a.named("user:status")
            .iter()
            .filter(|s| s["userId"] == "b")
            .map(|s| s["status"].as_str().unwrap().to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while of_b(&a).is_empty() && std::time::Instant::now() < deadline {
        a.drain(Duration::from_millis(50)).await;
    }
    assert_eq!(of_b(&a), ["online"]);
    b.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while of_b(&a).len() < 2 && std::time::Instant::now() < deadline {
        a.drain(Duration::from_millis(50)).await;
    }
    assert_eq!(of_b(&a), ["online", "offline"]);

    // A second tab of `a`: the first one is told (default policy notify-old) and stays.
    let _a2 = RawClient::with_token(&addr, &token(&base, "a").await).await;
    let dup = a
        .wait_for("duplicate-connection", 1, Duration::from_secs(2))
        .await;
    assert_eq!(dup.len(), 1);
    assert!(!a.closed_by_server);
}

#[tokio::test]
async fn disconnect_old_policy_closes_the_first_tab() {
    let server = ServerProcess::start(&["--duplicate-policy", "disconnect-old"]);
    let (base, addr) = (server.url(), server.addr.clone());
    let mut first = RawClient::with_token(&addr, &token(&base, "a").await).await;
    let _second = RawClient::with_token(&addr, &token(&base, "a").await).await;
    first.drain(Duration::from_millis(500)).await;
    assert_eq!(first.named("duplicate-connection").len(), 1);
    assert!(first.closed_by_server);
}

#[tokio::test]
async fn sigterm_announces_shutdown_and_exits_cleanly() {
    let mut server = ServerProcess::start(&[]);
    let (base, addr) = (server.url(), server.addr.clone());
    let mut c = RawClient::with_token(&addr, &token(&base, "a").await).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.sigterm();
        drop(server);
        status
    });
    c.drain(Duration::from_secs(2)).await;
    assert_eq!(c.named("server-shutdown").len(), 1, "{:?}", c.events);
    assert!(c.closed_by_server);
    assert!(status.await.unwrap().success());
}

#[tokio::test]
async fn seeding_is_deterministic_and_health_reports() {
    let args = [
        "--users",
        "6",
        "--conversations",
        "3",
        "--members",
        "4",
        "--seed",
        "9",
    ];
    let one = ServerProcess::start(&args);
    let two = ServerProcess::start(&args);
    let mut lists = Vec::new();
    for s in [&one, &two] {
        let mut per_user = Vec::new();
        for u in 0..6 {
            let (status, body) = common::get(
                &s.url(),
                "/api/conversations",
                &token(&s.url(), &format!("u{u}")).await,
            )
            .await;
            assert_eq!(status, 200);
            let ids: Vec<String> = body["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().into())
                .collect();
            per_user.push(ids);
        }
        lists.push(per_user);
    }
    assert_eq!(lists[0], lists[1]);
    assert_eq!(
        lists[0].iter().map(Vec::len).sum::<usize>(),
        12,
        "3 conversations × 4 members"
    );
    let health: Value = http()
        .get(format!("{}/health", one.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["uptimeSeconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(health["bugs"], json!([]));
}

/// Bad input: a one-line error on stderr, a non-zero exit, no panic.
fn refused(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "args {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        "/proc/no/such/dir/x.db",
    ]);
    assert!(
        err.contains("cannot open database /proc/no/such/dir/x.db"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("x.db");
    let err = refused(&["serve", "--listen", &addr, "--db", db.to_str().unwrap()]);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let err = refused(&["serve", "--bug", "no-such-bug"]);
    assert!(err.contains("invalid value 'no-such-bug'"), "{err}");
    assert!(
        err.contains("skip-membership-check"),
        "lists the known bugs: {err}"
    );

    let err = refused(&["report", "show", "x"]);
    assert!(err.contains("summary.json"), "{err}");
}

#[test]
fn serve_help_lists_the_bug_switches() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for bug in [
        "skip-membership-check",
        "volatile-queue",
        "accept-expired-tokens",
        "no-idempotency",
        "sync-off-by-one",
        "drop-under-load",
    ] {
        assert!(help.contains(bug), "{bug} missing from serve --help");
    }
}

#[tokio::test]
async fn crash_restart_keeps_acknowledged_messages_and_memberships() {
    let mut server = ServerProcess::start(&[]);
    let (base, addr) = (server.url(), server.addr.clone());
    add(&base, "c", "a").await;
    add(&base, "c", "b").await;
    let mut a = RawClient::with_token(&addr, &token(&base, "a").await).await;
    a.join("c").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            a.send("c", &format!("t{i}"), "durable").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let r = http()
        .delete(format!("{base}/api/conversations/c/participants/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.crash_restart();
    let tok = token(&base, "a").await;
    let (_, body) = common::get(&base, "/api/messages?conversationId=c&sinceSeq=0", &tok).await;
    let after: Vec<String> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().into())
        .collect();
    assert_eq!(after, ids);
    // The removal survived the restart: seeding or recovery did not undo it.
    let mut b = RawClient::with_token(&addr, &token(&base, "b").await).await;
    assert_eq!(b.join("c").await["action"], "removed");
    // A resend after the crash is still recognised.
    let mut a = RawClient::with_token(&addr, &tok).await;
    assert_eq!(
        a.send("c", "t7", "durable").await["id"].as_str().unwrap(),
        ids[7]
    );
}

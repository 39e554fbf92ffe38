//! Against scripted fake servers: wire-exact assertions and misbehaviour.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{closed, next};
use crate::sio::{
    AckError, CloseReason, ConnectError, ConnectOptions, Incoming, Phase, Recovery, connect,
};

type ServerWs = WebSocketStream<TcpStream>;

/// Accept WebSocket connections on 127.0.0.1:0 and run `script` on each.
async fn fake<F, Fut>(script: F) -> String
where
    F: Fn(ServerWs) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let script = script.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    script(ws).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

fn open(ping_interval_ms: u64, ping_timeout_ms: u64) -> Message {
    let open = json!({"sid": "eio-1", "upgrades": [], "pingInterval": ping_interval_ms,
                      "pingTimeout": ping_timeout_ms, "maxPayload": 1_000_000});
    Message::text(format!("0{open}"))
}

async fn send(ws: &mut ServerWs, text: &str) {
    ws.send(Message::text(text.to_owned())).await.unwrap();
}

/// Next text frame from the client (`None` once it is gone).
async fn recv_text(ws: &mut ServerWs) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Open with the given heartbeat, read the CONNECT, answer with `answer`.
/// Returns the CONNECT frame as received.
async fn handshake(ws: &mut ServerWs, heartbeat: (u64, u64), answer: &str) -> String {
    ws.send(open(heartbeat.0, heartbeat.1)).await.unwrap();
    let connect = recv_text(ws).await.unwrap();
    send(ws, answer).await;
    connect
}

fn opts(timeout_ms: u64) -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_millis(timeout_ms),
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn ping_timeout_when_the_server_goes_silent() {
    let (pongs_tx, mut pongs) = mpsc::unbounded_channel();
    let url = fake(move |mut ws| {
        let pongs_tx = pongs_tx.clone();
        async move {
            handshake(&mut ws, (100, 100), r#"40{"sid":"s"}"#).await;
            // Three pings 80 ms apart, each answered, then silence.
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(80)).await;
                send(&mut ws, "2").await;
                pongs_tx.send(recv_text(&mut ws).await).unwrap();
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
    .await;
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    let started = Instant::now();
    assert_eq!(closed(&mut c.incoming, 5).await, CloseReason::PingTimeout);
    let elapsed = started.elapsed();
    for _ in 0..3 {
        assert_eq!(pongs.recv().await.unwrap().as_deref(), Some("3"));
    }
    // Last ping at ~240 ms, deadline 200 ms after it: ~440 ms. Without the
    // reset on each ping it would have fired at ~200 ms.
    assert!(elapsed >= Duration::from_millis(380), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn ack_ids_count_up_from_zero_and_answers_match_ids() {
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    let url = fake(move |mut ws| {
        let frames_tx = frames_tx.clone();
        async move {
            handshake(&mut ws, (25000, 20000), r#"40{"sid":"s"}"#).await;
            // Collect three ack requests, answer them in reverse order.
            let mut ids = Vec::new();
            while ids.len() < 3 {
                let frame = recv_text(&mut ws).await.unwrap();
                frames_tx.send(frame.clone()).unwrap();
                if let Some(rest) = frame.strip_prefix("42") {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if !digits.is_empty() {
                        ids.push(digits);
                    }
                }
            }
            for id in ids.iter().rev() {
                send(&mut ws, &format!(r#"43{id}["answer-{id}"]"#)).await;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
    .await;
    let c = connect(&url, &opts(2000)).await.unwrap();
    c.client.emit("plain", &json!({"a": 1})).await.unwrap();
    let mut waits = Vec::new();
    for i in 0..3 {
        let client = c.client.clone();
        waits.push(tokio::spawn(async move {
            client
                .emit_with_ack("ev", &json!(i), Duration::from_secs(5))
                .await
        }));
        // Keep the emission order deterministic.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, wait) in waits.into_iter().enumerate() {
        assert_eq!(
            wait.await.unwrap().unwrap(),
            vec![json!(format!("answer-{i}"))]
        );
    }
    let got: Vec<String> = std::iter::from_fn(|| frames.try_recv().ok()).collect();
    assert_eq!(
        got,
        [
            r#"42["plain",{"a":1}]"#,
            r#"420["ev",0]"#,
            r#"421["ev",1]"#,
            r#"422["ev",2]"#
        ]
    );
}

#[tokio::test]
async fn ack_timeout_then_disconnected() {
    let url = fake(|mut ws| async move {
        handshake(&mut ws, (25000, 20000), r#"40{"sid":"s"}"#).await;
        recv_text(&mut ws).await; // first request: never answered
        recv_text(&mut ws).await; // second: answered by closing the session
        send(&mut ws, "1").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    let short = Duration::from_millis(100);
    assert_eq!(
        c.client.emit_with_ack("ev", &json!(1), short).await,
        Err(AckError::Timeout)
    );
    let long = Duration::from_secs(5);
    assert_eq!(
        c.client.emit_with_ack("ev", &json!(2), long).await,
        Err(AckError::Disconnected)
    );
    let reason = closed(&mut c.incoming, 5).await;
    assert_eq!(reason, CloseReason::EngineClose);
    assert!(reason.manager_reconnects());
}

#[tokio::test]
async fn recovery_offsets_are_stripped_and_pid_is_resumed() {
    let (connects_tx, mut connects) = mpsc::unbounded_channel();
    let url = fake(move |mut ws| {
        let connects_tx = connects_tx.clone();
        async move {
            ws.send(open(25000, 20000)).await.unwrap();
            let connect = recv_text(&mut ws).await.unwrap();
            let auth: Value = serde_json::from_str(&connect[2..]).unwrap();
            connects_tx.send(auth.clone()).unwrap();
            // Always the same pid: a resumed session when the client sent it.
            send(&mut ws, r#"40{"sid":"s","pid":"p1"}"#).await;
            send(&mut ws, r#"42["message:new",{"id":1},"off-1"]"#).await;
            send(&mut ws, r#"42["message:new",{"id":2},"off-2"]"#).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    })
    .await;
    let first = ConnectOptions {
        auth: Some(json!({"token": "t"})),
        ..opts(2000)
    };
    let mut c = connect(&url, &first).await.unwrap();
    assert_eq!(c.info.pid.as_deref(), Some("p1"));
    assert!(!c.info.recovered);
    for id in 1..=2 {
        match next(&mut c.incoming, 5).await {
            Incoming::Event { name, args, .. } => {
                assert_eq!(name, "message:new");
                assert_eq!(args, vec![json!({ "id": id })]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let recovery = c.client.recovery().unwrap();
    assert_eq!(
        recovery,
        Recovery {
            pid: "p1".into(),
            offset: Some("off-2".into())
        }
    );
    c.client.disconnect().await;

    let second = ConnectOptions {
        recovery: Some(recovery),
        ..first
    };
    let c2 = connect(&url, &second).await.unwrap();
    assert!(c2.info.recovered);
    assert_eq!(connects.recv().await.unwrap(), json!({"token": "t"}));
    assert_eq!(
        connects.recv().await.unwrap(),
        json!({"token": "t", "pid": "p1", "offset": "off-2"})
    );
}

#[tokio::test]
async fn missed_packets_replayed_before_the_connect_answer_are_delivered() {
    // The official socket.io server (4.8) writes a recovered session's missed
    // packets before its CONNECT answer; socket.io-client buffers them.
    let url = fake(|mut ws| async move {
        ws.send(open(25000, 20000)).await.unwrap();
        let connect = recv_text(&mut ws).await.unwrap();
        if connect.contains("\"pid\"") {
            send(&mut ws, r#"42["message:new",{"id":3},"off-3"]"#).await;
            send(
                &mut ws,
                r#"451-["blob",{"_placeholder":true,"num":0},"off-4"]"#,
            )
            .await;
            ws.send(Message::binary(Bytes::from_static(b"\x01\x02")))
                .await
                .unwrap();
        }
        send(&mut ws, r#"40{"sid":"s","pid":"p1"}"#).await;
        if !connect.contains("\"pid\"") {
            send(&mut ws, r#"42["message:new",{"id":2},"off-2"]"#).await;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    assert!(matches!(
        next(&mut c.incoming, 5).await,
        Incoming::Event { .. }
    ));
    let recovery = c.client.recovery().unwrap();
    c.client.disconnect().await;

    let again = ConnectOptions {
        recovery: Some(recovery),
        ..opts(2000)
    };
    let mut c = connect(&url, &again).await.unwrap();
    assert!(c.info.recovered);
    match next(&mut c.incoming, 5).await {
        Incoming::Event { name, args, .. } => {
            assert_eq!(
                (name.as_str(), args),
                ("message:new", vec![json!({"id": 3})])
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match next(&mut c.incoming, 5).await {
        Incoming::Event {
            name, attachments, ..
        } => {
            assert_eq!(name, "blob");
            assert_eq!(attachments, vec![Bytes::from_static(b"\x01\x02")]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        c.client.recovery().unwrap().offset.as_deref(),
        Some("off-4")
    );
}

#[tokio::test]
async fn the_offset_outlives_a_connection_that_brought_no_event() {
    // socket.io-client keeps its last offset on the Socket across
    // reconnections; a recovered connection that saw nothing new must still
    // be able to recover again.
    let url = fake(|mut ws| async move {
        handshake(&mut ws, (25000, 20000), r#"40{"sid":"s","pid":"p1"}"#).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let previous = Recovery {
        pid: "p1".into(),
        offset: Some("off-9".into()),
    };
    let c = connect(
        &url,
        &ConnectOptions {
            recovery: Some(previous.clone()),
            ..opts(2000)
        },
    )
    .await
    .unwrap();
    assert!(c.info.recovered);
    assert_eq!(c.client.recovery(), Some(previous));
}

#[tokio::test]
async fn binary_events_carry_their_attachments() {
    let url = fake(|mut ws| async move {
        handshake(&mut ws, (25000, 20000), r#"40{"sid":"s"}"#).await;
        send(
            &mut ws,
            r#"451-["file",{"_placeholder":true,"num":0},"caption"]"#,
        )
        .await;
        ws.send(Message::Binary(Bytes::from_static(b"\x00\x01\x02")))
            .await
            .unwrap();
        send(&mut ws, r#"42["after"]"#).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    match next(&mut c.incoming, 5).await {
        Incoming::Event {
            name,
            args,
            attachments,
            ..
        } => {
            assert_eq!(name, "file");
            assert_eq!(args[0], json!({"_placeholder": true, "num": 0}));
            assert_eq!(args[1], json!("caption"));
            assert_eq!(attachments, vec![Bytes::from_static(b"\x00\x01\x02")]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        matches!(next(&mut c.incoming, 5).await, Incoming::Event { name, .. } if name == "after")
    );
}

#[tokio::test]
async fn client_disconnect_sends_41_then_closes() {
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    let url = fake(move |mut ws| {
        let frames_tx = frames_tx.clone();
        async move {
            handshake(&mut ws, (25000, 20000), r#"40/admin,{"sid":"s"}"#).await;
            frames_tx.send(recv_text(&mut ws).await).unwrap();
            frames_tx.send(recv_text(&mut ws).await).unwrap();
        }
    })
    .await;
    let o = ConnectOptions {
        namespace: "/admin".into(),
        ..opts(2000)
    };
    let mut c = connect(&url, &o).await.unwrap();
    assert_eq!(c.client.namespace(), "/admin");
    c.client.disconnect().await;
    assert_eq!(
        closed(&mut c.incoming, 5).await,
        CloseReason::ClientDisconnect
    );
    assert_eq!(frames.recv().await.unwrap().as_deref(), Some("41/admin,"));
    // Then the WebSocket close: no more text frames.
    assert_eq!(frames.recv().await.unwrap(), None);
}

#[tokio::test]
async fn dropped_tcp_is_a_transport_close_and_garbage_a_parse_error() {
    let url = fake(|mut ws| async move {
        let connect = handshake(&mut ws, (25000, 20000), r#"40{"sid":"s"}"#).await;
        if connect.contains("garbage") {
            send(&mut ws, "4garbage").await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Otherwise drop the socket without a close frame.
    })
    .await;
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    assert_eq!(
        closed(&mut c.incoming, 5).await,
        CloseReason::TransportClose
    );
    let o = ConnectOptions {
        auth: Some(json!({"want": "garbage"})),
        ..opts(2000)
    };
    let mut c = connect(&url, &o).await.unwrap();
    assert!(matches!(
        closed(&mut c.incoming, 5).await,
        CloseReason::ParseError(_)
    ));
}

#[tokio::test]
async fn silent_listener_times_out_in_the_upgrade() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap());
        }
    });
    let started = Instant::now();
    let err = connect(&url, &opts(300)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                phase: Phase::Upgrade
            }
        ),
        "{err:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(2));
}

#[tokio::test]
async fn unanswered_connect_times_out_in_the_connect_phase() {
    let url = fake(|mut ws| async move {
        ws.send(open(25000, 20000)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let err = connect(&url, &opts(300)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                phase: Phase::Connect
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn closed_port_is_a_refused_tcp_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = connect(&format!("http://{addr}"), &opts(2000))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Tcp(_)), "{err:?}");
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(err.phase(), Some(Phase::Tcp));
}

#[tokio::test]
async fn bad_open_packet_is_an_open_error() {
    let url = fake(|mut ws| async move {
        send(&mut ws, r#"0{"sid":"x"}"#).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let err = connect(&url, &opts(2000)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Open(_)), "{err:?}");
}

#[tokio::test]
async fn a_stalled_harness_does_not_blame_the_server() {
    // The server runs on its own thread and runtime and keeps pinging every
    // 50 ms (deadline 150 ms), while this runtime is blocked for 400 ms.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let url = fake(|mut ws| async move {
                handshake(&mut ws, (100, 50), r#"40{"sid":"s"}"#).await;
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if ws.send(Message::text("2")).await.is_err() {
                        return;
                    }
                }
            })
            .await;
            url_tx.send(url).unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
    });
    let url = url_rx.recv().unwrap();
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    std::thread::sleep(Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.incoming.try_recv().is_err(),
        "pings that arrived during the stall must count"
    );
    assert!(!c.client.is_closed());
}

#[tokio::test]
async fn disconnect_overtakes_emits_stuck_behind_a_blackhole() {
    // The server stops reading after the handshake: the socket fills up.
    let url = fake(|mut ws| async move {
        handshake(&mut ws, (25000, 20000), r#"40{"sid":"s"}"#).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let mut c = connect(&url, &opts(2000)).await.unwrap();
    let client = c.client.clone();
    let big = json!("x".repeat(64 * 1024));
    let flood = tokio::spawn(async move {
        for _ in 0..2000 {
            if client.emit("big", &big).await.is_err() {
                return;
            }
        }
        panic!("2000 × 64 KiB were never meant to fit into socket buffers");
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !flood.is_finished(),
        "emit should be blocked by backpressure"
    );
    let started = Instant::now();
    c.client.disconnect().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        closed(&mut c.incoming, 1).await,
        CloseReason::ClientDisconnect
    );
    // The blocked emit fails instead of hanging.
    tokio::time::timeout(Duration::from_secs(2), flood)
        .await
        .unwrap()
        .unwrap();
}

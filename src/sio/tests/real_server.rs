//! Against a real socketioxide 0.18 server (axum layer, in-process).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SocketIo, SocketIoBuilder};

use super::{closed, next};
use crate::sio::{AckError, CloseReason, ConnectError, ConnectOptions, Incoming, Phase, connect};

/// Serve `io` on 127.0.0.1:0; returns the base URL.
async fn serve(builder: SocketIoBuilder, setup: impl FnOnce(&SocketIo)) -> String {
    let (layer, io) = builder.build_layer();
    setup(&io);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Disconnect reasons the server saw, for assertions.
type Seen = Arc<Mutex<Vec<DisconnectReason>>>;

async fn on_connect(s: SocketRef) {
    s.emit("hello", &s.id.to_string()).unwrap();
    s.on("echo", async |Data(d): Data<Value>, ack: AckSender| {
        ack.send(&d).unwrap();
    });
    s.on("kick-me", async |s: SocketRef| {
        s.disconnect().unwrap();
    });
    s.on("ask-me", async |s: SocketRef, Data(d): Data<Value>| {
        let answer = s.emit_with_ack::<_, Value>("question", &d).unwrap().await;
        s.emit("answer", &answer.unwrap()).unwrap();
    });
}

#[derive(Debug)]
struct AuthFailed;
impl std::fmt::Display for AuthFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authentication failed")
    }
}

async fn auth(Data(auth): Data<Value>) -> Result<(), AuthFailed> {
    if auth["token"] == "good" {
        Ok(())
    } else {
        Err(AuthFailed)
    }
}

/// An echo server with token auth; records server-side disconnect reasons.
async fn echo_server(builder: SocketIoBuilder) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let url = serve(builder, move |io| {
        io.ns(
            "/",
            (async move |s: SocketRef| {
                let seen = seen2.clone();
                s.on_disconnect(async move |reason: DisconnectReason| {
                    seen.lock().unwrap().push(reason);
                });
                on_connect(s).await;
            })
            .with(auth),
        );
    })
    .await;
    (url, seen)
}

fn opts(token: &str) -> ConnectOptions {
    ConnectOptions {
        auth: Some(json!({ "token": token })),
        timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn connects_and_learns_the_sid() {
    let builder = SocketIo::builder()
        .ping_interval(Duration::from_millis(1500))
        .ping_timeout(Duration::from_millis(700));
    let (url, _) = echo_server(builder).await;
    let mut c = connect(&url, &opts("good")).await.unwrap();

    let info = &c.info;
    assert!(!info.sid.is_empty() && !info.engine_sid.is_empty());
    assert_eq!(c.client.sid(), info.sid);
    assert_eq!(info.ping_interval, Duration::from_millis(1500));
    assert_eq!(info.ping_timeout, Duration::from_millis(700));
    // engineioxide's default is 100 kB, not socket.io's 1 MB.
    assert_eq!(info.max_payload, 100_000);
    assert_eq!((info.pid.as_deref(), info.recovered), (None, false));
    let t = info.timings;
    assert!(t.total >= t.tcp + t.upgrade + t.open + t.connect);
    assert!(t.upgrade > Duration::ZERO && t.connect > Duration::ZERO);

    // The server's first emit names the socket id we were given.
    match next(&mut c.incoming, 5).await {
        Incoming::Event { name, args, .. } => {
            assert_eq!(name, "hello");
            assert_eq!(args, vec![json!(info.sid)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.client.recovery(), None);
}

#[tokio::test]
async fn middleware_refusal_surfaces_as_refused() {
    let (url, _) = echo_server(SocketIo::builder()).await;
    let err = connect(&url, &opts("bad")).await.unwrap_err();
    match &err {
        ConnectError::Refused { message, data } => {
            assert_eq!(message, "Authentication failed");
            assert_eq!(data, &None);
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(err.phase(), Some(Phase::Connect));
    // No auth at all: the Data extractor fails, which refuses too.
    let no_auth = ConnectOptions {
        timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    };
    assert!(matches!(
        connect(&url, &no_auth).await,
        Err(ConnectError::Refused { .. })
    ));
}

#[tokio::test]
async fn unknown_namespace_is_refused() {
    let (url, _) = echo_server(SocketIo::builder()).await;
    let o = ConnectOptions {
        namespace: "/nope".into(),
        ..opts("good")
    };
    match connect(&url, &o).await {
        Err(ConnectError::Refused { message, .. }) => assert_eq!(message, "Invalid namespace"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_path_fails_the_upgrade_with_its_status() {
    let (url, _) = echo_server(SocketIo::builder()).await;
    let o = ConnectOptions {
        path: "/not-socket.io/".into(),
        ..opts("good")
    };
    match connect(&url, &o).await {
        Err(ConnectError::Upgrade { status, .. }) => assert_eq!(status, Some(404)),
        other => panic!("expected Upgrade error, got {other:?}"),
    }
}

#[tokio::test]
async fn acks_round_trip_in_order() {
    let (url, _) = echo_server(SocketIo::builder()).await;
    let c = connect(&url, &opts("good")).await.unwrap();
    for i in 0..3 {
        let answer = c
            .client
            .emit_with_ack("echo", &json!({ "n": i }), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer, vec![json!({ "n": i })]);
    }
}

#[tokio::test]
async fn many_concurrent_acks_resolve_to_their_own_answers() {
    // engineioxide drops packets once a socket's outgoing buffer (default 128
    // packets) is full; 500 acks answered at once need more room.
    let (url, _) = echo_server(SocketIo::builder().max_buffer_size(1024)).await;
    let c = connect(&url, &opts("good")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let client = c.client.clone();
        tasks.spawn(async move {
            let answer = client
                .emit_with_ack("echo", &json!(i), Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(answer, vec![json!(i)]);
        });
    }
    let mut done = 0;
    while let Some(res) = tasks.join_next().await {
        res.unwrap();
        done += 1;
    }
    assert_eq!(done, 500);
}

#[tokio::test]
async fn server_disconnect_is_reported() {
    let (url, _) = echo_server(SocketIo::builder()).await;
    let mut c = connect(&url, &opts("good")).await.unwrap();
    c.client.emit("kick-me", &Value::Null).await.unwrap();
    let reason = closed(&mut c.incoming, 5).await;
    assert_eq!(reason, CloseReason::ServerDisconnect);
    assert!(!reason.manager_reconnects());
    // Nothing after Closed; the handle knows it is dead.
    assert!(c.incoming.recv().await.is_none());
    assert!(c.client.is_closed());
    assert_eq!(
        c.client
            .emit_with_ack("echo", &json!(1), Duration::from_secs(1))
            .await,
        Err(AckError::Disconnected)
    );
}

#[tokio::test]
async fn client_disconnect_leaves_the_namespace() {
    let (url, seen) = echo_server(SocketIo::builder()).await;
    let mut c = connect(&url, &opts("good")).await.unwrap();
    c.client.disconnect().await;
    assert_eq!(
        closed(&mut c.incoming, 5).await,
        CloseReason::ClientDisconnect
    );
    // The server saw a namespace disconnect (our `41`), not a dropped transport.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[DisconnectReason::ClientNSDisconnect]
    );
}

#[tokio::test]
async fn server_ack_requests_can_be_answered() {
    let (url, _) = echo_server(SocketIo::builder()).await;
    let mut c = connect(&url, &opts("good")).await.unwrap();
    c.client.emit("ask-me", &json!("what?")).await.unwrap();
    loop {
        match next(&mut c.incoming, 5).await {
            Incoming::Event {
                name, args, ack_id, ..
            } if name == "question" => {
                assert_eq!(args, vec![json!("what?")]);
                let id = ack_id.expect("server asked for an ack");
                c.client.ack(id, &[json!({"reply": 42})]).await.unwrap();
            }
            Incoming::Event { name, args, .. } if name == "answer" => {
                assert_eq!(args, vec![json!({"reply": 42})]);
                break;
            }
            Incoming::Event { .. } => {}
            Incoming::Closed(r) => panic!("closed: {r:?}"),
        }
    }
}

#[tokio::test]
async fn heartbeat_keeps_a_healthy_connection_alive() {
    // Server pings every 100 ms and drops us if a pong is 100 ms late.
    let builder = SocketIo::builder()
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(100));
    let (url, seen) = echo_server(builder).await;
    let mut c = connect(&url, &opts("good")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let answer = c
        .client
        .emit_with_ack("echo", &json!("still here"), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(answer, vec![json!("still here")]);
    assert!(seen.lock().unwrap().is_empty());
    // Only the greeting arrived: no Closed.
    assert!(matches!(c.incoming.try_recv(), Ok(Incoming::Event { .. })));
    assert!(c.incoming.try_recv().is_err());
}

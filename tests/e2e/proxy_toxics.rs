//! Each toxic on real sockets: client → proxy → echo upstream and back.
//! Timing checks are lower bounds (a toxic must add at least its delay),
//! with generous upper bounds only where "it did not happen" must be told
//! apart from "it happened late" on a loaded 2-core machine.

use std::time::{Duration, Instant};

use crate::proxy_support::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_toxics_bytes_pass_both_ways_and_close_passes_on() {
    let api = Api::start().await;
    let listen = api.proxy("plain", echo_upstream(b"hi").await).await;
    let mut sock = connect(listen).await;
    assert_eq!(
        read_within(&mut sock, MS(2000)).await,
        Seen::Data(b"hi".to_vec())
    );
    let (back, _) = round_trip(&mut sock, b"hello proxy").await;
    assert_eq!(back, b"hello proxy");
    // A client FIN reaches the upstream, whose close comes back as EOF.
    sock.shutdown().await.unwrap();
    assert_eq!(read_within(&mut sock, MS(2000)).await, Seen::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_adds_at_least_its_delay_and_applies_to_live_connections() {
    let api = Api::start().await;
    let listen = api.proxy("lat", echo_upstream(b"").await).await;
    let mut sock = connect(listen).await;
    let (_, fast) = round_trip(&mut sock, b"a").await;
    assert!(fast < MS(100), "no toxic yet: {fast:?}");

    api.toxic(
        "lat",
        json!({"type": "latency", "attributes": {"latency": 150}}),
    )
    .await;
    let (back, slow) = round_trip(&mut sock, b"b").await;
    assert_eq!(back, b"b");
    assert!(
        slow >= MS(150),
        "latency on the existing connection: {slow:?}"
    );

    api.remove_toxic("lat", "latency_downstream").await;
    let (_, fast_again) = round_trip(&mut sock, b"c").await;
    assert!(fast_again < MS(100), "after removal: {fast_again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_upstream_and_downstream_add_up() {
    let api = Api::start().await;
    let listen = api.proxy("both", echo_upstream(b"").await).await;
    api.toxic(
        "both",
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 100}}),
    )
    .await;
    api.toxic(
        "both",
        json!({"type": "latency", "stream": "downstream", "attributes": {"latency": 100, "jitter": 10}}),
    )
    .await;
    let mut sock = connect(listen).await;
    let (_, took) = round_trip(&mut sock, b"x").await;
    assert!(took >= MS(190), "two 100 ms legs (jitter ±10): {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_the_other_direction_leaves_held_data_alone() {
    let api = Api::start().await;
    let listen = api.proxy("held", echo_upstream(b"").await).await;
    api.toxic(
        "held",
        json!({"type": "latency", "attributes": {"latency": 300}}),
    )
    .await;
    let mut sock = connect(listen).await;
    let start = Instant::now();
    sock.write_all(b"held").await.unwrap();
    tokio::time::sleep(MS(100)).await;
    api.toxic(
        "held",
        json!({"type": "slicer", "stream": "upstream", "attributes": {"average_size": 1}}),
    )
    .await;
    let mut back = [0u8; 4];
    sock.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"held");
    assert!(start.elapsed() >= MS(300), "{:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_zero_never_applies_and_one_always_does() {
    let api = Api::start().await;
    let listen = api.proxy("dice", echo_upstream(b"").await).await;
    api.toxic(
        "dice",
        json!({"type": "latency", "toxicity": 0.0, "attributes": {"latency": 300}}),
    )
    .await;
    for _ in 0..5 {
        let mut sock = connect(listen).await;
        let (_, took) = round_trip(&mut sock, b"x").await;
        assert!(took < MS(200), "toxicity 0: {took:?}");
    }
    let (status, _) = api
        .call(
            "POST",
            "/proxies/dice/toxics/latency_downstream",
            Some(json!({"toxicity": 1.0})),
        )
        .await;
    assert_eq!(status, 200);
    let mut sock = connect(listen).await;
    let (_, took) = round_trip(&mut sock, b"x").await;
    assert!(took >= MS(300), "toxicity 1: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_half_splits_connections() {
    let api = Api::start().await;
    let listen = api.proxy("half", echo_upstream(b"").await).await;
    api.toxic(
        "half",
        json!({"type": "latency", "toxicity": 0.5, "attributes": {"latency": 200}}),
    )
    .await;
    let mut slow = 0;
    for _ in 0..16 {
        let mut sock = connect(listen).await;
        let (_, took) = round_trip(&mut sock, b"x").await;
        if took >= MS(200) {
            slow += 1;
        }
    }
    assert!(
        (1..16).contains(&slow),
        "some but not all slowed: {slow}/16"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_throughput() {
    let api = Api::start().await;
    let listen = api.proxy("bw", echo_upstream(b"").await).await;
    let payload = vec![7u8; 50_000];
    let mut sock = connect(listen).await;
    let (_, free) = round_trip(&mut sock, &payload).await;
    assert!(free < MS(250), "unlimited: {free:?}");

    // 100 KB/s downstream: 50 KB takes about half a second.
    api.toxic(
        "bw",
        json!({"type": "bandwidth", "attributes": {"rate": 100}}),
    )
    .await;
    let mut sock = connect(listen).await;
    let (back, limited) = round_trip(&mut sock, &payload).await;
    assert_eq!(back, payload);
    assert!(limited >= MS(450), "100 KB/s for 50 KB: {limited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_delays_the_close_not_the_data() {
    let api = Api::start().await;
    let listen = api.proxy("sc", say_and_close_upstream(b"bye").await).await;
    api.toxic(
        "sc",
        json!({"type": "slow_close", "attributes": {"delay": 300}}),
    )
    .await;
    let start = Instant::now();
    let mut sock = connect(listen).await;
    assert_eq!(
        read_within(&mut sock, MS(2000)).await,
        Seen::Data(b"bye".to_vec())
    );
    assert!(start.elapsed() < MS(250), "data is not delayed");
    assert_eq!(read_within(&mut sock, MS(2000)).await, Seen::Closed);
    assert!(
        start.elapsed() >= MS(300),
        "close held back: {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_zero_blackholes_until_removed() {
    let api = Api::start().await;
    let listen = api.proxy("hole", echo_upstream(b"").await).await;
    let mut sock = connect(listen).await;
    round_trip(&mut sock, b"warm").await;

    api.toxic(
        "hole",
        json!({"type": "timeout", "attributes": {"timeout": 0}}),
    )
    .await;
    sock.write_all(b"lost").await.unwrap();
    assert_eq!(
        read_within(&mut sock, MS(500)).await,
        Seen::Nothing,
        "no data and no close"
    );

    api.remove_toxic("hole", "timeout_downstream").await;
    let (back, _) = round_trip(&mut sock, b"back").await;
    assert_eq!(back, b"back", "the swallowed bytes stay swallowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_closes_after_its_delay() {
    let api = Api::start().await;
    let listen = api.proxy("to", echo_upstream(b"").await).await;
    api.toxic(
        "to",
        json!({"type": "timeout", "attributes": {"timeout": 200}}),
    )
    .await;
    let start = Instant::now();
    let mut sock = connect(listen).await;
    sock.write_all(b"swallowed").await.unwrap();
    assert_eq!(read_within(&mut sock, MS(3000)).await, Seen::Closed);
    let took = start.elapsed();
    assert!(took >= MS(200) && took < MS(2000), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_makes_the_client_see_connection_reset() {
    let api = Api::start().await;
    let listen = api.proxy("rst", echo_upstream(b"").await).await;
    let mut sock = connect(listen).await;
    round_trip(&mut sock, b"warm").await;
    // Added to a live connection; like Toxiproxy the clock starts with the
    // next data through the toxic.
    api.toxic(
        "rst",
        json!({"type": "reset_peer", "attributes": {"timeout": 100}}),
    )
    .await;
    let start = Instant::now();
    sock.write_all(b"trigger").await.unwrap();
    assert_eq!(read_within(&mut sock, MS(3000)).await, Seen::Reset);
    assert!(start.elapsed() >= MS(100), "{:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_splits_one_write_into_many_reads() {
    static PAYLOAD: [u8; 1000] = {
        let mut p = [0u8; 1000];
        let mut i = 0;
        while i < 1000 {
            p[i] = (i % 251) as u8;
            i += 1;
        }
        p
    };
    let api = Api::start().await;
    let listen = api
        .proxy("slice", say_and_close_upstream(&PAYLOAD).await)
        .await;
    api.toxic(
        "slice",
        json!({"type": "slicer", "attributes": {"average_size": 100, "size_variation": 20, "delay": 5000}}),
    )
    .await;
    let mut sock = connect(listen).await;
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(MS(3000), sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        reads += 1;
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, PAYLOAD, "every byte, in order");
    assert!(
        reads >= 6,
        "about 10 slices of ~100 bytes, got {reads} reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_closes_after_its_bytes() {
    let api = Api::start().await;
    let listen = api.proxy("lim", echo_upstream(b"").await).await;
    api.toxic(
        "lim",
        json!({"type": "limit_data", "attributes": {"bytes": 10}}),
    )
    .await;
    let mut sock = connect(listen).await;
    sock.write_all(&[b'z'; 100]).await.unwrap();
    let (got, closed) = read_to_close(&mut sock, MS(3000)).await;
    assert_eq!(got, vec![b'z'; 10]);
    assert!(closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_and_downstream_are_different_directions() {
    let api = Api::start().await;
    let listen = api.proxy("dir", echo_upstream(b"hello").await).await;

    // Upstream blackhole: the server's greeting arrives, our echo never does.
    api.toxic(
        "dir",
        json!({"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}}),
    )
    .await;
    let mut sock = connect(listen).await;
    assert_eq!(
        read_within(&mut sock, MS(2000)).await,
        Seen::Data(b"hello".to_vec())
    );
    sock.write_all(b"echo?").await.unwrap();
    assert_eq!(read_within(&mut sock, MS(400)).await, Seen::Nothing);
    api.remove_toxic("dir", "timeout_upstream").await;

    // Downstream blackhole: not even the greeting arrives.
    api.toxic(
        "dir",
        json!({"type": "timeout", "attributes": {"timeout": 0}}),
    )
    .await;
    let mut sock = connect(listen).await;
    assert_eq!(read_within(&mut sock, MS(400)).await, Seen::Nothing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_closes_connections_and_refuses_new_ones_until_enabled() {
    let api = Api::start().await;
    let listen = api.proxy("flap", echo_upstream(b"").await).await;
    let mut sock = connect(listen).await;
    round_trip(&mut sock, b"up").await;

    api.set_enabled("flap", false).await;
    assert!(
        matches!(
            read_within(&mut sock, MS(2000)).await,
            Seen::Closed | Seen::Reset
        ),
        "existing connection closed"
    );
    let refused = tokio::net::TcpStream::connect(listen).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    api.set_enabled("flap", true).await;
    let mut sock = connect(listen).await;
    let (back, _) = round_trip(&mut sock, b"again").await;
    assert_eq!(back, b"again", "listening again on the same address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_closes_the_client() {
    let api = Api::start().await;
    // Bind then drop, so nothing listens there.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let listen = api.proxy("dead", dead).await;
    let mut sock = connect(listen).await;
    assert!(matches!(
        read_within(&mut sock, MS(2000)).await,
        Seen::Closed | Seen::Reset
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once_then_a_fault_hits_them_all() {
    const USERS: usize = 400;
    let api = Api::start().await;
    let listen = api.proxy("crowd", echo_upstream(b"").await).await;
    let mut socks = Vec::with_capacity(USERS);
    for _ in 0..USERS {
        socks.push(connect(listen).await);
    }
    for (i, sock) in socks.iter_mut().enumerate() {
        let msg = format!("user {i}");
        let (back, _) = round_trip(sock, msg.as_bytes()).await;
        assert_eq!(back, msg.as_bytes());
    }
    // The harness takes a whole cohort offline by disabling its proxy.
    api.set_enabled("crowd", false).await;
    for sock in &mut socks {
        assert!(matches!(
            read_within(sock, MS(3000)).await,
            Seen::Closed | Seen::Reset
        ));
    }
}

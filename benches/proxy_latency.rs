//! What the proxy costs when it does nothing: round-trip latency through the
//! embedded proxy with no toxic, against the same echo server directly.
//!
//! Run: `cargo bench --bench proxy_latency` (release build; figures last).
//!
//! The proxy runs in its own runtime on its own threads, as it would as a
//! separate `reconnoiter proxy` process; client and echo server use plain
//! blocking sockets so they add as little scheduling noise as possible.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use reconnoiter::proxy::{ProxyConfig, ProxyServer};

const WARMUP: usize = 2_000;
const ROUNDS: usize = 20_000;
const MESSAGE: usize = 64;

fn main() {
    let echo = echo_server();
    let (api, _runtime) = start_proxy();
    let listen = create_proxy(api, echo);

    let direct = measure(echo);
    let proxied = measure(listen);
    println!();
    println!("round trip, {MESSAGE}-byte messages, {ROUNDS} rounds, loopback");
    report("direct", &direct);
    report("through proxy", &proxied);
    let added = |q: f64| quantile(&proxied, q).saturating_sub(quantile(&direct, q));
    println!(
        "added by the proxy: p50 {:.1} µs, p99 {:.1} µs",
        micros(added(0.50)),
        micros(added(0.99))
    );
}

fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let mut sock = sock.unwrap();
            sock.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match sock.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if sock.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn start_proxy() -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(ProxyServer::bind(ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            seed: 1,
        }))
        .unwrap();
    let api = server.local_addr();
    runtime.spawn(server.run(std::future::pending()));
    (api, runtime)
}

/// Creates the proxy with a bare HTTP/1.0 request, to keep the benchmark
/// free of an HTTP client's runtime.
fn create_proxy(api: SocketAddr, upstream: SocketAddr) -> SocketAddr {
    let body = format!(r#"{{"name":"bench","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
    let mut sock = TcpStream::connect(api).unwrap();
    write!(
        sock,
        "POST /proxies HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).expect("HTTP body");
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["listen"].as_str().unwrap().parse().unwrap()
}

fn measure(addr: SocketAddr) -> Vec<Duration> {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_nodelay(true).unwrap();
    let msg = [b'x'; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let start = Instant::now();
        sock.write_all(&msg).unwrap();
        sock.read_exact(&mut back).unwrap();
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    samples
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(label: &str, sorted: &[Duration]) {
    println!(
        "{label:>14}: p50 {:7.1} µs   p99 {:7.1} µs   max {:8.1} µs",
        micros(quantile(sorted, 0.50)),
        micros(quantile(sorted, 0.99)),
        micros(*sorted.last().unwrap())
    );
}

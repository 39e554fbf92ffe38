//! Benchmark: how many users one `reconnoiter proxy` process holds, what
//! each costs it, and its added latency while it holds them.
//!
//! Run: `cargo build --release && cargo run --release --example proxy_capacity -- [CONNECTIONS]`
//! (default: as many as the open-files limit lets one proxy process hold,
//! two sockets per user: (limit − 256) / 2, 9,872 under this machine's
//! 20,000). Three processes, so that no one of them runs out of files
//! before the proxy does: this one (the users' side, one socket each), the
//! proxy (`reconnoiter proxy`, two sockets each) and an echo server (this
//! binary again, one socket each). Every connection makes one round trip
//! through the proxy to prove its link is up; then 20,000 round trips over
//! connections picked in turn measure the added latency at that load (the
//! direct echo round trip is subtracted). The proxy's RSS is read from
//! /proc before and after. The figure is printed last.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGE: usize = 64;
const ROUNDS: usize = 20_000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Starts a child and reads its `listening on ADDR` line (main kills and waits for it).
#[allow(clippy::zombie_processes)]
fn spawn(mut cmd: Command) -> (Child, SocketAddr) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited");
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            let addr = a.parse().unwrap();
            // Keep reading so the child never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (child, addr);
        }
    }
}

async fn echo_server() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let (mut sock, _) = listener.accept().await.unwrap();
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if sock.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

fn create_proxy(api: SocketAddr, upstream: SocketAddr) -> SocketAddr {
    let body = format!(r#"{{"name":"capacity","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
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

async fn round_trip(sock: &mut tokio::net::TcpStream) -> Duration {
    let msg = [b'x'; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let start = Instant::now();
    sock.write_all(&msg).await.unwrap();
    sock.read_exact(&mut back).await.unwrap();
    start.elapsed()
}

async fn latencies(socks: &mut [tokio::net::TcpStream]) -> Vec<Duration> {
    let mut v = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let n = socks.len();
        v.push(round_trip(&mut socks[(i * 7919) % n]).await);
    }
    v.sort();
    v
}

fn q(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os("PROXY_CAPACITY_ECHO").is_some() {
        return runtime.block_on(echo_server());
    }
    let limit = reconnoiter::run::limits::raise_open_files();
    let fit = reconnoiter::nemesis::proxies::users_per_process(limit);
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(fit as usize);

    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("reconnoiter");
    assert!(
        binary.exists(),
        "build the binary first: cargo build --release ({})",
        binary.display()
    );
    let mut proxy_cmd = Command::new(&binary);
    proxy_cmd.args(["proxy", "--listen", "127.0.0.1:0"]);
    let (mut proxy, api) = spawn(proxy_cmd);
    let mut echo_cmd = Command::new(std::env::current_exe().unwrap());
    echo_cmd.env("PROXY_CAPACITY_ECHO", "1");
    let (mut echo, echo_addr) = spawn(echo_cmd);
    let listen = create_proxy(api, echo_addr);

    let (rss_before, held, direct, proxied, rss_after, fds) = runtime.block_on(async {
        let direct_sock = tokio::net::TcpStream::connect(echo_addr).await.unwrap();
        direct_sock.set_nodelay(true).unwrap();
        let mut one = [direct_sock];
        let direct = latencies(&mut one).await;
        let rss_before = rss_kib(proxy.id());
        let mut socks = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            match tokio::net::TcpStream::connect(listen).await {
                Ok(mut s) => {
                    s.set_nodelay(true).unwrap();
                    round_trip(&mut s).await;
                    socks.push(s);
                }
                Err(e) => {
                    eprintln!("connection {i} failed: {e}");
                    break;
                }
            }
        }
        eprintln!(
            "{} connections through the proxy in {:.1}s",
            socks.len(),
            start.elapsed().as_secs_f64()
        );
        let proxied = latencies(&mut socks).await;
        let rss_after = rss_kib(proxy.id());
        (
            rss_before,
            socks.len(),
            direct,
            proxied,
            rss_after,
            open_fds(proxy.id()),
        )
    });
    let _ = proxy.kill();
    let _ = echo.kill();
    let _ = proxy.wait();
    let _ = echo.wait();

    println!();
    println!(
        "open-files limit {limit}: one proxy process fits {fit} users (two sockets each, 256 spare)"
    );
    println!(
        "round trip with {held} connections held: direct p50 {:.1} µs p99 {:.1} µs; through the proxy p50 {:.1} µs p99 {:.1} µs",
        q(&direct, 0.5),
        q(&direct, 0.99),
        q(&proxied, 0.5),
        q(&proxied, 0.99)
    );
    println!(
        "proxy process: {fds} open files, RSS {rss_before} KiB idle, {rss_after} KiB holding them: {:.1} KiB per user",
        rss_after.saturating_sub(rss_before) as f64 / held.max(1) as f64
    );
    println!(
        "added by the proxy at that load: p50 {:.1} µs, p99 {:.1} µs",
        q(&proxied, 0.5) - q(&direct, 0.5),
        q(&proxied, 0.99) - q(&direct, 0.99)
    );
    println!("users one proxy process held: {held} of {n} asked");
}

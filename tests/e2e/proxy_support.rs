//! Test support for the proxy: the proxy in-process on a free port, echo
//! upstreams, and small HTTP helpers. Everything on 127.0.0.1 port 0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reconnoiter::proxy::{ProxyConfig, ProxyServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The proxy's HTTP API running in this process; stops when dropped.
pub struct Api {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Api {
    pub async fn start() -> Api {
        let server = ProxyServer::bind(ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            seed: 42,
        })
        .await
        .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Api {
            addr,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends `body` (if any) and returns the status and the JSON answer
    /// (`Value::Null` for an empty body).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Creates proxy `name` in front of `upstream`; returns its listen address.
    pub async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let (status, body) = self
            .call(
                "POST",
                "/proxies",
                Some(json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["listen"].as_str().unwrap().parse().unwrap()
    }

    pub async fn toxic(&self, proxy: &str, toxic: Value) {
        let (status, body) = self
            .call("POST", &format!("/proxies/{proxy}/toxics"), Some(toxic))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) {
        let (status, body) = self
            .call("DELETE", &format!("/proxies/{proxy}/toxics/{toxic}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
    }

    pub async fn set_enabled(&self, proxy: &str, enabled: bool) {
        let (status, body) = self
            .call(
                "POST",
                &format!("/proxies/{proxy}"),
                Some(json!({ "enabled": enabled })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["enabled"], enabled);
    }
}

/// An upstream that first writes `greeting` (if not empty), then echoes
/// everything back until the client closes.
pub async fn echo_upstream(greeting: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                if !greeting.is_empty() && sock.write_all(greeting).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 64 * 1024];
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
    });
    addr
}

/// An upstream that writes `payload` in one write and closes at once.
pub async fn say_and_close_upstream(payload: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.write_all(payload).await;
            drop(sock);
        }
    });
    addr
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).await.unwrap();
    sock.set_nodelay(true).unwrap();
    sock
}

/// Writes `msg` and reads the same number of bytes back; returns them and
/// how long it took.
pub async fn round_trip(sock: &mut TcpStream, msg: &[u8]) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    sock.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    sock.read_exact(&mut back).await.unwrap();
    (back, start.elapsed())
}

/// What a read sees within `within`.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Data(Vec<u8>),
    Closed,
    Reset,
    OtherError(std::io::ErrorKind),
    Nothing,
}

pub async fn read_within(sock: &mut TcpStream, within: Duration) -> Seen {
    let mut buf = vec![0u8; 64 * 1024];
    match tokio::time::timeout(within, sock.read(&mut buf)).await {
        Err(_) => Seen::Nothing,
        Ok(Ok(0)) => Seen::Closed,
        Ok(Ok(n)) => Seen::Data(buf[..n].to_vec()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Seen::Reset,
        Ok(Err(e)) => Seen::OtherError(e.kind()),
    }
}

/// Reads until the peer closes (or `within` passes); returns the bytes and
/// whether the stream ended.
pub async fn read_to_close(sock: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match read_within(sock, left).await {
            Seen::Data(d) => all.extend(d),
            Seen::Closed | Seen::Reset => return (all, true),
            Seen::Nothing | Seen::OtherError(_) => return (all, false),
        }
    }
}

/// Kills a hand-started process even when the test fails (its inherited
/// stderr would otherwise keep the test runner's pipe open).
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `reconnoiter proxy` started by hand; its API address.
pub fn hand_started_proxy() -> (Reaper, String) {
    let mut proxy = Reaper(
        std::process::Command::new(env!("CARGO_BIN_EXE_reconnoiter"))
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(proxy.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let api = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (proxy, api)
}

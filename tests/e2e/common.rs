//! Test support: the reference server as a real child process, and a raw
//! wire-level Socket.IO client that is independent of `reconnoiter::sio`, so
//! server tests do not share a blind spot with the client they test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_reconnoiter");

/// A `reconnoiter serve` child process on 127.0.0.1 with its own temp db.
pub struct ServerProcess {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub args: Vec<String>,
}

impl ServerProcess {
    pub fn start(args: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn(&dir.path().join("chat.db"), "127.0.0.1:0", &args);
        ServerProcess {
            child,
            addr,
            dir,
            args,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("chat.db")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, then start again on the same db (and the same port, so
    /// clients reconnect to the same address as they would in production).
    pub fn crash_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, addr) = spawn(&self.db(), &self.addr, &self.args);
        assert_eq!(addr, self.addr);
        self.child = child;
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(db: &std::path::Path, listen: &str, args: &[String]) -> (Child, String) {
    // The port of a just-killed server can take a moment to be free again.
    for _ in 0..50 {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", listen, "--db"])
            .arg(db)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            return (child, addr.to_string());
        }
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server did not start on {listen}");
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Test admin: makes `user` a member of `conversation`.
pub async fn add(base: &str, conversation: &str, user: &str) {
    let r = http()
        .post(format!(
            "{base}/api/conversations/{conversation}/participants"
        ))
        .json(&json!({ "userId": user }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Run options for an in-process run against the embedded server, quiet.
pub fn run_options(dir: &std::path::Path) -> reconnoiter::run::RunOptions {
    reconnoiter::run::RunOptions {
        target_url: None,
        reports_dir: dir.to_owned(),
        server_binary: BIN.into(),
        quiet: true,
        toxiproxy: None,
        proxy_capacity: None,
        stats: None,
        shard: None,
        start_at: None,
    }
}

pub async fn login(base: &str, user: &str) -> Value {
    http()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "userId": user }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn token(base: &str, user: &str) -> String {
    login(base, user).await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn sync_seq(base: &str, token: &str, conversation: &str, since_seq: i64) -> Vec<i64> {
    let (status, body) = get(
        base,
        &format!("/api/messages?conversationId={conversation}&sinceSeq={since_seq}"),
        token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw Engine.IO v4 / Socket.IO v5 client: enough wire to test the server.
pub struct RawClient {
    ws: Ws,
    next_ack: u64,
    pub events: Vec<(String, Value)>,
    acks: std::collections::HashMap<u64, Value>,
    pub closed_by_server: bool,
}

pub enum Connected {
    Ok(Box<RawClient>),
    Refused(Value),
}

impl Connected {
    pub fn unwrap(self) -> RawClient {
        match self {
            Connected::Ok(c) => *c,
            Connected::Refused(v) => panic!("connect refused: {v}"),
        }
    }
    pub fn refusal(self) -> Value {
        match self {
            Connected::Ok(_) => panic!("connect was accepted"),
            Connected::Refused(v) => v,
        }
    }
}

impl RawClient {
    pub async fn connect(addr: &str, auth: Value) -> Connected {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let open = next_text(&mut ws).await.expect("open packet");
        assert!(open.starts_with("0{"), "open packet: {open}");
        ws.send(Frame::text(format!("40{auth}"))).await.unwrap();
        loop {
            let t = next_text(&mut ws).await.expect("connect answer");
            if let Some(body) = t.strip_prefix("40") {
                assert!(body.contains("\"sid\""), "{t}");
                let c = RawClient {
                    ws,
                    next_ack: 0,
                    events: vec![],
                    acks: Default::default(),
                    closed_by_server: false,
                };
                return Connected::Ok(Box::new(c));
            } else if let Some(body) = t.strip_prefix("44") {
                return Connected::Refused(serde_json::from_str(body).unwrap());
            } else if t == "2" {
                ws.send(Frame::text("3")).await.unwrap();
            }
        }
    }

    pub async fn with_token(addr: &str, token: &str) -> RawClient {
        RawClient::connect(addr, json!({ "token": token }))
            .await
            .unwrap()
    }

    pub async fn emit(&mut self, event: &str, data: Value) {
        let frame = format!("42{}", json!([event, data]));
        self.ws.send(Frame::text(frame)).await.unwrap();
    }

    pub async fn emit_ack(&mut self, event: &str, data: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let frame = format!("42{id}{}", json!([event, data]));
        self.ws.send(Frame::text(frame)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = self.acks.remove(&id) {
                return v;
            }
            assert!(self.pump_until(deadline).await, "no ack {id} for {event}");
        }
    }

    /// Reads one frame, filing it; false on timeout or close.
    async fn pump_until(&mut self, deadline: tokio::time::Instant) -> bool {
        let Ok(Some(text)) = tokio::time::timeout_at(deadline, next_text(&mut self.ws)).await
        else {
            return false;
        };
        if text == "2" {
            let _ = self.ws.send(Frame::text("3")).await;
        } else if text == "41" || text == "1" {
            self.closed_by_server = true;
        } else if let Some(rest) = text.strip_prefix("42") {
            let v: Value = serde_json::from_str(rest).unwrap();
            self.events
                .push((v[0].as_str().unwrap().to_string(), v[1].clone()));
        } else if let Some(rest) = text.strip_prefix("43") {
            let split = rest.find('[').unwrap();
            let id: u64 = rest[..split].parse().unwrap();
            let v: Value = serde_json::from_str(&rest[split..]).unwrap();
            self.acks.insert(id, v[0].clone());
        }
        true
    }

    /// Reads frames for `wait`, collecting events.
    pub async fn drain(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while self.pump_until(deadline).await {}
    }

    /// Waits until `n` events named `name` arrived (or `wait` passed).
    pub async fn wait_for(&mut self, name: &str, n: usize, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.named(name).len() < n && self.pump_until(deadline).await {}
        self.named(name)
    }

    pub fn named(&self, name: &str) -> Vec<Value> {
        self.events
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn seqs(&self, conversation: &str) -> Vec<i64> {
        self.named("message:new")
            .iter()
            .filter(|m| m["conversationId"] == conversation)
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    }

    pub async fn join(&mut self, conversation: &str) -> Value {
        self.emit_ack("join-room", json!({ "conversationId": conversation }))
            .await
    }

    pub async fn send(&mut self, conversation: &str, temp_id: &str, content: &str) -> Value {
        self.emit_ack(
            "send-message",
            json!({ "temp_id": temp_id, "conversationId": conversation, "content": content }),
        )
        .await
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(Frame::text("41")).await;
        let _ = self.ws.close(None).await;
    }
}

async fn next_text(ws: &mut Ws) -> Option<String> {
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(Frame::Text(t)) => return Some(t.to_string()),
            Ok(Frame::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

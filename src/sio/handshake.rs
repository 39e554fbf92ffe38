//! [`connect`]: one connection attempt, from TCP to the Socket.IO CONNECT answer.
//!
//! The harness measures reconnect latency and must tell a refused port from
//! a hanging upgrade from an auth refusal, so every phase is timed on its own
//! ([`PhaseTimings`]) and every failure names its phase ([`ConnectError`]).
//! One deadline covers the whole attempt, like socket.io-client's `timeout`
//! option; `connect` returns only once the server accepted the namespace.

use std::io;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::ProtocolError};

use super::PacketError;
use super::client::{Client, Recovery};
use super::engine::{EnginePacket, OpenPacket};
use super::error::{ConnectError, Phase};
use super::packet::{BinaryAssembler, BinaryPacket, Packet, PacketType};

/// The socket type every connection uses (plain TCP; TLS is not needed for
/// the targets the harness drives).
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// How to connect. `Default` gives socket.io-client's defaults.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Engine.IO path on the server (socket.io's `path` option).
    pub path: String,
    /// Socket.IO namespace to join.
    pub namespace: String,
    /// The CONNECT payload, e.g. `{"token":"…"}`.
    pub auth: Option<Value>,
    /// Deadline for the whole attempt (socket.io-client `timeout`, 20 s).
    pub timeout: Duration,
    /// Connection-state recovery from the previous connection; merged into
    /// the CONNECT payload as `pid` / `offset`.
    pub recovery: Option<Recovery>,
    /// tungstenite read buffer, allocated eagerly per connection: small,
    /// because the harness holds thousands of connections.
    pub read_buffer_size: usize,
    /// Largest incoming WebSocket message accepted.
    pub max_message_size: usize,
    /// Commands (emits) that may queue towards the connection task before
    /// `emit` waits: the backpressure point when the socket is stuck.
    pub command_capacity: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            path: "/socket.io/".to_owned(),
            namespace: "/".to_owned(),
            auth: None,
            timeout: Duration::from_secs(20),
            recovery: None,
            read_buffer_size: 1024,
            // socket.io's default maxPayload.
            max_message_size: 1_000_000,
            command_capacity: 64,
        }
    }
}

/// How long each phase took, measured with `Instant`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    pub tcp: Duration,
    pub upgrade: Duration,
    pub open: Duration,
    pub connect: Duration,
    /// The whole attempt (slightly more than the sum: URL parsing, spawning).
    pub total: Duration,
}

/// What the handshake learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    /// Socket.IO socket id (from the CONNECT answer).
    pub sid: String,
    /// Engine.IO session id (from the open packet).
    pub engine_sid: String,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub max_payload: u64,
    /// Private session id when the server has connection-state recovery on.
    pub pid: Option<String>,
    /// The server resumed the session we asked for (same `pid` as sent).
    pub recovered: bool,
    pub timings: PhaseTimings,
}

/// A live connection: the handle, the stream of what the server sends, and
/// what the handshake learned.
#[derive(Debug)]
pub struct Connection {
    pub client: Client,
    /// Server events, then exactly one [`super::Incoming::Closed`].
    pub incoming: super::Inbox,
    pub info: ConnectInfo,
}

/// Connect to `url` (a server base such as `http://127.0.0.1:3000`) and join
/// `opts.namespace`. Returns once the server accepted the CONNECT.
pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Connection, ConnectError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let Endpoint {
        host,
        port,
        authority,
        path,
    } = endpoint(url, &opts.path)?;
    let mut timings = PhaseTimings::default();

    let t = Instant::now();
    let tcp = within(
        deadline,
        Phase::Tcp,
        crate::loopback::connect_host((host.as_str(), port)),
    )
    .await?
    .map_err(ConnectError::Tcp)?;
    // Latency is what we measure: never let Nagle hold a small frame back.
    let _ = tcp.set_nodelay(true);
    timings.tcp = t.elapsed();

    let t = Instant::now();
    let config = WebSocketConfig::default()
        .read_buffer_size(opts.read_buffer_size)
        // 0: write each frame through at once instead of batching 128 KiB.
        .write_buffer_size(0)
        .max_message_size(Some(opts.max_message_size))
        .max_frame_size(Some(opts.max_message_size));
    let upgrade = super::upgrade::upgrade(tcp, &authority, &path, config);
    let mut ws = within(deadline, Phase::Upgrade, upgrade).await??;
    timings.upgrade = t.elapsed();

    let t = Instant::now();
    let open = within(deadline, Phase::Open, read_open(&mut ws)).await??;
    let mut last_ping = tokio::time::Instant::now();
    timings.open = t.elapsed();

    let t = Instant::now();
    let payload = connect_payload(opts.auth.as_ref(), opts.recovery.as_ref());
    let connect = Packet::connect(&opts.namespace, payload).encode();
    let answer = within(deadline, Phase::Connect, async {
        send(&mut ws, format!("4{connect}"), Phase::Connect).await?;
        await_connect(&mut ws, &opts.namespace, &mut last_ping).await
    })
    .await??;
    timings.connect = t.elapsed();

    let sent_pid = opts.recovery.as_ref().map(|r| r.pid.as_str());
    let recovered = answer.pid.is_some() && answer.pid.as_deref() == sent_pid;
    let heartbeat = open.ping_interval + open.ping_timeout;
    let (client, incoming) = super::conn::spawn(
        ws,
        super::conn::Setup {
            namespace: opts.namespace.clone(),
            sid: answer.sid.clone(),
            pid: answer.pid.clone(),
            heartbeat,
            ping_deadline: last_ping + heartbeat,
            command_capacity: opts.command_capacity.max(1),
            early: answer.early,
            offset: opts.recovery.as_ref().and_then(|r| r.offset.clone()),
        },
    );
    timings.total = started.elapsed();
    let info = ConnectInfo {
        sid: answer.sid,
        engine_sid: open.sid,
        ping_interval: open.ping_interval,
        ping_timeout: open.ping_timeout,
        max_payload: open.max_payload,
        pid: answer.pid,
        recovered,
        timings,
    };
    Ok(Connection {
        client,
        incoming,
        info,
    })
}

/// Where a connection goes: what to connect to, and what to ask for.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    /// For the TCP connect (IPv6 without brackets).
    host: String,
    port: u16,
    /// `host[:port]` as the URL wrote it: the upgrade's `Host` header.
    authority: String,
    /// The upgrade's request target: `/path?EIO=4&transport=websocket`.
    path: String,
}

/// Take `http://host:port[/]` (or `ws://`) apart into an [`Endpoint`].
fn endpoint(url: &str, path: &str) -> Result<Endpoint, ConnectError> {
    let bad = |reason: &str| ConnectError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| bad("expected http:// or ws:// (TLS is not supported)"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if !rest[authority.len()..].trim_matches('/').is_empty() {
        // socket.io-client reads a URL path as a namespace; we take the
        // namespace from the options only, so refuse the ambiguity.
        return Err(bad(
            "the URL must not have a path; set the namespace option",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| bad("bad port"))?)
        }
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok(Endpoint {
        host,
        port,
        authority: authority.to_owned(),
        path: format!("{path}?EIO=4&transport=websocket"),
    })
}

/// The CONNECT payload: auth with `pid`/`offset` merged in, as socket.io-client does.
fn connect_payload(auth: Option<&Value>, recovery: Option<&Recovery>) -> Option<Value> {
    let Some(recovery) = recovery else {
        return auth.cloned();
    };
    let mut map = match auth {
        Some(Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    map.insert("pid".into(), Value::String(recovery.pid.clone()));
    if let Some(offset) = &recovery.offset {
        map.insert("offset".into(), Value::String(offset.clone()));
    }
    Some(Value::Object(map))
}

/// Run one phase against the attempt's deadline.
async fn within<F: Future>(
    deadline: tokio::time::Instant,
    phase: Phase,
    fut: F,
) -> Result<F::Output, ConnectError> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| ConnectError::Timeout { phase })
}

/// Map a socket error: EOF-like ends are `Closed`, the rest `Io` with its kind.
fn ws_error(phase: Phase, e: WsError) -> ConnectError {
    match e {
        WsError::Io(source) => ConnectError::io(phase, source),
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            ConnectError::Closed { phase }
        }
        other => ConnectError::Io {
            phase,
            source: io::Error::other(other),
        },
    }
}

async fn send(ws: &mut Ws, text: String, phase: Phase) -> Result<(), ConnectError> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| ws_error(phase, e))
}

/// Read frames until the first text frame, which must be the open packet.
async fn read_open(ws: &mut Ws) -> Result<OpenPacket, ConnectError> {
    let phase = Phase::Open;
    loop {
        match ws.next().await {
            None => return Err(ConnectError::Closed { phase }),
            Some(Err(e)) => return Err(ws_error(phase, e)),
            Some(Ok(Message::Text(text))) => {
                return match EnginePacket::decode(text.as_str()) {
                    Ok(EnginePacket::Open(open)) => Ok(open),
                    Ok(EnginePacket::Close) => Err(ConnectError::Closed { phase }),
                    Ok(other) => Err(ConnectError::Open(format!(
                        "expected open packet, got {other:?}"
                    ))),
                    Err(e) => Err(ConnectError::Open(e.to_string())),
                };
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(ConnectError::Open("binary frame before open".into()));
            }
            Some(Ok(Message::Close(_))) => return Err(ConnectError::Closed { phase }),
            // WebSocket pings are answered by tungstenite itself.
            Some(Ok(_)) => {}
        }
    }
}

/// The accepted CONNECT answer.
struct Accepted {
    sid: String,
    pid: Option<String>,
    /// Events of our namespace that came before the answer, in order.
    early: Vec<BinaryPacket>,
}

/// Wait for our namespace's CONNECT / CONNECT_ERROR, answering Engine.IO
/// pings meanwhile (engineioxide pings right after the open packet).
///
/// Events may come first: the official socket.io server (4.6+) replays a
/// recovered session's missed packets *before* its CONNECT answer.
/// socket.io-client buffers them and emits them once connected; so do we,
/// and a refusal discards them, as it does there.
async fn await_connect(
    ws: &mut Ws,
    namespace: &str,
    last_ping: &mut tokio::time::Instant,
) -> Result<Accepted, ConnectError> {
    let phase = Phase::Connect;
    let protocol = |source| ConnectError::Protocol { phase, source };
    let mut early = Vec::new();
    let mut assembler = BinaryAssembler::default();
    loop {
        let text = match ws.next().await {
            None => return Err(ConnectError::Closed { phase }),
            Some(Err(e)) => return Err(ws_error(phase, e)),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) => return Err(ConnectError::Closed { phase }),
            Some(Ok(Message::Binary(data))) if assembler.is_waiting() => {
                early.extend(assembler.push(data).map_err(protocol)?);
                continue;
            }
            // Other binary frames belong to another namespace's binary packet.
            Some(Ok(_)) => continue,
        };
        let message = match EnginePacket::decode(text.as_str()).map_err(protocol)? {
            EnginePacket::Ping(_) => {
                *last_ping = tokio::time::Instant::now();
                send(ws, "3".to_owned(), phase).await?;
                continue;
            }
            EnginePacket::Close => return Err(ConnectError::Closed { phase }),
            EnginePacket::Message(m) => m,
            _ => continue,
        };
        let packet = Packet::decode(message).map_err(protocol)?;
        if packet.namespace != namespace {
            continue;
        }
        match packet.kind {
            PacketType::Connect => {
                let data = packet.data.unwrap_or(Value::Null);
                let Some(sid) = data.get("sid").and_then(Value::as_str) else {
                    return Err(protocol(PacketError::new("CONNECT answer without sid")));
                };
                let pid = data.get("pid").and_then(Value::as_str).map(str::to_owned);
                return Ok(Accepted {
                    sid: sid.to_owned(),
                    pid,
                    early,
                });
            }
            PacketType::ConnectError => {
                let data = packet.data.unwrap_or(Value::Null);
                // v5 servers send {message, data?}; older ones a bare string.
                let message = match &data {
                    Value::String(s) => s.clone(),
                    other => other
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                };
                let data = data.get("data").cloned();
                return Err(ConnectError::Refused { message, data });
            }
            PacketType::Disconnect => return Err(ConnectError::Closed { phase }),
            PacketType::Event | PacketType::BinaryEvent => {
                early.extend(assembler.start(packet).map_err(protocol)?);
            }
            _ => tracing::debug!(?packet, "packet before the CONNECT answer, dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn takes_the_url_apart() {
        let e = |host: &str, port, authority: &str, path: &str| Endpoint {
            host: host.into(),
            port,
            authority: authority.into(),
            path: path.into(),
        };
        assert_eq!(
            endpoint("http://127.0.0.1:3000", "/socket.io/").unwrap(),
            e(
                "127.0.0.1",
                3000,
                "127.0.0.1:3000",
                "/socket.io/?EIO=4&transport=websocket"
            )
        );
        assert_eq!(
            endpoint("ws://example.test/", "chat").unwrap(),
            e(
                "example.test",
                80,
                "example.test",
                "/chat?EIO=4&transport=websocket"
            )
        );
        let v6 = endpoint("http://[::1]:8080", "/socket.io/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        assert_eq!(v6.authority, "[::1]:8080");
        for bad in [
            "https://x",
            "localhost:3000",
            "http://",
            "http://h:99999",
            "http://h/admin",
        ] {
            assert!(endpoint(bad, "/socket.io/").is_err(), "{bad}");
        }
    }

    #[test]
    fn merges_recovery_into_auth() {
        let rec = Recovery {
            pid: "p".into(),
            offset: Some("o".into()),
        };
        assert_eq!(
            connect_payload(Some(&json!({"token":"t"})), Some(&rec)),
            Some(json!({"token":"t","pid":"p","offset":"o"}))
        );
        let rec = Recovery {
            pid: "p".into(),
            offset: None,
        };
        assert_eq!(connect_payload(None, Some(&rec)), Some(json!({"pid":"p"})));
        assert_eq!(connect_payload(None, None), None);
    }
}

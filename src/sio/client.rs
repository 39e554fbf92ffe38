//! The [`Client`] handle and what a connection reports back.
//!
//! A `Client` is a cheap clone (a channel sender and an `Arc`) so a simulated
//! user can hand it to several tasks; the socket itself lives in the
//! connection task (see `conn.rs`). JSON is serialized here, on the caller's
//! task, so the one task per socket does as little work as possible.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Bytes;

use super::conn::Command;

/// What the server sent, in order; the last item is always `Closed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A server EVENT (or BINARY_EVENT) on our namespace.
    Event {
        name: String,
        /// The arguments, with the recovery offset already stripped.
        args: Vec<Value>,
        /// Set when the server asked for an answer: reply with [`Client::ack`].
        ack_id: Option<u64>,
        /// Binary attachments of a BINARY_EVENT; `args` keep the
        /// `{"_placeholder":true,"num":N}` objects that point into it.
        attachments: Vec<Bytes>,
    },
    /// The connection is over; nothing follows.
    Closed(CloseReason),
}

/// Why a connection ended. The names follow socket.io-client's disconnect
/// reasons, because the reconnection policy we reproduce keys off them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The server sent DISCONNECT (`41`) for our namespace
    /// ("io server disconnect"). socket.io-client does NOT reconnect.
    ServerDisconnect,
    /// The server sent an Engine.IO close packet (`1`). socket.io-client
    /// sees this as "transport close" and reconnects.
    EngineClose,
    /// The socket ended cleanly: EOF or a WebSocket close frame ("transport close").
    TransportClose,
    /// The socket failed, e.g. a reset ("transport error").
    TransportError {
        kind: io::ErrorKind,
        message: String,
    },
    /// No Engine.IO ping within pingInterval + pingTimeout ("ping timeout").
    PingTimeout,
    /// The server sent something undecodable ("parse error").
    ParseError(String),
    /// We called [`Client::disconnect`] or dropped every handle
    /// ("io client disconnect").
    ClientDisconnect,
}

impl CloseReason {
    /// socket.io-client's reason string for this close.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::ServerDisconnect => "io server disconnect",
            CloseReason::EngineClose | CloseReason::TransportClose => "transport close",
            CloseReason::TransportError { .. } => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError(_) => "parse error",
            CloseReason::ClientDisconnect => "io client disconnect",
        }
    }

    /// Whether socket.io-client's Manager would reconnect on its own.
    pub fn manager_reconnects(&self) -> bool {
        !matches!(
            self,
            CloseReason::ServerDisconnect | CloseReason::ClientDisconnect
        )
    }
}

/// Connection-state recovery data to pass into the next [`ConnectOptions`].
///
/// [`ConnectOptions`]: super::ConnectOptions
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The private session id from the CONNECT answer.
    pub pid: String,
    /// The offset of the last server event seen (none yet: `None`).
    pub offset: Option<String>,
}

/// The connection task is gone; nothing can be sent any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection closed")]
pub struct SendError;

/// Why an acknowledged emit got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No answer within the timeout (the ack may still arrive later; it is dropped).
    #[error("ack timed out")]
    Timeout,
    /// The connection closed before the answer came.
    #[error("disconnected before the ack")]
    Disconnected,
}

/// State the connection task and the handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) sid: String,
    pub(crate) namespace: String,
    pub(crate) pid: Option<String>,
    /// Last recovery offset seen; only written when `pid` is set.
    pub(crate) offset: Mutex<Option<String>>,
    /// `Client::disconnect` asks here.
    pub(crate) close: CloseRequest,
}

/// A request to close that is never lost and is cheap to poll: the
/// connection task polls it on every turn of its loop (once per frame),
/// where a `Notify`'s waiter took a lock each time (1.4 % of a chatting
/// harness's CPU in a profile).
#[derive(Debug, Default)]
pub(crate) struct CloseRequest {
    asked: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl CloseRequest {
    pub(crate) fn ask(&self) {
        self.asked.store(true, std::sync::atomic::Ordering::Release);
        self.waker.wake();
    }

    /// Ready once asked (and from then on).
    pub(crate) fn poll_asked(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::sync::atomic::Ordering::Acquire;
        if self.asked.load(Acquire) {
            return std::task::Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // Asked between the load and the register: the wake may have found no waker.
        if self.asked.load(Acquire) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

/// Handle to one connection; clone freely. Dropping the last clone
/// disconnects (there is no one left to send).
#[derive(Debug, Clone)]
pub struct Client {
    /// Boxed for the same reason as [`Inbox`]'s items: the channel's first
    /// block of 32 slots lives as long as the connection.
    pub(crate) commands: mpsc::Sender<Box<Command>>,
    pub(crate) shared: Arc<Shared>,
}

impl Client {
    /// Socket.IO socket id.
    pub fn sid(&self) -> &str {
        &self.shared.sid
    }

    /// The namespace this connection joined.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// What to pass as [`ConnectOptions::recovery`] on the next attempt;
    /// `None` when the server has connection-state recovery off.
    ///
    /// [`ConnectOptions::recovery`]: super::ConnectOptions::recovery
    pub fn recovery(&self) -> Option<Recovery> {
        let pid = self.shared.pid.clone()?;
        let offset = self
            .shared
            .offset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(Recovery { pid, offset })
    }

    /// Send `[event, data]`. Waits only when the socket is backed up.
    pub async fn emit(&self, event: &str, data: &Value) -> Result<(), SendError> {
        let payload = event_payload(event, std::slice::from_ref(data));
        self.send(Command::Emit { payload }).await
    }

    /// Send `[event, ...args]` (any number of arguments, also none).
    pub async fn emit_args(&self, event: &str, args: &[Value]) -> Result<(), SendError> {
        let payload = event_payload(event, args);
        self.send(Command::Emit { payload }).await
    }

    /// Send `[event, data]` with the next ack id (0, 1, 2… per connection)
    /// and wait for the server's answer. The timeout includes queueing.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Vec<Value>, AckError> {
        let payload = event_payload(event, std::slice::from_ref(data));
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.send(Command::EmitAck { payload, reply })
                .await
                .map_err(|_| AckError::Disconnected)?;
            answer.await.map_err(|_| AckError::Disconnected)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| AckError::Timeout)?
    }

    /// Answer a server event that carried `ack_id` with `args`.
    pub async fn ack(&self, ack_id: u64, args: &[Value]) -> Result<(), SendError> {
        let payload = Value::Array(args.to_vec()).to_string();
        self.send(Command::Ack {
            id: ack_id,
            payload,
        })
        .await
    }

    /// Leave the namespace (`41`), close the socket, and wait until the
    /// connection task ended (its `Closed` is then in the incoming stream).
    /// Jumps the queue of pending emits; takes at most about a second even
    /// when the peer is blackholed. A no-op when already closed.
    pub async fn disconnect(&self) {
        self.shared.close.ask();
        self.commands.closed().await;
    }

    async fn send(&self, command: Command) -> Result<(), SendError> {
        self.commands
            .send(Box::new(command))
            .await
            .map_err(|_| SendError)
    }
}

/// Serialize `[event, ...args]` without cloning the arguments.
fn event_payload(event: &str, args: &[Value]) -> String {
    use serde::ser::{SerializeSeq, Serializer};
    let mut out = Vec::with_capacity(64);
    let mut ser = serde_json::Serializer::new(&mut out);
    // Writing JSON values into a Vec cannot fail.
    let mut seq = ser.serialize_seq(Some(args.len() + 1)).expect("vec write");
    seq.serialize_element(event).expect("vec write");
    for arg in args {
        seq.serialize_element(arg).expect("vec write");
    }
    seq.end().expect("vec write");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_close_request_wakes_the_waiting_task_and_stays_asked() {
        let close = Arc::new(CloseRequest::default());
        let c = close.clone();
        let waiting = tokio::spawn(async move {
            std::future::poll_fn(|cx| c.poll_asked(cx)).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        close.ask();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken by ask")
            .unwrap();
        // Asked before anyone polls: ready at once.
        std::future::poll_fn(|cx| close.poll_asked(cx)).await;
    }

    #[test]
    fn event_payload_is_a_json_array() {
        assert_eq!(event_payload("ev", &[]), r#"["ev"]"#);
        assert_eq!(
            event_payload("send-message", &[json!({"a":1}), json!("x")]),
            r#"["send-message",{"a":1},"x"]"#
        );
    }

    #[test]
    fn reasons_match_socket_io_client() {
        assert!(!CloseReason::ServerDisconnect.manager_reconnects());
        assert!(CloseReason::EngineClose.manager_reconnects());
        assert_eq!(CloseReason::PingTimeout.as_str(), "ping timeout");
    }
}

//! The one task per connection that owns the socket.
//!
//! Reading and writing share a single `select!` loop instead of a reader and a
//! writer task: the harness holds thousands of connections and every task and
//! buffer counts. The loop must never block on one direction: a write stuck
//! behind a blackholed peer must not stop us from noticing the ping timeout,
//! and a flood of incoming frames must not delay our pongs. So writes go
//! through a small outbox that a cancel-safe flush future drains, commands
//! are only taken while the outbox has room (that is the backpressure on
//! `emit`), and incoming events go to an unbounded inbox (a slow consumer
//! must not make the server think we died).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{FutureExt, Sink, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::ProtocolError};

use super::client::{Client, CloseReason, Incoming, Shared};
use super::engine::EnginePacket;
use super::handshake::Ws;
use super::inbox::{Inbox, InboxSender};
use super::packet::{BinaryAssembler, BinaryPacket, Packet, PacketType, encode_head};

/// Frames queued for the socket before we stop taking commands.
const OUTBOX_LIMIT: usize = 32;
/// How long a client-initiated disconnect may spend flushing `41` and the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a [`Client`] handle asks the task to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send an EVENT; `payload` is the JSON array `[name, ...args]`.
    Emit { payload: String },
    /// Send an EVENT with the next ack id and deliver the answer to `reply`.
    EmitAck {
        payload: String,
        reply: oneshot::Sender<Vec<Value>>,
    },
    /// Answer a server EVENT's ack request; `payload` is the JSON array.
    Ack { id: u64, payload: String },
}

/// What the handshake hands over.
pub(crate) struct Setup {
    pub(crate) namespace: String,
    pub(crate) sid: String,
    pub(crate) pid: Option<String>,
    /// pingInterval + pingTimeout.
    pub(crate) heartbeat: Duration,
    /// When we give up unless a ping arrives.
    pub(crate) ping_deadline: Instant,
    pub(crate) command_capacity: usize,
    /// Events that came before the CONNECT answer, delivered first.
    pub(crate) early: Vec<BinaryPacket>,
    /// The recovery offset the previous connection ended with: kept until an
    /// event brings a newer one, as socket.io-client keeps `_lastOffset`.
    pub(crate) offset: Option<String>,
}

/// Start the connection task; returns the handle and the incoming stream.
pub(crate) fn spawn(ws: Ws, setup: Setup) -> (Client, Inbox) {
    let (commands, command_rx) = mpsc::channel(setup.command_capacity);
    let (incoming_tx, incoming) = super::inbox::inbox();
    let shared = Arc::new(Shared {
        sid: setup.sid,
        namespace: setup.namespace,
        offset: Mutex::new(setup.pid.as_ref().and(setup.offset)),
        pid: setup.pid,
        close: Default::default(),
    });
    let (sink, stream) = ws.split();
    let mut conn = Conn {
        sink,
        outbox: VecDeque::new(),
        shared: shared.clone(),
        next_ack: 0,
        pending: HashMap::new(),
        prune_at: 64,
        assembler: BinaryAssembler::default(),
        incoming: incoming_tx,
        heartbeat: setup.heartbeat,
    };
    // Before anything the socket brings next, and through the same path, so
    // a replayed event's recovery offset is taken as any other's.
    for packet in setup.early {
        let _ = conn.dispatch(packet);
    }
    tokio::spawn(Box::new(conn).run(stream, command_rx, setup.ping_deadline));
    (Client { commands, shared }, incoming)
}

struct Conn {
    sink: SplitSink<Ws, Message>,
    outbox: VecDeque<Message>,
    shared: Arc<Shared>,
    next_ack: u64,
    /// Acks we wait for, by id.
    pending: HashMap<u64, oneshot::Sender<Vec<Value>>>,
    /// Pending-map size at which abandoned (timed-out) entries are swept.
    prune_at: usize,
    assembler: BinaryAssembler,
    incoming: InboxSender,
    heartbeat: Duration,
}

impl Conn {
    /// Boxed self, and the close boxed: an async fn's state keeps its
    /// arguments apart from the locals they move to, and inlines every
    /// future it awaits; held for the connection's life, that was 1,120
    /// bytes per connection (now 408 and a 304-byte box).
    async fn run(
        mut self: Box<Self>,
        mut stream: futures_util::stream::SplitStream<Ws>,
        mut commands: mpsc::Receiver<Box<Command>>,
        ping_deadline: Instant,
    ) {
        let ping_timer = tokio::time::sleep_until(ping_deadline);
        tokio::pin!(ping_timer);
        let shared = self.shared.clone();
        // tungstenite queues its own replies (WebSocket pong, close) and
        // needs a flush to send them.
        let mut dirty = false;

        let reason = loop {
            tokio::select! {
                biased;
                () = &mut ping_timer => {
                    // Before blaming the server, take what already arrived: a
                    // saturated harness may have left a ping unread in the buffer.
                    match self.drain_ready(&mut stream, &mut dirty, &mut ping_timer) {
                        Ok(()) if ping_timer.deadline() > Instant::now() => {}
                        Ok(()) => break CloseReason::PingTimeout,
                        Err(reason) => break reason,
                    }
                }
                // Not a command: it must overtake emits stuck behind a full outbox.
                () = std::future::poll_fn(|cx| shared.close.poll_asked(cx)) => {
                    break Box::pin(self.close_gracefully()).await
                }
                res = Flush { sink: &mut self.sink, outbox: &mut self.outbox },
                    if dirty || !self.outbox.is_empty() =>
                {
                    match res {
                        Ok(()) => dirty = false,
                        Err(e) => break transport_error(e),
                    }
                }
                frame = stream.next() => {
                    let step = match frame {
                        None => Err(CloseReason::TransportClose),
                        Some(Err(e)) => Err(transport_error(e)),
                        Some(Ok(message)) => self.on_frame(message, &mut dirty, &mut ping_timer),
                    };
                    if let Err(reason) = step {
                        break reason;
                    }
                }
                command = commands.recv(), if self.outbox.len() < OUTBOX_LIMIT => match command {
                    Some(command) => self.on_command(*command),
                    // Every handle dropped: nobody can use this connection.
                    None => break Box::pin(self.close_gracefully()).await,
                },
            }
        };

        tracing::debug!(sid = %self.shared.sid, reason = reason.as_str(), "connection closed");
        // Dropping `pending` wakes every waiting emit_with_ack with Disconnected.
        self.pending.clear();
        self.incoming.send(Incoming::Closed(reason));
        // Dropping the receiver is what `Client::disconnect` waits for.
        drop(commands);
    }

    /// Handle every frame that is readable right now, without waiting.
    fn drain_ready(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<Ws>,
        dirty: &mut bool,
        ping_timer: &mut Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), CloseReason> {
        while let Some(frame) = stream.next().now_or_never() {
            match frame {
                None => return Err(CloseReason::TransportClose),
                Some(Err(e)) => return Err(transport_error(e)),
                Some(Ok(message)) => self.on_frame(message, dirty, ping_timer)?,
            }
        }
        Ok(())
    }

    /// Handle one WebSocket frame; `Err` ends the connection.
    fn on_frame(
        &mut self,
        message: Message,
        dirty: &mut bool,
        ping_timer: &mut Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), CloseReason> {
        match message {
            Message::Text(text) => {
                let packet = EnginePacket::decode(text.as_str())
                    .map_err(|e| CloseReason::ParseError(e.to_string()))?;
                match packet {
                    EnginePacket::Ping(_) => {
                        self.outbox.push_back(Message::text("3"));
                        ping_timer.as_mut().reset(Instant::now() + self.heartbeat);
                    }
                    EnginePacket::Message(m) => {
                        let packet = Packet::decode(m)
                            .map_err(|e| CloseReason::ParseError(e.to_string()))?;
                        let complete = self
                            .assembler
                            .start(packet)
                            .map_err(|e| CloseReason::ParseError(e.to_string()))?;
                        if let Some(complete) = complete {
                            self.dispatch(complete)?;
                        }
                    }
                    EnginePacket::Close => return Err(CloseReason::EngineClose),
                    EnginePacket::Open(_)
                    | EnginePacket::Pong(_)
                    | EnginePacket::Upgrade
                    | EnginePacket::Noop => {}
                }
            }
            Message::Binary(data) => {
                let complete = self
                    .assembler
                    .push(data)
                    .map_err(|e| CloseReason::ParseError(e.to_string()))?;
                if let Some(complete) = complete {
                    self.dispatch(complete)?;
                }
            }
            Message::Close(_) => return Err(CloseReason::TransportClose),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => *dirty = true,
        }
        Ok(())
    }

    /// Act on a complete Socket.IO packet.
    fn dispatch(&mut self, complete: BinaryPacket) -> Result<(), CloseReason> {
        let BinaryPacket {
            packet,
            attachments,
        } = complete;
        if packet.namespace != self.shared.namespace {
            return Ok(());
        }
        match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => {
                let ack_id = packet.id;
                let Some((name, mut args)) = packet.into_event() else {
                    return Ok(()); // numeric event names: nothing we listen for
                };
                self.take_offset(&mut args);
                self.incoming.send(Incoming::Event {
                    name,
                    args,
                    ack_id,
                    attachments,
                });
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let args = match packet.data {
                    Some(Value::Array(args)) => args,
                    _ => Vec::new(),
                };
                match packet.id.and_then(|id| self.pending.remove(&id)) {
                    Some(reply) => {
                        let _ = reply.send(args);
                    }
                    None => tracing::debug!(id = ?packet.id, "ack for no pending emit"),
                }
            }
            PacketType::Disconnect => return Err(CloseReason::ServerDisconnect),
            PacketType::Connect | PacketType::ConnectError => {
                tracing::debug!(?packet.kind, "unexpected packet after connect, ignored");
            }
        }
        Ok(())
    }

    /// With recovery on, the server appends the offset to every event; take
    /// it off (socket.io-client's rule: the last argument, if a string).
    fn take_offset(&self, args: &mut Vec<Value>) {
        if self.shared.pid.is_none() || !matches!(args.last(), Some(Value::String(_))) {
            return;
        }
        if let Some(Value::String(offset)) = args.pop() {
            *self.shared.offset.lock().unwrap_or_else(|e| e.into_inner()) = Some(offset);
        }
    }

    fn on_command(&mut self, command: Command) {
        let (id, payload) = match command {
            Command::Emit { payload } => (None, payload),
            Command::EmitAck { payload, reply } => {
                let id = self.next_ack;
                self.next_ack += 1;
                self.remember(id, reply);
                (Some(id), payload)
            }
            Command::Ack { id, payload } => {
                let text = self.frame(PacketType::Ack, Some(id), &payload);
                self.outbox.push_back(Message::text(text));
                return;
            }
        };
        let text = self.frame(PacketType::Event, id, &payload);
        self.outbox.push_back(Message::text(text));
    }

    /// `4` + Socket.IO head + JSON.
    fn frame(&self, kind: PacketType, id: Option<u64>, payload: &str) -> String {
        let mut text = String::with_capacity(payload.len() + 24);
        text.push('4');
        encode_head(&mut text, kind, 0, &self.shared.namespace, id);
        text.push_str(payload);
        text
    }

    /// Track a pending ack; now and then drop the ones whose caller gave up
    /// (timed out), so a server that never answers cannot grow the map forever.
    fn remember(&mut self, id: u64, reply: oneshot::Sender<Vec<Value>>) {
        if self.pending.len() >= self.prune_at {
            self.pending.retain(|_, reply| !reply.is_closed());
            self.prune_at = (self.pending.len() * 2).max(64);
        }
        self.pending.insert(id, reply);
    }

    /// Send `41` and a close frame, within a short grace period.
    async fn close_gracefully(&mut self) -> CloseReason {
        let leave = Packet::disconnect(&self.shared.namespace).encode();
        self.outbox.push_back(Message::text(format!("4{leave}")));
        let sink = &mut self.sink;
        let outbox = &mut self.outbox;
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            Flush { sink, outbox }.await?;
            futures_util::SinkExt::close(sink).await
        })
        .await;
        CloseReason::ClientDisconnect
    }
}

/// Drains the outbox into the sink and flushes. Cancel-safe: a frame leaves
/// the outbox only when the sink has taken it, so dropping this future
/// mid-way (another `select!` branch won) loses nothing.
struct Flush<'a> {
    sink: &'a mut SplitSink<Ws, Message>,
    outbox: &'a mut VecDeque<Message>,
}

impl Future for Flush<'_> {
    type Output = Result<(), WsError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        while !this.outbox.is_empty() {
            ready!(Pin::new(&mut *this.sink).poll_ready(cx))?;
            let message = this.outbox.pop_front().expect("checked non-empty");
            Pin::new(&mut *this.sink).start_send(message)?;
        }
        Pin::new(&mut *this.sink).poll_flush(cx)
    }
}

/// Map a socket error to a close reason: clean ends vs. failures.
fn transport_error(e: WsError) -> CloseReason {
    match e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            CloseReason::TransportClose
        }
        WsError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => CloseReason::TransportClose,
        WsError::Io(e) => CloseReason::TransportError {
            kind: e.kind(),
            message: e.to_string(),
        },
        WsError::Capacity(e) => CloseReason::TransportError {
            kind: io::ErrorKind::InvalidData,
            message: e.to_string(),
        },
        other => CloseReason::TransportError {
            kind: io::ErrorKind::Other,
            message: other.to_string(),
        },
    }
}

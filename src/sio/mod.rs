//! Native Engine.IO v4 / Socket.IO v5 client over WebSocket.
//!
//! Why our own: the harness measures a server's delivery guarantees and
//! reconnect latency, so the client underneath must not blur them.
//! `rust_socketio` draws ack ids at random from 0..999 (thousands of
//! outstanding acks collide), returns from `connect()` before the server
//! accepted the namespace (so "connected" timestamps lie), and has no
//! per-attempt timeout (so a blackholed attempt hangs). This layer is small,
//! speaks only what the harness needs, and times every handshake phase.
//!
//! Layout, one concern per file:
//! - [`engine`]: Engine.IO packet codec (open/close/ping/pong/message…).
//! - [`packet`]: Socket.IO packet codec and binary attachment assembly.
//! - [`handshake`]: [`connect`]: TCP → WebSocket → Engine.IO open →
//!   Socket.IO CONNECT, each phase timed.
//! - `upgrade`: the WebSocket opening handshake, reading into a buffer
//!   the connection keeps (tungstenite's own keeps 4 KiB per connection).
//! - [`error`]: [`ConnectError`], one variant per way an attempt fails.
//! - `conn`: the one task per connection that owns the socket.
//! - [`client`]: the cheap-to-clone [`Client`] handle and what it reports.
//!
//! It is a protocol layer only: no chat events, no reconnection policy (the
//! simulated user owns that, see `src/user/`).

pub mod client;
mod conn;
pub mod engine;
pub mod error;
pub mod handshake;
mod inbox;
pub mod packet;
mod upgrade;

#[cfg(test)]
mod tests;

pub use client::{AckError, Client, CloseReason, Incoming, Recovery, SendError};
pub use engine::{EnginePacket, OpenPacket};
pub use error::{ConnectError, Phase};
pub use handshake::{ConnectInfo, ConnectOptions, Connection, PhaseTimings, connect};
pub use inbox::Inbox;
pub use packet::{BinaryAssembler, BinaryPacket, Packet, PacketType};

/// A packet that could not be decoded; carries a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PacketError(String);

impl PacketError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

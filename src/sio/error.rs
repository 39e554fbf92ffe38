//! Typed handshake failures, each naming its phase.
//!
//! The harness reacts differently to a refused port (server down), a hanging
//! upgrade (blackhole), and a CONNECT_ERROR (token expired: refresh, then
//! retry), and records which phase a fault hit; a string would lose that.

use std::io;

use serde_json::Value;

use super::PacketError;

/// A handshake phase, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// TCP connect.
    Tcp,
    /// HTTP → WebSocket upgrade.
    Upgrade,
    /// Waiting for the Engine.IO open packet.
    Open,
    /// Waiting for the answer to our Socket.IO CONNECT.
    Connect,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Tcp => "TCP connect",
            Phase::Upgrade => "WebSocket upgrade",
            Phase::Open => "Engine.IO open",
            Phase::Connect => "Socket.IO CONNECT",
        })
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL could not be turned into a WebSocket address.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// TCP connect failed (refused, unreachable, reset…); see [`Self::io_kind`].
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] io::Error),
    /// The server answered the upgrade with something other than 101, or a
    /// broken HTTP response.
    #[error("WebSocket upgrade failed (HTTP status {status:?}): {message}")]
    Upgrade {
        status: Option<u16>,
        message: String,
    },
    /// The first packet was not a valid Engine.IO open packet.
    #[error("bad Engine.IO open packet: {0}")]
    Open(String),
    /// CONNECT_ERROR: the namespace or a middleware refused us (this is how
    /// `Authentication failed` surfaces).
    #[error("server refused the connection: {message}")]
    Refused {
        message: String,
        data: Option<Value>,
    },
    /// The attempt's deadline passed during `phase`.
    #[error("timed out during {phase}")]
    Timeout { phase: Phase },
    /// The transport closed (EOF, close frame, Engine.IO close) mid-handshake.
    #[error("transport closed during {phase}")]
    Closed { phase: Phase },
    /// An I/O error (e.g. connection reset) after TCP connected.
    #[error("I/O error during {phase}: {source}")]
    Io {
        phase: Phase,
        #[source]
        source: io::Error,
    },
    /// The server sent something we cannot decode during the CONNECT phase.
    #[error("protocol error during {phase}: {source}")]
    Protocol {
        phase: Phase,
        #[source]
        source: PacketError,
    },
}

impl ConnectError {
    /// An I/O error after TCP connected: an EOF is the peer closing.
    pub(crate) fn io(phase: Phase, source: io::Error) -> ConnectError {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            ConnectError::Closed { phase }
        } else {
            ConnectError::Io { phase, source }
        }
    }

    /// The I/O error kind, for `Tcp` and `Io` errors (e.g. `ConnectionRefused`).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            ConnectError::Tcp(e) | ConnectError::Io { source: e, .. } => Some(e.kind()),
            _ => None,
        }
    }

    /// The phase the attempt failed in (`None` for a bad URL).
    pub fn phase(&self) -> Option<Phase> {
        Some(match self {
            ConnectError::InvalidUrl { .. } => return None,
            ConnectError::Tcp(_) => Phase::Tcp,
            ConnectError::Upgrade { .. } => Phase::Upgrade,
            ConnectError::Open(_) => Phase::Open,
            ConnectError::Refused { .. } => Phase::Connect,
            ConnectError::Timeout { phase }
            | ConnectError::Closed { phase }
            | ConnectError::Io { phase, .. }
            | ConnectError::Protocol { phase, .. } => *phase,
        })
    }
}

//! Engine.IO v4 packet codec: the transport framing underneath Socket.IO.
//!
//! Over WebSocket every text frame is exactly one packet: one type digit
//! followed by its payload. Binary frames carry a raw binary message (the
//! attachments of a Socket.IO binary packet) and never a type digit, so they
//! are not decoded here. Decoding borrows from the frame so the hot path (the
//! `4…` message packets) allocates nothing before the Socket.IO layer.

use std::time::Duration;

use serde::Deserialize;

use super::PacketError;

/// One Engine.IO text packet, borrowing its payload from the frame.
#[derive(Debug, Clone, PartialEq)]
pub enum EnginePacket<'a> {
    /// `0{…}`: the handshake the server sends first.
    Open(OpenPacket),
    /// `1`: the server closes the session.
    Close,
    /// `2`: heartbeat from the server (v4: server → client); payload is
    /// `probe` only during a polling → websocket upgrade.
    Ping(&'a str),
    /// `3`: the answer to a ping.
    Pong(&'a str),
    /// `4…`: a message; over Socket.IO the payload is a Socket.IO packet.
    Message(&'a str),
    /// `5`: transport upgrade (not used when connecting over WebSocket directly).
    Upgrade,
    /// `6`: no-op (used by the polling transport).
    Noop,
}

/// The handshake data of an `open` packet.
///
/// Field names follow the wire (`pingInterval` …); durations are sent as
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPacket {
    /// Engine.IO session id (not the Socket.IO socket id).
    pub sid: String,
    /// Transports the session may upgrade to (empty over WebSocket).
    pub upgrades: Vec<String>,
    /// How often the server sends a ping.
    pub ping_interval: Duration,
    /// How long the server waits for the pong, and (added to the interval)
    /// how long the client waits for the next ping before declaring it dead.
    pub ping_timeout: Duration,
    /// The largest payload the server accepts from the client, in bytes.
    pub max_payload: u64,
}

/// The wire shape of the open payload; kept private so the public struct
/// can use `Duration`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOpen {
    sid: String,
    #[serde(default)]
    upgrades: Vec<String>,
    ping_interval: u64,
    ping_timeout: u64,
    // socket.io servers before 4.x (EIO3) leave it out; default as socket.io does.
    #[serde(default = "default_max_payload")]
    max_payload: u64,
}

fn default_max_payload() -> u64 {
    1_000_000
}

impl OpenPacket {
    /// Parse the JSON payload of an `open` packet (without the leading `0`).
    pub fn parse(json: &str) -> Result<Self, PacketError> {
        let raw: RawOpen = serde_json::from_str(json)
            .map_err(|e| PacketError::new(format!("bad open payload: {e}")))?;
        Ok(Self {
            sid: raw.sid,
            upgrades: raw.upgrades,
            ping_interval: Duration::from_millis(raw.ping_interval),
            ping_timeout: Duration::from_millis(raw.ping_timeout),
            max_payload: raw.max_payload,
        })
    }

    /// Encode back to the wire form (`0{…}`); used by test servers.
    pub fn encode(&self) -> String {
        let json = serde_json::json!({
            "sid": self.sid,
            "upgrades": self.upgrades,
            "pingInterval": self.ping_interval.as_millis() as u64,
            "pingTimeout": self.ping_timeout.as_millis() as u64,
            "maxPayload": self.max_payload,
        });
        format!("0{json}")
    }
}

impl<'a> EnginePacket<'a> {
    /// Decode one text frame.
    pub fn decode(text: &'a str) -> Result<Self, PacketError> {
        let mut chars = text.char_indices();
        let Some((_, kind)) = chars.next() else {
            return Err(PacketError::new("empty Engine.IO packet"));
        };
        // The type is one ASCII digit, so the payload starts at byte 1.
        let payload = if kind.is_ascii_digit() {
            &text[1..]
        } else {
            ""
        };
        Ok(match kind {
            '0' => EnginePacket::Open(OpenPacket::parse(payload)?),
            '1' => EnginePacket::Close,
            '2' => EnginePacket::Ping(payload),
            '3' => EnginePacket::Pong(payload),
            '4' => EnginePacket::Message(payload),
            '5' => EnginePacket::Upgrade,
            '6' => EnginePacket::Noop,
            other => {
                return Err(PacketError::new(format!(
                    "unknown Engine.IO packet type {other:?}"
                )));
            }
        })
    }

    /// Encode to the text frame form.
    pub fn encode(&self) -> String {
        match self {
            EnginePacket::Open(open) => open.encode(),
            EnginePacket::Close => "1".to_owned(),
            EnginePacket::Ping(p) => format!("2{p}"),
            EnginePacket::Pong(p) => format!("3{p}"),
            EnginePacket::Message(m) => format!("4{m}"),
            EnginePacket::Upgrade => "5".to_owned(),
            EnginePacket::Noop => "6".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_open_packet_from_the_spec() {
        let text = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let EnginePacket::Open(open) = EnginePacket::decode(text).unwrap() else {
            panic!("not an open packet");
        };
        assert_eq!(open.sid, "lv_VI97HAXpY6yYWAAAC");
        assert!(open.upgrades.is_empty());
        assert_eq!(open.ping_interval, Duration::from_secs(25));
        assert_eq!(open.ping_timeout, Duration::from_secs(20));
        assert_eq!(open.max_payload, 1_000_000);
    }

    #[test]
    fn open_packet_round_trips() {
        let open = OpenPacket {
            sid: "abc".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 100_000,
        };
        let text = open.encode();
        assert_eq!(
            EnginePacket::decode(&text).unwrap(),
            EnginePacket::Open(open)
        );
    }

    #[test]
    fn decodes_the_small_packets() {
        assert_eq!(EnginePacket::decode("1").unwrap(), EnginePacket::Close);
        assert_eq!(EnginePacket::decode("2").unwrap(), EnginePacket::Ping(""));
        assert_eq!(
            EnginePacket::decode("2probe").unwrap(),
            EnginePacket::Ping("probe")
        );
        assert_eq!(EnginePacket::decode("3").unwrap(), EnginePacket::Pong(""));
        assert_eq!(
            EnginePacket::decode("42[\"hi\"]").unwrap(),
            EnginePacket::Message("2[\"hi\"]")
        );
        assert_eq!(EnginePacket::decode("5").unwrap(), EnginePacket::Upgrade);
        assert_eq!(EnginePacket::decode("6").unwrap(), EnginePacket::Noop);
    }

    #[test]
    fn encodes_the_small_packets() {
        assert_eq!(EnginePacket::Pong("").encode(), "3");
        assert_eq!(EnginePacket::Ping("").encode(), "2");
        assert_eq!(EnginePacket::Close.encode(), "1");
        assert_eq!(EnginePacket::Message("0").encode(), "40");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "7",
            "x",
            "é",
            "0",
            "0{",
            "0{\"sid\":1}",
            "0{\"sid\":\"a\",\"pingInterval\":-1,\"pingTimeout\":1}",
        ] {
            assert!(EnginePacket::decode(bad).is_err(), "{bad:?} should fail");
        }
    }
}

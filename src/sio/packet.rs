//! Socket.IO v5 packet codec (the payload of an Engine.IO `4` message).
//!
//! Text form: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, with
//! the namespace `/` left out. The decoder follows socket.io-parser (the
//! reference JS implementation) in what it accepts and rejects, because the
//! servers we test are written against that client: a packet it would throw
//! on is an error here too, never a panic.
//!
//! Binary packets (`5`, `6`) announce how many binary WebSocket frames follow;
//! [`BinaryAssembler`] collects them. We keep the `{"_placeholder":true,
//! "num":N}` objects in the JSON and hand the attachments alongside, because
//! `serde_json::Value` has no bytes variant and the harness only needs to not
//! choke on binary traffic.

use serde_json::Value;
use tokio_tungstenite::tungstenite::Bytes;

use super::PacketError;

/// The Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: client asks to join a namespace; server accepts with `{sid}`.
    Connect,
    /// `1`: either side leaves the namespace.
    Disconnect,
    /// `2`: an event `[name, ...args]`, optionally with an ack id.
    Event,
    /// `3`: the answer to an event that carried an ack id.
    Ack,
    /// `4`: the server refused the CONNECT (`{message, data?}`).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketType {
    fn from_digit(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }

    /// Binary types announce an attachment count.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// One decoded Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// What kind of packet.
    pub kind: PacketType,
    /// Namespace, `/` when the wire form leaves it out.
    pub namespace: String,
    /// Number of binary frames that follow (binary types only).
    pub attachments: usize,
    /// Ack id: on EVENT a request for an answer, on ACK the id answered.
    pub id: Option<u64>,
    /// The JSON payload, if any.
    pub data: Option<Value>,
}

impl Packet {
    fn new(kind: PacketType, namespace: &str, id: Option<u64>, data: Option<Value>) -> Self {
        Self {
            kind,
            namespace: namespace.to_owned(),
            attachments: 0,
            id,
            data,
        }
    }

    /// CONNECT with an optional auth payload.
    pub fn connect(namespace: &str, auth: Option<Value>) -> Self {
        Self::new(PacketType::Connect, namespace, None, auth)
    }

    /// DISCONNECT.
    pub fn disconnect(namespace: &str) -> Self {
        Self::new(PacketType::Disconnect, namespace, None, None)
    }

    /// EVENT `[name, ...args]`, asking for an ack when `id` is set.
    pub fn event(namespace: &str, name: &str, args: Vec<Value>, id: Option<u64>) -> Self {
        let mut array = Vec::with_capacity(args.len() + 1);
        array.push(Value::String(name.to_owned()));
        array.extend(args);
        Self::new(PacketType::Event, namespace, id, Some(Value::Array(array)))
    }

    /// ACK answering `id` with `args`.
    pub fn ack(namespace: &str, id: u64, args: Vec<Value>) -> Self {
        Self::new(
            PacketType::Ack,
            namespace,
            Some(id),
            Some(Value::Array(args)),
        )
    }

    /// CONNECT_ERROR as servers send it (`{"message": …}`).
    pub fn connect_error(namespace: &str, message: &str) -> Self {
        let data = serde_json::json!({ "message": message });
        Self::new(PacketType::ConnectError, namespace, None, Some(data))
    }

    /// Encode to the text form (without the Engine.IO `4`).
    pub fn encode(&self) -> String {
        let json = self.data.as_ref().map(Value::to_string);
        let mut out = String::with_capacity(16 + json.as_ref().map_or(0, String::len));
        encode_head(
            &mut out,
            self.kind,
            self.attachments,
            &self.namespace,
            self.id,
        );
        if let Some(json) = json {
            out.push_str(&json);
        }
        out
    }

    /// For EVENT / BINARY_EVENT: the event name and its arguments.
    pub fn into_event(self) -> Option<(String, Vec<Value>)> {
        if !matches!(self.kind, PacketType::Event | PacketType::BinaryEvent) {
            return None;
        }
        let Some(Value::Array(mut array)) = self.data else {
            return None;
        };
        if array.is_empty() {
            return None;
        }
        let Value::String(name) = array.remove(0) else {
            return None;
        };
        Some((name, array))
    }

    /// Decode the text form (without the Engine.IO `4`).
    pub fn decode(text: &str) -> Result<Self, PacketError> {
        let bytes = text.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(PacketError::new("empty Socket.IO packet"));
        };
        let kind = PacketType::from_digit(first).ok_or_else(|| {
            PacketError::new(format!("unknown Socket.IO packet type in {text:?}"))
        })?;
        let mut i = 1;

        let mut attachments = 0;
        if kind.is_binary() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || bytes.get(i) != Some(&b'-') {
                return Err(PacketError::new("binary packet without attachment count"));
            }
            attachments = text[start..i]
                .parse()
                .map_err(|_| PacketError::new("attachment count out of range"))?;
            i += 1; // the '-'
        }

        let mut namespace = "/";
        if bytes.get(i) == Some(&b'/') {
            let start = i;
            // All separators are ASCII, so byte positions are char boundaries.
            let end = text[i..].find(',').map_or(bytes.len(), |p| i + p);
            namespace = &text[start..end];
            i = (end + 1).min(bytes.len());
        }

        let mut id = None;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            id = Some(
                text[start..i]
                    .parse()
                    .map_err(|_| PacketError::new("ack id out of range"))?,
            );
        }

        let rest = &text[i..];
        let data = if rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Value>(rest)
                    .map_err(|e| PacketError::new(format!("bad packet JSON: {e}")))?,
            )
        };

        let packet = Packet {
            kind,
            namespace: namespace.to_owned(),
            attachments,
            id,
            data,
        };
        packet.validate()?;
        Ok(packet)
    }

    /// The payload shapes socket.io-parser accepts for each type.
    fn validate(&self) -> Result<(), PacketError> {
        let ok = match (self.kind, &self.data) {
            (PacketType::Connect, None | Some(Value::Object(_))) => true,
            (PacketType::Disconnect, None) => true,
            (PacketType::ConnectError, Some(Value::Object(_) | Value::String(_))) => true,
            (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(a))) => {
                matches!(a.first(), Some(Value::String(_) | Value::Number(_)))
            }
            (PacketType::Ack | PacketType::BinaryAck, Some(Value::Array(_))) => self.id.is_some(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(PacketError::new(format!(
                "invalid payload for {:?} packet",
                self.kind
            )))
        }
    }
}

/// Write `<type>[<attachments>-][<namespace>,][<ack id>]`.
pub(crate) fn encode_head(
    out: &mut String,
    kind: PacketType,
    attachments: usize,
    namespace: &str,
    id: Option<u64>,
) {
    use std::fmt::Write as _;
    out.push(kind.digit());
    if kind.is_binary() {
        let _ = write!(out, "{attachments}-");
    }
    if namespace != "/" && !namespace.is_empty() {
        out.push_str(namespace);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
}

/// A binary packet with all its attachments, placeholders left in the JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryPacket {
    /// The header packet (`5…` or `6…`).
    pub packet: Packet,
    /// The binary frames, in order: attachment `num` is `attachments[num]`.
    pub attachments: Vec<Bytes>,
}

/// Collects the binary frames that follow a binary packet header.
#[derive(Debug, Default)]
pub struct BinaryAssembler {
    pending: Option<BinaryPacket>,
}

impl BinaryAssembler {
    /// Whether a header is waiting for more frames.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Start on a decoded packet. Returns it right away when it needs no
    /// frames; a text packet while frames are still owed is an error (the
    /// stale header would otherwise swallow later frames).
    pub fn start(&mut self, packet: Packet) -> Result<Option<BinaryPacket>, PacketError> {
        if self.pending.is_some() {
            self.pending = None;
            return Err(PacketError::new(
                "text packet while waiting for binary attachments",
            ));
        }
        let done = BinaryPacket {
            attachments: Vec::with_capacity(packet.attachments.min(16)),
            packet,
        };
        if done.packet.attachments == 0 {
            Ok(Some(done))
        } else {
            self.pending = Some(done);
            Ok(None)
        }
    }

    /// Add one binary frame; returns the packet once the last one arrived.
    pub fn push(&mut self, frame: Bytes) -> Result<Option<BinaryPacket>, PacketError> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(PacketError::new("binary frame without a binary packet"));
        };
        pending.attachments.push(frame);
        if pending.attachments.len() >= pending.packet.attachments {
            Ok(self.pending.take())
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(text: &str) -> Packet {
        let packet = Packet::decode(text).unwrap();
        assert_eq!(packet.encode(), text, "re-encoding {text:?}");
        packet
    }

    #[test]
    fn connect_with_auth() {
        let p = round_trip(r#"0{"token":"x"}"#);
        assert_eq!(p, Packet::connect("/", Some(json!({"token": "x"}))));
    }

    #[test]
    fn connect_answer_with_sid_and_pid() {
        let p = round_trip(r#"0{"sid":"abc"}"#);
        assert_eq!(p.data, Some(json!({"sid": "abc"})));
        let p = Packet::decode(r#"0{"sid":"abc","pid":"p1"}"#).unwrap();
        assert_eq!(p.data.unwrap()["pid"], "p1");
    }

    #[test]
    fn connect_error_from_middleware() {
        let p = round_trip(r#"4{"message":"Authentication failed"}"#);
        assert_eq!(p.kind, PacketType::ConnectError);
        assert_eq!(p, Packet::connect_error("/", "Authentication failed"));
        let p = Packet::decode(r#"4{"message":"no","data":{"code":7}}"#).unwrap();
        assert_eq!(p.data.unwrap()["data"]["code"], 7);
    }

    #[test]
    fn event_without_and_with_ack_id() {
        // Keys in sorted order: serde_json (without preserve_order) re-encodes sorted.
        let p = round_trip(
            r#"2["send-message",{"content":"hi","conversationId":"c1","temp_id":"t1"}]"#,
        );
        let (name, args) = p.into_event().unwrap();
        assert_eq!(name, "send-message");
        assert_eq!(
            args,
            vec![json!({"temp_id":"t1","conversationId":"c1","content":"hi"})]
        );

        let p = round_trip(r#"217["join-room",{"conversationId":"c1"}]"#);
        assert_eq!(p.id, Some(17));
        assert_eq!(
            p,
            Packet::event(
                "/",
                "join-room",
                vec![json!({"conversationId":"c1"})],
                Some(17)
            )
        );
    }

    #[test]
    fn ack_answer() {
        let p = round_trip(r#"317[{"success":true}]"#);
        assert_eq!(p, Packet::ack("/", 17, vec![json!({"success": true})]));
    }

    #[test]
    fn disconnect() {
        assert_eq!(round_trip("1"), Packet::disconnect("/"));
        assert_eq!(round_trip("1/admin,"), Packet::disconnect("/admin"));
        // socketioxide and socket.io-parser accept a namespace without comma at the end.
        assert_eq!(
            Packet::decode("1/admin").unwrap(),
            Packet::disconnect("/admin")
        );
    }

    #[test]
    fn namespaced_event_and_ack() {
        let p = round_trip(r#"2/admin,["ev"]"#);
        assert_eq!(p.namespace, "/admin");
        assert_eq!(p.into_event().unwrap(), ("ev".to_owned(), vec![]));
        let p = round_trip(r#"2/admin,5["ev",1]"#);
        assert_eq!((p.namespace.as_str(), p.id), ("/admin", Some(5)));
        let p = round_trip(r#"4/nope,{"message":"Invalid namespace"}"#);
        assert_eq!(p.namespace, "/nope");
    }

    #[test]
    fn binary_event_is_collected() {
        let p = round_trip(r#"51-["ev",{"_placeholder":true,"num":0}]"#);
        assert_eq!((p.kind, p.attachments), (PacketType::BinaryEvent, 1));
        let mut asm = BinaryAssembler::default();
        assert!(asm.start(p.clone()).unwrap().is_none());
        assert!(asm.is_waiting());
        let done = asm.push(Bytes::from_static(b"\x01\x02")).unwrap().unwrap();
        assert_eq!(done.packet, p);
        assert_eq!(done.attachments, vec![Bytes::from_static(b"\x01\x02")]);
        let (name, args) = done.packet.into_event().unwrap();
        assert_eq!(name, "ev");
        assert_eq!(args[0]["_placeholder"], true);

        let p = round_trip(
            r#"62-/admin,3[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        );
        assert_eq!((p.attachments, p.id), (2, Some(3)));
        assert!(asm.start(p).unwrap().is_none());
        assert!(asm.push(Bytes::from_static(b"a")).unwrap().is_none());
        assert_eq!(
            asm.push(Bytes::from_static(b"b"))
                .unwrap()
                .unwrap()
                .attachments
                .len(),
            2
        );
    }

    #[test]
    fn assembler_rejects_out_of_order_frames() {
        let mut asm = BinaryAssembler::default();
        assert!(asm.push(Bytes::from_static(b"x")).is_err());
        let header = Packet::decode(r#"51-["ev",{"_placeholder":true,"num":0}]"#).unwrap();
        asm.start(header).unwrap();
        assert!(asm.start(Packet::decode(r#"2["other"]"#).unwrap()).is_err());
        // The stale header is dropped, so the stream can go on.
        assert!(!asm.is_waiting());
        let plain = asm.start(Packet::decode(r#"2["other"]"#).unwrap()).unwrap();
        assert!(plain.is_some());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "7",
            "9[]",
            "x",
            "é",
            "2",                                // event without payload
            "2{}",                              // event payload must be an array
            "2[]",                              // ... with a name
            "2[{}]",                            // ... first
            "2[\"ev\"",                         // truncated JSON
            "3[]",                              // ack without id
            "3",                                // ack without anything
            "1{}",                              // disconnect carries nothing
            "0[]",                              // connect payload must be an object
            "4",                                // connect_error needs a payload
            "5[\"ev\"]",                        // binary without count
            "5-[\"ev\"]",                       // binary with empty count
            "51[\"ev\"]",                       // binary count without dash
            "2/é,[\"é\"]x",                     // trailing garbage
            "299999999999999999999999[\"ev\"]", // ack id overflow
            "2/admin",                          // namespace then nothing
        ] {
            assert!(Packet::decode(bad).is_err(), "{bad:?} should fail");
        }
        // Multi-byte characters in namespaces and payloads decode fine.
        assert_eq!(Packet::decode("2/é,[\"é\"]").unwrap().namespace, "/é");
    }
}

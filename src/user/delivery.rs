//! The fields a user reads from a delivered message, decoded straight from
//! the frame (live) or from a REST answer's value (sync): one decoder, so
//! both paths read a message the same way.
//!
//! Lenient on purpose, as the checker is: an id may be a string or a number
//! (kept as its JSON text), a `seq` that is not an integer is no seq, and a
//! key given twice counts as its last value. Strings are borrowed from the
//! frame where they need no unescaping; the user copies only what it
//! records.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One message as a member received it.
#[derive(Debug, Default, PartialEq)]
pub struct Delivery<'a> {
    /// The server's id; a message without one is not a delivery.
    pub id: Option<Cow<'a, str>>,
    pub conversation: Option<Cow<'a, str>>,
    pub sender: Option<Cow<'a, str>>,
    pub seq: Option<i64>,
    pub created_at: Option<Cow<'a, str>>,
    pub temp_id: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Delivery<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DeliveryVisitor)
    }
}

struct DeliveryVisitor;

impl<'de> Visitor<'de> for DeliveryVisitor {
    type Value = Delivery<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = Delivery::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => m.id = Some(map.next_value::<IdText>()?.0),
                Key::Conversation => m.conversation = Some(map.next_value::<IdText>()?.0),
                Key::Sender => m.sender = Some(map.next_value::<IdText>()?.0),
                Key::Seq => m.seq = map.next_value::<Lenient>()?.int,
                Key::CreatedAt => m.created_at = map.next_value::<Lenient>()?.text,
                Key::TempId => m.temp_id = map.next_value::<Lenient>()?.text,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(m)
    }
}

/// The keys read, matched without copying them.
enum Key {
    Id,
    Conversation,
    Sender,
    Seq,
    CreatedAt,
    TempId,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "id" => Key::Id,
                    "conversationId" => Key::Conversation,
                    "senderId" => Key::Sender,
                    "seq" => Key::Seq,
                    "createdAt" => Key::CreatedAt,
                    "temp_id" => Key::TempId,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// An id as text: a string as is, anything else as its JSON.
struct IdText<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for IdText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Strings borrow; everything else is rare, so goes through a value.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an id")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Owned(Value::from(v).to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Owned(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(IdText(Cow::Borrowed("null")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let v = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(IdText(Cow::Owned(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(IdText(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value that counts only as a string or an integer (`as_str`,
/// `as_i64`); anything else is skipped.
#[derive(Default)]
struct Lenient<'a> {
    text: Option<Cow<'a, str>>,
    int: Option<i64>,
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient {
                    text: Some(Cow::Borrowed(v)),
                    int: None,
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient {
                    text: Some(Cow::Owned(v.to_owned())),
                    int: None,
                })
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient {
                    text: None,
                    int: Some(v),
                })
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                // `as_i64`'s rule: beyond i64 is no integer.
                Ok(Lenient {
                    text: None,
                    int: i64::try_from(v).ok(),
                })
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Lenient::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient::default())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn from_text(text: &str) -> Delivery<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_fields_borrowed_from_the_frame() {
        let m = from_text(
            r#"{"id":"m1","conversationId":"c1","senderId":"u2","content":"hi","seq":7,
               "createdAt":"2026-11-29T00:00:00Z","temp_id":"u2-1","extra":{"a":[1]}}"#,
        );
        assert!(matches!(m.id, Some(Cow::Borrowed("m1"))));
        assert_eq!(m.conversation.as_deref(), Some("c1"));
        assert_eq!(m.sender.as_deref(), Some("u2"));
        assert_eq!(m.seq, Some(7));
        assert!(matches!(
            m.created_at,
            Some(Cow::Borrowed("2026-11-29T00:00:00Z"))
        ));
        assert_eq!(m.temp_id.as_deref(), Some("u2-1"));
    }

    #[test]
    fn read_as_the_value_path_read_it() {
        // Numeric ids as their JSON text, odd seqs as none, the last of a
        // repeated key, escapes undone.
        let m = from_text(
            r#"{"id":12,"conversationId":3.5,"senderId":null,"seq":"9","createdAt":5,
               "temp_id":"a\"b","id":{"k":[1,true]}}"#,
        );
        assert_eq!(m.id.as_deref(), Some(r#"{"k":[1,true]}"#));
        assert_eq!(m.conversation.as_deref(), Some("3.5"));
        assert_eq!(m.sender.as_deref(), Some("null"));
        assert_eq!(m.seq, None);
        assert_eq!(m.created_at, None);
        assert_eq!(m.temp_id.as_deref(), Some("a\"b"));
        assert_eq!(from_text(r#"{"seq":18446744073709551615}"#).seq, None);
        assert_eq!(from_text(r#"{"seq":-3}"#).seq, Some(-3));
        assert_eq!(from_text("{}"), Delivery::default());
    }

    #[test]
    fn from_a_value_too_and_not_from_a_non_object() {
        let v = json!({"id": "m1", "seq": 2, "conversationId": 4});
        let m = Delivery::deserialize(&v).unwrap();
        assert_eq!(m.id.as_deref(), Some("m1"));
        assert_eq!(m.seq, Some(2));
        assert_eq!(m.conversation.as_deref(), Some("4"));
        assert!(Delivery::deserialize(&json!("m1")).is_err());
        assert!(serde_json::from_str::<Delivery>("[1]").is_err());
    }
}

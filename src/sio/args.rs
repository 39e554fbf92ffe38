//! An event's arguments, left as the server wrote them until someone reads
//! them.
//!
//! Why: a chat delivery is one small JSON object, and decoding it into a
//! `serde_json::Value` tree (a map, a `String` per key and per value) on the
//! connection task, then copying out the fields a user keeps on the user's
//! task, was about 20 of the 35 allocations per delivered message
//! (heaptrack, README Performance). The connection task now checks the
//! packet in one pass that allocates nothing but the event's name, and the
//! reader decodes the arguments once, straight into its own type
//! ([`Args::first`]) or into values ([`Args::into_values`]).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::PacketError;

/// The arguments of one server event, the recovery offset already taken off.
#[derive(Clone)]
pub struct Args(Repr);

#[derive(Clone)]
enum Repr {
    /// `text[json..]` is the packet's checked JSON array `[name, arg…]`; the
    /// arguments are the `count` elements after the name (a recovery offset
    /// after them is not one). `text` shares the frame's bytes: no copy.
    Raw {
        text: Utf8Bytes,
        json: usize,
        count: usize,
    },
    /// Already values: binary events, and drivers over other libraries.
    Values(Vec<Value>),
}

/// An EVENT packet's name and arguments, as [`scan_event`] found them.
pub(crate) struct ScannedEvent {
    pub name: String,
    pub args: Args,
    /// The last argument, a string, taken off as the recovery offset.
    pub offset: Option<String>,
}

impl Args {
    /// How many arguments.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Raw { count, .. } => *count,
            Repr::Values(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first argument decoded as `T`, borrowing from the frame where
    /// `T` borrows; `None` without arguments.
    pub fn first<'a, T: Deserialize<'a>>(&'a self) -> Option<Result<T, serde_json::Error>> {
        match &self.0 {
            Repr::Raw { count: 0, .. } => None,
            Repr::Raw { text, json, .. } => {
                let mut de = serde_json::Deserializer::from_str(&text.as_str()[*json..]);
                let first = de
                    .deserialize_seq(Second(PhantomData))
                    .and_then(|t| de.end().map(|()| t));
                Some(first)
            }
            Repr::Values(v) => v.first().map(T::deserialize),
        }
    }

    /// Every argument as a value.
    pub fn into_values(self) -> Vec<Value> {
        match self.0 {
            Repr::Raw { text, json, count } => {
                // Checked by `scan_event`: it parses.
                let mut all: Vec<Value> =
                    serde_json::from_str(&text.as_str()[json..]).unwrap_or_default();
                all.truncate(count + 1);
                if !all.is_empty() {
                    all.remove(0);
                }
                all
            }
            Repr::Values(v) => v,
        }
    }
}

impl From<Vec<Value>> for Args {
    fn from(v: Vec<Value>) -> Self {
        Args(Repr::Values(v))
    }
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone().into_values()).finish()
    }
}

impl PartialEq for Args {
    fn eq(&self, other: &Self) -> bool {
        self.clone().into_values() == other.clone().into_values()
    }
}

impl PartialEq<Vec<Value>> for Args {
    fn eq(&self, other: &Vec<Value>) -> bool {
        self.clone().into_values() == *other
    }
}

/// Checks `text[json..]`, an EVENT packet's JSON, as socket.io-parser
/// would (an array whose first element is the name), without building it.
/// `None` for a numeric event name (nothing we listen for). With
/// `take_offset`, a last argument that is a string is the recovery offset
/// (socket.io-client's rule) and not an argument.
pub(crate) fn scan_event(
    text: Utf8Bytes,
    json: usize,
    take_offset: bool,
) -> Result<Option<ScannedEvent>, PacketError> {
    let invalid = || PacketError::new("invalid payload for Event packet");
    let payload = &text.as_str()[json..];
    if payload.is_empty() {
        return Err(invalid());
    }
    let mut de = serde_json::Deserializer::from_str(payload);
    let scan = de
        .deserialize_any(Scan)
        .and_then(|s| de.end().map(|()| s))
        .map_err(|e| PacketError::new(format!("bad packet JSON: {e}")))?;
    let Some(Shape {
        name,
        count,
        last_str,
    }) = scan
    else {
        return Err(invalid());
    };
    let Some(name) = name else {
        return Ok(None);
    };
    let (count, offset) = match last_str {
        Some(offset) if take_offset => (count - 1, Some(offset)),
        _ => (count, None),
    };
    Ok(Some(ScannedEvent {
        name,
        args: Args(Repr::Raw { text, json, count }),
        offset,
    }))
}

/// What one pass over `[name, arg…]` learns.
struct Shape {
    /// `None` for a numeric name.
    name: Option<String>,
    /// Elements after the name.
    count: usize,
    /// The last element, when it is a string and not the name.
    last_str: Option<String>,
}

/// Visits the packet's JSON; `None` when it is not an array with a name.
struct Scan;

impl<'de> Visitor<'de> for Scan {
    type Value = Option<Shape>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(name) = seq.next_element_seed(NameSeed)? else {
            return Ok(None);
        };
        let Some(name) = name else {
            // Neither a string nor a number: not an event.
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let (mut count, mut last) = (0, None::<Cow<'de, str>>);
        while let Some(element) = seq.next_element_seed(MaybeStr)? {
            count += 1;
            last = element;
        }
        Ok(Some(Shape {
            name,
            count,
            last_str: last.map(Cow::into_owned),
        }))
    }

    // Anything but an array: consumed, then refused.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The name: `Some(Some(name))` for a string, `Some(None)` for a number
/// (valid, but not ours), `None` for anything else (invalid).
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Option<Option<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Option<Option<String>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Some(v.to_owned())))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// An element, kept only if it is a string (borrowed when unescaped).
struct MaybeStr;

impl<'de> DeserializeSeed<'de> for MaybeStr {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(MaybeStr)
    }
}

impl<'de> Visitor<'de> for MaybeStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Visits `[name, first, …]` and decodes `first` as `T`.
struct Second<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Second<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event array with an argument")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        seq.next_element::<IgnoredAny>()?;
        let first = seq
            .next_element::<T>()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scan(json: &str, take_offset: bool) -> Result<Option<ScannedEvent>, PacketError> {
        let text = Utf8Bytes::from(format!("42{json}"));
        scan_event(text, 2, take_offset)
    }

    #[test]
    fn name_and_arguments_without_a_value_tree() {
        let e = scan(r#"["message",{"id":"m1","n":2},"x"]"#, false)
            .unwrap()
            .unwrap();
        assert_eq!(e.name, "message");
        assert_eq!(e.args.len(), 2);
        assert_eq!(e.offset, None);
        assert_eq!(e.args, vec![json!({"id": "m1", "n": 2}), json!("x")]);
        #[derive(Deserialize, PartialEq, Debug)]
        struct M<'a> {
            id: &'a str,
        }
        assert_eq!(e.args.first::<M>().unwrap().unwrap(), M { id: "m1" });
    }

    #[test]
    fn a_last_string_is_the_offset_only_when_asked() {
        let e = scan(r#"["message",{"id":"m1"},"off\"set"]"#, true)
            .unwrap()
            .unwrap();
        assert_eq!(e.offset.as_deref(), Some("off\"set"));
        assert_eq!(e.args, vec![json!({"id": "m1"})]);
        let e = scan(r#"["message",{"id":"m1"}]"#, true).unwrap().unwrap();
        assert_eq!(e.offset, None);
        assert_eq!(e.args.len(), 1);
    }

    #[test]
    fn what_socket_io_parser_refuses_is_refused() {
        for bad in [
            "",
            "[]",
            "{}",
            r#""name""#,
            "[null]",
            "[[1]]",
            r#"["a","#,
            r#"["a"] x"#,
        ] {
            assert!(scan(bad, false).is_err(), "{bad:?}");
        }
        // A numeric name is valid and not ours.
        assert!(scan("[7,{}]", false).unwrap().is_none());
    }

    #[test]
    fn without_arguments_first_is_none() {
        let e = scan(r#"["ping"]"#, false).unwrap().unwrap();
        assert!(e.args.is_empty());
        assert!(e.args.first::<Value>().is_none());
        assert_eq!(e.args.into_values(), Vec::<Value>::new());
        let v = Args::from(vec![json!(1)]);
        assert_eq!(v.first::<u32>().unwrap().unwrap(), 1);
    }
}

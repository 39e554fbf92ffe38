//! Toxics: what a proxy does to the bytes it carries.
//!
//! Each toxic is one small file holding its Toxiproxy attributes (serde, so
//! the JSON is exactly Toxiproxy's) and one `run` over a [`Pipe`]: chunks in,
//! chunks out. A link chains the active toxics of one direction with small
//! channels, in the order they were added, like Toxiproxy's ToxicLink.

mod bandwidth;
mod latency;
mod limit_data;
pub mod pipe;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use std::sync::Arc;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use bandwidth::Bandwidth;
pub use latency::Latency;
pub use limit_data::LimitData;
pub use pipe::{Chunk, Flow, Pipe};
pub use reset_peer::ResetPeer;
pub use slicer::Slicer;
pub use slow_close::SlowClose;
pub use timeout::Timeout;

/// Which way the bytes go: `upstream` is client → server, `downstream` is
/// server → client (Toxiproxy's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn parse(text: &str) -> Option<Stream> {
        match text.to_ascii_lowercase().as_str() {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic type with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Latency(Latency),
    Bandwidth(Bandwidth),
    SlowClose(SlowClose),
    Timeout(Timeout),
    ResetPeer(ResetPeer),
    Slicer(Slicer),
    LimitData(LimitData),
}

/// Why a toxic description was refused; the API maps these to Toxiproxy's errors.
#[derive(Debug)]
pub enum KindError {
    UnknownType,
    BadAttributes(String),
}

impl Kind {
    /// Builds a toxic from its type name and `attributes` object; missing
    /// attributes are 0 and unknown ones are ignored, as Go's JSON decoding does.
    pub fn parse(type_name: &str, attributes: Value) -> Result<Kind, KindError> {
        fn attrs<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, KindError> {
            let v = if v.is_null() {
                Value::Object(Default::default())
            } else {
                v
            };
            serde_json::from_value(v).map_err(|e| KindError::BadAttributes(e.to_string()))
        }
        Ok(match type_name {
            "latency" => Kind::Latency(attrs(attributes)?),
            "bandwidth" => Kind::Bandwidth(attrs(attributes)?),
            "slow_close" => Kind::SlowClose(attrs(attributes)?),
            "timeout" => Kind::Timeout(attrs(attributes)?),
            "reset_peer" => Kind::ResetPeer(attrs(attributes)?),
            "slicer" => Kind::Slicer(attrs(attributes)?),
            "limit_data" => Kind::LimitData(attrs(attributes)?),
            _ => return Err(KindError::UnknownType),
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency(_) => "latency",
            Kind::Bandwidth(_) => "bandwidth",
            Kind::SlowClose(_) => "slow_close",
            Kind::Timeout(_) => "timeout",
            Kind::ResetPeer(_) => "reset_peer",
            Kind::Slicer(_) => "slicer",
            Kind::LimitData(_) => "limit_data",
        }
    }

    pub fn attributes(&self) -> Value {
        let v = match self {
            Kind::Latency(a) => serde_json::to_value(a),
            Kind::Bandwidth(a) => serde_json::to_value(a),
            Kind::SlowClose(a) => serde_json::to_value(a),
            Kind::Timeout(a) => serde_json::to_value(a),
            Kind::ResetPeer(a) => serde_json::to_value(a),
            Kind::Slicer(a) => serde_json::to_value(a),
            Kind::LimitData(a) => serde_json::to_value(a),
        };
        v.expect("toxic attributes are plain integers")
    }

    async fn run(&self, pipe: &mut Pipe, memory: &mut Memory, rng: &mut StdRng) -> Flow {
        let result = match self {
            Kind::Latency(t) => t.run(pipe, rng).await,
            Kind::Bandwidth(t) => t.run(pipe).await,
            Kind::SlowClose(t) => t.run(pipe).await,
            Kind::Timeout(t) => t.run(pipe).await,
            Kind::ResetPeer(t) => t.run(pipe).await,
            Kind::Slicer(t) => t.run(pipe, rng).await,
            Kind::LimitData(t) => t.run(pipe, memory).await,
        };
        match result {
            Err(flow) => flow,
            Ok(never) => match never {},
        }
    }
}

/// One toxic as the API knows it. `id` is new for every create, kept by
/// updates, so links can tell "same toxic, new attributes" from "new toxic".
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub id: u64,
    pub name: String,
    pub stream: Stream,
    pub toxicity: f32,
    pub kind: Kind,
}

/// The toxics of one proxy, in the order they were added.
pub type ToxicList = Arc<Vec<Arc<Toxic>>>;

/// What a toxic remembers about one connection across chain rebuilds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub bytes: u64,
}

/// One toxic running on one connection.
pub struct Stage {
    pub toxic: Arc<Toxic>,
    pub memory: Memory,
    pub rng: StdRng,
}

impl Stage {
    /// Runs until stopped or done. The pipe comes back only when stopped,
    /// since only then can it hold data; otherwise dropping it here is what
    /// tells the next stage that the stream ended.
    pub async fn run(mut self, mut pipe: Pipe) -> (Stage, Flow, Option<Pipe>) {
        let flow = self
            .toxic
            .kind
            .run(&mut pipe, &mut self.memory, &mut self.rng)
            .await;
        let pipe = (flow == Flow::Stopped).then_some(pipe);
        (self, flow, pipe)
    }
}

//! `limit_data`: passes the first `bytes` bytes of the connection in this
//! direction, then closes the connection.
//!
//! The count lives in the link's [`Memory`], not in the running toxic, so it
//! survives other toxics being added or removed (Toxiproxy's stateful toxic).

use serde::{Deserialize, Serialize};

use super::Memory;
use super::pipe::{Flow, Pipe, Run};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitData {
    pub bytes: i64,
}

impl LimitData {
    pub(super) async fn run(&self, pipe: &mut Pipe, memory: &mut Memory) -> Run {
        let limit = self.bytes.max(0) as u64;
        loop {
            let mut chunk = pipe.recv().await?;
            let room = limit.saturating_sub(memory.bytes) as usize;
            chunk.data.truncate(room);
            if !chunk.data.is_empty() {
                memory.bytes += chunk.data.len() as u64;
                pipe.send(chunk).await?;
            }
            if memory.bytes >= limit {
                return Err(Flow::Close);
            }
        }
    }
}

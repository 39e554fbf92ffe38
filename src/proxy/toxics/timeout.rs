//! `timeout`: a blackhole. Data is swallowed; after `timeout` ms with no
//! data the whole connection is closed, and with `timeout` 0 it never is.
//!
//! As in Toxiproxy the clock restarts with every swallowed chunk, so it is an
//! idle timeout: a peer that keeps talking (e.g. Engine.IO pings) keeps the
//! connection open but deaf.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::pipe::{Flow, Pipe, Run, millis};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeout {
    pub timeout: i64,
}

impl Timeout {
    pub(super) async fn run(&self, pipe: &mut Pipe) -> Run {
        loop {
            let deadline = (self.timeout > 0).then(|| Instant::now() + millis(self.timeout));
            if pipe.recv_until(deadline).await?.is_none() {
                return Err(Flow::Close);
            }
        }
    }
}

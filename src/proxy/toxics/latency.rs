//! `latency`: every chunk leaves `latency` ± `jitter` ms after it was read.
//!
//! The delay counts from the socket read, not from when this stage got the
//! chunk, so back-to-back chunks are delayed side by side rather than one
//! after another: a long pipe, not a queue of sleepers (Toxiproxy does the same).

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use super::pipe::{Pipe, Run, millis};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub latency: i64,
    pub jitter: i64,
}

impl Latency {
    pub(super) async fn run(&self, pipe: &mut Pipe, rng: &mut StdRng) -> Run {
        loop {
            let chunk = pipe.recv().await?;
            let at = chunk.at + self.delay(rng);
            pipe.send_at(at, chunk).await?;
        }
    }

    fn delay(&self, rng: &mut StdRng) -> Duration {
        let mut ms = self.latency;
        if self.jitter > 0 {
            ms += rng.random_range(-self.jitter..self.jitter);
        }
        millis(ms)
    }
}

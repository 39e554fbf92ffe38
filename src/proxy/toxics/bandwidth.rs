//! `bandwidth`: passes data at no more than `rate` KB/s.
//!
//! Each chunk waits until the link would have finished sending everything
//! before it; big chunks go out in 100 ms slices so a slow rate trickles
//! rather than stalls and bursts (Toxiproxy's scheme).

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::pipe::{Chunk, Pipe, Run};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bandwidth {
    /// KB/s, i.e. bytes per millisecond.
    pub rate: i64,
}

impl Bandwidth {
    pub(super) async fn run(&self, pipe: &mut Pipe) -> Run {
        // When the simulated wire is free again.
        let mut free_at = Instant::now();
        loop {
            let mut chunk = pipe.recv().await?;
            if self.rate <= 0 {
                pipe.send(chunk).await?;
                continue;
            }
            free_at = free_at.max(Instant::now());
            let slice = (self.rate as usize).saturating_mul(100);
            while chunk.data.len() > slice {
                let piece = Chunk {
                    data: chunk.data.split_to(slice),
                    at: chunk.at,
                };
                free_at += Duration::from_millis(100);
                if let Err(flow) = pipe.send_at(free_at, piece).await {
                    return Err(pipe.keep(flow, chunk));
                }
            }
            free_at += Duration::from_micros(chunk.data.len() as u64 * 1000 / self.rate as u64);
            pipe.send_at(free_at, chunk).await?;
        }
    }
}

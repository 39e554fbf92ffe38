//! `slicer`: cuts every chunk into pieces of about `average_size` ±
//! `size_variation` bytes, `delay` µs apart, the way a real network splits
//! writes; it shakes out readers that assume one write is one read.

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use super::pipe::{Chunk, Pipe, Run};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Slicer {
    pub average_size: i64,
    pub size_variation: i64,
    /// Microseconds between pieces.
    pub delay: i64,
}

impl Slicer {
    pub(super) async fn run(&self, pipe: &mut Pipe, rng: &mut StdRng) -> Run {
        loop {
            let mut chunk = pipe.recv().await?;
            if self.average_size <= 0 {
                pipe.send(chunk).await?;
                continue;
            }
            let mut cuts = Vec::new();
            self.cut(0, chunk.data.len(), rng, &mut cuts);
            let mut done = 0;
            for end in cuts {
                let piece = Chunk {
                    data: chunk.data.split_to(end - done),
                    at: chunk.at,
                };
                done = end;
                if let Err(flow) = pipe.send(piece).await {
                    return Err(pipe.keep(flow, chunk));
                }
                let pause = Duration::from_micros(self.delay.max(0) as u64);
                if let Err(flow) = pipe.sleep(pause).await {
                    return Err(pipe.keep(flow, chunk));
                }
            }
        }
    }

    /// Ends of the pieces of `start..end`, halving with a random wobble until
    /// every piece is within the variation of the average (Toxiproxy's
    /// recursion, which avoids a small leftover piece at the end).
    fn cut(&self, start: usize, end: usize, rng: &mut StdRng, cuts: &mut Vec<usize>) {
        let len = (end - start) as i64;
        if len - self.average_size <= self.size_variation.max(0) || len < 2 {
            cuts.push(end);
            return;
        }
        let variation = self.size_variation.max(0);
        let wobble = if variation > 0 {
            rng.random_range(-variation..variation)
        } else {
            0
        };
        let mid =
            (start as i64 + len / 2 + wobble).clamp(start as i64 + 1, end as i64 - 1) as usize;
        self.cut(start, mid, rng, cuts);
        self.cut(mid, end, rng, cuts);
    }
}

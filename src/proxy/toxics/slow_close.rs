//! `slow_close`: data passes untouched, but the close is held back `delay` ms.

use serde::{Deserialize, Serialize};

use super::pipe::{Flow, Pipe, Run, millis};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowClose {
    pub delay: i64,
}

impl SlowClose {
    pub(super) async fn run(&self, pipe: &mut Pipe) -> Run {
        loop {
            match pipe.recv().await {
                Ok(chunk) => pipe.send(chunk).await?,
                Err(Flow::Ended) => {
                    pipe.sleep(millis(self.delay)).await?;
                    return Err(Flow::Ended);
                }
                Err(flow) => return Err(flow),
            }
        }
    }
}

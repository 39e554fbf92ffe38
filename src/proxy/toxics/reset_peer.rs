//! `reset_peer`: the connection dies with a TCP RST, `timeout` ms after the
//! first data (or end of data) reaches this toxic.
//!
//! Toxiproxy starts the clock at the first chunk, not when the toxic is
//! added, and drops that chunk; we do the same so a harness tuned against the
//! real thing sees the same timing. The RST itself (SO_LINGER 0 on both
//! sockets) is done by the link when it sees [`Flow::Reset`].

use serde::{Deserialize, Serialize};

use super::pipe::{Flow, Pipe, Run, millis};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResetPeer {
    pub timeout: i64,
}

impl ResetPeer {
    pub(super) async fn run(&self, pipe: &mut Pipe) -> Run {
        match pipe.recv().await {
            Ok(_) | Err(Flow::Ended) => {}
            Err(flow) => return Err(flow),
        }
        pipe.sleep(millis(self.timeout)).await?;
        Err(Flow::Reset)
    }
}

//! End-to-end tests of the client against servers started in-process on
//! `127.0.0.1:0`: a real socketioxide server (what the harness targets) and a
//! scripted fake WebSocket server (for what a well-behaved server never does:
//! going silent, announcing ack ids, connection-state recovery).

mod fake_server;
mod real_server;

use std::time::Duration;

use super::{CloseReason, Inbox, Incoming};

/// Next incoming item, failing the test after `secs` seconds.
async fn next(incoming: &mut Inbox, secs: u64) -> Incoming {
    tokio::time::timeout(Duration::from_secs(secs), incoming.recv())
        .await
        .expect("timed out waiting for an incoming item")
        .expect("incoming stream ended without Closed")
}

/// Skip events until the close; returns its reason.
async fn closed(incoming: &mut Inbox, secs: u64) -> CloseReason {
    loop {
        if let Incoming::Closed(reason) = next(incoming, secs).await {
            return reason;
        }
    }
}

//! The drain: after the chat, wait for what is still owed, within a bound.

use std::time::Duration;

use tokio::sync::watch;

use crate::user::stats::Stats;

/// Waits until every user is connected (or gave up), every outbox is empty
/// and every acked message reached its audience, or the bound passes; true
/// when it drained fully.
pub(super) async fn drain(
    stats: &Stats,
    ledger: &crate::user::ledger::Ledger,
    interrupted: &mut watch::Receiver<bool>,
    bound: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    let mut quiet = false;
    loop {
        let s = stats.snapshot();
        // Users still reconnecting may yet sync what they missed; those that
        // gave up (reconnect_failed) will not.
        let reconnecting = s.offline - s.reconnect_failed as i64;
        // Quiet twice in a row, 50 ms apart: a send armed just before the
        // drain began must get the chance to show up in the outbox.
        if s.outbox <= 0 && ledger.owed() <= 0 && reconnecting <= 0 {
            if quiet {
                return true;
            }
            quiet = true;
        } else {
            quiet = false;
        }
        if tokio::time::Instant::now() >= deadline || *interrupted.borrow() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

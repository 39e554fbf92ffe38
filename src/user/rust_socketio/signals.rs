//! What the library's callbacks tell the driver, and the link state they
//! flip at once: the callbacks run on the library's task, so they only send
//! here and never wait on the user.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ::rust_socketio::Payload;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::user::task_death::TaskDeath;

/// What the library's callbacks report, in the order they ran.
pub(super) enum Signal {
    /// The server accepted the CONNECT (`open`).
    Open,
    /// The server sent DISCONNECT (`41`) (`close`).
    ServerDisconnect,
    /// The `error` callback.
    Error(String),
    Event {
        name: String,
        args: Vec<Value>,
    },
    /// The library is about to make a reconnection attempt and waits for
    /// the auth to present.
    Reconnecting(oneshot::Sender<Option<Value>>),
    /// The library's task panicked (from the panic hook, see `task_death`).
    Died(String),
}

/// Link state the callbacks update at once, even while the user is busy.
pub(super) struct Shared {
    pub(super) up: AtomicBool,
    /// Bumped on every loss the callbacks see; waiting acks fail when it moves.
    pub(super) losses: watch::Sender<u64>,
    /// The library's task (where the callbacks run) panicking: the client
    /// is deaf from then on and says nothing, so this is the only sign.
    pub(super) death: Arc<TaskDeath>,
}

impl Shared {
    /// Weak: only the library's callbacks may keep `signals` open, so
    /// that their loss still reads as the channel closing.
    pub(super) fn new(signals: &mpsc::UnboundedSender<Signal>) -> Arc<Shared> {
        let tx = signals.downgrade();
        Arc::new(Shared {
            up: AtomicBool::new(false),
            losses: watch::Sender::new(0),
            death: TaskDeath::new(move |why| {
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.send(Signal::Died(why));
                }
            }),
        })
    }

    pub(super) fn lost(&self) {
        if self.up.swap(false, Ordering::AcqRel) {
            self.losses.send_modify(|n| *n += 1);
        }
    }
}

/// How the first answer to a CONNECT looked.
pub(super) enum Answer {
    Open,
    Refused(String),
    Reconnecting(oneshot::Sender<Option<Value>>),
    Gone,
}

pub(super) async fn answer(rx: &mut mpsc::UnboundedReceiver<Signal>) -> Answer {
    loop {
        match rx.recv().await {
            Some(Signal::Open) => return Answer::Open,
            Some(Signal::Error(e)) if is_refusal(&e) => return Answer::Refused(e),
            Some(Signal::Reconnecting(reply)) => return Answer::Reconnecting(reply),
            Some(_) => {}
            None => return Answer::Gone,
        }
    }
}

/// The library reports CONNECT_ERROR only through its `error` callback.
pub(super) fn is_refusal(error: &str) -> bool {
    error.contains("ConnectError")
}

/// A payload's JSON arguments (an ACK's arrive as one array inside the
/// library's `Text`).
pub(super) fn args_of(p: Payload) -> Vec<Value> {
    match p {
        Payload::Text(mut v) => {
            if v.len() == 1 && v[0].is_array() {
                match v.pop() {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                }
            } else {
                v
            }
        }
        Payload::Binary(b) => vec![Value::String(format!("<{} bytes>", b.len()))],
        #[allow(deprecated)]
        Payload::String(s) => vec![serde_json::from_str(&s).unwrap_or(Value::String(s))],
    }
}

//! The one shape every toxic has: chunks in, chunks out, plus a stop signal.
//!
//! Toxics are written as straight-line async code over a [`Pipe`]; every
//! wait goes through a `Pipe` method so that a toxic can be stopped at any
//! await point when the proxy's toxic list changes, without losing data: a
//! chunk the toxic was holding is parked in [`Pipe::held`] and the link
//! writes it out before anything newer.

use std::convert::Infallible;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Bytes read from one socket in one read, stamped with when they were read
/// (latency is measured from the read, as Toxiproxy does).
#[derive(Debug)]
pub struct Chunk {
    pub data: Bytes,
    pub at: Instant,
}

/// How a toxic stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The input ended (or nobody reads the output any more): pass the end on.
    Ended,
    /// The toxic list changed; whatever the toxic held is in [`Pipe::held`].
    Stopped,
    /// Let what already passed drain, then close the whole connection.
    Close,
    /// Drop everything and reset both sockets (TCP RST).
    Reset,
}

/// What a toxic returns: it only ever returns through `Err(flow)`, which
/// lets it use `?` on every pipe operation.
pub type Run = Result<Infallible, Flow>;

pub struct Pipe {
    pub(crate) input: mpsc::Receiver<Chunk>,
    pub(crate) output: mpsc::Sender<Chunk>,
    stop: CancellationToken,
    /// Chunks taken from the input but not passed on when the toxic was stopped.
    pub held: Vec<Chunk>,
}

impl Pipe {
    pub(crate) fn new(
        input: mpsc::Receiver<Chunk>,
        output: mpsc::Sender<Chunk>,
        stop: CancellationToken,
    ) -> Pipe {
        Pipe {
            input,
            output,
            stop,
            held: Vec::new(),
        }
    }

    /// The next chunk; `Err(Ended)` when the input is done.
    pub async fn recv(&mut self) -> Result<Chunk, Flow> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Err(Flow::Stopped),
            c = self.input.recv() => c.ok_or(Flow::Ended),
        }
    }

    /// The next chunk, or `None` once `deadline` passes (never, if `None`).
    pub async fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Chunk>, Flow> {
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Err(Flow::Stopped),
            c = self.input.recv() => c.map(Some).ok_or(Flow::Ended),
            _ = timer => Ok(None),
        }
    }

    /// Passes a chunk on, waiting while the next stage is full.
    pub async fn send(&mut self, chunk: Chunk) -> Result<(), Flow> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => {
                self.held.push(chunk);
                Err(Flow::Stopped)
            }
            permit = self.output.reserve() => match permit {
                Ok(permit) => {
                    permit.send(chunk);
                    Ok(())
                }
                Err(_) => Err(Flow::Ended),
            },
        }
    }

    /// Passes a chunk on no earlier than `at`.
    pub async fn send_at(&mut self, at: Instant, chunk: Chunk) -> Result<(), Flow> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => {
                self.held.push(chunk);
                return Err(Flow::Stopped);
            }
            _ = tokio::time::sleep_until(at) => {}
        }
        self.send(chunk).await
    }

    pub async fn sleep(&mut self, duration: Duration) -> Result<(), Flow> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Err(Flow::Stopped),
            _ = tokio::time::sleep(duration) => Ok(()),
        }
    }

    /// Keeps a chunk that a failed send left behind (e.g. the rest of a
    /// sliced chunk), so a stop loses nothing.
    pub fn keep(&mut self, flow: Flow, chunk: Chunk) -> Flow {
        if flow == Flow::Stopped && !chunk.data.is_empty() {
            self.held.push(chunk);
        }
        flow
    }
}

/// Milliseconds from a Toxiproxy attribute; negative values mean zero.
pub fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

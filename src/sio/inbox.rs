//! The connection task's one-way mailbox to its user: what the server sent
//! ([`Incoming`]), in order, then one `Closed`.
//!
//! Not a tokio channel, for memory: a tokio mpsc channel costs about
//! 780 bytes for as long as it lives (cache-padded sender and receiver
//! halves, and a first block of 32 slots), which was the largest single
//! item of a connected user's heap after its task (heaptrack, README
//! Performance, ninth pass). One producer, one consumer and an unbounded
//! queue need much less: a lock around a small queue of boxes, a waker and
//! two flags, about 120 bytes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::mpsc::error::TryRecvError;

use super::client::Incoming;

/// State shared by the two ends.
#[derive(Debug, Default)]
struct Mailbox {
    /// Boxed, so a queue that once held a few items keeps a few pointers'
    /// worth of capacity, not a few 88-byte `Incoming`s'.
    queue: Mutex<VecDeque<Box<Incoming>>>,
    /// The user's task, parked on an empty queue.
    waker: AtomicWaker,
    /// The connection task is gone: nothing more will come.
    sender_gone: AtomicBool,
    /// The user stopped listening: what comes now is dropped, not kept.
    receiver_gone: AtomicBool,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Box<Incoming>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user's end.
#[derive(Debug)]
pub struct Inbox(Arc<Mailbox>);

/// The connection task's end; dropping it ends the inbox.
#[derive(Debug)]
pub(crate) struct InboxSender(Arc<Mailbox>);

/// A new mailbox: the connection task's end and the user's.
pub(crate) fn inbox() -> (InboxSender, Inbox) {
    let shared = Arc::new(Mailbox::default());
    (InboxSender(shared.clone()), Inbox(shared))
}

impl InboxSender {
    /// Queues `item` and wakes the user; dropped if the user stopped listening.
    pub fn send(&self, item: Incoming) {
        if self.0.receiver_gone.load(Ordering::Acquire) {
            return;
        }
        self.0.lock().push_back(Box::new(item));
        self.0.waker.wake();
    }
}

impl Drop for InboxSender {
    fn drop(&mut self) {
        self.0.sender_gone.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl Inbox {
    /// The next item; `None` once the connection task is gone.
    pub async fn recv(&mut self) -> Option<Incoming> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next item; `None` once the connection task is gone.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        match self.try_recv() {
            Ok(item) => return Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.0.waker.register(cx.waker());
        // Again, after registering: an item (or the end) that arrived in
        // between would otherwise wake nobody.
        match self.try_recv() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// The next item if one is already there.
    pub fn try_recv(&mut self) -> Result<Incoming, TryRecvError> {
        // The flag is read before the queue: a sender that queued its last
        // item and then went is seen with that item still to take.
        let gone = self.0.sender_gone.load(Ordering::Acquire);
        match self.0.lock().pop_front() {
            Some(item) => Ok(*item),
            None if gone => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.0.receiver_gone.store(true, Ordering::Release);
        self.0.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sio::CloseReason;

    fn closed() -> Incoming {
        Incoming::Closed(CloseReason::EngineClose)
    }

    #[tokio::test]
    async fn items_in_order_then_none_once_the_sender_is_gone() {
        let (tx, mut rx) = inbox();
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while let Some(item) = rx.recv().await {
                assert!(matches!(item, Incoming::Closed(_)));
                n += 1;
            }
            n
        });
        for _ in 0..1000 {
            tx.send(closed());
            tokio::task::yield_now().await;
        }
        drop(tx);
        assert_eq!(reader.await.unwrap(), 1000, "every item, then the end");
    }

    #[test]
    fn what_was_queued_before_the_sender_went_is_still_read() {
        let (tx, mut rx) = inbox();
        tx.send(closed());
        drop(tx);
        assert!(rx.try_recv().is_ok());
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }

    #[test]
    fn nothing_is_kept_for_a_receiver_that_is_gone() {
        let (tx, rx) = inbox();
        let shared = rx.0.clone();
        drop(rx);
        tx.send(closed());
        assert!(shared.lock().is_empty());
    }

    #[test]
    fn far_smaller_than_a_tokio_channel() {
        // The mailbox itself; a tokio unbounded channel is ~780 bytes.
        assert!(std::mem::size_of::<Mailbox>() <= 128);
    }
}

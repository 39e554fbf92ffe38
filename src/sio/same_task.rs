//! Connections polled inside the task of whoever opened them.
//!
//! A connection is a future of its own (`conn.rs`). Spawned as a task, every
//! delivered message crosses tasks twice over: the socket wakes the
//! connection's task, whose channel send then wakes the user's task, and
//! each wake is a trip through tokio's scheduler (its queues, and at times a
//! futex to rouse the other worker). [`with_connections`] runs a future (a
//! simulated user) so that every connection it opens is polled inside the
//! same task, beside it: one task per user instead of two.
//!
//! Each part (the main future and each connection) gets a waker of its own
//! that only raises its flag, so a wake polls only what was woken, and a
//! wake from one part to another during a poll (the connection handing over
//! a message, the user queueing an emit) is taken in the same poll instead
//! of scheduling the task again.
//!
//! Outside [`with_connections`] (the sio tests, anything else that connects)
//! a connection is spawned as a task, as before.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// A connection's future, as `conn.rs` makes it.
pub(crate) type ConnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Rounds of polling in one poll of the task before it yields: a part that
/// keeps waking itself (tokio's cooperative budget ran out) must not spin.
const ROUNDS: usize = 8;

thread_local! {
    /// Set only while a [`with_connections`] main future is polled on this
    /// thread: the connections it opens in that poll land here.
    static ADOPTING: RefCell<Option<Vec<ConnFuture>>> = const { RefCell::new(None) };
}

/// Runs a connection: in the task of the [`with_connections`] future being
/// polled right now, or as a task of its own.
pub(crate) fn spawn(conn: ConnFuture) {
    let unadopted = ADOPTING.with(|a| match a.borrow_mut().as_mut() {
        Some(adopted) => {
            adopted.push(conn);
            None
        }
        None => Some(conn),
    });
    if let Some(conn) = unadopted {
        tokio::spawn(conn);
    }
}

/// Runs `main`, and every connection it opens, in the task that polls the
/// returned future. When `main` ends, connections still closing (a graceful
/// close takes up to a second) go on as tasks of their own, as they would
/// have had they been spawned.
pub fn with_connections<F>(main: F) -> SameTask<F>
where
    F: Future<Output = ()> + Send,
{
    let shared = Arc::new(Shared::default());
    let main_flag = Flag::new(&shared);
    SameTask {
        main: Some(Box::pin(main)),
        main_waker: Waker::from(main_flag.clone()),
        main_flag,
        conns: Vec::new(),
        shared,
    }
}

/// The future of [`with_connections`].
pub struct SameTask<F> {
    /// Boxed so that `SameTask` is `Unpin` and needs no pin projection; one
    /// allocation per user, for its life.
    main: Option<Pin<Box<F>>>,
    main_flag: Arc<Flag>,
    /// Made once: building a waker per poll would be an allocation each.
    main_waker: Waker,
    conns: Vec<Part>,
    shared: Arc<Shared>,
}

/// One adopted connection.
struct Part {
    future: ConnFuture,
    flag: Arc<Flag>,
    waker: Waker,
}

/// What the parts' wakers share.
#[derive(Default)]
struct Shared {
    /// The task's own waker, woken when a part is woken between polls.
    task: AtomicWaker,
    /// True while the task is being polled: a part woken then is seen by
    /// the poll's next round, and the task need not be scheduled again.
    polling: AtomicBool,
}

/// A part's waker: raises the part's flag.
struct Flag {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Flag {
    fn new(shared: &Arc<Shared>) -> Arc<Flag> {
        Arc::new(Flag {
            // A new part is polled at once: that is how it registers its wakers.
            woken: AtomicBool::new(true),
            shared: shared.clone(),
        })
    }

    fn take(&self) -> bool {
        self.woken.swap(false, SeqCst)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst on both sides (here: flag, then `polling`; the poll:
        // `polling`, then the flags) so that a wake racing the end of a
        // poll is either seen by it or wakes the task.
        self.woken.store(true, SeqCst);
        if !self.shared.polling.load(SeqCst) {
            self.shared.task.wake();
        }
    }
}

/// Puts back what `ADOPTING` held before, also when the poll panics (a
/// stale list would swallow the connections of other tasks on this thread).
struct Adopting(Option<Vec<ConnFuture>>);

impl Adopting {
    fn begin() -> Adopting {
        Adopting(ADOPTING.with(|a| a.replace(Some(Vec::new()))))
    }

    fn end(mut self) -> Vec<ConnFuture> {
        let before = self.0.take();
        ADOPTING.with(|a| a.replace(before)).unwrap_or_default()
    }
}

impl Drop for Adopting {
    fn drop(&mut self) {
        let before = self.0.take();
        ADOPTING.with(|a| a.replace(before));
    }
}

impl<F: Future<Output = ()> + Send> Future for SameTask<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.shared.task.register(cx.waker());
        for _ in 0..ROUNDS {
            this.shared.polling.store(true, SeqCst);
            if this.main.is_some() && this.main_flag.take() {
                this.poll_main();
            }
            let mut i = 0;
            while i < this.conns.len() {
                let part = &mut this.conns[i];
                if part.flag.take()
                    && part
                        .future
                        .as_mut()
                        .poll(&mut Context::from_waker(&part.waker))
                        .is_ready()
                {
                    this.conns.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            this.shared.polling.store(false, SeqCst);
            if this.main.is_none() {
                // Connections still closing go on without the user.
                for part in this.conns.drain(..) {
                    tokio::spawn(part.future);
                }
                return Poll::Ready(());
            }
            if !this.main_flag.woken.load(SeqCst)
                && !this.conns.iter().any(|p| p.flag.woken.load(SeqCst))
            {
                return Poll::Pending;
            }
        }
        // Still woken after every round: let other tasks run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<F: Future<Output = ()> + Send> SameTask<F> {
    fn poll_main(&mut self) {
        let Some(main) = self.main.as_mut() else {
            return;
        };
        let adopting = Adopting::begin();
        let done = main
            .as_mut()
            .poll(&mut Context::from_waker(&self.main_waker))
            .is_ready();
        for future in adopting.end() {
            let flag = Flag::new(&self.shared);
            self.conns.push(Part {
                waker: Waker::from(flag.clone()),
                flag,
                future,
            });
        }
        if done {
            self.main = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// Opens a "connection" that reports the task it runs in.
    fn open(report: oneshot::Sender<Option<tokio::task::Id>>) {
        spawn(Box::pin(async move {
            let _ = report.send(tokio::task::try_id());
        }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_opened_inside_runs_in_the_same_task_and_outside_in_its_own() {
        let (tx, rx) = oneshot::channel();
        let main_id = Arc::new(Mutex::new(None));
        let id = main_id.clone();
        tokio::spawn(with_connections(async move {
            *id.lock().unwrap() = tokio::task::try_id();
            open(tx);
            // Stay alive until the connection ran.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }))
        .await
        .unwrap();
        let conn_id = rx.await.unwrap();
        assert!(conn_id.is_some());
        assert_eq!(conn_id, *main_id.lock().unwrap());

        let (tx, rx) = oneshot::channel();
        let here = tokio::spawn(async move {
            open(tx);
            tokio::task::try_id()
        })
        .await
        .unwrap();
        let conn_id = rx.await.unwrap();
        assert!(conn_id.is_some());
        assert_ne!(conn_id, here, "outside with_connections it is a task of its own");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_wake_each_other_and_are_woken_from_other_threads() {
        // main -> conn over one channel, conn -> main over another, and a
        // thread outside the runtime starts it all.
        let (start_tx, start_rx) = std::sync::mpsc::channel::<oneshot::Sender<u32>>();
        let (to_conn, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let (to_main, mut main_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let (go_tx, go_rx) = oneshot::channel::<u32>();
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(with_connections(async move {
            spawn(Box::pin(async move {
                while let Some(n) = conn_rx.recv().await {
                    if to_main.send(n + 1).is_err() {
                        break;
                    }
                }
            }));
            let mut n = go_rx.await.unwrap();
            for _ in 0..1000 {
                to_conn.send(n).unwrap();
                n = main_rx.recv().await.unwrap();
            }
            done_tx.send(n).unwrap();
        }));
        std::thread::spawn(move || {
            let go: oneshot::Sender<u32> = start_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            go.send(7).unwrap();
        });
        start_tx.send(go_tx).unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .expect("the ping-pong finished")
            .unwrap();
        assert_eq!(n, 1007);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_outlive_the_main_future_as_tasks_of_their_own() {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(with_connections(async move {
            spawn(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(());
            }));
        }))
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the connection finished after its user")
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_part_that_keeps_waking_itself_lets_other_tasks_run() {
        // On one thread, the flag is raised only if the task yields between
        // rounds; one that spun inside its poll would hang here.
        let raised = Arc::new(AtomicBool::new(false));
        let seen = raised.clone();
        let spinning = tokio::spawn(with_connections(async move {
            std::future::poll_fn(|cx| {
                if seen.load(SeqCst) {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
        }));
        tokio::spawn(async move { raised.store(true, SeqCst) });
        spinning.await.unwrap();
    }
}

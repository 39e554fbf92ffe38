//! Learning that a task we did not spawn has panicked.
//!
//! rust_socketio spawns one task per client that reads the socket and runs
//! every callback; we get no handle to it. When it panics (its ack-removal
//! bug, docs/rust_socketio-findings.md section 4) the client goes deaf with
//! no callback, no error and no reconnection, and the verdict shows that
//! user's losses with nothing to explain them. A panic hook (chained to the
//! one before it, so the message is still printed) looks up the panicking
//! task's id among the tasks registered here and tells their [`TaskDeath`].
//!
//! A task registers itself from inside (the library's callbacks run in its
//! task), so the id is exact: no guessing from threads or timing. A hook set
//! later by someone else without chaining ours turns this off, and nothing
//! else changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, Weak};

use tokio::task::Id;

/// The tasks being watched. Weak: a client dropped with its task alive
/// must not be kept for the rest of the run.
static TASKS: Mutex<Option<HashMap<Id, Weak<TaskDeath>>>> = Mutex::new(None);

static HOOK: Once = Once::new();

/// Whom to tell when a watched task dies.
pub struct TaskDeath {
    /// Called once, from the panic hook, with the panic's message and place.
    tell: Box<dyn Fn(String) + Send + Sync>,
}

impl TaskDeath {
    /// `tell` runs inside the panic hook: it must only hand the message on
    /// (a channel send), never block or panic.
    pub fn new(tell: impl Fn(String) + Send + Sync + 'static) -> Arc<TaskDeath> {
        HOOK.call_once(install_hook);
        Arc::new(TaskDeath {
            tell: Box::new(tell),
        })
    }

    /// Watches the task this is called from; outside a task, nothing.
    pub fn watch_current_task(self: &Arc<Self>) {
        let Some(id) = tokio::task::try_id() else {
            return;
        };
        let mut tasks = TASKS.lock().unwrap_or_else(|e| e.into_inner());
        let tasks = tasks.get_or_insert_with(HashMap::new);
        if tasks
            .get(&id)
            .and_then(Weak::upgrade)
            .is_some_and(|d| Arc::ptr_eq(&d, self))
        {
            return;
        }
        // Ids are not reused while a task lives; drop the ones whose
        // watcher is gone before the map grows.
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|_, d| d.strong_count() > 0);
        }
        tasks.insert(id, Arc::downgrade(self));
    }
}

fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(id) = tokio::task::try_id() {
            let death = TASKS
                .lock()
                .ok()
                .and_then(|mut t| t.as_mut()?.remove(&id))
                .and_then(|d| d.upgrade());
            if let Some(death) = death {
                let what = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", short(l.file()), l.line()))
                    .unwrap_or_default();
                (death.tell)(format!("{what}{place}"));
            }
        }
        previous(info);
    }));
}

/// A registry path from the crate's name on ("rust_socketio-0.6.0/src/…").
fn short(file: &str) -> &str {
    const REGISTRY: &str = "/registry/src/";
    match file.find(REGISTRY) {
        Some(i) => {
            let index_and_crate = &file[i + REGISTRY.len()..];
            index_and_crate
                .split_once('/')
                .map_or(index_and_crate, |(_, p)| p)
        }
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told() -> (Arc<TaskDeath>, std::sync::mpsc::Receiver<String>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let death = TaskDeath::new(move |m| {
            let _ = tx.lock().unwrap().send(m);
        });
        (death, rx)
    }

    #[tokio::test]
    async fn a_watched_task_that_panics_is_told_with_its_message() {
        let (death, told) = told();
        let d = death.clone();
        let task = tokio::spawn(async move {
            d.watch_current_task();
            tokio::task::yield_now().await;
            panic!("removal index (is 1) should be < len (is 1)");
        });
        assert!(task.await.unwrap_err().is_panic());
        let message = told.try_recv().expect("told during the panic");
        assert!(message.starts_with("removal index (is 1)"), "{message}");
        assert!(message.contains("task_death.rs:"), "{message}");
        assert!(told.try_recv().is_err(), "told once");
    }

    #[tokio::test]
    async fn another_tasks_panic_is_not_ours() {
        let (death, told) = told();
        let d = death.clone();
        tokio::spawn(async move { d.watch_current_task() })
            .await
            .unwrap();
        let other = tokio::spawn(async { panic!("someone else") });
        assert!(other.await.is_err());
        assert!(told.try_recv().is_err());
    }

    #[test]
    fn registry_paths_are_shortened_to_the_crate() {
        assert_eq!(
            short(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/rust_socketio-0.6.0/src/asynchronous/client/client.rs"
            ),
            "rust_socketio-0.6.0/src/asynchronous/client/client.rs"
        );
        assert_eq!(short("src/user/x.rs"), "src/user/x.rs");
    }
}

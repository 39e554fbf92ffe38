//! One named proxy: a listening address, an upstream, its toxics, and while
//! enabled an accept loop whose connections all hang off one cancel token,
//! so disabling closes every one of them at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::link;
use super::toxics::{Toxic, ToxicList};

pub(crate) struct Proxy {
    pub name: String,
    /// The address as given until the first bind, then the real bound
    /// address, kept while disabled so enabling listens on the same port.
    pub listen: String,
    pub upstream: String,
    pub toxics: Vec<Arc<Toxic>>,
    published: watch::Sender<ToxicList>,
    running: Option<Running>,
    seed: u64,
    connections: Arc<AtomicU64>,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Proxy {
    pub fn new(name: String, listen: String, upstream: String, seed: u64) -> Proxy {
        let (published, _) = watch::channel(Arc::new(Vec::new()));
        // Each proxy's connections draw from their own sequence, so one
        // proxy's traffic does not change another's toxicity rolls.
        let seed = splitmix(seed ^ fnv1a(name.as_bytes()));
        Proxy {
            name,
            listen,
            upstream,
            toxics: Vec::new(),
            published,
            running: None,
            seed,
            connections: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.running.is_some()
    }

    /// Binds and starts accepting; a no-op when already enabled.
    pub async fn start(&mut self) -> io::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let listen = if self.listen.is_empty() {
            "127.0.0.1:0"
        } else {
            &self.listen
        };
        let listener = TcpListener::bind(listen).await?;
        self.listen = listener.local_addr()?.to_string();
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(
            listener,
            stop.clone(),
            Arc::from(self.upstream.as_str()),
            self.published.subscribe(),
            self.seed,
            self.connections.clone(),
        ));
        self.running = Some(Running { stop, task });
        Ok(())
    }

    /// Stops listening and closes every connection. Returns once the
    /// listening socket is closed, so a connect right after is refused.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.cancel();
            let _ = running.task.await;
        }
    }

    /// Tells every live connection about the current toxic list.
    pub fn publish(&self) {
        self.published.send_replace(Arc::new(self.toxics.clone()));
    }
}

async fn accept(
    listener: TcpListener,
    stop: CancellationToken,
    upstream: Arc<str>,
    toxics: watch::Receiver<ToxicList>,
    seed: u64,
    connections: Arc<AtomicU64>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((client, _)) => {
                let n = connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(link::serve(
                    client,
                    upstream.clone(),
                    toxics.clone(),
                    stop.child_token(),
                    splitmix(seed.wrapping_add(n)),
                ));
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

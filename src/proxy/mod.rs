//! The embedded Toxiproxy-compatible fault proxy.
//!
//! The harness injects network faults through Toxiproxy's HTTP API. Shopify's
//! Toxiproxy cannot be installed everywhere the harness runs, so this is the
//! default: the same API (driven by the same client code), the same toxics
//! with the same attributes, in-process or as `reconnoiter proxy`.
//!
//! - [`api`]: the HTTP API (axum), Toxiproxy's paths, codes and JSON.
//! - `registry`: the named proxies and the API's rules for them.
//! - `listener`: one proxy: listen, accept, enable/disable.
//! - `link` and `direction`: one connection, one task per direction.
//! - [`toxics`]: one file per toxic, all chunks-in/chunks-out over a pipe.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use reconnoiter::proxy::{ProxyConfig, ProxyServer};
//! let server = ProxyServer::bind(ProxyConfig { listen: "127.0.0.1:0".parse()?, seed: 7 }).await?;
//! let api = server.local_addr(); // point toxiproxy_rust's Client at this
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(server.run(async { let _ = stopped.await; }));
//! // ... drive it through http://{api}/ ...
//! let _ = stop.send(());
//! task.await??;
//! # Ok(()) }
//! ```

pub mod api;
mod direction;
mod link;
mod listener;
pub mod model;
mod registry;
pub mod toxics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::exit::ExitError;
use registry::Registry;

pub use api::TOXIPROXY_API_VERSION;

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Address of the HTTP API; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seeds the per-connection toxicity rolls and jitter, so a run with
    /// the same seed and the same connection order rolls the same way.
    pub seed: u64,
}

/// A proxy server whose API port is bound but not yet serving. Binding
/// first lets callers learn the port picked for port 0 and report a busy
/// port before anything else happens.
pub struct ProxyServer {
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
}

impl ProxyServer {
    pub async fn bind(config: ProxyConfig) -> anyhow::Result<ProxyServer> {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            ExitError::bad_input(format!("cannot listen on {}: {e}", config.listen))
        })?;
        Ok(ProxyServer {
            listener,
            registry: Arc::new(Mutex::new(Registry::new(config.seed))),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves the API until `shutdown` resolves, then closes every proxy's
    /// listener and connections before returning.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = api::routes(self.registry.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving the proxy API");
        self.registry.lock().await.shutdown().await;
        served
    }
}

/// `reconnoiter proxy`: binds, prints `listening on ADDR` on stdout (the line
/// a parent process waits for), serves until SIGTERM/Ctrl-C.
pub fn run_blocking(config: ProxyConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = ProxyServer::bind(config).await?;
        println!("listening on {}", server.local_addr());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run(crate::server::termination()).await
    })
}

//! The embedded reference chat server: the default target, and the thing the
//! harness's own tests break on purpose through [`Bug`] switches.
//!
//! - [`store`]: SQLite, everything durable.
//! - [`auth`]: signed access and refresh tokens.
//! - [`socket`]: Socket.IO handlers (auth, rooms, sends, presence).
//! - [`http`]: REST (login, refresh, sync, conversations, health, admin).
//! - [`seed`]: deterministic users and memberships.

pub mod auth;
pub mod http;
pub mod seed;
pub mod socket;
pub mod state;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use socketioxide::SocketIo;
use tokio::net::TcpListener;

use crate::exit::ExitError;
use state::AppState;
use store::Store;

/// One deliberately broken guarantee, so a test can prove the checker sees it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Removed users can rejoin and keep receiving.
    SkipMembershipCheck,
    /// The offline queue lives in memory and is lost on restart.
    VolatileQueue,
    /// Expired tokens are accepted.
    AcceptExpiredTokens,
    /// A resent temp_id is stored again.
    NoIdempotency,
    /// The sync query drops the first message after the boundary.
    SyncOffByOne,
    /// A small random fraction of broadcasts is dropped.
    DropUnderLoad,
    /// About one send in fifty gets neither stored nor acknowledged, resends
    /// of it included: the sender's outbox never empties.
    SwallowSends,
    /// About one broadcast in fifty is followed by a message nobody sent.
    PhantomMessages,
    /// About one broadcast in ten is held back half a second, so a later
    /// message of the conversation overtakes it.
    Reorder,
}

/// What the server does when a user opens a second connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Tell the old socket with `duplicate-connection`, keep both.
    NotifyOld,
    /// Tell the old socket, then disconnect it.
    DisconnectOld,
    /// Say nothing, keep both.
    Allow,
}

/// Users and memberships created on a fresh database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seed {
    pub users: u32,
    pub conversations: u32,
    pub members: u32,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub queue_ttl: Duration,
    pub secret: String,
    pub duplicate_policy: DuplicatePolicy,
    /// Engine.IO heartbeat; a blackholed client is noticed after interval + timeout.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub seed: Seed,
    pub bugs: Vec<Bug>,
    /// Leave sequence numbers off the wire (`--no-seq`, see [`store::hide_seq`]).
    pub no_seq: bool,
}

/// A server that has opened its database and bound its port, not yet serving.
/// Binding first lets `serve` report a bad --db or a busy port as one line
/// before anything else, and lets callers learn the port picked for port 0.
pub struct Server {
    listener: TcpListener,
    app: state::Shared,
    /// Whether this start seeded a fresh database (else it kept one), for
    /// the log line that marks each start in a managed server's log.
    seeded: bool,
}

impl Server {
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        let mut store = Store::open(&config.db).map_err(|e| ExitError::bad_input(e.to_string()))?;
        let seeded = seed::apply(&mut store, &config.seed).context("seeding the database")?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            ExitError::bad_input(format!("cannot listen on {}: {e}", config.listen))
        })?;
        Ok(Server {
            listener,
            app: AppState::new(config, store),
            seeded,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then tells every client
    /// `server-shutdown`, closes their sockets and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (layer, io) = SocketIo::builder()
            .with_state(self.app.clone())
            // Broadcasts to a slow client must queue, not fail: a dropped
            // broadcast on the correct server would read as message loss.
            .max_buffer_size(65_536)
            .ping_interval(self.app.config.ping_interval)
            .ping_timeout(self.app.config.ping_timeout)
            .build_layer();
        socket::register(&io);
        let router = http::routes(http::Ctx {
            app: self.app.clone(),
            io: io.clone(),
        })
        .layer(layer);
        let closing_io = io.clone();
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = closing_io
                    .emit("server-shutdown", &json!({ "reason": "shutdown" }))
                    .await;
                // Give the shutdown notices a moment to leave before the sockets close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                closing_io.close().await;
            })
            .await
            .context("serving")?;
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `reconnoiter serve`: binds, prints `listening on ADDR` on stdout (the line
/// a parent process waits for), serves until SIGTERM/Ctrl-C.
pub fn run_blocking(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if config.no_seq {
        store::hide_seq();
    }
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        println!("listening on {}", server.local_addr());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // On stderr: a managed server's log (server.log) then shows each
        // start and stop, restarts included.
        let c = &server.app.config;
        eprintln!(
            "{} serving on {}: database {} ({}), ping {:?}/{:?}, tokens {:?}, bugs {:?}{}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            server.local_addr(),
            c.db.display(),
            if server.seeded { "seeded now" } else { "kept" },
            c.ping_interval,
            c.ping_timeout,
            c.token_ttl,
            c.bugs,
            if c.no_seq { ", no seq" } else { "" }
        );
        let stopping = async {
            termination().await;
            eprintln!(
                "{} stopping: telling clients server-shutdown",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
        };
        server.run(stopping).await
    })
}

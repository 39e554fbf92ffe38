//! One proxied connection: the client socket, the upstream socket, and one
//! task per direction between them.
//!
//! The sockets are shared (`Arc<TcpStream>`) rather than split so that a
//! reset can set SO_LINGER 0 on the whole socket and close it without a FIN
//! going out first (dropping a tokio write half sends a FIN).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::direction::Direction;
use super::toxics::{Stream, ToxicList};

/// Connection-wide signals shared by both directions and their toxics.
#[derive(Debug)]
pub(crate) struct ConnCtl {
    /// Cancelled when the connection must end now (proxy disabled or
    /// deleted, a socket failed, a toxic closed or reset it).
    pub kill: CancellationToken,
    /// A toxic asked to close the connection once its output has drained.
    pub close: AtomicBool,
    /// A toxic asked for a TCP RST instead of a FIN.
    pub reset: AtomicBool,
}

impl ConnCtl {
    pub fn close_after_drain(&self) -> bool {
        self.close.load(Ordering::SeqCst)
    }

    pub fn request_close(&self) {
        self.close.store(true, Ordering::SeqCst);
    }

    pub fn request_reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.kill.cancel();
    }
}

/// Carries one accepted client connection until both directions end.
pub(crate) async fn serve(
    client: TcpStream,
    upstream: Arc<str>,
    toxics: watch::Receiver<ToxicList>,
    kill: CancellationToken,
    seed: u64,
) {
    let server = tokio::select! {
        _ = kill.cancelled() => return,
        // The server on loopback, usually, which every link of every proxy
        // process connects to: spread over source addresses like the users'.
        r = crate::loopback::connect_host(&*upstream) => match r {
            Ok(s) => s,
            Err(e) => {
                // Toxiproxy closes the client too: the caller sees the
                // upstream as down, which is the truth.
                tracing::debug!(%upstream, error = %e, "upstream refused; closing client");
                return;
            }
        },
    };
    // Chat traffic is small messages; Nagle would add up to 40 ms per hop.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let client = Arc::new(client);
    let server = Arc::new(server);
    let ctl = Arc::new(ConnCtl {
        kill,
        close: AtomicBool::new(false),
        reset: AtomicBool::new(false),
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let up = Direction::new(
        Stream::Upstream,
        client.clone(),
        server.clone(),
        toxics.clone(),
        ctl.clone(),
        StdRng::seed_from_u64(rng.random()),
    );
    let down = Direction::new(
        Stream::Downstream,
        server.clone(),
        client.clone(),
        toxics,
        ctl.clone(),
        StdRng::seed_from_u64(rng.random()),
    );
    let up = tokio::spawn(up.run());
    down.run().await;
    let _ = up.await;
    if ctl.reset.load(Ordering::SeqCst) {
        for socket in [&client, &server] {
            let _ = SockRef::from(&**socket).set_linger(Some(Duration::ZERO));
        }
    }
    // Dropping the last references closes both sockets (FIN, or RST after linger 0).
}

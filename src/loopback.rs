//! Many connections to one loopback address, spread over source addresses.
//!
//! Linux picks a connecting socket's ephemeral port by scanning its port
//! range (28,232 ports by default) for one whose (source, port, destination)
//! is free, even ports first. Past about 14,000 connections from one source
//! address to one destination, every connect scans the whole even half
//! first: at 13,500 users each `connect()` held a runtime worker inside the
//! kernel for milliseconds (`__inet_hash_connect`, 80 % of both workers'
//! time in perf) and the event loop stalled for seconds. Every address in
//! 127.0.0.0/8 is the loopback interface, so a connection to a loopback
//! destination first binds a source address of its own among
//! 127.0.0.1..=127.0.0.16, round robin, with `IP_BIND_ADDRESS_NO_PORT` so
//! that the port is still chosen at connect time for the whole four-tuple.
//! Each source then holds a sixteenth of the connections and the scan stops
//! at about its first port. Where binding fails (a system that routes only
//! 127.0.0.1), it connects as before, from then on.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use tokio::net::{TcpSocket, TcpStream};

/// Source addresses used: each holds this share of the connections.
const SOURCES: u32 = 16;

/// Round robin over the sources, across every connection of the process.
static NEXT: AtomicU32 = AtomicU32::new(0);
/// Cleared when a bind failed: this system does not route 127.0.0.0/8.
static SPREAD: AtomicBool = AtomicBool::new(true);

/// Connects to `addr`, from a spread source address when it is loopback IPv4.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(source) = source_for(addr.ip()) else {
        return TcpStream::connect(addr).await;
    };
    let socket = TcpSocket::new_v4()?;
    if bind_no_port(&socket, source).is_err() {
        SPREAD.store(false, Relaxed);
        return TcpStream::connect(addr).await;
    }
    socket.connect(addr).await
}

/// Resolves `to` and connects to the first address that answers, as
/// `TcpStream::connect` does, spreading loopback connections.
pub async fn connect_host(to: impl tokio::net::ToSocketAddrs) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host(to).await? {
        match connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
}

fn source_for(destination: IpAddr) -> Option<Ipv4Addr> {
    match destination {
        IpAddr::V4(v4) if v4.is_loopback() && SPREAD.load(Relaxed) => {
            let n = NEXT.fetch_add(1, Relaxed) % SOURCES;
            Some(Ipv4Addr::new(127, 0, 0, 1 + n as u8))
        }
        _ => None,
    }
}

fn bind_no_port(socket: &TcpSocket, source: Ipv4Addr) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_connections_come_from_several_sources() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut sources = std::collections::BTreeSet::new();
        let mut held = Vec::new();
        for _ in 0..SOURCES {
            let c = connect_host(addr).await.unwrap();
            let (_, from) = listener.accept().await.unwrap();
            assert_eq!(
                c.local_addr().unwrap(),
                from,
                "the server sees the bound source"
            );
            sources.insert(from.ip());
            held.push(c);
        }
        // Other tests connect meanwhile and take turns of the round robin,
        // so not necessarily all sixteen; several, unless this system
        // routes only 127.0.0.1.
        assert!(sources.len() > 1 || !SPREAD.load(Relaxed), "{sources:?}");
    }

    #[test]
    fn other_destinations_are_left_alone() {
        assert_eq!(source_for("10.0.0.1".parse().unwrap()), None);
        assert_eq!(source_for("::1".parse().unwrap()), None);
    }
}

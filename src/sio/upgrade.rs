//! The WebSocket opening handshake (RFC 6455 §4.1), client side.
//!
//! Ours rather than tungstenite's `client_async`: tungstenite reads the
//! HTTP response into a 4 KiB `Vec` and hands that same allocation on as
//! the connection's read buffer for its whole life (`read_buffer_size` only
//! sets a minimum), so every held connection costs 4 KiB whatever the
//! config says: a quarter of a user's memory (heaptrack, 3,000 users).
//! Here the response is read into a buffer of `read_buffer_size`, and
//! whatever followed the headers (often the Engine.IO open packet, in the
//! same segment) is passed to tungstenite as already read.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::error::{ConnectError, Phase};
use super::handshake::Ws;

/// Response heads larger than this are refused (tungstenite's limit too is
/// in this range); a 101 is about 130 bytes.
const MAX_HEAD: usize = 16 * 1024;

/// Most response headers parsed; more is a broken or hostile server.
const MAX_HEADERS: usize = 64;

/// How much of a refusal's body is kept for the error message.
const BODY_SHOWN: usize = 200;

/// Upgrade `tcp` to a WebSocket at `path_and_query` on `authority`
/// (`host:port`, sent as `Host`). The caller bounds it with its deadline.
pub(crate) async fn upgrade(
    mut tcp: TcpStream,
    authority: &str,
    path_and_query: &str,
    config: WebSocketConfig,
) -> Result<Ws, ConnectError> {
    let key = generate_key();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.map_err(io_error)?;

    let mut buf = Vec::with_capacity(config.read_buffer_size.max(256));
    let head = loop {
        if read_more(&mut tcp, &mut buf).await? == 0 {
            return Err(ConnectError::Closed {
                phase: Phase::Upgrade,
            });
        }
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD {
            return Err(broken(format!(
                "response head longer than {MAX_HEAD} bytes"
            )));
        }
    };

    if head.status != 101 {
        return Err(refusal(&mut tcp, buf, head).await);
    }
    if !head.upgrade_websocket || !head.connection_upgrade {
        return Err(broken(
            "101 without `Upgrade: websocket` and `Connection: Upgrade`".into(),
        ));
    }
    if head.accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(broken("wrong Sec-WebSocket-Accept".into()));
    }
    // The bytes after the head are the server's first frames; the Vec's
    // allocation (read_buffer_size) becomes the connection's read buffer.
    buf.drain(..head.len);
    Ok(WebSocketStream::from_partially_read(tcp, buf, Role::Client, Some(config)).await)
}

/// What the handshake needs from the response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes the head (status line, headers, blank line) takes.
    len: usize,
    status: u16,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    accept: Option<String>,
    content_length: Option<usize>,
}

/// `Ok(None)` while the head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(broken(format!("bad HTTP response: {e}"))),
    };
    let mut head = Head {
        len,
        status: response.code.unwrap_or_default(),
        upgrade_websocket: false,
        connection_upgrade: false,
        accept: None,
        content_length: None,
    };
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket = value.eq_ignore_ascii_case("websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.connection_upgrade = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.accept = Some(value.to_owned());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        }
    }
    Ok(Some(head))
}

/// A non-101 answer: its status, and the start of its body (where the
/// server says why), read as far as Content-Length promises.
async fn refusal(tcp: &mut TcpStream, mut buf: Vec<u8>, head: Head) -> ConnectError {
    let want = head.len + head.content_length.unwrap_or(0).min(BODY_SHOWN);
    while buf.len() < want {
        match read_more(tcp, &mut buf).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let body = &buf[head.len.min(buf.len())..];
    ConnectError::Upgrade {
        status: Some(head.status),
        message: String::from_utf8_lossy(&body[..body.len().min(BODY_SHOWN)]).into_owned(),
    }
}

/// Append what the socket has to `buf`, growing it only when full.
async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, ConnectError> {
    if buf.len() == buf.capacity() {
        buf.reserve(buf.capacity().max(256));
    }
    tcp.read_buf(buf).await.map_err(io_error)
}

fn io_error(source: io::Error) -> ConnectError {
    ConnectError::io(Phase::Upgrade, source)
}

fn broken(message: String) -> ConnectError {
    ConnectError::Upgrade {
        status: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;

    /// A raw TCP server on 127.0.0.1:0 that reads the upgrade request and
    /// answers with `answer(key)`'s byte chunks, one write each; then the
    /// client's result.
    async fn against(answer: fn(&str) -> Vec<Vec<u8>>) -> Result<Ws, ConnectError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                tcp.read_exact(&mut byte).await.unwrap();
                request.push(byte[0]);
            }
            let request = String::from_utf8(request).unwrap();
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            for chunk in answer(key) {
                tcp.write_all(&chunk).await.unwrap();
                tcp.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            // Keep the socket open while the client reads.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = WebSocketConfig::default().read_buffer_size(1024);
        upgrade(tcp, &addr.to_string(), "/socket.io/?EIO=4", config).await
    }

    fn switching(accept: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_frame_in_the_same_segment_as_the_101_is_not_lost() {
        let ws = against(|key| {
            let mut segment = switching(&derive_accept_key(key.as_bytes()));
            segment.extend_from_slice(b"\x81\x0a0{\"sid\":1}");
            vec![segment]
        })
        .await;
        let mut ws = ws.expect("upgraded");
        let first = ws.next().await.expect("a frame").expect("readable");
        assert_eq!(first, Message::text("0{\"sid\":1}"));
    }

    #[tokio::test]
    async fn a_wrong_accept_key_is_refused() {
        let err = against(|_| vec![switching("bm90IHRoZSByaWdodCBrZXk=")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::Upgrade { status: None, ref message } if message.contains("Sec-WebSocket-Accept")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_status_and_its_body_across_segments() {
        let err = against(|_| {
            vec![
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 20\r\n\r\ntoken ".to_vec(),
                b"revoked for u7".to_vec(),
            ]
        })
        .await
        .unwrap_err();
        match err {
            ConnectError::Upgrade { status, message } => {
                assert_eq!(status, Some(403));
                assert_eq!(message, "token revoked for u7");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incomplete_head_waits_for_more() {
        assert_eq!(
            parse_head(b"HTTP/1.1 101 Switching Protocols\r\nUpg").unwrap(),
            None
        );
    }

    #[test]
    fn head_length_excludes_the_frames_after_it() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: abc=\r\n\r\n";
        let mut buf = head.to_vec();
        buf.extend_from_slice(b"\x81\x020{");
        let parsed = parse_head(&buf).unwrap().unwrap();
        assert_eq!(
            parsed,
            Head {
                len: head.len(),
                status: 101,
                upgrade_websocket: true,
                connection_upgrade: true,
                accept: Some("abc=".into()),
                content_length: None,
            }
        );
    }

    #[test]
    fn garbage_is_a_broken_upgrade() {
        let err = parse_head(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").unwrap_err();
        assert!(
            matches!(err, ConnectError::Upgrade { status: None, ref message } if message.contains("bad HTTP response")),
            "{err:?}"
        );
    }
}

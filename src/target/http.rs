//! The harness's plain-HTTP client for the target's REST API and the fault
//! admin: hyper's pooled HTTP/1.1 client with no TLS stack.
//!
//! Not reqwest: rust_socketio switches reqwest's native-tls on for the
//! whole build, and building a `reqwest::Client` then loads the system's
//! CA bundle through OpenSSL (about 460,000 allocations, 40 ms of CPU and
//! 4 MiB of RSS per run) for targets that are plain `http://` on loopback
//! anyway: `--target` refuses `https://`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// Idle pooled sockets count against the open-files limit the users need;
/// a few dozen serve thousands of users' REST calls.
const IDLE_PER_HOST: usize = 32;

/// One pool shared by every user and the fault admin; cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Bound on a whole call (connect, request, the full body), as a
    /// user's own HTTP client would have.
    timeout: Duration,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, for error messages and JSON.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        let mut connector = HttpConnector::new();
        // A request is one small write; Nagle would hold it behind the
        // previous one's ACK.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .build(connector);
        Http { client, timeout }
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, String> {
        self.send(Method::GET, url, bearer, None).await
    }

    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        bearer: Option<&str>,
    ) -> Result<Reply, String> {
        self.send(Method::POST, url, bearer, Some(body.to_string().into()))
            .await
    }

    pub async fn delete(&self, url: &str) -> Result<Reply, String> {
        self.send(Method::DELETE, url, None, None).await
    }

    /// One call; an error is the transport's, in one line with its causes
    /// (hyper's own Display says only "client error (Connect)").
    async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        json: Option<Bytes>,
    ) -> Result<Reply, String> {
        let mut req = Request::builder().method(method).uri(url);
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if json.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| format!("{url}: {}", chain(&e)))?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| chain(&e))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e: String| format!("{url}: {e}")),
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }
}

/// An error and its sources, joined: "client error (Connect): tcp connect
/// error: Connection refused (os error 111)".
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.ends_with(&s_msg) {
            msg = format!("{msg}: {s_msg}");
        }
        src = s.source();
    }
    msg
}

/// `base?k=v&…`, each pair form-encoded; `&` when `base` (a configured
/// path) has a query of its own.
pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let join = if base.contains('?') { '&' } else { '?' };
    format!("{base}{join}{}", q.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query(
                "http://h/m",
                &[
                    ("conversationId", "c 1"),
                    ("since", "2026-01-01T00:00:00+01:00")
                ]
            ),
            "http://h/m?conversationId=c+1&since=2026-01-01T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(
            with_query("http://h/m?v=2", &[("limit", "10")]),
            "http://h/m?v=2&limit=10"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_says_why() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = Http::new(Duration::from_secs(5))
            .get(&format!("http://127.0.0.1:{port}/health"), None)
            .await
            .unwrap_err();
        assert!(e.contains("refused"), "{e}");
        assert!(e.starts_with("http://127.0.0.1:"), "{e}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", l.local_addr().unwrap());
        let _accept = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let e = Http::new(Duration::from_millis(200))
            .get(&url, None)
            .await
            .unwrap_err();
        assert!(e.contains("no answer within"), "{e}");
    }
}

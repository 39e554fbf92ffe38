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

    /// One call, following redirects; an error is the transport's, in one
    /// line with its causes (hyper's own Display says only "client error
    /// (Connect)"), and names the URL it happened at.
    async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        json: Option<Bytes>,
    ) -> Result<Reply, String> {
        let call = async {
            let mut hop = Hop {
                method,
                url: url.to_owned(),
                bearer,
                json,
            };
            for _ in 0..=MAX_REDIRECTS {
                let (reply, location) = self.once(&hop).await?;
                match location {
                    Some(location) => hop = hop.redirected(reply.status, &location)?,
                    None => return Ok(reply),
                }
            }
            Err(format!("{}: more than {MAX_REDIRECTS} redirects", hop.url))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }

    /// One request; the reply and, for a redirect, where it points.
    async fn once(&self, hop: &Hop<'_>) -> Result<(Reply, Option<String>), String> {
        let at = |e: String| format!("{}: {e}", hop.url);
        let mut req = Request::builder()
            .method(hop.method.clone())
            .uri(hop.url.as_str());
        if let Some(token) = hop.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if hop.json.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(hop.json.clone().unwrap_or_default()))
            .map_err(|e| at(chain(&e)))?;
        let resp = self.client.request(req).await.map_err(|e| at(chain(&e)))?;
        let status = resp.status();
        let location = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
            .then(|| resp.headers().get(header::LOCATION))
            .flatten()
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        // Read whole even when redirected, so the connection goes back to the pool.
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| at(chain(&e)))?
            .to_bytes();
        let status = status.as_u16();
        Ok((Reply { status, body }, location))
    }
}

/// Redirects followed before giving up: reqwest's default, which this
/// client replaced, so a target whose health or login path redirects (a
/// trailing slash, a moved API prefix) works as it did.
const MAX_REDIRECTS: usize = 10;

/// One request of a call: where, how, and with what.
struct Hop<'a> {
    method: Method,
    url: String,
    bearer: Option<&'a str>,
    json: Option<Bytes>,
}

impl Hop<'_> {
    /// The request a redirect asks for, by the rules browsers and reqwest
    /// follow: 301, 302 and 303 turn a POST (303: anything) into a GET
    /// without a body, 307 and 308 repeat it as it was; the bearer token is
    /// not sent to another host or port.
    fn redirected(self, status: u16, location: &str) -> Result<Self, String> {
        let here = url::Url::parse(&self.url).map_err(|e| format!("{}: {e}", self.url))?;
        let next = here.join(location).map_err(|e| {
            format!(
                "{}: answered {status} with a Location the harness cannot read ({location:?}: {e})",
                self.url
            )
        })?;
        if next.scheme() != "http" {
            return Err(format!(
                "{}: redirected to {next}, which the harness cannot follow (plain http:// only); point it at that server directly",
                self.url
            ));
        }
        let same_origin = next.host_str() == here.host_str()
            && next.port_or_known_default() == here.port_or_known_default();
        let to_get = match status {
            303 => self.method != Method::HEAD,
            301 | 302 => self.method == Method::POST,
            _ => false,
        };
        Ok(Hop {
            method: if to_get { Method::GET } else { self.method },
            json: if to_get { None } else { self.json },
            url: next.into(),
            bearer: self.bearer.filter(|_| same_origin),
        })
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

    /// A server whose paths redirect, and `/echo`, which answers with what
    /// it was sent: "METHOD auth=AUTHORIZATION body=BODY".
    async fn redirecting_server(other_origin: String) -> String {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        use axum::routing::{any, get};
        async fn echo(method: Method, headers: HeaderMap, body: String) -> String {
            let auth = headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            format!("{method} auth={auth} body={body}")
        }
        let to = |status: u16, location: String| {
            move || async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [(header::LOCATION, location)],
                )
                    .into_response()
            }
        };
        let app = axum::Router::new()
            .route("/echo", any(echo))
            .route("/health", get(to(308, "/health/".into())))
            .route("/health/", get(|| async { "ok" }))
            .route("/api/login", any(to(307, "../v2/login".into())))
            .route("/v2/login", any(echo))
            .route("/moved", any(to(302, "/echo".into())))
            .route("/see-other", any(to(303, "/echo".into())))
            .route("/elsewhere", any(to(307, format!("{other_origin}/echo"))))
            .route("/loop", any(to(302, "/loop".into())))
            .route("/tls", any(to(301, "https://127.0.0.1/echo".into())));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        base
    }

    #[tokio::test]
    async fn redirects_are_followed_as_browsers_do() {
        let other = redirecting_server("http://unused".into()).await;
        let base = redirecting_server(other).await;
        let http = Http::new(Duration::from_secs(5));
        let body = serde_json::json!({"u": 1});
        let text = |r: Reply| format!("{} {}", r.status, r.text());

        let r = http.get(&format!("{base}/health"), None).await.unwrap();
        assert_eq!(text(r), "200 ok", "308 to a trailing slash");
        let r = http
            .post_json(&format!("{base}/api/login"), &body, Some("t"))
            .await
            .unwrap();
        assert_eq!(
            text(r),
            r#"200 POST auth=Bearer t body={"u":1}"#,
            "307 to a relative path keeps the method, the body and the token"
        );
        let r = http
            .post_json(&format!("{base}/moved"), &body, Some("t"))
            .await
            .unwrap();
        assert_eq!(
            text(r),
            "200 GET auth=Bearer t body=",
            "302 turns a POST into a GET"
        );
        let r = http.delete(&format!("{base}/see-other")).await.unwrap();
        assert_eq!(
            text(r),
            "200 GET auth= body=",
            "303 turns anything into a GET"
        );
        let r = http
            .post_json(&format!("{base}/elsewhere"), &body, Some("t"))
            .await
            .unwrap();
        assert_eq!(
            text(r),
            r#"200 POST auth= body={"u":1}"#,
            "the token is not sent to another port"
        );

        let e = http.get(&format!("{base}/loop"), None).await.unwrap_err();
        assert!(e.contains("more than 10 redirects"), "{e}");
        let e = http.get(&format!("{base}/tls"), None).await.unwrap_err();
        assert!(
            e.contains("redirected to https://127.0.0.1/echo") && e.contains("plain http"),
            "{e}"
        );
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

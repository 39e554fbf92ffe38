//! The REST calls a user makes: login, refresh, missed messages, health.
//! One `Http` client is shared by every user so connections are pooled.

use std::time::Duration;

use serde_json::{Value, json};

use super::http::{Http, Reply, with_query};
use crate::scenario::ApiPaths;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Shape(String),
}

impl ApiError {
    /// One line for a person: the status and the start of the body, with
    /// its whitespace (an HTML page's newlines) collapsed.
    pub fn brief(&self) -> String {
        match self {
            ApiError::Status { status, body } => {
                let body: Vec<&str> = body.split_whitespace().collect();
                let body = body.join(" ");
                if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    let cut: String = body.chars().take(80).collect();
                    let more = if cut.len() < body.len() { "…" } else { "" };
                    format!("HTTP {status} ({cut}{more})")
                }
            }
            other => other.to_string(),
        }
    }

    /// True for 401/403: the credential, not the network, is the problem.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

impl From<String> for ApiError {
    /// The transport's error ([`Http`]'s), with its causes.
    fn from(e: String) -> Self {
        ApiError::Transport(e)
    }
}

/// The credentials a login or refresh hands out.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub refresh: Option<String>,
    /// Epoch ms; None when the server did not say.
    pub expires_at_ms: Option<i64>,
}

#[derive(Clone)]
pub struct Api {
    http: Http,
    base: String,
    paths: ApiPaths,
}

impl Api {
    pub fn new(base: &str, paths: ApiPaths, timeout: Duration) -> Api {
        Api {
            http: Http::new(timeout),
            base: base.trim_end_matches('/').to_owned(),
            paths,
        }
    }

    /// The same client (and connection pool) aimed at another base URL,
    /// e.g. a cohort's proxy.
    pub fn with_base(&self, base: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: base.trim_end_matches('/').to_owned(),
            paths: self.paths.clone(),
        }
    }

    /// The shared client, for the harness's own calls (fault admin).
    pub fn http(&self) -> &Http {
        &self.http
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn json(resp: Reply) -> Result<Value, ApiError> {
        let text = resp.text();
        if !resp.is_success() {
            return Err(ApiError::Status {
                status: resp.status,
                body: text.chars().take(200).collect(),
            });
        }
        serde_json::from_str(&text).map_err(|e| {
            ApiError::Shape(format!(
                "{e}: {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }

    fn session(v: &Value) -> Result<Session, ApiError> {
        let token = v["token"]
            .as_str()
            .ok_or_else(|| ApiError::Shape(format!("no token in {v}")))?;
        Ok(Session {
            token: token.to_owned(),
            refresh: v["refreshToken"].as_str().map(str::to_owned),
            expires_at_ms: v["expiresAt"]
                .as_str()
                .and_then(crate::server::store::parse_iso),
        })
    }

    pub async fn login(&self, user: &str) -> Result<Session, ApiError> {
        let url = format!("{}{}", self.base, self.paths.login);
        let v = Self::json(
            self.http
                .post_json(&url, &json!({ "userId": user }), None)
                .await?,
        )?;
        Self::session(&v)
    }

    pub async fn refresh(&self, refresh: &str) -> Result<Session, ApiError> {
        let url = format!("{}{}", self.base, self.paths.refresh);
        let v = Self::json(
            self.http
                .post_json(&url, &json!({ "refreshToken": refresh }), None)
                .await?,
        )?;
        let mut s = Self::session(&v)?;
        if s.refresh.is_none() {
            s.refresh = Some(refresh.to_owned());
        }
        Ok(s)
    }

    /// `GET messages?conversationId=&since=` (ISO time; omitted for "all"),
    /// following `hasMore` page by page (each page starts at the last
    /// message's time; `since` is inclusive, so the boundary repeats and the
    /// caller drops it by id).
    pub async fn messages_since(
        &self,
        token: &str,
        conversation: &str,
        since: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let url = format!("{}{}", self.base, self.paths.messages);
        let mut all: Vec<Value> = Vec::new();
        let mut cursor = since.map(str::to_owned);
        for _ in 0..100 {
            let mut query = vec![("conversationId", conversation), ("limit", "10000")];
            if let Some(s) = &cursor {
                query.push(("since", s));
            }
            let v = Self::json(
                self.http
                    .get(&with_query(&url, &query), Some(token))
                    .await?,
            )?;
            let Some(Value::Array(page)) = v.get("messages") else {
                return Err(ApiError::Shape(format!(
                    "no messages array in {}",
                    v.to_string().chars().take(200).collect::<String>()
                )));
            };
            let next = page
                .last()
                .and_then(|m| m.get("createdAt"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            all.extend(page.iter().cloned());
            let more = v.get("hasMore").and_then(Value::as_bool).unwrap_or(false);
            // Stop when the server says so, or when a page would not move the cursor.
            if !more || next.is_none() || next == cursor {
                break;
            }
            cursor = next;
        }
        Ok(all)
    }

    /// `GET conversations`: the ids of the conversations the user is in now.
    pub async fn conversations(&self, token: &str) -> Result<Vec<String>, ApiError> {
        let url = format!("{}{}", self.base, self.paths.conversations);
        let v = Self::json(self.http.get(&url, Some(token)).await?)?;
        let list = v
            .get("conversations")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::Shape(format!("no conversations array in {v}")))?;
        Ok(list
            .iter()
            .filter_map(|c| match c {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("id").map(|id| match id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                _ => None,
            })
            .collect())
    }

    pub async fn health(&self) -> Result<Value, ApiError> {
        Self::json(self.http.get(&self.health_url(), None).await?)
    }

    pub fn health_url(&self) -> String {
        format!("{}{}", self.base, self.paths.health)
    }
}

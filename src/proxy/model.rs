//! The JSON of Toxiproxy's API: what requests may carry and what answers
//! look like. Request fields are all optional and unknown fields ignored,
//! because Go's decoder behaves that way and clients rely on it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::listener::Proxy;
use super::toxics::Toxic;

#[derive(Debug, Serialize)]
pub struct ProxyJson {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub toxics: Vec<ToxicJson>,
}

impl ProxyJson {
    pub(crate) fn of(proxy: &Proxy) -> ProxyJson {
        ProxyJson {
            name: proxy.name.clone(),
            listen: proxy.listen.clone(),
            upstream: proxy.upstream.clone(),
            enabled: proxy.enabled(),
            toxics: proxy.toxics.iter().map(|t| ToxicJson::of(t)).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ToxicJson {
    pub attributes: Value,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub stream: &'static str,
    pub toxicity: f32,
}

impl ToxicJson {
    pub fn of(toxic: &Toxic) -> ToxicJson {
        ToxicJson {
            attributes: toxic.kind.attributes(),
            name: toxic.name.clone(),
            kind: toxic.kind.type_name(),
            stream: toxic.stream.as_str(),
            toxicity: toxic.toxicity,
        }
    }
}

/// `POST /proxies` and one element of `POST /populate`.
#[derive(Debug, Deserialize)]
pub struct NewProxy {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub listen: String,
    #[serde(default)]
    pub upstream: String,
    /// Absent means enabled (Toxiproxy's default for create and populate).
    pub enabled: Option<bool>,
}

/// `POST|PATCH /proxies/{name}`: only the fields given change.
#[derive(Debug, Deserialize)]
pub struct ProxyUpdate {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

/// `POST /proxies/{name}/toxics`.
#[derive(Debug, Deserialize)]
pub struct NewToxic {
    pub name: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub stream: Option<String>,
    pub toxicity: Option<f32>,
    #[serde(default)]
    pub attributes: Value,
}

/// `POST|PATCH /proxies/{name}/toxics/{toxic}`: attributes merge into the
/// existing ones.
#[derive(Debug, Deserialize)]
pub struct ToxicUpdate {
    pub toxicity: Option<f32>,
    #[serde(default)]
    pub attributes: Value,
}

/// Toxiproxy's error answer: `{"error": "...", "status": N}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_body(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {detail}"),
        )
    }

    pub fn missing(field: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("missing required field: {field}"),
        )
    }

    pub fn proxy_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "proxy not found")
    }

    pub fn proxy_exists() -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "proxy already exists")
    }

    pub fn toxic_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "toxic not found")
    }

    pub fn toxic_exists() -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "toxic already exists")
    }

    pub fn invalid_stream() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "stream was invalid, can be either upstream or downstream",
        )
    }

    pub fn invalid_toxic_type() -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid toxic type")
    }

    /// A listen failure and the like: Toxiproxy answers 500 with the OS error.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, detail.to_string())
    }

    pub fn body(&self) -> Value {
        serde_json::json!({ "error": self.message, "status": self.status.as_u16() })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Parses a request body, answering Go-style `bad request body` on failure.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

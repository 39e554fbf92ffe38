//! Toxiproxy's HTTP API on axum: same paths, methods, status codes and
//! JSON, so `toxiproxy_rust` (or any Toxiproxy client) drives this proxy
//! and the harness can swap in a real Toxiproxy with `--toxiproxy URL`.
//!
//! Bodies are taken as bytes and parsed here rather than with axum's `Json`
//! extractor, whose rejections are not Toxiproxy's error shape.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Mutex;

use super::model::{ApiError, NewProxy, parse};
use super::registry::Registry;

/// The Toxiproxy release whose API this reproduces; `GET /version` answers
/// it so clients that check versions treat us like that release.
pub const TOXIPROXY_API_VERSION: &str = "2.5.0";

pub(crate) type Shared = Arc<Mutex<Registry>>;

type Answer = Result<Response, ApiError>;

pub(crate) fn routes(registry: Shared) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list).post(create))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .with_state(registry)
}

fn json(status: StatusCode, value: impl serde::Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

async fn version() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::SERVER,
                concat!("reconnoiter-proxy/", env!("CARGO_PKG_VERSION")),
            ),
        ],
        TOXIPROXY_API_VERSION,
    )
        .into_response()
}

async fn reset(State(reg): State<Shared>) -> Answer {
    reg.lock().await.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn populate(State(reg): State<Shared>, body: Bytes) -> Answer {
    let input: Vec<NewProxy> = parse(&body)?;
    let (proxies, err) = reg.lock().await.populate(input).await;
    Ok(match err {
        None => json(
            StatusCode::CREATED,
            serde_json::json!({ "proxies": proxies }),
        ),
        Some(err) => {
            let mut body = err.body();
            body["proxies"] = serde_json::to_value(proxies).expect("proxy JSON");
            json(err.status, body)
        }
    })
}

async fn list(State(reg): State<Shared>) -> Answer {
    Ok(json(StatusCode::OK, reg.lock().await.list()))
}

async fn create(State(reg): State<Shared>, body: Bytes) -> Answer {
    let input = parse(&body)?;
    let proxy = reg.lock().await.create(input).await?;
    Ok(json(StatusCode::CREATED, proxy))
}

async fn show(State(reg): State<Shared>, Path(name): Path<String>) -> Answer {
    Ok(json(StatusCode::OK, reg.lock().await.get(&name)?))
}

async fn update(State(reg): State<Shared>, Path(name): Path<String>, body: Bytes) -> Answer {
    let mut reg = reg.lock().await;
    // Unknown proxy is 404 even with a bad body, as in Toxiproxy.
    reg.get(&name)?;
    let input = parse(&body)?;
    Ok(json(StatusCode::OK, reg.update(&name, input).await?))
}

async fn delete(State(reg): State<Shared>, Path(name): Path<String>) -> Answer {
    reg.lock().await.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxics(State(reg): State<Shared>, Path(name): Path<String>) -> Answer {
    Ok(json(StatusCode::OK, reg.lock().await.toxics(&name)?))
}

async fn add_toxic(State(reg): State<Shared>, Path(name): Path<String>, body: Bytes) -> Answer {
    let mut reg = reg.lock().await;
    reg.get(&name)?;
    let input = parse(&body)?;
    Ok(json(StatusCode::OK, reg.add_toxic(&name, input)?))
}

async fn toxic(State(reg): State<Shared>, Path((name, toxic)): Path<(String, String)>) -> Answer {
    Ok(json(StatusCode::OK, reg.lock().await.toxic(&name, &toxic)?))
}

async fn update_toxic(
    State(reg): State<Shared>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let mut reg = reg.lock().await;
    reg.toxic(&name, &toxic)?;
    let input = parse(&body)?;
    Ok(json(
        StatusCode::OK,
        reg.update_toxic(&name, &toxic, input)?,
    ))
}

async fn remove_toxic(
    State(reg): State<Shared>,
    Path((name, toxic)): Path<(String, String)>,
) -> Answer {
    reg.lock().await.remove_toxic(&name, &toxic)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

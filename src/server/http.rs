//! The REST side of the reference server: login and refresh, missed messages,
//! conversations, health, and the test-admin endpoints scenarios drive.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;

use super::Bug;
use super::auth::Kind;
use super::socket::user_room;
use super::state::{AppState, Shared};
use super::store::{Since, StoreError, iso_millis, parse_iso};

/// What the REST handlers need: the shared state, and the Socket.IO handle
/// to pull a removed member's sockets out of the room.
#[derive(Clone)]
pub struct Ctx {
    pub app: Shared,
    pub io: SocketIo,
}

pub fn routes(ctx: Ctx) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/revoke", post(revoke))
        .route("/api/messages", get(messages))
        .route("/api/conversations", get(conversations))
        .route(
            "/api/conversations/{id}/participants",
            post(add_participant),
        )
        .route(
            "/api/conversations/{id}/participants/{user}",
            delete(remove_participant),
        )
        .with_state(ctx)
}

/// An error answer in the `{error}` shape clients read.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({ "error": self.1, "status": self.0.as_u16() })),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn bad(msg: &str) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.to_owned())
}

/// The user behind `Authorization: Bearer <access token>`.
fn bearer(app: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "missing bearer token".into()))?;
    app.authenticate(token).map_err(|e| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            format!("Authentication failed: {e}"),
        )
    })
}

async fn health(State(ctx): State<Ctx>) -> Json<Value> {
    let queued = ctx.app.store().queued().unwrap_or(-1);
    Json(json!({
        "status": "ok",
        "connectedSockets": ctx.io.sockets().len(),
        "uptimeSeconds": ctx.app.started.elapsed().as_secs_f64(),
        "queued": queued,
        "bugs": ctx.app.config.bugs,
    }))
}

#[derive(Deserialize)]
struct UserBody {
    #[serde(rename = "userId")]
    user_id: String,
}

async fn login(State(ctx): State<Ctx>, body: Option<Json<UserBody>>) -> ApiResult {
    let Some(Json(body)) = body else {
        return Err(bad("body must be {\"userId\": \"...\"}"));
    };
    if body.user_id.is_empty() {
        return Err(bad("userId must not be empty"));
    }
    let pair = ctx.app.issue_pair(&body.user_id)?;
    Ok(Json(json!({
        "userId": body.user_id,
        "token": pair.token,
        "refreshToken": pair.refresh,
        "expiresAt": iso_millis(pair.expires_ms),
    })))
}

#[derive(Deserialize)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    refresh_token: String,
}

async fn refresh(State(ctx): State<Ctx>, body: Option<Json<RefreshBody>>) -> ApiResult {
    let Some(Json(body)) = body else {
        return Err(bad("body must be {\"refreshToken\": \"...\"}"));
    };
    let unauthorized = |e: String| ApiError(StatusCode::UNAUTHORIZED, e);
    let claims = ctx
        .app
        .tokens
        .verify(&body.refresh_token, Kind::Refresh, AppState::now_ms(), true)
        .map_err(|e| unauthorized(format!("refresh refused: {e}")))?;
    ctx.app
        .check_version(&claims.sub, claims.ver)
        .map_err(|e| unauthorized(format!("refresh refused: {e}")))?;
    let pair = ctx.app.issue_pair(&claims.sub)?;
    Ok(Json(json!({
        "token": pair.token,
        "refreshToken": pair.refresh,
        "expiresAt": iso_millis(pair.expires_ms),
    })))
}

/// Test admin: revokes every token the user holds (access and refresh).
async fn revoke(State(ctx): State<Ctx>, Json(body): Json<UserBody>) -> ApiResult {
    let revoked = ctx.app.store().revoke_tokens(&body.user_id)?;
    if !revoked {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown user {}", body.user_id),
        ));
    }
    Ok(Json(json!({ "revoked": true, "userId": body.user_id })))
}

#[derive(Deserialize)]
struct MessagesQuery {
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
    since: Option<String>,
    #[serde(rename = "sinceSeq")]
    since_seq: Option<i64>,
    limit: Option<u32>,
}

async fn messages(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Query(q): Query<MessagesQuery>,
) -> ApiResult {
    let user = bearer(&ctx.app, &headers)?;
    let conversation = q
        .conversation_id
        .ok_or_else(|| bad("conversationId is required"))?;
    let since = match (q.since_seq, q.since.as_deref()) {
        (Some(seq), _) => Since::Seq(seq),
        (None, Some(t)) => {
            Since::Time(parse_iso(t).ok_or_else(|| bad("since must be an ISO 8601 time"))?)
        }
        (None, None) => Since::Seq(0),
    };
    let joined = ctx.app.store().membership(&conversation, &user)?;
    let not_before = match (joined, ctx.app.bug(Bug::SkipMembershipCheck)) {
        (Some(ms), false) => ms,
        (_, true) => 0,
        (None, false) => {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "not a participant of this conversation".into(),
            ));
        }
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut found = ctx
        .app
        .store()
        .messages_since(&conversation, since, not_before, limit + 1)?;
    if ctx.app.bug(Bug::SyncOffByOne) {
        // Skips the first message past the boundary: the classic `>` vs `>=` slip.
        let boundary_passed = |m: &super::store::Message| match since {
            Since::Seq(_) => true,
            Since::Time(t) => m.created_ms > t,
        };
        if let Some(i) = found.iter().position(boundary_passed) {
            found.remove(i);
        }
    }
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    Ok(Json(json!({ "messages": found, "hasMore": has_more })))
}

async fn conversations(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult {
    let user = bearer(&ctx.app, &headers)?;
    let list = ctx.app.store().conversations_of(&user)?;
    Ok(Json(json!({ "conversations": list })))
}

async fn add_participant(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Json(body): Json<UserBody>,
) -> ApiResult {
    let _guard = ctx.app.lock_conversation(&id).await;
    let added = ctx
        .app
        .store()
        .add_participant(&id, &body.user_id, AppState::now_ms())?;
    Ok(Json(
        json!({ "added": added, "conversationId": id, "userId": body.user_id }),
    ))
}

async fn remove_participant(
    State(ctx): State<Ctx>,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    let _guard = ctx.app.lock_conversation(&id).await;
    let removed = ctx.app.store().remove_participant(&id, &user)?;
    ctx.app.drop_volatile_queue(&user, &id);
    if !ctx.app.bug(Bug::SkipMembershipCheck) {
        // Takes effect at once: the removed user's open sockets stop receiving.
        let _ = ctx.io.to(user_room(&user)).leave(id.clone()).await;
    }
    if !removed {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{user} is not a participant of {id}"),
        ));
    }
    Ok(Json(
        json!({ "removed": true, "conversationId": id, "userId": user }),
    ))
}

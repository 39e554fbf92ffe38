//! The Socket.IO side of the reference server: auth middleware, rooms,
//! sends, presence and the duplicate-connection policy.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::state::{AppState, Shared};
use super::{Bug, DuplicatePolicy};

/// The authenticated user of a socket, put there by the auth middleware.
#[derive(Clone)]
pub struct UserId(pub Arc<str>);

/// Every socket of a user also sits in this room, so the server can reach
/// all of a user's tabs (duplicate policy, removal) without its own registry.
pub fn user_room(user: &str) -> String {
    format!("user:{user}")
}

/// The CONNECT_ERROR message the guide's client matches on.
#[derive(Debug)]
pub struct AuthFailed;

impl std::fmt::Display for AuthFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authentication failed")
    }
}

pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(authenticate));
}

fn user_of(s: &SocketRef) -> Arc<str> {
    s.extensions
        .get::<UserId>()
        .map(|u| u.0)
        .unwrap_or_else(|| Arc::from(""))
}

async fn authenticate(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    State(app): State<Shared>,
) -> Result<(), AuthFailed> {
    let token = auth
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned))
        .ok_or(AuthFailed)?;
    let user = app.authenticate(&token).map_err(|e| {
        tracing::debug!(socket = %s.id, "refused connect: {e}");
        AuthFailed
    })?;
    s.extensions.insert(UserId(user.into()));
    // Handlers are registered here, not in `on_connect`: socketioxide sends
    // the CONNECT answer and then *spawns* the connect handler, so an event
    // the client sends right after CONNECT could beat a registration made
    // there and be dropped. The middleware completes before CONNECT is sent.
    s.on("join-room", join_room);
    s.on("leave-room", leave_room);
    s.on("send-message", send_message);
    s.on_disconnect(on_disconnect);
    Ok(())
}

async fn on_connect(s: SocketRef, io: SocketIo, State(app): State<Shared>) {
    let user = user_of(&s);
    let room = user_room(&user);
    let others = io.to(room.clone()).sockets();
    if !others.is_empty() && app.config.duplicate_policy != DuplicatePolicy::Allow {
        for old in others.iter() {
            let _ = old.emit(
                "duplicate-connection",
                &json!({ "message": "connected elsewhere", "socketId": s.id.to_string() }),
            );
            if app.config.duplicate_policy == DuplicatePolicy::DisconnectOld {
                let _ = old.clone().disconnect();
            }
        }
    }
    s.join(room);
    if others.is_empty() {
        announce(&io, &app, &user, "online").await;
    }
}

/// Presence: tells the user's conversations that they came or went.
async fn announce(io: &SocketIo, app: &AppState, user: &str, status: &str) {
    let conversations = app.store().conversations_of(user).unwrap_or_default();
    let payload = json!({ "userId": user, "status": status, "at": super::store::iso_millis(AppState::now_ms()) });
    for c in conversations {
        let _ = io.to(c.id).emit("user:status", &payload).await;
    }
}

async fn on_disconnect(
    s: SocketRef,
    io: SocketIo,
    State(app): State<Shared>,
    reason: DisconnectReason,
) {
    let user = user_of(&s);
    tracing::debug!(socket = %s.id, %user, ?reason, "disconnected");
    let still_here = io
        .to(user_room(&user))
        .sockets()
        .iter()
        .any(|o| o.id != s.id);
    if !still_here && reason != DisconnectReason::ClosingServer {
        announce(&io, &app, &user, "offline").await;
    }
}

fn conversation_of(v: &Value) -> Option<String> {
    v.get("conversationId").and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn removed_answer(conversation: &str) -> Value {
    json!({ "error": "You are no longer a participant of this conversation", "action": "removed", "conversationId": conversation })
}

async fn join_room(s: SocketRef, Data(v): Data<Value>, ack: AckSender, State(app): State<Shared>) {
    let user = user_of(&s);
    let Some(conversation) = conversation_of(&v) else {
        let _ = ack.send(&json!({ "error": "conversationId is required" }));
        return;
    };
    if !marked_connected(&s).await {
        let _ = ack.send(&json!({ "error": "not connected" }));
        return;
    }
    let _guard = app.lock_conversation(&conversation).await;
    let member = app.bug(Bug::SkipMembershipCheck)
        || matches!(app.store().membership(&conversation, &user), Ok(Some(_)));
    if !member {
        let _ = ack.send(&removed_answer(&conversation));
        return;
    }
    s.join(conversation.clone());
    let queued = app.take_queue(&user, &conversation).unwrap_or_else(|e| {
        tracing::error!("offline queue of {user} in {conversation}: {e}");
        Vec::new()
    });
    let _ = ack.send(&json!({ "success": true, "conversationId": conversation }));
    tracing::debug!(%user, %conversation, queued = queued.len(), "joined; replaying the offline queue");
    let mut unsent = Vec::new();
    for m in queued {
        if let Err(e) = s.emit("message:new", &m) {
            tracing::warn!(%user, %conversation, id = %m.id, "replay not written, requeued: {e}");
            unsent.extend(super::store::rowid_of(&m.id));
        }
    }
    if !unsent.is_empty()
        && let Err(e) = app
            .store()
            .requeue(&user, &conversation, &unsent, AppState::now_ms())
    {
        tracing::error!("requeue for {user} in {conversation}: {e}");
    }
}

/// socketioxide 0.18 writes the CONNECT answer *before* it marks the socket
/// connected, and `emit` on an unmarked socket fails (`Closed`). On a busy
/// machine the client's first event (its `join-room`, sent on CONNECT) can
/// be handled in between: the offline queue replayed then was taken and
/// lost, and broadcasts to the room skipped the socket. The harness found
/// this as loss in server-restart (one returning user missing its whole
/// queue, about one run in ten under load). Waits for the mark, which is a
/// few instructions away; false if it never comes (the socket closed).
async fn marked_connected(s: &SocketRef) -> bool {
    for _ in 0..2000 {
        if s.connected() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    s.connected()
}

async fn leave_room(s: SocketRef, Data(v): Data<Value>, ack: AckSender) {
    if let Some(conversation) = conversation_of(&v) {
        s.leave(conversation);
        let _ = ack.send(&json!({ "success": true }));
    } else {
        let _ = ack.send(&json!({ "error": "conversationId is required" }));
    }
}

async fn send_message(
    s: SocketRef,
    Data(v): Data<Value>,
    ack: AckSender,
    io: SocketIo,
    State(app): State<Shared>,
) {
    let user = user_of(&s);
    let temp_id = v.get("temp_id").and_then(Value::as_str);
    let content = v.get("content").and_then(Value::as_str);
    let (Some(conversation), Some(temp_id), Some(content)) =
        (conversation_of(&v), temp_id, content)
    else {
        let _ = ack.send(&json!({ "error": "temp_id, conversationId and content are required" }));
        return;
    };
    if app.swallow_this_send(&user, temp_id) {
        return;
    }
    let _guard = app.lock_conversation(&conversation).await;
    // Idempotency first: a resend of a message already stored (its ack was
    // lost) gets the original id even if the sender was removed since.
    if !app.bug(Bug::NoIdempotency) {
        match app.store().find_by_temp_id(&user, temp_id) {
            Ok(Some(m)) => {
                let _ = ack.send(&ack_of(&m, true));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = ack.send(&json!({ "error": format!("storage failed: {e}") }));
                return;
            }
        }
    }
    let member = app.bug(Bug::SkipMembershipCheck)
        || matches!(app.store().membership(&conversation, &user), Ok(Some(_)));
    if !member {
        let _ = ack.send(&removed_answer(&conversation));
        return;
    }
    // Who is in the room now decides who gets it live and who gets it queued.
    let in_room: HashSet<Arc<str>> = io
        .to(conversation.clone())
        .sockets()
        .iter()
        .map(user_of)
        .collect();
    let offline: Vec<String> = app
        .store()
        .participants(&conversation)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !in_room.contains(p.as_str()))
        .collect();
    tracing::debug!(%conversation, %user, temp_id, queued_for = ?offline, "storing");
    let message = match app.store_message(&conversation, &user, temp_id, content, offline) {
        Ok(m) => m,
        Err(e) => {
            let _ = ack.send(&json!({ "error": format!("storage failed: {e}") }));
            return;
        }
    };
    if app.hold_this_broadcast() {
        // Late, but to the same sockets it was due to (the others got it queued).
        let (sockets, message) = (io.to(conversation.clone()).sockets(), message.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            for socket in sockets {
                let _ = socket.emit("message:new", &message);
            }
        });
    } else if !app.drop_this_broadcast() {
        let _ = io
            .to(conversation.clone())
            .emit("message:new", &message)
            .await;
    }
    if app.phantom_after_this() {
        let ghost = format!("phantom-{}", message.id);
        let fake = json!({
            "id": ghost, "temp_id": ghost, "conversationId": conversation,
            "senderId": user.to_string(), "content": "nobody sent this", "createdAt": message.created_at,
        });
        let _ = io.to(conversation).emit("message:new", &fake).await;
    }
    let _ = ack.send(&ack_of(&message, false));
}

/// A send's ack: the stored message's id, seq (unless `--no-seq`) and time.
fn ack_of(m: &super::store::Message, duplicate: bool) -> serde_json::Value {
    let mut ack = json!({ "id": m.id, "createdAt": m.created_at });
    if let Some(seq) = super::store::wire_seq(m.seq) {
        ack["seq"] = seq.into();
    }
    if duplicate {
        ack["duplicate"] = true.into();
    }
    ack
}

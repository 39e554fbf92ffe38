//! One connection of a user: the recovery steps after (re)connecting, then
//! the chat loop until the connection is lost or the run stops.

use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};

use super::blackhole::{self, Hole, Look};
use super::driver::{Driver, Heard};
use super::stats::Stats;
use super::{Phase, SessionEnd, User};
use crate::history::{EventKind, Via};
use crate::scenario::{Resend, SyncMode};
use crate::sio::AckError;

/// An outbox key and what its send's ack brought.
type AckFuture = Pin<Box<dyn Future<Output = (u64, Result<Vec<Value>, AckError>)> + Send>>;

impl User {
    /// Runs one connection. `first` is the initial connect: no sync, no
    /// resends, and no `Recovered` event (there was nothing to recover).
    pub(super) async fn session(&mut self, driver: &mut dyn Driver, first: bool) -> SessionEnd {
        // Where each conversation's sync starts: what was seen before the
        // loss, unless an earlier sync is still owed.
        if !first {
            for c in &mut self.conversations {
                if c.sync_from.is_none() {
                    c.sync_from = Some(c.seen.since());
                }
            }
        }

        // A blackhole may already be on its way: note before anything arrives.
        let mut holes = self.blackholes.clone();
        let mut note = None;
        if let Some(now) = holes.as_mut().map(|h| *h.borrow_and_update()) {
            self.look_at_blackholes(now, &mut note);
        }

        // The recovery steps wait on acks and REST; a stop must not wait
        // for them (users still busy at the stop deadline are aborted and
        // could not record what they leave stranded).
        let stop = self.phase.clone();
        let recovery = tokio::select! {
            r = Box::pin(self.recover(&*driver, first)) => Some(r),
            _ = stopped(stop) => None,
        };
        let Some((rejoined, synced)) = recovery else {
            driver.disconnect(&*self).await;
            self.outbox.all_grounded();
            return SessionEnd::Stop;
        };
        let mut acks: FuturesUnordered<AckFuture> = FuturesUnordered::new();
        let resent = self.flush_outbox(&*driver, &mut acks, !first);
        if !first && !driver.is_closed() {
            self.record(EventKind::Recovered {
                rejoined,
                synced,
                resent,
            });
        }

        // A heal during the recovery steps (which do not watch) counts too.
        if let Some(now) = holes.as_ref().map(|h| *h.borrow())
            && self.look_at_blackholes(now, &mut note)
        {
            return self.close_outlived(driver, note).await;
        }

        // Every waiter below lives as long as the loop: the loop turns once
        // per delivery, and a timer entry, a watch waiter and a boxed `next`
        // made and dropped per turn were about 4 % of the samples of a
        // chatting harness (perf, 5,000 users; README, "Third pass").
        let mut holes = changes(holes);
        let mut tab = changes(self.tab.clone());
        let mut stop = std::pin::pin!(stop_or_gone(self.phase.clone()));
        let mut send_timer = std::pin::pin!(tokio::time::sleep_until(
            self.next_send.unwrap_or_else(tokio::time::Instant::now)
        ));
        loop {
            let chatting = *self.phase.borrow() == Phase::Chat && self.next_send.is_some();
            if let Some(due) = self.next_send.filter(|_| chatting)
                && send_timer.deadline() != due
            {
                send_timer.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                item = std::future::poll_fn(|cx| driver.poll_next(cx)) => match item {
                    Heard::Event { name, args } => self.on_event(&name, args),
                    Heard::Closed { reason } => {
                        self.outbox.all_grounded();
                        return SessionEnd::Lost(reason);
                    }
                    Heard::Stuck { op, waited } => super::driver::stuck(&*self, op, waited),
                },
                Some((key, result)) = acks.next(), if !acks.is_empty() => self.on_ack(&*driver, &mut acks, key, result),
                () = &mut send_timer, if chatting => {
                    // The drain may have begun while this send was armed.
                    if *self.phase.borrow() != Phase::Chat {
                        continue;
                    }
                    if let Some(key) = self.create_message() {
                        self.emit(&*driver, &mut acks, key, false);
                    }
                    self.schedule_next_send();
                }
                now = next_change(&mut holes) => if self.look_at_blackholes(now, &mut note) {
                    return self.close_outlived(driver, note).await;
                },
                closed = next_change(&mut tab) => if closed {
                    driver.disconnect(&*self).await;
                    self.outbox.all_grounded();
                    return SessionEnd::TabClosed;
                },
                () = &mut stop => {
                    driver.disconnect(&*self).await;
                    self.outbox.all_grounded();
                    return SessionEnd::Stop;
                }
            }
        }
    }

    /// Takes the session's note when a blackhole is in effect; true once
    /// one healed with the session still up (see [`blackhole`]).
    fn look_at_blackholes(&self, now: blackhole::Blackholes, note: &mut Option<Hole>) -> bool {
        match blackhole::look(now, note.as_ref()) {
            Look::Nothing => false,
            Look::Note => {
                let since = self.conversations.iter().map(|c| c.seen.since()).collect();
                *note = Some(Hole::new(now, since));
                false
            }
            Look::Outlived => true,
        }
    }

    /// Closes a connection that outlived a blackhole; the next session
    /// syncs from where the user stood when the blackhole began (unless an
    /// older sync is still owed), so what fell in the hole is fetched.
    async fn close_outlived(&mut self, driver: &mut dyn Driver, note: Option<Hole>) -> SessionEnd {
        driver.disconnect(&*self).await;
        if let Some(note) = note {
            for (c, since) in self.conversations.iter_mut().zip(note.since) {
                if c.sync_from.is_none() {
                    c.sync_from = Some(since);
                }
            }
        }
        self.outbox.all_grounded();
        SessionEnd::OutlivedBlackhole
    }

    /// Readmit, rejoin and sync: the guide's recovery before the outbox is
    /// resent. Returns (conversations rejoined, new messages synced).
    async fn recover(&mut self, client: &dyn Driver, first: bool) -> (u32, u32) {
        if !first {
            self.readmit().await;
        }
        let rejoined = self.join_all(client).await;
        let mut synced = 0;
        if !first && self.sync == SyncMode::Rest {
            // The guide's manager refreshes an expired token after a reconnect.
            self.ensure_fresh_token(false).await;
            synced = self.sync_all().await;
            // One more try for what failed (a flapping link, a token that
            // expired in between), with a fresh token.
            if self
                .conversations
                .iter()
                .any(|c| c.active && c.sync_from.is_some())
                && !client.is_closed()
            {
                self.ensure_fresh_token(true).await;
                synced += self.sync_all().await;
            }
        }
        (rejoined, synced)
    }

    /// A conversation the server once said we were removed from may have
    /// taken us back: ask for the current list and reactivate what is on it.
    async fn readmit(&mut self) {
        if self.conversations.iter().all(|c| c.active) {
            return;
        }
        let Some(token) = self.session.as_ref().map(|s| s.token.clone()) else {
            return;
        };
        if let Ok(list) = self.api.conversations(&token).await {
            for c in self.conversations.iter_mut().filter(|c| !c.active) {
                c.active = list.iter().any(|id| *id == *c.id);
            }
        }
    }

    /// Joins every active conversation; drops the ones the server says we were removed from.
    async fn join_all(&mut self, client: &dyn Driver) -> u32 {
        let timeout = self.ctx.users.ack_timeout;
        let join = self.ctx.events.join.clone();
        let pending: Vec<_> = self
            .conversations
            .iter()
            .enumerate()
            .filter(|(_, c)| c.active)
            .map(|(i, c)| {
                let data = json!({ "conversationId": &*c.id });
                client
                    .emit_with_ack(&join, data, timeout)
                    .map(move |r| (i, r))
            })
            .collect();
        let results = futures_util::future::join_all(pending).await;
        let mut joined = 0;
        for (i, result) in results {
            let conversation = self.conversations[i].id.to_string();
            match result {
                Ok(args) => {
                    let answer = args.into_iter().next().unwrap_or(Value::Null);
                    if answer.get("success").and_then(Value::as_bool) == Some(true) {
                        joined += 1;
                        self.record(EventKind::Joined { conversation });
                    } else {
                        let action = answer
                            .get("action")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        if action == "removed" {
                            self.conversations[i].active = false;
                            for p in self.outbox.drop_conversation(&conversation) {
                                Stats::gauge(&self.stats().outbox, -1);
                                self.record(EventKind::Rejected {
                                    temp_id: p.temp_id,
                                    conversation: conversation.clone(),
                                    error: "removed from the conversation".into(),
                                    action: Some("removed".into()),
                                });
                            }
                        }
                        self.record(EventKind::JoinRefused {
                            conversation,
                            action,
                        });
                    }
                }
                Err(e) => self.record(EventKind::JoinFailed {
                    conversation,
                    error: e.to_string(),
                }),
            }
        }
        joined
    }

    /// Fetches what each active conversation with a sync owed missed; returns how many were new.
    async fn sync_all(&mut self) -> u32 {
        let Some(token) = self.session.as_ref().map(|s| s.token.clone()) else {
            return 0;
        };
        let api = self.api.clone();
        let pending: Vec<_> = self
            .conversations
            .iter()
            .enumerate()
            .filter(|(_, c)| c.active && c.sync_from.is_some())
            .map(|(i, c)| {
                let since = c.sync_from.clone().flatten();
                let (api, token, id) = (api.clone(), token.clone(), c.id.clone());
                async move { (i, api.messages_since(&token, &id, since.as_deref()).await) }
            })
            .collect();
        let mut new_total = 0;
        for (i, result) in futures_util::future::join_all(pending).await {
            let conversation = self.conversations[i].id.to_string();
            match result {
                Ok(messages) => {
                    let fetched = messages.len() as u32;
                    let new = messages
                        .into_iter()
                        .filter(|m| self.on_message(m, Via::Sync))
                        .count() as u32;
                    new_total += new;
                    self.conversations[i].sync_from = None;
                    self.record(EventKind::SyncDone {
                        conversation,
                        fetched,
                        new,
                    });
                }
                Err(e) => self.record(EventKind::SyncFailed {
                    conversation,
                    error: e.to_string(),
                }),
            }
        }
        new_total
    }

    /// Sends everything in the outbox that is not on the wire; returns how many.
    fn flush_outbox(
        &mut self,
        client: &dyn Driver,
        acks: &mut FuturesUnordered<AckFuture>,
        resend: bool,
    ) -> u32 {
        let keys = self.outbox.grounded();
        for &key in &keys {
            self.emit(client, acks, key, resend);
        }
        keys.len() as u32
    }

    /// Puts one outbox message on the wire and queues its ack.
    fn emit(
        &mut self,
        client: &dyn Driver,
        acks: &mut FuturesUnordered<AckFuture>,
        key: u64,
        resend: bool,
    ) {
        if resend && self.ctx.users.resend == Resend::NewTempId {
            self.rename(key);
        }
        let Some(p) = self.outbox.get_mut(key) else {
            return;
        };
        p.in_flight = true;
        let data = json!({ "temp_id": p.temp_id, "conversationId": &*p.conversation, "content": p.content });
        let kind = EventKind::Emitted {
            temp_id: p.temp_id.clone(),
            conversation: p.conversation.to_string(),
            resend,
        };
        self.record(kind);
        let answer = client.emit_with_ack(&self.ctx.events.send, data, self.ctx.users.ack_timeout);
        acks.push(Box::pin(answer.map(move |r| (key, r))));
    }

    /// The guide's manager resends under a fresh temp_id.
    fn rename(&mut self, key: u64) {
        let n = self.next_n;
        self.next_n += 1;
        let temp_id = self.ctx.temp_id(&self.name, n);
        if let Some(p) = self.outbox.get_mut(key) {
            let old = std::mem::replace(&mut p.temp_id, temp_id.clone());
            self.record(EventKind::Renamed {
                old_temp_id: old,
                temp_id,
            });
        }
    }

    fn on_ack(
        &mut self,
        client: &dyn Driver,
        acks: &mut FuturesUnordered<AckFuture>,
        key: u64,
        result: Result<Vec<Value>, AckError>,
    ) {
        match result {
            Ok(args) => {
                let Some(p) = self.outbox.remove(key) else {
                    return;
                };
                Stats::gauge(&self.stats().outbox, -1);
                let answer = args.into_iter().next().unwrap_or(Value::Null);
                let conversation = p.conversation.to_string();
                if let Some(id) = answer.get("id").map(id_string) {
                    let audience = self.ctx.audience.get(&conversation);
                    Stats::add(&self.stats().acked, 1);
                    Stats::add(&self.stats().expected, audience as u64);
                    self.ctx.ledger.owe(&id, &conversation, audience);
                    let seq = answer.get("seq").and_then(Value::as_i64);
                    self.record(EventKind::Acked {
                        temp_id: p.temp_id,
                        conversation,
                        id,
                        seq,
                    });
                } else {
                    Stats::add(&self.stats().rejected, 1);
                    let error = answer
                        .get("error")
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| answer.to_string());
                    let action = answer
                        .get("action")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    if action.as_deref() == Some("removed")
                        && let Some(c) = self
                            .conversations
                            .iter_mut()
                            .find(|c| *c.id == *conversation)
                    {
                        c.active = false;
                    }
                    self.record(EventKind::Rejected {
                        temp_id: p.temp_id,
                        conversation,
                        error,
                        action,
                    });
                }
            }
            Err(AckError::Timeout) => {
                let Some(p) = self.outbox.get_mut(key) else {
                    return;
                };
                p.in_flight = false;
                let temp_id = p.temp_id.clone();
                self.record(EventKind::AckTimeout { temp_id });
                // Still connected as far as we know: try again at once.
                if !client.is_closed() {
                    self.emit(client, acks, key, true);
                }
            }
            // The session loop sees the close and grounds the outbox.
            Err(AckError::Disconnected) => {}
        }
    }

    fn on_event(&mut self, name: &str, args: Vec<Value>) {
        if name == self.ctx.events.message {
            if let Some(m) = args.first() {
                self.on_message(m, Via::Live);
            }
        } else if name == self.ctx.events.duplicate_connection
            || name == self.ctx.events.server_shutdown
        {
            self.record(EventKind::Notice {
                name: name.to_owned(),
            });
        }
    }

    /// Records a message; true when it was new to this user.
    fn on_message(&mut self, m: &Value, via: Via) -> bool {
        let Some(id) = m.get("id").map(id_string) else {
            return false;
        };
        let conversation = m.get("conversationId").map(id_string).unwrap_or_default();
        let seq = m.get("seq").and_then(Value::as_i64);
        let created_at = m.get("createdAt").and_then(Value::as_str);
        let conv = self
            .conversations
            .iter_mut()
            .find(|c| *c.id == *conversation);
        let (new, replay_of_sync) = match conv {
            Some(c) => {
                let new = c.seen.insert(&id, seq, created_at);
                if new && via == Via::Sync {
                    c.seen.mark_synced(&id, seq);
                }
                (
                    new,
                    !new && via == Via::Live && c.seen.came_by_sync(&id, seq),
                )
            }
            None => (true, false),
        };
        // Sync answers overlap what was already seen (`since` is inclusive),
        // and the server's queued replay can arrive after the sync fetched
        // the same messages: neither is a duplicate delivery, so neither is
        // recorded.
        if (via == Via::Sync && !new) || replay_of_sync {
            return false;
        }
        if new {
            Stats::add(&self.stats().delivered, 1);
            self.ctx.ledger.paid(&id, &conversation);
        } else {
            Stats::add(&self.stats().duplicates, 1);
        }
        self.record(EventKind::Delivered {
            id,
            temp_id: m.get("temp_id").and_then(Value::as_str).map(str::to_owned),
            conversation,
            sender: m.get("senderId").map(id_string).unwrap_or_default(),
            seq,
            via,
            dup: !new,
        });
        new
    }
}

/// Resolves when the run enters its Stop phase (never if the sender is gone
/// without stopping).
async fn stopped(mut phase: tokio::sync::watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p == Phase::Stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the run enters its Stop phase, or its sender is gone.
async fn stop_or_gone(mut phase: tokio::sync::watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Stop).await;
}

/// A cohort signal's (tab, blackholes) new values, boxed (most users have
/// no such faults, and every byte of the session stays for its whole life).
/// One waiter stays registered between polls.
type Changes<T> = Option<Pin<Box<dyn futures_util::Stream<Item = T> + Send>>>;

fn changes<T: Copy + Send + Sync + 'static>(
    rx: Option<tokio::sync::watch::Receiver<T>>,
) -> Changes<T> {
    let stream = futures_util::stream::unfold(rx?, |mut rx| async move {
        rx.changed().await.ok()?;
        let now = *rx.borrow_and_update();
        Some((now, rx))
    });
    Some(Box::pin(stream))
}

/// The next change; never, without the signal or once its sender is gone.
async fn next_change<T>(changes: &mut Changes<T>) -> T {
    match changes.as_mut() {
        Some(s) => match s.next().await {
            Some(now) => now,
            None => {
                *changes = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Ids may be strings or numbers depending on the server.
fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

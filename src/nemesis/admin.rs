//! The test-admin calls faults make on the target itself (never through a
//! cohort's proxy): revoke tokens, remove and re-add members, health.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

/// How far a list of admin calls got.
pub struct Done {
    pub count: usize,
    pub result: anyhow::Result<()>,
}
use serde_json::json;

use crate::scenario::ApiPaths;
use crate::target::http::{Http, Reply};

pub struct Admin {
    pub http: Http,
    /// The server's own base URL.
    pub base: String,
    pub paths: ApiPaths,
}

impl Admin {
    fn participants(&self, conversation: &str) -> String {
        format!(
            "{}{}",
            self.base,
            self.paths.participants.replace("{id}", conversation)
        )
    }

    pub async fn revoke(&self, users: &[u32]) -> anyhow::Result<()> {
        for u in users {
            let r = self
                .http
                .post_json(
                    &format!("{}{}", self.base, self.paths.revoke),
                    &json!({ "userId": format!("u{u}") }),
                    None,
                )
                .await
                .map_err(|e| anyhow!(e))?;
            if !r.is_success() {
                bail!("revoking u{u}: HTTP {}", r.status);
            }
        }
        Ok(())
    }

    /// Removes each pair in order; says how many were removed before any failure.
    pub async fn remove(&self, pairs: &[(String, u32)]) -> Done {
        self.each(pairs, "removing", |c, u| async move {
            self.http
                .delete(&format!("{}/u{u}", self.participants(c)))
                .await
        })
        .await
    }

    pub async fn readd(&self, pairs: &[(String, u32)]) -> Done {
        self.each(pairs, "re-adding", |c, u| async move {
            self.http
                .post_json(
                    &self.participants(c),
                    &json!({ "userId": format!("u{u}") }),
                    None,
                )
                .await
        })
        .await
    }

    /// Sends one request per (conversation, user) pair, stopping at the first failure.
    async fn each<'a, F>(
        &self,
        pairs: &'a [(String, u32)],
        what: &str,
        request: impl Fn(&'a str, u32) -> F,
    ) -> Done
    where
        F: std::future::Future<Output = Result<Reply, String>>,
    {
        let mut count = 0;
        for (c, u) in pairs {
            let result = match request(c, *u).await {
                Ok(r) if r.is_success() => Ok(()),
                Ok(r) => Err(anyhow!("{what} u{u} ({c}): HTTP {}", r.status)),
                Err(e) => Err(anyhow!(e)),
            };
            if result.is_err() {
                return Done { count, result };
            }
            count += 1;
        }
        Done {
            count,
            result: Ok(()),
        }
    }

    pub async fn wait_healthy(&self, bound: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + bound;
        loop {
            let r = self
                .http
                .get(&format!("{}{}", self.base, self.paths.health), None)
                .await;
            if matches!(&r, Ok(r) if r.is_success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the server was not healthy again within {bound:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

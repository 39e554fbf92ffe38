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

    /// Removes each pair in order; says how many were removed before any
    /// failure, and notes each one in `removed` as soon as it is (the call
    /// may be dropped half way when the run stops).
    pub async fn remove(
        &self,
        pairs: &[(String, u32)],
        removed: &std::sync::Mutex<Vec<(String, u32)>>,
    ) -> Done {
        // The likeliest cause of a 404 here: the scenario's seed makes the
        // user a member, the server's database no longer does.
        let gone = "not a member now, though the scenario's seed makes it one: did an \
                    earlier run against this server remove it and not re-add it? Start \
                    the server on a fresh database";
        self.each(pairs, "removing", gone, |c, u| async move {
            let r = self
                .http
                .delete(&format!("{}/u{u}", self.participants(c)))
                .await;
            if r.as_ref().is_ok_and(Reply::is_success) {
                removed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((c.to_owned(), u));
            }
            r
        })
        .await
    }

    pub async fn readd(&self, pairs: &[(String, u32)]) -> Done {
        self.each(pairs, "re-adding", "", |c, u| async move {
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

    /// Sends one request per (conversation, user) pair, stopping at the
    /// first failure; `not_found` explains a 404.
    async fn each<'a, F>(
        &self,
        pairs: &'a [(String, u32)],
        what: &str,
        not_found: &str,
        request: impl Fn(&'a str, u32) -> F,
    ) -> Done
    where
        F: std::future::Future<Output = Result<Reply, String>>,
    {
        let mut count = 0;
        for (c, u) in pairs {
            let result = match request(c, *u).await {
                Ok(r) if r.is_success() => Ok(()),
                Ok(r) if r.status == 404 && !not_found.is_empty() => {
                    Err(anyhow!("{what} u{u} ({c}): HTTP 404: {not_found}"))
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose every answer is `404 Not Found`.
    async fn all_404() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let _ = s
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                });
            }
        });
        base
    }

    #[tokio::test]
    async fn a_member_already_gone_names_the_likely_cause() {
        let admin = Admin {
            http: Http::new(Duration::from_secs(5)),
            base: all_404().await,
            paths: ApiPaths::default(),
        };
        let pairs = [("c0".to_owned(), 4), ("c0".to_owned(), 5)];
        let done = admin.remove(&pairs, &Default::default()).await;
        assert_eq!(done.count, 0);
        let e = done.result.unwrap_err().to_string();
        assert!(
            e.starts_with("removing u4 (c0): HTTP 404: not a member now"),
            "{e}"
        );
        assert!(e.contains("fresh database"), "{e}");
        // Re-adding has no such cause to name.
        let e = admin.readd(&pairs).await.result.unwrap_err().to_string();
        assert_eq!(e, "re-adding u4 (c0): HTTP 404");
    }
}

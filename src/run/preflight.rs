//! Before any user is spawned against a server we did not start: does it
//! hold the memberships the scenario's seed says it does?
//!
//! Every verdict about loss and leaks rests on the roster. A server seeded
//! with another `--seed` (or other counts), or one an earlier run removed
//! members from, refuses joins the roster expects to succeed, and the run
//! ends in hundreds of loss violations that are the scenario's mismatch,
//! not the server's fault. Asking the server first turns that into one
//! clear setup error.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::exit::ExitError;
use crate::scenario::Plan;
use crate::target::{Api, ApiError, ManagedServer};

/// Users asked at most: all of a run up to this size, an even sample of
/// larger ones (two REST calls each; about a second against the
/// reference server).
const ASKED: u32 = 2_000;
/// Calls in flight at once.
const CONCURRENCY: usize = 16;
/// Bound on the whole check.
const BOUND: Duration = Duration::from_secs(30);

/// What the server says one user is in, against the roster.
#[derive(Debug)]
struct Differs {
    user: u32,
    roster: BTreeSet<String>,
    /// None when the user could not log in.
    server: Result<BTreeSet<String>, String>,
}

/// Checks users' memberships against the roster; an error says what
/// differs and how to fix it. A server that cannot answer (no
/// conversations endpoint, a failing login) is not checked: a warning,
/// and the run goes on.
pub async fn memberships_match(api: &Api, plan: &Plan) -> Result<(), ExitError> {
    let roster = ManagedServer::roster(plan);
    let mut of_user: HashMap<u32, BTreeSet<String>> = HashMap::new();
    for (conversation, members) in &roster {
        for m in members {
            if let Some(u) = m.strip_prefix('u').and_then(|n| n.parse().ok()) {
                of_user.entry(u).or_default().insert(conversation.clone());
            }
        }
    }
    let known: BTreeSet<&str> = roster.iter().map(|(c, _)| c.as_str()).collect();
    let users = sample(plan.users.count);
    let asked = users.len();
    let check = async {
        let mut differs = Vec::new();
        let mut unchecked = None;
        let mut pending = tokio::task::JoinSet::new();
        let mut next = users.into_iter();
        loop {
            while pending.len() < CONCURRENCY {
                let Some(u) = next.next() else { break };
                let api = api.clone();
                pending.spawn(async move { (u, ask(&api, u).await) });
            }
            let Some(done) = pending.join_next().await else {
                break;
            };
            let Ok((user, answer)) = done else { continue };
            let expected = of_user.get(&user).cloned().unwrap_or_default();
            let server = match answer {
                Ok(list) => Ok(list
                    .into_iter()
                    .filter(|c| known.contains(c.as_str()))
                    .collect::<BTreeSet<_>>()),
                Err(Asked::Unanswerable(why)) => {
                    unchecked = Some(why);
                    break;
                }
                Err(Asked::NoLogin(why)) => Err(why),
            };
            if server.as_ref() != Ok(&expected) {
                differs.push(Differs {
                    user,
                    roster: expected,
                    server,
                });
            }
        }
        (differs, unchecked)
    };
    let Ok((mut differs, unchecked)) = tokio::time::timeout(BOUND, check).await else {
        eprintln!(
            "warning: the server's memberships were not checked against the scenario's: \
             no answer within {BOUND:?}"
        );
        return Ok(());
    };
    if let Some(why) = unchecked {
        eprintln!(
            "warning: the server's memberships were not checked against the scenario's: {why}"
        );
        return Ok(());
    }
    if differs.is_empty() {
        return Ok(());
    }
    differs.sort_by_key(|d| d.user);
    Err(ExitError::harness(explain(plan, &differs, asked)))
}

enum Asked {
    /// The server refused the user's login (a 4xx).
    NoLogin(String),
    /// The server has no way to say (the conversations call failed).
    Unanswerable(String),
}

async fn ask(api: &Api, user: u32) -> Result<Vec<String>, Asked> {
    // A refusal (4xx) says the server does not know the user as the
    // scenario does; anything else (a 5xx, a timeout) says nothing of its
    // memberships, so it leaves them unchecked rather than refuse the run.
    let session = api.login(&format!("u{user}")).await.map_err(|e| match e {
        ApiError::Status {
            status: 400..=499, ..
        } => Asked::NoLogin(e.brief()),
        other => Asked::Unanswerable(format!("logging in as u{user}: {}", other.brief())),
    })?;
    // Any failure here means the server cannot tell us (no such endpoint,
    // another shape, another auth scheme): not a mismatch.
    api.conversations(&session.token).await.map_err(|e| {
        Asked::Unanswerable(format!(
            "GET conversations gave {} (set [target.api] conversations if it is elsewhere)",
            e.brief()
        ))
    })
}

/// Every user up to `ASKED`, else `ASKED` spread evenly (first and last included).
fn sample(count: u32) -> Vec<u32> {
    if count <= ASKED {
        return (0..count).collect();
    }
    (0..ASKED)
        .map(|i| (i as u64 * (count as u64 - 1) / (ASKED as u64 - 1)) as u32)
        .collect()
}

fn explain(plan: &Plan, differs: &[Differs], asked: usize) -> String {
    let list = |s: &BTreeSet<String>| {
        if s.is_empty() {
            "none".to_owned()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let examples: Vec<String> = differs
        .iter()
        .take(3)
        .map(|d| match &d.server {
            Ok(server) => format!(
                "u{} is in {} on the server, {} in the scenario",
                d.user,
                list(server),
                list(&d.roster)
            ),
            Err(why) => format!("u{} cannot log in ({why})", d.user),
        })
        .collect();
    let u = &plan.users;
    format!(
        "the server's memberships do not match the scenario's: {} of {asked} users asked differ \
         ({}). Every loss and leak verdict would rest on the wrong roster. Start the server \
         seeded as the scenario is (`reconnoiter serve --users {} --conversations {} --members {} \
         --seed {}`, or your server's equivalent), on a fresh database if an earlier run removed \
         members",
        differs.len(),
        examples.join("; "),
        u.count,
        u.conversations,
        u.members,
        plan.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose login works (or, without `login`, answers 503) and
    /// whose every other path answers with a 200 HTML page (a single-page
    /// app's fallback).
    async fn spa(login: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let login_path = head.starts_with("POST /api/auth/login");
                        let (status, kind, body) = match login_path {
                            true if login => ("200 OK", "application/json", r#"{"token":"t"}"#),
                            true => ("503 Service Unavailable", "text/plain", "busy"),
                            false => ("200 OK", "text/html", "<!doctype html><p>app</p>"),
                        };
                        let reply = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(reply.as_bytes()).await;
                    }
                });
            }
        });
        base
    }

    #[tokio::test]
    async fn a_server_that_cannot_say_is_not_refused() {
        let plan = crate::scenario::parse(
            std::path::Path::new("s.toml"),
            "[users]\ncount = 4\nconversations = 2\nmembers = 2\n",
        )
        .unwrap();
        for login in [true, false] {
            let api = Api::new(
                &spa(login).await,
                plan.target.api.clone(),
                Duration::from_secs(5),
            );
            assert!(
                memberships_match(&api, &plan).await.is_ok(),
                "login {login}"
            );
        }
    }

    #[test]
    fn small_runs_ask_everyone_large_ones_an_even_sample() {
        assert_eq!(sample(5), vec![0, 1, 2, 3, 4]);
        let s = sample(18_000);
        assert_eq!(s.len(), ASKED as usize);
        assert_eq!((s[0], *s.last().unwrap()), (0, 17_999));
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }
}

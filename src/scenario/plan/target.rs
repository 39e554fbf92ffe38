//! `[target]`: the embedded server, a command the harness starts, or a URL,
//! and the settings that only make sense for one of them.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::TargetPlan;
use crate::scenario::error::ScenarioError;
use crate::scenario::file::TargetSection;

pub(super) fn resolve_target(
    path: &Path,
    text: &str,
    t: TargetSection,
) -> Result<TargetPlan, ScenarioError> {
    let err = |span: Range<usize>, msg: String, fix: &str| {
        ScenarioError::at(path, text, Some(span), msg).with_fix(fix)
    };
    if let (Some(_), Some(c)) = (&t.url, &t.command) {
        return Err(err(
            c.span(),
            "target.command and target.url are mutually exclusive".into(),
            "keep url to drive a server that is already running, or command to have the harness start (and restart) yours",
        ));
    }
    let command = match t.command {
        Some(c) if c.get_ref().trim().is_empty() => {
            return Err(err(
                c.span(),
                "target.command is empty".into(),
                "write the shell command that starts your server, e.g. command = \"node server.js\"",
            ));
        }
        Some(c) => {
            if let Some(bugs) = t.bugs.as_ref().filter(|b| !b.get_ref().is_empty()) {
                return Err(err(
                    bugs.span(),
                    "target.bugs only applies to the embedded server".into(),
                    "remove bugs (they are switches of `reconnoiter serve`), or remove command",
                ));
            }
            if let Some(r) = &t.restart_command {
                return Err(err(
                    r.span(),
                    "target.restart_command is for a server the harness does not start".into(),
                    "remove restart_command: with command, server-restart faults stop the command's processes and start it again",
                ));
            }
            Some(c.into_inner())
        }
        None => None,
    };
    let url = match t.url {
        Some(u) => {
            let s = u.get_ref().trim_end_matches('/').to_string();
            if let Some(why) = base_url_problem(&s) {
                return Err(err(
                    u.span(),
                    format!("target.url {:?} {why}", u.get_ref()),
                    "write the server's base URL, e.g. url = \"http://127.0.0.1:3000\"",
                ));
            }
            Some(s)
        }
        None => None,
    };
    if url.is_some() {
        if let Some(p) = t.ping_interval.as_ref().or(t.ping_timeout.as_ref()) {
            return Err(err(
                p.span(),
                "target.ping_interval and ping_timeout only apply to a server the harness starts"
                    .into(),
                "remove them (your server sets its heartbeat), or remove url",
            ));
        }
        if let Some(ttl) = &t.token_ttl {
            return Err(err(
                ttl.span(),
                "target.token_ttl only applies to a server the harness starts".into(),
                "remove token_ttl (your server decides token lifetimes), or remove url to use the embedded server or a command",
            ));
        }
        if let Some(bugs) = t.bugs.as_ref().filter(|b| !b.get_ref().is_empty()) {
            return Err(err(
                bugs.span(),
                "target.bugs only applies to the embedded server".into(),
                "remove bugs, or remove url to use the embedded server",
            ));
        }
    }
    Ok(TargetPlan {
        url,
        command,
        token_ttl: t.token_ttl.map(|d| d.into_inner().0),
        bugs: t.bugs.map(Spanned::into_inner).unwrap_or_default(),
        namespace: t.namespace.unwrap_or_else(|| "/".into()),
        path: t.path.unwrap_or_else(|| "/socket.io/".into()),
        ping_interval: t.ping_interval.map(|d| d.into_inner().0),
        ping_timeout: t.ping_timeout.map(|d| d.into_inner().0),
        restart_command: t.restart_command.map(Spanned::into_inner),
        events: t.events,
        api: t.api,
    })
}

/// The `[target]` settings that only a server the harness starts obeys,
/// each with what to do instead, for a run whose `--target` overrides the
/// file: the same file serves the embedded server and yours, so these are
/// not errors there, but a token-expiry scenario whose tokens never expire
/// passes without testing what it exists for, and the user should hear so.
pub fn managed_only(t: &super::TargetPlan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ttl) = t.token_ttl {
        out.push(format!(
            "token_ttl = \"{}\" (give your server that token lifetime, e.g. `reconnoiter serve --token-ttl`)",
            humantime::format_duration(ttl)
        ));
    }
    if t.ping_interval.is_some() || t.ping_timeout.is_some() {
        out.push(
            "ping_interval/ping_timeout (your server's pingInterval and pingTimeout decide when a \
             blackholed user is noticed)"
                .to_owned(),
        );
    }
    if !t.bugs.is_empty() {
        out.push("bugs (switches of the embedded server only)".to_owned());
    }
    out
}

/// What is wrong with a server base URL (`[target] url`, `--target`), if
/// anything: the users speak plain HTTP and WebSocket only (`sio` has no
/// TLS), and a URL without its scheme would only fail later, as if the
/// server were unreachable.
pub fn base_url_problem(url: &str) -> Option<&'static str> {
    if url.starts_with("https://") {
        return Some(
            "uses TLS, which the harness's client does not speak (put a TLS-terminating proxy aside and give its plain http:// address)",
        );
    }
    match url.strip_prefix("http://") {
        None => Some("is not an http:// URL"),
        Some(rest) if rest.trim_end_matches('/').is_empty() => Some("has no host"),
        Some(_) => None,
    }
}

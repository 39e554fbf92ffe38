//! The cohorts' fault proxies, driven through Toxiproxy's HTTP API with
//! toxiproxy_rust (the real Toxiproxy's client), against the embedded proxy
//! (child processes of this binary) or a real Toxiproxy (`--toxiproxy URL`).
//!
//! toxiproxy_rust is blocking (a blocking reqwest client, which may not even
//! be created or dropped on an async worker) and panics on some transport
//! errors, so its clients live on one dedicated thread that runs the calls
//! sent to it; a panic there becomes an error. It also ignores the status of
//! toxic creation, so each fault is checked by listing the toxics afterwards.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use anyhow::{Context, anyhow, bail};
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

use crate::scenario::{NetEffect, OfflineMode, Plan};
use crate::target::http::Http;

/// One proxy of a cohort: which API serves it, its name and where users connect.
#[derive(Debug, Clone)]
struct Link {
    api: usize,
    name: String,
    listen: String,
}

/// A call for the driver thread: run it against the client of API `.0`.
type Job = (usize, Box<dyn FnOnce(&Client) + Send>);

pub struct Proxies {
    /// Address of each Toxiproxy API (one per embedded proxy process).
    apis: Vec<String>,
    /// The thread that owns one toxiproxy_rust client per API.
    driver: mpsc::Sender<Job>,
    /// Embedded proxy processes we started (none with --toxiproxy).
    children: Vec<Child>,
    /// cohort → its proxies; a cohort larger than one process can hold is split.
    links: HashMap<String, Vec<Link>>,
    /// cohort → users per link, to map a user to its link.
    per_link: HashMap<String, u32>,
    /// For `reset_peer`, which toxiproxy_rust has no helper for: one
    /// connection pool for the run's resets.
    reset_http: Http,
}

/// A proxy process holds two sockets per user (client side and upstream).
pub fn users_per_process(open_files: u64) -> u32 {
    (open_files.saturating_sub(crate::run::limits::OVERHEAD) / 2).max(1) as u32
}

/// Starts the thread that owns the clients and runs calls against them.
fn start_driver(apis: Vec<String>) -> anyhow::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("toxiproxy-driver".into())
        .spawn(move || {
            let clients: Vec<Client> = apis.iter().map(|a| Client::new(a.as_str())).collect();
            for (api, job) in rx {
                job(&clients[api]);
            }
        })?;
    Ok(tx)
}

impl Proxies {
    /// Runs `f` with API `api`'s client on the driver thread.
    async fn call<T: Send + 'static>(
        &self,
        api: usize,
        f: impl FnOnce(&Client) -> Result<T, String> + Send + 'static,
    ) -> anyhow::Result<T> {
        call(&self.driver, api, f).await
    }
}

async fn call<T: Send + 'static>(
    driver: &mpsc::Sender<Job>,
    api: usize,
    f: impl FnOnce(&Client) -> Result<T, String> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Box::new(move |c: &Client| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)));
        let _ = tx.send(r);
    });
    driver
        .send((api, job))
        .map_err(|_| anyhow!("the toxiproxy driver thread is gone"))?;
    match rx.await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(anyhow!("toxiproxy: {e}")),
        Ok(Err(_)) => Err(anyhow!("the toxiproxy client panicked (see stderr)")),
        Err(_) => Err(anyhow!("the toxiproxy driver thread is gone")),
    }
}

impl Proxies {
    /// Starts (or connects to) the proxies and creates one per cohort chunk
    /// with `/populate`, before any user connects.
    pub async fn start(
        plan: &Plan,
        external: Option<&str>,
        binary: &Path,
        upstream: &str,
        run_tag: &str,
    ) -> anyhow::Result<Proxies> {
        let capacity = users_per_process(crate::run::limits::raise_open_files());
        let mut children = Vec::new();
        let mut apis = Vec::new();
        let processes = match external {
            Some(url) => {
                let api = url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
                is_toxiproxy(&api).await?;
                apis.push(api);
                1
            }
            None => {
                let n = plan.users.count.div_ceil(capacity).max(1);
                for _ in 0..n {
                    let (child, addr) = spawn_proxy(binary, plan.seed)?;
                    children.push(child);
                    apis.push(addr);
                }
                n
            }
        };
        // Chunks of at most `capacity` users, spread over the processes.
        let mut packs: Vec<Vec<ProxyPack>> = (0..processes).map(|_| Vec::new()).collect();
        let mut plan_links: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        let mut per_link = HashMap::new();
        let mut next = 0usize;
        for c in &plan.cohorts {
            let chunks = c.count.div_ceil(capacity).max(1);
            per_link.insert(c.name.clone(), c.count.div_ceil(chunks).max(1));
            for k in 0..chunks {
                let api = next % processes as usize;
                next += 1;
                let name = format!("{run_tag}-{}-{k}", c.name);
                packs[api].push(ProxyPack::new(
                    name.clone(),
                    "127.0.0.1:0".into(),
                    upstream.to_owned(),
                ));
                plan_links
                    .entry(c.name.clone())
                    .or_default()
                    .push((api, name));
            }
        }
        let driver = start_driver(apis.clone())?;
        let mut listens: HashMap<String, String> = HashMap::new();
        for (i, pack) in packs.into_iter().enumerate() {
            let created = call(&driver, i, move |client| {
                let proxies = client.populate(pack)?;
                Ok(proxies
                    .into_iter()
                    .map(|p| (p.proxy_pack.name.clone(), p.proxy_pack.listen.clone()))
                    .collect::<Vec<_>>())
            })
            .await
            .with_context(|| format!("creating proxies on {}", apis[i]))?;
            listens.extend(created);
        }
        let mut links = HashMap::new();
        for (cohort, ls) in plan_links {
            let mut out = Vec::new();
            for (api, name) in ls {
                let listen = listens
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| anyhow!("the proxy API did not create {name}"))?;
                out.push(Link { api, name, listen });
            }
            links.insert(cohort, out);
        }
        let proxies = Proxies {
            apis,
            driver,
            children,
            links,
            per_link,
            reset_http: Http::new(std::time::Duration::from_secs(10)),
        };
        proxies.note_external();
        Ok(proxies)
    }

    /// With an external Toxiproxy, notes our proxies for a second stop
    /// signal to delete (`children::kill_all`).
    fn note_external(&self) {
        if self.children.is_empty() {
            for links in self.links.values() {
                for link in links {
                    crate::children::created_on(&self.apis[link.api], [link.name.clone()]);
                }
            }
        }
    }

    /// Every proxy of ours still there, enabled and without toxics: after
    /// the last heal, anything else (a proxy process that died, a
    /// Toxiproxy restarted under the run) cut users off on the harness's
    /// side, and what they missed cannot be held against the server.
    pub async fn verify_intact(&self) -> anyhow::Result<()> {
        for links in self.links.values() {
            for link in links {
                let name = link.name.clone();
                self.call(link.api, move |client| {
                    let p = client.find_proxy(&name)?;
                    match (&p.proxy_pack.enabled, p.proxy_pack.toxics.len()) {
                        (true, 0) => Ok(()),
                        (false, _) => Err(format!("proxy {name} is disabled")),
                        (true, n) => Err(format!("proxy {name} still has {n} toxics")),
                    }
                })
                .await
                .with_context(|| format!("the fault proxy behind API {}", self.apis[link.api]))?;
            }
        }
        Ok(())
    }

    /// How many embedded proxy processes run (0 with an external Toxiproxy).
    pub fn processes(&self) -> usize {
        self.children.len()
    }

    /// The base URL a user of `cohort` (its `offset`-th user) connects to.
    pub fn url_for(&self, cohort: &str, offset: u32) -> Option<String> {
        let links = self.links.get(cohort)?;
        let per = *self.per_link.get(cohort)?;
        let link = &links[((offset / per) as usize).min(links.len() - 1)];
        Some(format!("http://{}", link.listen))
    }

    fn cohort_links(&self, cohort: &str) -> anyhow::Result<Vec<(usize, String)>> {
        let links = self
            .links
            .get(cohort)
            .ok_or_else(|| anyhow!("no proxies for cohort {cohort}"))?;
        Ok(links.iter().map(|l| (l.api, l.name.clone())).collect())
    }

    /// Starts a network effect on every proxy of a cohort.
    pub async fn apply(&self, cohort: &str, effect: &NetEffect) -> anyhow::Result<()> {
        for (api, name) in self.cohort_links(cohort)? {
            let effect = effect.clone();
            if let NetEffect::Offline {
                mode: OfflineMode::Reset,
            } = effect
            {
                // toxiproxy_rust has no reset_peer helper: plain HTTP, same API.
                reset_peer(&self.reset_http, &self.apis[api], &name).await?;
                continue;
            }
            let expect = self
                .call(api, move |client| {
                    let proxy = client.find_proxy(&name)?;
                    let expect: Vec<&str> = match effect {
                        NetEffect::Offline {
                            mode: OfflineMode::Refuse,
                        } => {
                            proxy.disable()?;
                            return Ok(Vec::new());
                        }
                        NetEffect::Offline {
                            mode: OfflineMode::Blackhole,
                        } => {
                            proxy
                                .with_timeout("downstream".into(), 0, 1.0)
                                .with_timeout("upstream".into(), 0, 1.0);
                            vec!["timeout_downstream", "timeout_upstream"]
                        }
                        NetEffect::Offline {
                            mode: OfflineMode::Reset,
                        } => unreachable!("handled above"),
                        NetEffect::Latency {
                            latency_ms,
                            jitter_ms,
                        } => {
                            proxy.with_latency(
                                "downstream".into(),
                                latency_ms as u32,
                                jitter_ms as u32,
                                1.0,
                            );
                            vec!["latency_downstream"]
                        }
                        NetEffect::Bandwidth { rate } => {
                            proxy.with_bandwidth("downstream".into(), rate as u32, 1.0);
                            vec!["bandwidth_downstream"]
                        }
                        NetEffect::Slicer {
                            average_size,
                            size_variation,
                            delay_us,
                        } => {
                            proxy.with_slicer(
                                "downstream".into(),
                                average_size as u32,
                                size_variation as u32,
                                delay_us as u32,
                                1.0,
                            );
                            vec!["slicer_downstream"]
                        }
                    };
                    let have: Vec<String> = proxy.toxics()?.into_iter().map(|t| t.name).collect();
                    Ok(expect
                        .into_iter()
                        .filter(|e| !have.iter().any(|h| h == e))
                        .map(str::to_owned)
                        .collect::<Vec<_>>())
                })
                .await?;
            if !expect.is_empty() {
                bail!("the proxy API did not add {expect:?} to {cohort}'s proxy");
            }
        }
        Ok(())
    }

    /// Heals a cohort: enabled again, every toxic removed.
    pub async fn heal(&self, cohort: &str) -> anyhow::Result<()> {
        for (api, name) in self.cohort_links(cohort)? {
            self.call(api, move |client| {
                let proxy = client.find_proxy(&name)?;
                proxy.enable()?;
                proxy.delete_all_toxics()
            })
            .await?;
        }
        Ok(())
    }

    /// `/reset`, deletes our proxies, stops the embedded processes. Also run
    /// after Ctrl-C or an error, so a shared Toxiproxy is left clean.
    pub async fn cleanup(mut self) {
        for api in 0..self.apis.len() {
            let names: Vec<String> = self
                .links
                .values()
                .flatten()
                .filter(|l| l.api == api)
                .map(|l| l.name.clone())
                .collect();
            let deleted = self
                .call(api, {
                    let names = names.clone();
                    move |client| {
                        client.reset()?;
                        for n in names {
                            if let Ok(p) = client.find_proxy(&n) {
                                p.delete()?;
                            }
                        }
                        Ok(())
                    }
                })
                .await;
            if deleted.is_ok() && self.children.is_empty() {
                crate::children::deleted_on(&self.apis[api], &names);
            }
        }
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

async fn reset_peer(http: &Http, api: &str, name: &str) -> anyhow::Result<()> {
    for stream in ["downstream", "upstream"] {
        let body = serde_json::json!({ "type": "reset_peer", "name": format!("reset_peer_{stream}"), "stream": stream, "toxicity": 1.0, "attributes": { "timeout": 0 } });
        let r = http
            .post_json(&format!("http://{api}/proxies/{name}/toxics"), &body, None)
            .await
            .map_err(|e| anyhow!(e))?;
        if !r.is_success() {
            bail!("adding reset_peer to {name}: HTTP {}", r.status);
        }
    }
    Ok(())
}

/// Whether `--toxiproxy` points at a Toxiproxy API (`GET /proxies` is a
/// JSON object), so that a wrong address is named as such, not as the
/// client's "json deserialize failed: EOF" halfway through creating proxies.
async fn is_toxiproxy(api: &str) -> anyhow::Result<()> {
    let url = format!("http://{api}/proxies");
    let reply = Http::new(std::time::Duration::from_secs(10))
        .get(&url, None)
        .await
        .map_err(|e| anyhow!("--toxiproxy: {e}"))?;
    let listed =
        serde_json::from_slice::<serde_json::Value>(&reply.body).is_ok_and(|v| v.is_object());
    if !reply.is_success() || !listed {
        let text = reply.text();
        let start: String = text.chars().take(80).collect();
        bail!(
            "--toxiproxy http://{api} is not a Toxiproxy API: GET /proxies answered {} {start:?} (give the API's address, 8474 by default, not a proxy's or the server's)",
            reply.status
        );
    }
    Ok(())
}

/// Starts `reconnoiter proxy --listen 127.0.0.1:0` and reads its address.
fn spawn_proxy(binary: &Path, seed: u64) -> anyhow::Result<(Child, String)> {
    let mut child = crate::children::watched_by_us(&mut Command::new(binary))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            &seed.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the embedded proxy ({})", binary.display()))?;
    crate::children::started(child.id(), false);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    match line.trim().strip_prefix("listening on ") {
        Some(addr) => Ok((child, addr.to_owned())),
        None => {
            let _ = child.kill();
            bail!("the embedded proxy did not start (said {line:?})")
        }
    }
}

impl Drop for Proxies {
    /// An embedded proxy never outlives the run, even after a panic or an
    /// early error; `cleanup` is the orderly path.
    fn drop(&mut self) {
        for c in &mut self.children {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

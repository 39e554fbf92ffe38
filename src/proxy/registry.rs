//! Every proxy by name, and the API's operations on them with Toxiproxy's
//! rules (what conflicts, what replaces, what a reset touches).
//!
//! The API holds one lock over the registry for the whole of each request:
//! requests are rare next to the traffic, and serialising them makes
//! "disable then connect" and "create then list" exactly ordered.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::listener::Proxy;
use super::model::{ApiError, NewProxy, NewToxic, ProxyJson, ProxyUpdate, ToxicJson, ToxicUpdate};
use super::toxics::{Kind, KindError, Stream, Toxic};

pub(crate) struct Registry {
    proxies: BTreeMap<String, Proxy>,
    next_toxic_id: u64,
    seed: u64,
}

impl Registry {
    pub fn new(seed: u64) -> Registry {
        Registry {
            proxies: BTreeMap::new(),
            next_toxic_id: 1,
            seed,
        }
    }

    pub fn list(&self) -> BTreeMap<String, ProxyJson> {
        self.proxies
            .iter()
            .map(|(name, p)| (name.clone(), ProxyJson::of(p)))
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<ProxyJson, ApiError> {
        Ok(ProxyJson::of(self.proxy(name)?))
    }

    pub async fn create(&mut self, input: NewProxy) -> Result<ProxyJson, ApiError> {
        check_new(&input)?;
        if self.proxies.contains_key(&input.name) {
            return Err(ApiError::proxy_exists());
        }
        let proxy = self.start_new(input).await?;
        let json = ProxyJson::of(&proxy);
        self.proxies.insert(proxy.name.clone(), proxy);
        Ok(json)
    }

    /// Creates or replaces each proxy in order. An existing proxy with the
    /// same listen and upstream text is kept as it is (toxics included);
    /// otherwise it is stopped and replaced. Stops at the first failure and
    /// reports the proxies done so far with it, as Toxiproxy does.
    pub async fn populate(&mut self, input: Vec<NewProxy>) -> (Vec<ProxyJson>, Option<ApiError>) {
        if let Some(err) = input.iter().find_map(|p| check_new(p).err()) {
            return (Vec::new(), Some(err));
        }
        let mut done = Vec::new();
        for p in input {
            if let Some(existing) = self.proxies.get(&p.name)
                && existing.listen == p.listen
                && existing.upstream == p.upstream
            {
                done.push(ProxyJson::of(existing));
                continue;
            }
            if let Some(mut old) = self.proxies.remove(&p.name) {
                old.stop().await;
            }
            match self.start_new(p).await {
                Ok(proxy) => {
                    done.push(ProxyJson::of(&proxy));
                    self.proxies.insert(proxy.name.clone(), proxy);
                }
                Err(err) => return (done, Some(err)),
            }
        }
        (done, None)
    }

    async fn start_new(&mut self, input: NewProxy) -> Result<Proxy, ApiError> {
        let mut proxy = Proxy::new(input.name, input.listen, input.upstream, self.seed);
        if input.enabled.unwrap_or(true) {
            proxy.start().await.map_err(|e| listen_error(&proxy, e))?;
        }
        Ok(proxy)
    }

    /// Changing listen or upstream restarts the proxy (dropping its
    /// connections); `enabled` starts or stops it.
    pub async fn update(&mut self, name: &str, input: ProxyUpdate) -> Result<ProxyJson, ApiError> {
        let proxy = self.proxy_mut(name)?;
        let enabled = input.enabled.unwrap_or(proxy.enabled());
        let listen = input.listen.unwrap_or_else(|| proxy.listen.clone());
        let upstream = input.upstream.unwrap_or_else(|| proxy.upstream.clone());
        if listen != proxy.listen || upstream != proxy.upstream {
            proxy.stop().await;
            proxy.listen = listen;
            proxy.upstream = upstream;
        }
        if enabled {
            proxy.start().await.map_err(|e| listen_error(proxy, e))?;
        } else {
            proxy.stop().await;
        }
        Ok(ProxyJson::of(proxy))
    }

    pub async fn delete(&mut self, name: &str) -> Result<(), ApiError> {
        let mut proxy = self
            .proxies
            .remove(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        proxy.stop().await;
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&mut self) -> Result<(), ApiError> {
        for proxy in self.proxies.values_mut() {
            proxy.toxics.clear();
            proxy.publish();
            proxy.start().await.map_err(|e| listen_error(proxy, e))?;
        }
        Ok(())
    }

    /// Stops everything (server shutdown).
    pub async fn shutdown(&mut self) {
        for proxy in self.proxies.values_mut() {
            proxy.stop().await;
        }
    }

    pub fn toxics(&self, name: &str) -> Result<Vec<ToxicJson>, ApiError> {
        Ok(self
            .proxy(name)?
            .toxics
            .iter()
            .map(|t| ToxicJson::of(t))
            .collect())
    }

    pub fn toxic(&self, name: &str, toxic: &str) -> Result<ToxicJson, ApiError> {
        let proxy = self.proxy(name)?;
        find(proxy, toxic).map(|i| ToxicJson::of(&proxy.toxics[i]))
    }

    pub fn add_toxic(&mut self, name: &str, input: NewToxic) -> Result<ToxicJson, ApiError> {
        let id = self.next_toxic_id;
        let proxy = self.proxy_mut(name)?;
        let stream = match input.stream.as_deref() {
            None => Stream::Downstream,
            Some(s) => Stream::parse(s).ok_or_else(ApiError::invalid_stream)?,
        };
        let name = input
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{}_{}", input.kind, stream.as_str()));
        // Toxiproxy's order of complaints: type, then name, then attributes.
        let kind = Kind::parse(&input.kind, input.attributes);
        if let Err(KindError::UnknownType) = kind {
            return Err(ApiError::invalid_toxic_type());
        }
        if proxy.toxics.iter().any(|t| t.name == name) {
            return Err(ApiError::toxic_exists());
        }
        let kind = kind.map_err(kind_error)?;
        let toxic = Toxic {
            id,
            name,
            stream,
            toxicity: input.toxicity.unwrap_or(1.0),
            kind,
        };
        let json = ToxicJson::of(&toxic);
        proxy.toxics.push(Arc::new(toxic));
        proxy.publish();
        self.next_toxic_id += 1;
        Ok(json)
    }

    pub fn update_toxic(
        &mut self,
        name: &str,
        toxic: &str,
        input: ToxicUpdate,
    ) -> Result<ToxicJson, ApiError> {
        let proxy = self.proxy_mut(name)?;
        let i = find(proxy, toxic)?;
        let old = &proxy.toxics[i];
        let mut attributes = old.kind.attributes();
        match (&mut attributes, input.attributes) {
            (Value::Object(have), Value::Object(given)) => have.extend(given),
            (_, Value::Null) => {}
            (_, other) => return Err(ApiError::bad_body(format!("attributes: {other}"))),
        }
        let kind = Kind::parse(old.kind.type_name(), attributes).map_err(kind_error)?;
        let updated = Toxic {
            kind,
            toxicity: input.toxicity.unwrap_or(old.toxicity),
            ..(**old).clone()
        };
        let json = ToxicJson::of(&updated);
        proxy.toxics[i] = Arc::new(updated);
        proxy.publish();
        Ok(json)
    }

    pub fn remove_toxic(&mut self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let proxy = self.proxy_mut(name)?;
        let i = find(proxy, toxic)?;
        proxy.toxics.remove(i);
        proxy.publish();
        Ok(())
    }

    fn proxy(&self, name: &str) -> Result<&Proxy, ApiError> {
        self.proxies.get(name).ok_or_else(ApiError::proxy_not_found)
    }

    fn proxy_mut(&mut self, name: &str) -> Result<&mut Proxy, ApiError> {
        self.proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)
    }
}

fn check_new(input: &NewProxy) -> Result<(), ApiError> {
    if input.name.is_empty() {
        return Err(ApiError::missing("name"));
    }
    if input.upstream.is_empty() {
        return Err(ApiError::missing("upstream"));
    }
    Ok(())
}

fn find(proxy: &Proxy, toxic: &str) -> Result<usize, ApiError> {
    proxy
        .toxics
        .iter()
        .position(|t| t.name == toxic)
        .ok_or_else(ApiError::toxic_not_found)
}

fn kind_error(e: KindError) -> ApiError {
    match e {
        KindError::UnknownType => ApiError::invalid_toxic_type(),
        KindError::BadAttributes(detail) => ApiError::bad_body(detail),
    }
}

fn listen_error(proxy: &Proxy, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("listen tcp {}: {e}", proxy.listen))
}

//! The HTTP API contract: a client written for Shopify's Toxiproxy
//! (`toxiproxy_rust`) drives ours unchanged, and the status codes and JSON
//! match Toxiproxy 2.5.0 exactly where clients look at them.

use std::io::{Read, Write};

use crate::proxy_support::*;
use serde_json::{Value, json};
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

const NOT_FOUND: fn() -> Value = || json!({"error": "proxy not found", "status": 404});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_rust_client_drives_the_proxy() {
    let api = Api::start().await;
    let upstream = echo_upstream(b"").await;
    let addr = api.addr;
    tokio::task::spawn_blocking(move || {
        let client = Client::new(addr);
        assert!(client.is_running());
        assert_eq!(client.version().unwrap(), "2.5.0");

        let created = client
            .populate(vec![ProxyPack::new(
                "chat".into(),
                "127.0.0.1:0".into(),
                upstream.to_string(),
            )])
            .unwrap();
        assert_eq!(created.len(), 1);
        let listen: std::net::SocketAddr = created[0].proxy_pack.listen.parse().unwrap();
        assert_ne!(listen.port(), 0, "answers carry the real port");
        assert!(client.all().unwrap().contains_key("chat"));

        let proxy = client.find_proxy("chat").unwrap();
        assert_eq!(proxy.proxy_pack.upstream, upstream.to_string());
        proxy
            .with_latency("downstream".into(), 120, 0, 1.0)
            .with_bandwidth("upstream".into(), 500, 1.0)
            .with_slow_close("downstream".into(), 10, 1.0)
            .with_timeout("upstream".into(), 5000, 0.0)
            .with_slicer("upstream".into(), 64, 8, 10, 0.0)
            .with_limit_data("upstream".into(), 1_000_000, 1.0);
        let toxics = proxy.toxics().unwrap();
        let names: Vec<&str> = toxics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "latency_downstream",
                "bandwidth_upstream",
                "slow_close_downstream",
                "timeout_upstream",
                "slicer_upstream",
                "limit_data_upstream"
            ]
        );
        assert_eq!(toxics[0].attributes["latency"], 120);
        assert_eq!(toxics[4].attributes["average_size"], 64);

        // The toxics act on traffic, not only on the listing.
        let mut sock = std::net::TcpStream::connect(listen).unwrap();
        let start = std::time::Instant::now();
        sock.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        sock.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ping");
        assert!(start.elapsed().as_millis() >= 120);

        proxy.delete_all_toxics().unwrap();
        assert!(proxy.toxics().unwrap().is_empty());

        proxy
            .with_down(|| {
                let refused = std::net::TcpStream::connect(listen).unwrap_err();
                assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
                assert!(!client.find_proxy("chat").unwrap().proxy_pack.enabled);
            })
            .unwrap();
        assert!(client.find_proxy("chat").unwrap().proxy_pack.enabled);
        std::net::TcpStream::connect(listen).unwrap();

        proxy.with_latency("downstream".into(), 10, 0, 1.0);
        proxy.disable().unwrap();
        client.reset().unwrap();
        let after = client.find_proxy("chat").unwrap();
        assert!(after.proxy_pack.enabled && after.proxy_pack.toxics.is_empty());

        proxy.with_latency("downstream".into(), 10, 0, 1.0);
        let reset = client.find_and_reset_proxy("chat").unwrap();
        assert!(reset.toxics().unwrap().is_empty());

        reset.delete().unwrap();
        assert!(client.find_proxy("chat").is_err());
        assert!(client.all().unwrap().is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_is_plain_text() {
    let api = Api::start().await;
    let resp = api.http.get(api.url("/version")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(resp.text().await.unwrap(), "2.5.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_create_get_update_delete_with_exact_codes() {
    let api = Api::start().await;
    let upstream = echo_upstream(b"").await.to_string();
    let new = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": upstream});

    let (status, created) = api.call("POST", "/proxies", Some(new.clone())).await;
    assert_eq!(status, 201);
    let listen = created["listen"].as_str().unwrap().to_owned();
    assert!(!listen.ends_with(":0"));
    assert_eq!(
        created,
        json!({"name": "p", "listen": listen, "upstream": upstream, "enabled": true, "toxics": []})
    );

    let (status, body) = api.call("POST", "/proxies", Some(new)).await;
    assert_eq!(
        (status, body),
        (409, json!({"error": "proxy already exists", "status": 409}))
    );

    let (status, body) = api.call("GET", "/proxies/p", None).await;
    assert_eq!((status, &body), (200, &created));
    let (status, body) = api.call("GET", "/proxies", None).await;
    assert_eq!((status, body), (200, json!({"p": created})));

    let (status, body) = api
        .call("POST", "/proxies/p", Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["listen"], listen, "keeps its address while down");
    let (status, body) = api
        .call("PATCH", "/proxies/p", Some(json!({"enabled": true})))
        .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(true)));
    assert_eq!(body["listen"], listen);

    let (status, body) = api.call("DELETE", "/proxies/p", None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = api.call("GET", "/proxies/p", None).await;
    assert_eq!((status, body), (404, NOT_FOUND()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_404() {
    let api = Api::start().await;
    let some = json!({"enabled": false});
    for (method, path, body) in [
        ("GET", "/proxies/nope", None),
        ("POST", "/proxies/nope", Some(some.clone())),
        ("DELETE", "/proxies/nope", None),
        ("GET", "/proxies/nope/toxics", None),
        (
            "POST",
            "/proxies/nope/toxics",
            Some(json!({"type": "latency"})),
        ),
        ("GET", "/proxies/nope/toxics/t", None),
        ("DELETE", "/proxies/nope/toxics/t", None),
    ] {
        let (status, answer) = api.call(method, path, body).await;
        assert_eq!((status, answer), (404, NOT_FOUND()), "{method} {path}");
    }
    api.proxy("p", echo_upstream(b"").await).await;
    let toxic_404 = json!({"error": "toxic not found", "status": 404});
    for (method, body) in [("GET", None), ("POST", Some(some)), ("DELETE", None)] {
        let (status, answer) = api.call(method, "/proxies/p/toxics/nope", body).await;
        assert_eq!((status, answer), (404, toxic_404.clone()), "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_in_the_error_shape() {
    let api = Api::start().await;
    let (status, body) = api
        .call(
            "POST",
            "/proxies",
            Some(json!({"listen": "127.0.0.1:0", "upstream": "x:1"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "missing required field: name", "status": 400})
        )
    );
    let (status, body) = api
        .call("POST", "/proxies", Some(json!({"name": "n"})))
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "missing required field: upstream", "status": 400})
        )
    );
    let resp = api
        .http
        .post(api.url("/proxies"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("bad request body")
    );

    api.proxy("p", echo_upstream(b"").await).await;
    for (toxic, error) in [
        (json!({"type": "sparkles"}), "invalid toxic type"),
        (json!({}), "invalid toxic type"),
        (
            json!({"type": "latency", "stream": "sideways"}),
            "stream was invalid, can be either upstream or downstream",
        ),
    ] {
        let (status, body) = api.call("POST", "/proxies/p/toxics", Some(toxic)).await;
        assert_eq!(
            (status, body),
            (400, json!({"error": error, "status": 400}))
        );
    }
    let (status, body) = api
        .call(
            "POST",
            "/proxies/p/toxics",
            Some(json!({"type": "latency", "attributes": {"latency": "slow"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("bad request body")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_default_list_update_and_conflict() {
    let api = Api::start().await;
    api.proxy("p", echo_upstream(b"").await).await;

    let (status, body) = api
        .call(
            "POST",
            "/proxies/p/toxics",
            Some(json!({"type": "latency", "attributes": {"latency": 50}})),
        )
        .await;
    let latency = json!({
        "name": "latency_downstream", "type": "latency", "stream": "downstream",
        "toxicity": 1.0, "attributes": {"latency": 50, "jitter": 0}
    });
    assert_eq!((status, &body), (200, &latency));

    let (status, body) = api
        .call(
            "POST",
            "/proxies/p/toxics",
            Some(json!({"type": "latency"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (409, json!({"error": "toxic already exists", "status": 409}))
    );

    let named = json!({"name": "cut", "type": "reset_peer", "stream": "UPSTREAM",
                       "toxicity": 0.25, "attributes": {"timeout": 7}});
    let (status, body) = api.call("POST", "/proxies/p/toxics", Some(named)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"name": "cut", "type": "reset_peer", "stream": "upstream",
               "toxicity": 0.25, "attributes": {"timeout": 7}})
    );

    let (status, list) = api.call("GET", "/proxies/p/toxics", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], latency);
    let (_, proxy) = api.call("GET", "/proxies/p", None).await;
    assert_eq!(proxy["toxics"], list);

    // Updates merge attributes and keep what is not given.
    let (status, body) = api
        .call(
            "POST",
            "/proxies/p/toxics/latency_downstream",
            Some(json!({"attributes": {"jitter": 5}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["attributes"], json!({"latency": 50, "jitter": 5}));
    let (status, body) = api
        .call(
            "PATCH",
            "/proxies/p/toxics/latency_downstream",
            Some(json!({"toxicity": 0.5})),
        )
        .await;
    assert_eq!((status, &body["toxicity"]), (200, &json!(0.5)));
    assert_eq!(body["attributes"]["jitter"], 5);
    let (_, shown) = api
        .call("GET", "/proxies/p/toxics/latency_downstream", None)
        .await;
    assert_eq!(shown, body);

    let (status, _) = api.call("DELETE", "/proxies/p/toxics/cut", None).await;
    assert_eq!(status, 204);
    let (_, list) = api.call("GET", "/proxies/p/toxics", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populate_creates_keeps_identical_and_replaces_changed() {
    let api = Api::start().await;
    let up1 = echo_upstream(b"").await.to_string();
    let up2 = echo_upstream(b"").await.to_string();
    let (status, body) = api
        .call(
            "POST",
            "/populate",
            Some(json!([
                {"name": "a", "listen": "127.0.0.1:0", "upstream": up1},
                {"name": "b", "listen": "127.0.0.1:0", "upstream": up1, "enabled": false},
            ])),
        )
        .await;
    assert_eq!(status, 201);
    let proxies = body["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    assert_eq!(proxies[0]["enabled"], true);
    assert_eq!(proxies[1]["enabled"], false);
    let a_listen = proxies[0]["listen"].as_str().unwrap().to_owned();

    api.toxic("a", json!({"type": "latency"})).await;
    // Same listen and upstream: kept, toxics and all.
    let (status, body) = api
        .call(
            "POST",
            "/populate",
            Some(json!([{"name": "a", "listen": a_listen, "upstream": up1}])),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["proxies"][0]["toxics"].as_array().unwrap().len(), 1);
    // A new upstream: replaced, on the same port.
    let (status, body) = api
        .call(
            "POST",
            "/populate",
            Some(json!([{"name": "a", "listen": a_listen, "upstream": up2}])),
        )
        .await;
    assert_eq!(status, 201);
    let a = &body["proxies"][0];
    assert_eq!(
        (&a["upstream"], &a["listen"]),
        (&json!(up2), &json!(a_listen))
    );
    assert_eq!(a["toxics"], json!([]));

    let (status, body) = api
        .call(
            "POST",
            "/populate",
            Some(json!([{"listen": "127.0.0.1:0", "upstream": up1}])),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("missing required field: name"))
    );
    let (status, _) = api
        .call("POST", "/populate", Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_enables_everything_and_drops_every_toxic() {
    let api = Api::start().await;
    let upstream = echo_upstream(b"").await;
    api.proxy("a", upstream).await;
    api.proxy("b", upstream).await;
    api.toxic("a", json!({"type": "timeout"})).await;
    api.toxic("b", json!({"type": "latency", "stream": "upstream"}))
        .await;
    api.set_enabled("b", false).await;

    let (status, body) = api.call("POST", "/reset", None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, all) = api.call("GET", "/proxies", None).await;
    for name in ["a", "b"] {
        assert_eq!(all[name]["enabled"], true, "{name}");
        assert_eq!(all[name]["toxics"], json!([]), "{name}");
    }
}

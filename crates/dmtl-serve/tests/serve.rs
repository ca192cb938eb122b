//! The server on a loopback port against a tiny trained run: answers equal to `dmtl retrieve`
//! and `dmtl score`, every kind of bad input refused with a JSON error naming the field, and
//! reloads under concurrent requests that never fail or mix models.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{fixture, path_str, retrieve_request, user_fields, Fixture, N_PAIRS, N_USERS, UNSEEN};
use dmtl_runner::commands::{retrieve_users, score_log, Retrieved};
use dmtl_runner::config::ModelName;
use dmtl_serve::wire::{RetrieveResponse, ScoreResponse};
use std::net::SocketAddr;

use dmtl_serve::{start, ServeOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const K: usize = 10;

fn options(f: &Fixture) -> ServeOptions {
    ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        timeout_ms: 500,
        max_body_bytes: 64 * 1024,
        max_requests: 16,
        ..ServeOptions::new(f.run.clone())
    }
}

async fn post(c: &reqwest::Client, addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    post_raw(c, addr, path, body.to_string()).await
}

async fn post_raw(c: &reqwest::Client, addr: SocketAddr, path: &str, body: String) -> (u16, Value) {
    let r = c
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, v)
}

fn assert_same_lists(got: &[RetrieveResponse], want: &Retrieved, rows: &[usize]) {
    assert_eq!(got.len(), rows.len());
    for (g, &r) in got.iter().zip(rows) {
        assert_eq!(g.user_id, want.user_ids[r]);
        assert_eq!(g.known_user, want.known_user[r], "known_user of row {r}");
        let ids: Vec<&str> = g.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, want.items[r], "ids of row {r}");
        for (i, s) in g.items.iter().zip(&want.scores[r]) {
            assert!((i.score - s).abs() <= 1e-6, "row {r}: {} vs {s}", i.score);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_as_dmtl_retrieve_and_dmtl_score() {
    let f = fixture();
    let s = start(&options(f)).await.unwrap();
    assert!(s.addr.ip().is_loopback());
    let c = reqwest::Client::new();
    let want = retrieve_users(&f.run, &f.users_csv, K, ModelName::Dmtl).unwrap();
    assert!(!want.known_user[N_USERS - 1] && want.known_user[0]);

    // One body of every user.
    let body: Vec<Value> = (0..N_USERS).map(|r| retrieve_request(f, r, K)).collect();
    let (st, v) = post(&c, s.addr, "/retrieve", &json!(body)).await;
    assert_eq!(st, 200, "{v}");
    let got: Vec<RetrieveResponse> = serde_json::from_value(v).unwrap();
    assert_same_lists(&got, &want, &(0..N_USERS).collect::<Vec<_>>());
    assert_eq!(got[N_USERS - 1].user_id, UNSEEN);

    // One request per call, all at once: batched together, the same answers.
    let calls = (0..N_USERS).map(|r| {
        let (c, a, b) = (c.clone(), s.addr, retrieve_request(f, r, K));
        async move { post(&c, a, "/retrieve", &b).await }
    });
    for (r, (st, v)) in futures_join(calls).await.into_iter().enumerate() {
        assert_eq!(st, 200, "{v}");
        let one: RetrieveResponse = serde_json::from_value(v).unwrap();
        assert_same_lists(&[one], &want, &[r]);
    }

    // Exclusions: the list without the excluded items, refilled from further down.
    let longer = retrieve_users(&f.run, &f.users_csv, K + 3, ModelName::Dmtl).unwrap();
    let mut req = retrieve_request(f, 0, K);
    let ex: Vec<&String> = longer.items[0].iter().step_by(2).take(3).collect();
    req["exclude"] = json!(ex);
    let (st, v) = post(&c, s.addr, "/retrieve", &req).await;
    assert_eq!(st, 200, "{v}");
    let one: RetrieveResponse = serde_json::from_value(v).unwrap();
    let expected: Vec<&String> = longer.items[0]
        .iter()
        .filter(|i| !ex.contains(i))
        .take(K)
        .collect();
    let ids: Vec<&String> = one.items.iter().map(|i| &i.id).collect();
    assert_eq!(ids, expected);

    // Scores of user-item pairs, as `dmtl score` writes them.
    let scored = score_log(&f.run, &f.log_csv, ModelName::Dmtl).unwrap();
    let body: Vec<Value> = (0..N_USERS)
        .map(|u| {
            let mut m = user_fields(f, u);
            let items: Vec<&String> = f.pairs[u * N_PAIRS..(u + 1) * N_PAIRS]
                .iter()
                .map(|(_, i)| i)
                .collect();
            m.insert("item_ids".into(), json!(items));
            Value::Object(m)
        })
        .collect();
    let (st, v) = post(&c, s.addr, "/score", &json!(body)).await;
    assert_eq!(st, 200, "{v}");
    let got: Vec<ScoreResponse> = serde_json::from_value(v).unwrap();
    let (score, prob) = (&scored.columns[0].1, &scored.columns[1].1);
    for (u, g) in got.iter().enumerate() {
        assert_eq!(g.known_user, u + 1 != N_USERS);
        for (j, p) in g.scores.iter().enumerate() {
            let row = u * N_PAIRS + j;
            assert_eq!(p.item_id, scored.item_ids[row]);
            assert!(
                (p.score - score[row]).abs() <= 1e-6,
                "{} vs {}",
                p.score,
                score[row]
            );
            assert!((p.probability - prob[row]).abs() <= 1e-6);
        }
    }

    // Health and metrics.
    let h: Value = c
        .get(format!("http://{}/health", s.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["model"], "dmtl");
    assert_eq!(h["items"], 400);
    let m = c
        .get(format!("http://{}/metrics", s.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served = m
        .lines()
        .find(|l| {
            l.starts_with("dmtl_serve_requests_total")
                && l.contains("endpoint=\"retrieve\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no retrieve counter in\n{m}"));
    let n: f64 = served.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2.0 + N_USERS as f64, "{served}");
    assert!(m.contains("dmtl_serve_request_seconds_bucket"), "{m}");
    assert!(m.contains("dmtl_serve_unseen_users_total"), "{m}");
    s.stop().await.unwrap();
}

/// Runs the futures concurrently, results in order.
async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_field() {
    let f = fixture();
    let s = start(&options(f)).await.unwrap();
    let c = reqwest::Client::new();
    let good = retrieve_request(f, 0, K);
    let with = |key: &str, v: Value| {
        let mut b = good.clone();
        b[key] = v;
        b.to_string()
    };
    let without = |path: &[&str]| {
        let mut b = good.clone();
        let mut m = &mut b;
        for p in &path[..path.len() - 1] {
            m = &mut m[*p];
        }
        m.as_object_mut().unwrap().remove(path[path.len() - 1]);
        b.to_string()
    };
    let feature = |side: &str, name: &str, v: Value| {
        let mut b = good.clone();
        b[side][name] = v;
        b.to_string()
    };
    let age = f
        .schema
        .features(dmtl_data::Side::User)
        .find(|c| c.name != f.schema.ids.user)
        .unwrap()
        .name
        .clone();
    let hour = f
        .schema
        .features(dmtl_data::Side::Context)
        .next()
        .unwrap()
        .name
        .clone();
    let too_many = json!((0..17)
        .map(|r| retrieve_request(f, r % N_USERS, K))
        .collect::<Vec<_>>());
    let cases: Vec<(&str, String, u16, &str, Option<String>)> = vec![
        (
            "malformed",
            "{\"user_id\": ".into(),
            400,
            "malformed_json",
            None,
        ),
        (
            "trailing text",
            format!("{good} x"),
            400,
            "malformed_json",
            None,
        ),
        (
            "k wrong type",
            with("k", json!("ten")),
            422,
            "wrong_type",
            Some("k".into()),
        ),
        (
            "k negative",
            with("k", json!(-3)),
            422,
            "wrong_type",
            Some("k".into()),
        ),
        (
            "k huge",
            with("k", json!(1e30)),
            422,
            "wrong_type",
            Some("k".into()),
        ),
        (
            "k zero",
            with("k", json!(0)),
            422,
            "bad_value",
            Some("k".into()),
        ),
        (
            "k above corpus",
            with("k", json!(401)),
            422,
            "bad_value",
            Some("k".into()),
        ),
        (
            "k u64 max",
            with("k", json!(u64::MAX)),
            422,
            "bad_value",
            Some("k".into()),
        ),
        (
            "user id number",
            with("user_id", json!(7)),
            422,
            "wrong_type",
            Some("user_id".into()),
        ),
        (
            "exclude not list",
            with("exclude", json!("a")),
            422,
            "wrong_type",
            Some("exclude".into()),
        ),
        (
            "unknown key",
            with("kk", json!(1)),
            422,
            "wrong_type",
            Some("kk".into()),
        ),
        (
            "missing k",
            without(&["k"]),
            422,
            "missing_field",
            Some("k".into()),
        ),
        (
            "missing user",
            without(&["user_id"]),
            422,
            "missing_field",
            Some("user_id".into()),
        ),
        (
            "missing feature",
            without(&["features", &age]),
            422,
            "missing_field",
            Some(format!("features.{age}")),
        ),
        (
            "missing context",
            without(&["context", &hour]),
            422,
            "missing_field",
            Some(format!("context.{hour}")),
        ),
        (
            "feature wrong type",
            feature("features", &age, json!(1.5)),
            422,
            "wrong_type",
            Some(format!("features.{age}")),
        ),
        (
            "feature unknown",
            feature("features", "shoe_size", json!("9")),
            422,
            "unknown_field",
            Some("features.shoe_size".into()),
        ),
        (
            "context on user side",
            feature("features", &hour, json!("3")),
            422,
            "unknown_field",
            Some(format!("features.{hour}")),
        ),
        (
            "unknown model",
            with("model", json!("b9")),
            404,
            "unknown_model",
            Some("model".into()),
        ),
        (
            "array item",
            json!([good.clone(), with_k(&good, 0)]).to_string(),
            422,
            "bad_value",
            Some("[1].k".into()),
        ),
        (
            "empty array",
            "[]".into(),
            422,
            "too_many_requests",
            Some("body".into()),
        ),
        (
            "too many requests",
            too_many.to_string(),
            422,
            "too_many_requests",
            Some("body".into()),
        ),
        (
            "body too large",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)),
            413,
            "body_too_large",
            Some("body".into()),
        ),
    ];
    let mut problems = Vec::new();
    for (name, body, status, kind, field) in &cases {
        let (st, v) = post_raw(&c, s.addr, "/retrieve", body.clone()).await;
        let e = &v["error"];
        if st != *status || e["kind"] != *kind || e["field"].as_str() != field.as_deref() {
            problems.push(format!("{name}: got {st} {v}"));
        }
    }
    // /score: an item outside the corpus, by its place in the list.
    let mut sreq = user_fields(f, 0);
    sreq.insert("item_ids".into(), json!([f.pairs[0].1, "no-such-item"]));
    let (st, v) = post(&c, s.addr, "/score", &Value::Object(sreq)).await;
    if st != 422 || v["error"]["field"] != "item_ids[1]" {
        problems.push(format!("score unknown item: got {st} {v}"));
    }
    let (st, v) = post(&c, s.addr, "/nowhere", &good).await;
    if st != 404 || v["error"]["kind"] != "not_found" {
        problems.push(format!("unknown route: got {st} {v}"));
    }
    // A client that stops sending its body gets a timeout, not a hang.
    let (st, v) = slow_client_at(s.addr, Duration::from_secs(5)).await;
    if st != 408 || v["error"]["kind"] != "timeout" {
        problems.push(format!("slow client: got {st} {v}"));
    }
    // Still serving.
    let (st, _) = post(&c, s.addr, "/retrieve", &good).await;
    assert_eq!(st, 200);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.stop().await.unwrap();

    // Over the concurrency limit: refused at once, while two slow clients hold the slots.
    let s = start(&ServeOptions {
        max_concurrency: 2,
        timeout_ms: 1500,
        ..options(f)
    })
    .await
    .unwrap();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let addr = s.addr;
            tokio::spawn(async move { slow_client_at(addr, Duration::from_secs(5)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    let (st, v) = post(&c, s.addr, "/retrieve", &good).await;
    assert_eq!(
        (st, &v["error"]["kind"]),
        (503, &json!("overloaded")),
        "{v}"
    );
    assert!(t.elapsed() < Duration::from_millis(1000));
    for h in slow {
        assert_eq!(h.await.unwrap().0, 408);
    }
    let (st, _) = post(&c, s.addr, "/retrieve", &good).await;
    assert_eq!(st, 200);
    s.stop().await.unwrap();
}

fn with_k(v: &Value, k: u64) -> Value {
    let mut v = v.clone();
    v["k"] = json!(k);
    v
}

/// Sends the headers and part of a body, then nothing; returns the status and body answered
/// (within `guard`, else fails).
async fn slow_client_at(addr: std::net::SocketAddr, guard: Duration) -> (u16, Value) {
    let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /retrieve HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 200\r\n\r\n{\"user_id\": ";
    t.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = t.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(guard, read)
        .await
        .expect("the server answers a stalled client");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_concurrent_requests_never_fails_or_mixes() {
    let f = fixture();
    let s = start(&options(f)).await.unwrap();
    let c = reqwest::Client::new();
    let want: HashMap<&str, Retrieved> = [("dmtl", ModelName::Dmtl), ("b1", ModelName::B1)]
        .into_iter()
        .map(|(n, m)| (n, retrieve_users(&f.run, &f.users_csv, K, m).unwrap()))
        .collect();
    assert_ne!(
        want["dmtl"].items, want["b1"].items,
        "the two models differ"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|t| {
            let (c, stop, addr) = (c.clone(), stop.clone(), s.addr);
            let bodies: Vec<Value> = (0..N_USERS).map(|r| retrieve_request(f, r, K)).collect();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut i = t;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = i % N_USERS;
                    // Alternate single requests and bodies of three.
                    let rows: Vec<usize> = if i % 2 == 0 {
                        vec![r]
                    } else {
                        (r..r + 3).map(|x| x % N_USERS).collect()
                    };
                    let body = if rows.len() == 1 {
                        bodies[r].clone()
                    } else {
                        json!(rows.iter().map(|&x| bodies[x].clone()).collect::<Vec<_>>())
                    };
                    let resp = c
                        .post(format!("http://{addr}/retrieve"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    let v: Value = resp.json().await.unwrap();
                    let got: Vec<RetrieveResponse> = if rows.len() == 1 {
                        vec![serde_json::from_value(v).unwrap()]
                    } else {
                        serde_json::from_value(v).unwrap()
                    };
                    seen.push((status, rows, got));
                    i += 1;
                }
                seen
            })
        })
        .collect();
    let mut versions = Vec::new();
    for model in ["b1", "dmtl", "b1", "dmtl"] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (st, v) = post(
            &c,
            s.addr,
            "/reload",
            &json!({"run": path_str(&f.run), "model": model}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["model"], model);
        versions.push(v["version"].as_u64().unwrap());
    }
    // A failed reload leaves the model served as it was.
    let (st, v) = post(&c, s.addr, "/reload", &json!({"run": "/no/such/run"})).await;
    assert_eq!((st, &v["error"]["field"]), (422, &json!("run")), "{v}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(versions, [2, 3, 4, 5]);
    let mut by_version: HashMap<u64, usize> = HashMap::new();
    for h in clients {
        for (status, rows, got) in h.await.unwrap() {
            assert_eq!(status, 200);
            // One body, one model: every answer of it from the same version.
            assert!(got
                .iter()
                .all(|g| g.version == got[0].version && g.model == got[0].model));
            assert_same_lists(&got, &want[got[0].model.as_str()], &rows);
            *by_version.entry(got[0].version).or_default() += 1;
        }
    }
    assert!(by_version.len() >= 4, "answers by version: {by_version:?}");
    let h: Value = c
        .get(format!("http://{}/health", s.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (h["model"].as_str(), h["version"].as_u64()),
        (Some("dmtl"), Some(5))
    );
    s.stop().await.unwrap();
}

//! Three real `envseal-server` processes on one PostgreSQL schema and one Redis:
//! writes through one are read through the others, one is SIGKILLed mid-write and
//! every acknowledged write is readable on the survivors with nothing half-written,
//! a revocation holds on every replica within the cache bound, and the audit log is
//! one verified chain.

use envseal_e2e::{http, postgres_url, redis_prefix, redis_url, Server, ServerOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ENVSEAL_CACHE_TTL_MS` given to every replica: the documented staleness bound.
const CACHE_TTL_MS: u64 = 500;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn export(server: &Server, token: &str) -> envseal_e2e::HttpResponse {
    let auth = bearer(token);
    http(
        &server.url,
        "GET",
        "/v1/projects/rep/environments/prod/export",
        &[("Authorization", auth.as_str())],
        None,
    )
    .unwrap()
}

#[test]
fn three_replicas_survive_a_sigkill_mid_write_and_revocation_reaches_all() {
    let test = "three_replicas_survive_a_sigkill_mid_write_and_revocation_reaches_all";
    let Some(pg) = postgres_url(test) else { return };
    let Some(redis) = redis_url(test) else { return };
    let opts = ServerOptions {
        database_url: Some(pg),
        admin_token: Some(format!(
            "est_admin_rep3_{}",
            redis_prefix().replace('-', "_")
        )),
        env: vec![
            (
                "ENVSEAL_MASTER_PASSPHRASE".into(),
                "one passphrase for three replicas".into(),
            ),
            ("ENVSEAL_REDIS_URL".into(), redis),
            ("ENVSEAL_REDIS_PREFIX".into(), redis_prefix()),
            ("ENVSEAL_CACHE_TTL_MS".into(), CACHE_TTL_MS.to_string()),
        ],
        ..Default::default()
    };
    let mut replicas: Vec<Server> = (0..3).map(|_| Server::start_with(opts.clone())).collect();
    let admin = replicas[0].admin_token.clone();
    create_project_env(&replicas[0], "rep", "prod");

    // Written through replica 0, read through 1 and 2.
    let auth = bearer(&admin);
    for i in 0..10 {
        let body = serde_json::json!({ "value": format!("first-{i}") }).to_string();
        let r = http(
            &replicas[0].url,
            "PUT",
            &format!("/v1/projects/rep/environments/prod/secrets/FIRST_{i}"),
            &[("Authorization", auth.as_str())],
            Some(&body),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for s in &replicas[1..] {
        let r = export(s, &admin);
        assert_eq!(r.status, 200, "{}", r.body);
        for i in 0..10 {
            assert_eq!(
                r.json()["secrets"][format!("FIRST_{i}")]["value"].as_str(),
                Some(format!("first-{i}").as_str())
            );
        }
    }

    // Writers on replica 0 while it is SIGKILLed.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, auth) = (replicas[0].url.clone(), auth.clone());
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (name, value) = (format!("MID_{w}_{i}"), format!("mid-{w}-{i}"));
                    let body = serde_json::json!({ "value": value }).to_string();
                    let path = format!("/v1/projects/rep/environments/prod/secrets/{name}");
                    if let Ok(r) = http(
                        &url,
                        "PUT",
                        &path,
                        &[("Authorization", auth.as_str())],
                        Some(&body),
                    ) {
                        if r.status == 200 {
                            acked.lock().unwrap().insert(name, value);
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    replicas[0].kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 4,
        "too few writes acknowledged before the kill: {}",
        acked.len()
    );
    for s in &replicas[1..] {
        let r = export(s, &admin);
        assert_eq!(r.status, 200, "{}", r.body);
        let secrets = r.json()["secrets"].as_object().unwrap().clone();
        for (name, value) in &acked {
            assert_eq!(
                secrets.get(name).and_then(|v| v["value"].as_str()),
                Some(value.as_str()),
                "acknowledged write {name} missing on a survivor"
            );
        }
        // Nothing half-written: every exported secret has a whole value of its writer.
        for (name, v) in &secrets {
            if let Some(rest) = name.strip_prefix("MID_") {
                let (w, i) = rest.split_once('_').unwrap();
                assert_eq!(
                    v["value"].as_str(),
                    Some(format!("mid-{w}-{i}").as_str()),
                    "{name}"
                );
            }
        }
    }

    // A machine token revoked through replica 1 stops working on replica 2 within the
    // cache bound.
    let body = serde_json::json!({
        "name": "rep-reader", "project": "rep", "environments": ["prod"], "access": "read",
    })
    .to_string();
    let created = http(
        &replicas[1].url,
        "POST",
        "/v1/tokens",
        &[("Authorization", auth.as_str())],
        Some(&body),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let token = created.json()["token"].as_str().unwrap().to_owned();
    let id = created.json()["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(export(&replicas[2], &token).status, 200);
    let r = http(
        &replicas[1].url,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        &[("Authorization", auth.as_str())],
        None,
    )
    .unwrap();
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let revoked_at = Instant::now();
    loop {
        let s = export(&replicas[2], &token).status;
        if s == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(CACHE_TTL_MS + 1000),
            "revoked token still exports on another replica after {:?}",
            revoked_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(revoked_at.elapsed() <= Duration::from_millis(CACHE_TTL_MS + 250));

    // One chain, verified by a survivor.
    let v = http(
        &replicas[2].url,
        "GET",
        "/v1/audit/verify",
        &[("Authorization", auth.as_str())],
        None,
    )
    .unwrap();
    assert_eq!(v.json()["ok"], true, "{}", v.body);
    replicas.clear();
}

/// Project and environment through the API (admin token).
fn create_project_env(server: &Server, project: &str, env: &str) {
    let auth = format!("Bearer {}", server.admin_token);
    let h = [("Authorization", auth.as_str())];
    let body = serde_json::json!({ "name": project }).to_string();
    let r = http(&server.url, "POST", "/v1/projects", &h, Some(&body)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let body = serde_json::json!({ "name": env }).to_string();
    let path = format!("/v1/projects/{project}/environments");
    let r = http(&server.url, "POST", &path, &h, Some(&body)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
}

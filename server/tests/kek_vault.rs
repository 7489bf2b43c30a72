//! The `vault-transit` key provider against a real OpenBao server, on SQLite and
//! PostgreSQL: AppRole login, batch wrap/unwrap, per-row key versions, Transit
//! rotation plus `kek rotate`, provider migration, start-up refusals and outages.

mod common;
mod kek_common;

use base64::Engine as _;
use common::{backends, cheap_auth, harness_with_keys, Harness, ADMIN};
use envseal_server::crypto::{
    DekCache, DekCacheConfig, KeyProvider, Keyring, LocalKeyProvider, VaultAuth, VaultConfig,
    VaultTransitProvider,
};
use envseal_server::store::Store;
use kek_common::Bao;
use std::sync::Arc;
use std::time::Duration;

const ENV: &str = "/v1/projects/dify/environments/prod";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn approle(bao: &Bao) -> VaultConfig {
    VaultConfig {
        address: bao.addr.clone(),
        mount: "transit".into(),
        key: "envseal".into(),
        namespace: None,
        ca_cert: None,
        auth: VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: bao.role_id.clone(),
            secret_id_file: bao.secret_id_file.clone(),
        },
        timeout: Duration::from_secs(3),
    }
}

async fn vault(bao: &Bao) -> Arc<dyn KeyProvider> {
    Arc::new(VaultTransitProvider::connect(approle(bao)).await.unwrap())
}

fn cached(inner: Arc<dyn KeyProvider>, ttl: Duration) -> Arc<dyn KeyProvider> {
    let ring: Arc<dyn KeyProvider> = Arc::new(Keyring::new(inner, vec![]));
    Arc::new(DekCache::new(
        ring,
        DekCacheConfig {
            capacity: 1000,
            ttl,
        },
    ))
}

/// 50 values: text, empty-ish, newlines, and raw bytes that are not UTF-8.
fn values() -> Vec<(String, Vec<u8>)> {
    (0..50)
        .map(|i| {
            let v = match i % 4 {
                0 => format!("value-{i}-canary-7f3a").into_bytes(),
                1 => format!("multi\nline {i}\r\n\t").into_bytes(),
                2 => vec![0xff, 0x00, i as u8, 0xfe, b'\n'],
                _ => "ünïcödé ✓".repeat(i + 1).into_bytes(),
            };
            (format!("SECRET_{i:02}"), v)
        })
        .collect()
}

async fn harness(store: &Arc<Store>, keys: Arc<dyn KeyProvider>) -> Harness {
    let h = harness_with_keys(store, keys, cheap_auth(), tempfile::tempdir().unwrap()).await;
    h.state.secrets.verify_master_key().await.unwrap();
    h.setup_projects().await;
    h
}

async fn put_all(h: &Harness, vals: &[(String, Vec<u8>)]) {
    for (name, v) in vals {
        let r = h
            .call(
                "PUT",
                &format!("{ENV}/secrets/{name}"),
                Some(ADMIN),
                Some(serde_json::json!({ "value_base64": b64().encode(v) })),
                "127.0.0.1",
                &[],
            )
            .await;
        assert!(r.status.is_success(), "{}", r.json);
    }
}

/// Exports and checks every value byte for byte.
async fn assert_export(h: &Harness, vals: &[(String, Vec<u8>)]) {
    let r = h
        .call(
            "GET",
            &format!("{ENV}/export"),
            Some(ADMIN),
            None,
            "127.0.0.1",
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let secrets = r.json["secrets"].as_object().unwrap();
    assert_eq!(secrets.len(), vals.len());
    for (name, v) in vals {
        let w = &secrets[name];
        let got = match (w["value"].as_str(), w["value_base64"].as_str()) {
            (Some(s), None) => s.as_bytes().to_vec(),
            (None, Some(b)) => b64().decode(b).unwrap(),
            other => panic!("bad wire value {other:?}"),
        };
        assert_eq!(&got, v, "{name}");
    }
}

/// Reads every value on its own and checks it byte for byte.
async fn assert_gets(h: &Harness, vals: &[(String, Vec<u8>)]) {
    for (name, v) in vals {
        let r = h
            .call(
                "GET",
                &format!("{ENV}/secrets/{name}"),
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.json);
        let got = match (r.json["value"].as_str(), r.json["value_base64"].as_str()) {
            (Some(s), None) => s.as_bytes().to_vec(),
            (None, Some(b)) => b64().decode(b).unwrap(),
            other => panic!("bad wire value {other:?}"),
        };
        assert_eq!(&got, v, "{name}");
    }
}

/// (kek_id, wrapped_dek) of every stored version.
async fn stored(store: &Store) -> Vec<(String, Vec<u8>)> {
    sqlx::query_as("SELECT kek_id, wrapped_dek FROM secret_versions WHERE wrapped_dek IS NOT NULL")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_transit_approle_serves_50_secrets_and_rotation_moves_every_row() {
    let test = "vault_transit_approle_serves_50_secrets_and_rotation_moves_every_row";
    let Some(bao) = Bao::start(test) else { return };
    let vals = values();
    for b in backends(test).await {
        let keys = cached(vault(&bao).await, Duration::from_secs(60));
        let h = harness(&b.store, keys.clone()).await;
        put_all(&h, &vals).await;
        assert_export(&h, &vals).await;

        let v = bao.latest_version();
        let rows = stored(&b.store).await;
        assert_eq!(rows.len(), 50, "{}", b.name);
        for (kek, blob) in &rows {
            assert_eq!(
                kek,
                &format!("vault-transit:transit/envseal:v{v}"),
                "{}",
                b.name
            );
            let text = std::str::from_utf8(blob).expect("a Transit ciphertext is text");
            assert!(
                text.starts_with(&format!("vault:v{v}:")),
                "{}: {text}",
                b.name
            );
        }

        // Rotate the Transit key in Vault, then re-wrap every row.
        bao.cli_ok(&["write", "-f", "transit/keys/envseal/rotate"]);
        let audit = envseal_server::audit::AuditLog::start(b.store.clone());
        let opts = envseal_server::kek::RewrapOptions {
            batch: 7,
            pause: Duration::ZERO,
        };
        let done = envseal_server::kek::rotate(&b.store, &*keys, &audit, opts)
            .await
            .unwrap();
        // `kek rotate` rotates once more itself: two versions up.
        let target = format!("vault-transit:transit/envseal:v{}", v + 2);
        assert_eq!(done.target, target, "{}", b.name);
        assert_eq!(
            done.rewrapped,
            50 + 2,
            "{}: 50 versions and 2 server records",
            b.name
        );
        for (kek, blob) in stored(&b.store).await {
            assert_eq!(kek, target, "{}", b.name);
            assert!(blob.starts_with(format!("vault:v{}:", v + 2).as_bytes()));
        }
        let status = envseal_server::kek::status(&b.store, &*keys).await.unwrap();
        assert_eq!(status.counts, vec![(target.clone(), 52)], "{}", b.name);
        // A fresh provider (no cache) reads everything after the rotation.
        let fresh = harness_with_keys(
            &b.store,
            cached(vault(&bao).await, Duration::from_secs(60)),
            cheap_auth(),
            tempfile::tempdir().unwrap(),
        )
        .await;
        fresh.state.secrets.verify_master_key().await.unwrap();
        assert_export(&fresh, &vals).await;
        // Every step is in the audit log.
        let actions: Vec<String> = h.audit_rows().await.into_iter().map(|r| r.action).collect();
        for a in ["kek.rotate.start", "kek.rewrap.batch", "kek.rotate.finish"] {
            assert!(actions.iter().any(|x| x == a), "{}: {a} missing", b.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_wrong_approle_or_missing_key_refused_at_start() {
    let test = "vault_wrong_approle_or_missing_key_refused_at_start";
    let Some(bao) = Bao::start(test) else { return };
    let mut cfg = approle(&bao);
    cfg.auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: bao.role_id.clone(),
        secret_id_file: bao.write_private("wrong", "00000000-0000-0000-0000-000000000000"),
    };
    let e = VaultTransitProvider::connect(cfg)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("AppRole login refused"), "{e}");
    assert!(
        !e.contains("00000000-0000"),
        "the secret id must not be echoed: {e}"
    );

    let mut cfg = approle(&bao);
    cfg.key = "no-such-key".into();
    let e = VaultTransitProvider::connect(cfg)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no-such-key") && e.contains("does not exist"),
        "{e}"
    );

    let mut cfg = approle(&bao);
    cfg.address = "http://127.0.0.1:9".into();
    let e = VaultTransitProvider::connect(cfg)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("could not be reached"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_outage_serves_cached_reads_until_ttl_then_503_and_recovers() {
    let test = "vault_outage_serves_cached_reads_until_ttl_then_503_and_recovers";
    let Some(mut bao) = Bao::start(test) else {
        return;
    };
    let vals: Vec<_> = values().into_iter().take(10).collect();
    let b = backends(test).await.remove(0);
    let ttl = Duration::from_secs(4);
    let keys = cached(vault(&bao).await, ttl);
    // Single reads: the export cache never answers them, only the DEK cache can.
    let h = harness_with_keys(
        &b.store,
        keys.clone(),
        cheap_auth(),
        tempfile::tempdir().unwrap(),
    )
    .await;
    h.state.secrets.verify_master_key().await.unwrap();
    h.setup_projects().await;
    put_all(&h, &vals).await;
    assert_gets(&h, &vals).await; // warm
    let warmed = std::time::Instant::now();

    bao.stop();
    // Cached reads keep working.
    assert_gets(&h, &vals).await;
    let ready = h.call("GET", "/readyz", None, None, "127.0.0.1", &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json["keys"], "unavailable");
    // Writes need the provider: 503 with the stable code, nothing stored.
    let r = h
        .call(
            "PUT",
            &format!("{ENV}/secrets/NEW_ONE"),
            Some(ADMIN),
            Some(serde_json::json!({ "value": "x" })),
            "127.0.0.1",
            &[],
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json["code"].as_str()),
        (503, Some("kms_unavailable"))
    );
    // After the TTL: 503 with the stable code.
    tokio::time::sleep(ttl.saturating_sub(warmed.elapsed()) + Duration::from_millis(300)).await;
    let r = h
        .call(
            "GET",
            &format!("{ENV}/secrets/{}", vals[0].0),
            Some(ADMIN),
            None,
            "127.0.0.1",
            &[],
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json["code"].as_str()),
        (503, Some("kms_unavailable")),
        "{}",
        r.json
    );
    assert!(!r.json.to_string().contains("canary"));

    // Vault back: the same server recovers without a restart; nothing was lost.
    let _bao = tokio::task::spawn_blocking(move || {
        bao.restart();
        bao
    })
    .await
    .unwrap();
    let mut ok = false;
    for _ in 0..50 {
        let r = h.call("GET", "/readyz", None, None, "127.0.0.1", &[]).await;
        if r.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !ok {
        let e = h
            .keys
            .wrap(&envseal_server::crypto::Dek::generate())
            .await
            .err()
            .map(|e| e.to_string());
        panic!("the server did not recover after Vault came back: {e:?}");
    }
    assert_gets(&h, &vals).await;
    assert_export(&h, &vals).await;
    let versions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secret_versions")
        .fetch_one(b.store.pool())
        .await
        .unwrap();
    assert_eq!(
        versions,
        vals.len() as i64,
        "the refused write stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_local_to_vault_rewraps_every_row_and_keeps_values() {
    let test = "migrate_local_to_vault_rewraps_every_row_and_keeps_values";
    let Some(bao) = Bao::start(test) else { return };
    let vals = values();
    for b in backends(test).await {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn KeyProvider> =
            Arc::new(LocalKeyProvider::from_file(&dir.path().join("master.key")).unwrap());
        let h = harness(&b.store, local.clone()).await;
        put_all(&h, &vals).await;
        assert!(stored(&b.store)
            .await
            .iter()
            .all(|(k, _)| k.starts_with("local:")));

        // The target first, the old provider kept for reading.
        let ring: Arc<dyn KeyProvider> =
            Arc::new(Keyring::new(vault(&bao).await, vec![local.clone()]));
        let keys: Arc<dyn KeyProvider> = Arc::new(DekCache::new(
            ring,
            DekCacheConfig {
                capacity: 100,
                ttl: Duration::from_secs(60),
            },
        ));
        let audit = envseal_server::audit::AuditLog::start(b.store.clone());
        let done = envseal_server::kek::migrate(
            &b.store,
            &*keys,
            &audit,
            envseal_server::kek::RewrapOptions {
                batch: 9,
                pause: Duration::ZERO,
            },
        )
        .await
        .unwrap();
        assert!(done.target.starts_with("vault-transit:"), "{}", done.target);
        for (kek, blob) in stored(&b.store).await {
            assert_eq!(kek, done.target, "{}", b.name);
            assert!(blob.starts_with(b"vault:v"), "{}", b.name);
        }
        // Vault alone (no local key any more) opens everything.
        let only_vault = harness_with_keys(
            &b.store,
            cached(vault(&bao).await, Duration::from_secs(60)),
            cheap_auth(),
            tempfile::tempdir().unwrap(),
        )
        .await;
        only_vault.state.secrets.verify_master_key().await.unwrap();
        assert_export(&only_vault, &vals).await;
    }
}

//! The secret model over the store and envelope encryption, on every backend.

mod common;

use envseal_core::SecretValue;
use envseal_server::secrets::{KeyCheckError, SecretsError};
use envseal_server::store::{EnvRow, Store};
use std::sync::Arc;

async fn env(store: &Store, project: &str, env: &str) -> EnvRow {
    let p = match store.project(project).await {
        Ok(p) => p,
        Err(_) => store.create_project(project, "", 1).await.unwrap(),
    };
    store.create_environment(&p, env, 1).await.unwrap()
}

async fn put(
    secrets: &envseal_server::secrets::Secrets,
    env: &EnvRow,
    name: &str,
    value: &SecretValue,
    cas: Option<i64>,
    now: i64,
) -> Result<i64, SecretsError> {
    secrets
        .put(
            env,
            envseal_server::secrets::Write {
                name,
                value,
                cas,
                description: None,
                actor: "t",
                now,
                derived: false,
            },
        )
        .await
}

fn v(s: &str) -> SecretValue {
    SecretValue::new(s.as_bytes().to_vec())
}

#[tokio::test]
async fn versions_history_and_keep_last_n() {
    for b in common::backends("versions_history_and_keep_last_n").await {
        let dir = tempfile::tempdir().unwrap();
        let secrets = common::secrets(&b.store, dir.path(), 3);
        let e = env(&b.store, "dify", "prod").await;
        for i in 1..=5 {
            let n = put(
                &secrets,
                &e,
                "SECRET_KEY",
                &v(&format!("v{i}")),
                None,
                10 + i,
            )
            .await
            .unwrap();
            assert_eq!(n, i, "{}", b.name);
        }
        let (_, versions) = secrets.versions(&e, "SECRET_KEY").await.unwrap();
        let kept: Vec<i64> = versions.iter().map(|v| v.version).collect();
        assert_eq!(kept, vec![5, 4, 3], "{}", b.name);
        let (n, value) = secrets.get(&e, "SECRET_KEY", Some(3)).await.unwrap();
        assert_eq!((n, value.expose()), (3, &b"v3"[..]));
        assert!(matches!(
            secrets.get(&e, "SECRET_KEY", Some(1)).await,
            Err(SecretsError::NotFound("version"))
        ));
        // Rollback writes the old value as a new version.
        assert_eq!(
            secrets
                .rollback(&e, "SECRET_KEY", 3, "t", 20)
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            secrets
                .get(&e, "SECRET_KEY", None)
                .await
                .unwrap()
                .1
                .expose(),
            b"v3"
        );
    }
}

#[tokio::test]
async fn check_and_set_conflicts_are_reported() {
    for b in common::backends("check_and_set_conflicts_are_reported").await {
        let dir = tempfile::tempdir().unwrap();
        let secrets = common::secrets(&b.store, dir.path(), 10);
        let e = env(&b.store, "dify", "prod").await;
        assert_eq!(
            put(&secrets, &e, "A", &v("1"), Some(0), 1).await.unwrap(),
            1
        );
        let err = put(&secrets, &e, "A", &v("2"), Some(0), 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SecretsError::CasConflict { current: 1 }),
            "{}: {err}",
            b.name
        );
        let err = put(&secrets, &e, "A", &v("2"), Some(5), 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SecretsError::CasConflict { current: 1 }),
            "{}: {err}",
            b.name
        );
        assert_eq!(
            put(&secrets, &e, "A", &v("2"), Some(1), 1).await.unwrap(),
            2
        );
        assert_eq!(secrets.get(&e, "A", None).await.unwrap().1.expose(), b"2");
    }
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    for b in common::backends("concurrent_writers_lose_no_update").await {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(common::secrets(&b.store, dir.path(), 100));
        let e = env(&b.store, "dify", "prod").await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (secrets, e) = (secrets.clone(), e.clone());
            tasks.push(tokio::spawn(async move {
                put(&secrets, &e, "HOT", &v(&format!("w{i}")), None, 1).await
            }));
        }
        let mut got: Vec<i64> = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        got.sort();
        assert_eq!(got, (1..=16).collect::<Vec<_>>(), "{}", b.name);
        let env_now = b.store.environment("dify", "prod").await.unwrap();
        assert_eq!(env_now.revision, 16, "{}", b.name);
    }
}

#[tokio::test]
async fn soft_delete_undelete_and_destroy() {
    for b in common::backends("soft_delete_undelete_and_destroy").await {
        let dir = tempfile::tempdir().unwrap();
        let secrets = common::secrets(&b.store, dir.path(), 10);
        let e = env(&b.store, "dify", "prod").await;
        put(&secrets, &e, "A", &v("a1"), None, 1).await.unwrap();
        put(&secrets, &e, "A", &v("a2"), None, 1).await.unwrap();
        put(&secrets, &e, "B", &v("b1"), None, 1).await.unwrap();

        secrets.delete(&e, "A", 5).await.unwrap();
        let (_, exported) = secrets.export(&e).await.unwrap();
        let names: Vec<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["B"], "{}", b.name);
        assert!(matches!(
            secrets.get(&e, "A", None).await,
            Err(SecretsError::NotFound(_))
        ));
        assert!(secrets.delete(&e, "A", 6).await.is_err());

        secrets.undelete(&e, "A").await.unwrap();
        assert_eq!(secrets.get(&e, "A", None).await.unwrap().1.expose(), b"a2");
        assert!(secrets.undelete(&e, "A").await.is_err());

        // The current version of a live secret cannot be destroyed; an old one can.
        assert!(matches!(
            secrets.destroy(&e, "A", &[2], 7).await,
            Err(SecretsError::Invalid(_))
        ));
        assert_eq!(secrets.destroy(&e, "A", &[1], 7).await.unwrap(), 1);
        assert!(matches!(
            secrets.get(&e, "A", Some(1)).await,
            Err(SecretsError::Destroyed(1))
        ));
        let raw: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id \
             WHERE s.name = 'A' AND v.version = 1",
        )
        .fetch_one(b.store.pool())
        .await
        .unwrap();
        assert!(raw.is_none(), "{}: ciphertext survived destroy", b.name);
        assert!(matches!(
            secrets.rollback(&e, "A", 1, "t", 8).await,
            Err(SecretsError::Destroyed(1))
        ));
    }
}

#[tokio::test]
async fn ciphertext_moved_to_another_row_fails_to_decrypt() {
    for b in common::backends("ciphertext_moved_to_another_row_fails_to_decrypt").await {
        let dir = tempfile::tempdir().unwrap();
        let secrets = common::secrets(&b.store, dir.path(), 10);
        let prod = env(&b.store, "dify", "prod").await;
        let staging = env(&b.store, "dify", "staging").await;
        put(&secrets, &prod, "A", &v("prod-secret"), None, 1)
            .await
            .unwrap();
        put(&secrets, &prod, "B", &v("other"), None, 1)
            .await
            .unwrap();
        put(&secrets, &staging, "A", &v("staging"), None, 1)
            .await
            .unwrap();
        // Copy A's wrapped key and ciphertext onto B (same env) and onto staging's A.
        let pool = b.store.pool();
        for target in [("B", prod.id), ("A", staging.id)] {
            sqlx::query(
                "UPDATE secret_versions SET \
                   wrapped_dek = (SELECT v.wrapped_dek FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'A' AND s.environment_id = $1), \
                   ciphertext  = (SELECT v.ciphertext  FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'A' AND s.environment_id = $1) \
                 WHERE secret_id = (SELECT id FROM secrets WHERE name = $2 AND environment_id = $3)",
            )
            .bind(prod.id)
            .bind(target.0)
            .bind(target.1)
            .execute(pool)
            .await
            .unwrap();
        }
        assert!(
            matches!(
                secrets.get(&prod, "B", None).await,
                Err(SecretsError::Crypto(_))
            ),
            "{}",
            b.name
        );
        assert!(matches!(
            secrets.get(&staging, "A", None).await,
            Err(SecretsError::Crypto(_))
        ));
        assert_eq!(
            secrets.get(&prod, "A", None).await.unwrap().1.expose(),
            b"prod-secret"
        );
        // The whole-environment export refuses rather than serve a swapped value.
        assert!(secrets.export(&prod).await.is_err());
    }
}

#[tokio::test]
async fn wrong_master_key_is_detected_at_start() {
    for b in common::backends("wrong_master_key_is_detected_at_start").await {
        let dir = tempfile::tempdir().unwrap();
        let right = common::secrets(&b.store, dir.path(), 10);
        right.verify_master_key().await.unwrap();
        right.verify_master_key().await.unwrap(); // idempotent
        let wrong = common::secrets(&b.store, dir.path(), 10);
        let err = wrong.verify_master_key().await.unwrap_err();
        assert!(
            matches!(err, KeyCheckError::Mismatch { .. }),
            "{}: {err}",
            b.name
        );
        assert!(err.to_string().contains("does not match"));
    }
}

#[tokio::test]
async fn names_are_unique_per_scope() {
    for b in common::backends("names_are_unique_per_scope").await {
        let p = b.store.create_project("dify", "", 1).await.unwrap();
        assert!(b.store.create_project("dify", "", 1).await.is_err());
        b.store.create_environment(&p, "prod", 1).await.unwrap();
        assert!(b.store.create_environment(&p, "prod", 1).await.is_err());
        let q = b.store.create_project("other", "", 1).await.unwrap();
        b.store.create_environment(&q, "prod", 1).await.unwrap();
        let names: Vec<String> = b
            .store
            .list_projects()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, vec!["dify", "other"], "{}", b.name);
    }
}

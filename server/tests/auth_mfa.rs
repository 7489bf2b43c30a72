//! TOTP MFA: enrolment, verification, replay rejection, recovery codes, encrypted
//! storage, and mandatory MFA for admins.

mod common;

use common::{auth_with, fresh_ip, harness, ADMIN};
use envseal_server::login::AuthConfig;
use envseal_server::mfa;

const PW: &str = "correct-horse-battery-9";

fn relaxed() -> AuthConfig {
    let mut c = AuthConfig::default();
    c.limits.per_ip = 10_000;
    c.limits.per_account = 10_000;
    c.limits.global = 10_000;
    c.limits.lockout_threshold = 100;
    c
}

fn now() -> u64 {
    envseal_server::now() as u64
}

fn secret_bytes(enrolment: &serde_json::Value) -> Vec<u8> {
    totp_rs::Secret::Encoded(enrolment["secret"].as_str().unwrap().to_owned())
        .to_bytes()
        .unwrap()
}

#[tokio::test]
async fn totp_enrolment_login_replay_and_recovery_codes() {
    for b in common::backends("totp_enrolment_login_replay_and_recovery_codes").await {
        let h = harness(&b.store, auth_with(relaxed())).await;
        h.create_user("alice", PW, &[("*", "viewer")]).await;
        let token = h.session("alice", PW).await;

        let e = h
            .call(
                "POST",
                "/v1/auth/mfa/enroll",
                Some(&token),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(e.status, 200, "{}", e.json);
        assert!(e.json["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/envseal:alice?secret="));
        let secret = secret_bytes(&e.json);
        // Pending, not yet required.
        assert_eq!(h.login("alice", PW, None, &fresh_ip()).await.status, 200);

        // The secret is stored sealed, never in plaintext (raw or base32).
        let row = h.state.store.user_by_name("alice").await.unwrap().unwrap();
        let stored = row.totp_secret.clone().unwrap();
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
        let b32 = e.json["secret"].as_str().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains(b32));

        let wrong = h
            .call(
                "POST",
                "/v1/auth/mfa/confirm",
                Some(&token),
                Some(serde_json::json!({"code": "000000"})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(wrong.status, 400);
        let code_now = mfa::code_at(&secret, now());
        let c = h
            .call(
                "POST",
                "/v1/auth/mfa/confirm",
                Some(&token),
                Some(serde_json::json!({"code": code_now})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(c.status, 200, "{}", c.json);
        let codes: Vec<String> = c.json["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 10);

        // Now the password alone is not enough, and says so.
        let r = h.login("alice", PW, None, &fresh_ip()).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json["code"], "mfa_required");
        // A wrong password with MFA on still looks like any wrong password.
        let r = h
            .login("alice", "bad-password-x", Some("123456"), &fresh_ip())
            .await;
        assert_eq!(r.json["code"], "invalid_credentials");
        // The code used to confirm is spent: replaying it fails.
        let r = h.login("alice", PW, Some(&code_now), &fresh_ip()).await;
        assert_eq!(
            r.json["code"], "invalid_credentials",
            "replayed code accepted"
        );
        // The next step's code works once (one step of clock skew is allowed) ...
        let next = mfa::code_at(&secret, now() + 30);
        let r = h.login("alice", PW, Some(&next), &fresh_ip()).await;
        assert_eq!(r.status, 200, "{}", r.json);
        // ... and not twice, nor can an older step come back.
        assert_eq!(
            h.login("alice", PW, Some(&next), &fresh_ip()).await.status,
            401
        );
        let older = mfa::code_at(&secret, now());
        assert_eq!(
            h.login("alice", PW, Some(&older), &fresh_ip()).await.status,
            401
        );
        // A code from far outside the window fails.
        let far = mfa::code_at(&secret, now() + 300);
        assert_eq!(
            h.login("alice", PW, Some(&far), &fresh_ip()).await.status,
            401
        );

        // Recovery codes work once each, in any case and spacing.
        let r = h
            .login("alice", PW, Some(&codes[0].to_uppercase()), &fresh_ip())
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(
            h.login("alice", PW, Some(&codes[0]), &fresh_ip())
                .await
                .status,
            401
        );
        assert_eq!(
            h.login("alice", PW, Some(&codes[1]), &fresh_ip())
                .await
                .status,
            200
        );

        let reasons: Vec<String> = h
            .audit_rows()
            .await
            .into_iter()
            .filter(|r| r.action == "auth.login")
            .map(|r| r.reason)
            .collect();
        for reason in [
            "mfa_required",
            "totp_replay",
            "bad_totp",
            "bad_recovery_code",
        ] {
            assert!(
                reasons.iter().any(|r| r == reason),
                "{reason} in {reasons:?}"
            );
        }

        // Admin reset of a lost device: the password alone works again.
        let r = h
            .call(
                "DELETE",
                "/v1/users/alice/mfa",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(h.login("alice", PW, None, &fresh_ip()).await.status, 200);

        // No TOTP secret or recovery code ever reaches the audit log.
        let all = format!("{:?}", h.audit_rows().await);
        assert!(!all.contains(b32));
        assert!(!all.contains(&codes[2]));
    }
}

#[tokio::test]
async fn mandatory_admin_mfa_allows_only_enrolment_until_done() {
    for b in common::backends("mandatory_admin_mfa_allows_only_enrolment_until_done").await {
        let mut c = relaxed();
        c.require_admin_mfa = true;
        let h = harness(&b.store, auth_with(c)).await;
        h.create_user("root", PW, &[("*", "admin")]).await;
        h.create_user("dev", PW, &[("*", "developer")]).await;

        let r = h.login("root", PW, None, &fresh_ip()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json["mfa_enrolment_required"], true);
        let token = r.json["token"].as_str().unwrap().to_owned();
        let denied = h
            .call("GET", "/v1/users", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(denied.status, 403);
        assert_eq!(denied.json["code"], "mfa_enrolment_required");
        let me = h
            .call("GET", "/v1/auth/me", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(me.json["mfa_enrolment_required"], true);

        // Non-admins are not affected.
        let r = h.login("dev", PW, None, &fresh_ip()).await;
        assert_eq!(r.json["mfa_enrolment_required"], false);

        let e = h
            .call(
                "POST",
                "/v1/auth/mfa/enroll",
                Some(&token),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        let secret = secret_bytes(&e.json);
        let code = mfa::code_at(&secret, now());
        let c = h
            .call(
                "POST",
                "/v1/auth/mfa/confirm",
                Some(&token),
                Some(serde_json::json!({"code": code})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(c.status, 200);
        // The same session may act now.
        let ok = h
            .call("GET", "/v1/users", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(ok.status, 200, "{}", ok.json);
        // Machine tokens (the bootstrap admin) keep working without MFA.
        assert_eq!(
            h.call("GET", "/v1/users", Some(ADMIN), None, "127.0.0.1", &[])
                .await
                .status,
            200
        );
    }
}

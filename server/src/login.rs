//! People signing in: password login with rate limits, lockout and TOTP, sessions,
//! and the client address a request comes from.
//!
//! The order of a login is fixed so that a flood costs little and says nothing:
//! rate limits first (no argon2 work for a refused attempt), then exactly one argon2
//! verification whether or not the user exists (a dummy hash stands in), then the
//! lockout and second-factor checks. Unknown users, wrong passwords, disabled and
//! locked accounts and wrong codes all get the same answer; only the audit log says
//! which it was. This module knows nothing about HTTP.

use crate::alert::{AlertConfig, Alerts};
use crate::audit::{AuditEvent, AuditLog, Outcome};
use crate::auth::{ct_eq, hash_token, Principal, Role, RoleBinding, UserScope};
use crate::crypto::KeyProvider;
use crate::limiter::{account_key, ip_key, Admission, LimitConfig, LimitKind, Limiter};
use crate::mfa;
use crate::password::{HashParams, Hasher, PasswordPolicy};
use crate::store::{RoleRow, Store, StoreError};
use std::net::IpAddr;
use std::time::Duration;
use zeroize::Zeroizing;

/// A network in `--trusted-proxy`: an address or `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(ProxyNet { addr, prefix })
    }
}

impl ProxyNet {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bytes: &[u8], prefix: u8) -> Vec<u8> {
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let bits = (prefix as usize).saturating_sub(i * 8).min(8);
                    if bits == 0 {
                        0
                    } else {
                        b & (0xffu8 << (8 - bits))
                    }
                })
                .collect()
        }
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                masked(&a.octets(), self.prefix) == masked(&b.octets(), self.prefix)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                masked(&a.octets(), self.prefix) == masked(&b.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// The client's address: the socket peer, or, only when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[ProxyNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut nearest = peer;
    for header in forwarded_for.iter().rev() {
        for part in header.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(ip) => nearest = ip,
                Ok(ip) => return Some(ip),
                Err(_) => return Some(nearest),
            }
        }
    }
    Some(nearest)
}

/// Everything configurable about people and login.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Rate limits and lockout.
    pub limits: LimitConfig,
    /// argon2id parameters for new hashes.
    pub hash: HashParams,
    /// Concurrent argon2 computations at most.
    pub hash_workers: usize,
    /// Rules for new passwords.
    pub policy: PasswordPolicy,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Admins must enrol TOTP before doing anything else.
    pub require_admin_mfa: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ProxyNet>,
    /// Where alerts go.
    pub alerts: AlertConfig,
    /// Failed logins per window (server-wide) that raise a brute-force alert.
    pub alert_failures: u32,
    /// Mark the session cookie `Secure` (on unless explicitly turned off for tests).
    pub secure_cookie: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            limits: LimitConfig::default(),
            hash: HashParams::default(),
            // Half the cores: a flood of admitted logins can never starve the
            // secret fetches of CPU.
            hash_workers: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            policy: PasswordPolicy::default(),
            session_ttl: Duration::from_secs(12 * 3600),
            require_admin_mfa: false,
            trusted_proxies: Vec::new(),
            alerts: AlertConfig {
                quiet_period: Duration::from_secs(15 * 60),
                ..AlertConfig::default()
            },
            alert_failures: 30,
            secure_cookie: true,
        }
    }
}

/// Login state and machinery shared by all requests.
pub struct AuthService {
    /// Settings.
    pub config: AuthConfig,
    /// Rate limits and lockout state.
    pub limiter: Limiter,
    /// Bounded argon2.
    pub hasher: Hasher,
    /// Alert hook.
    pub alerts: Alerts,
}

/// One login attempt.
pub struct LoginAttempt {
    /// Name as typed.
    pub username: String,
    /// Password as typed.
    pub password: Zeroizing<String>,
    /// TOTP or recovery code, if given.
    pub second_factor: Option<Zeroizing<String>>,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Client user agent.
    pub user_agent: String,
}

/// A new session.
pub struct NewSession {
    /// Public id.
    pub id: String,
    /// The bearer token (shown once).
    pub token: Zeroizing<String>,
    /// The user's name.
    pub username: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// True when the session may only enrol TOTP (admin MFA is mandatory).
    pub mfa_enrolment_required: bool,
}

/// Why a login did not produce a session. Callers must answer `InvalidCredentials`
/// identically whatever the underlying reason.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// A window is full: try again later (says nothing about the account).
    #[error("too many login attempts; try again later")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// Unknown user, wrong password, locked or disabled account, wrong code.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password is right and the account needs a TOTP or recovery code.
    #[error("this account requires a TOTP code")]
    MfaRequired,
    /// Rate-limit state (Redis) or the database is unreachable: refuse, fail closed.
    #[error("login is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => LoginError::Unavailable(e.to_string()),
            e => LoginError::Internal(e.to_string()),
        }
    }
}

/// Why a session token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRejection {
    /// Unknown, revoked, or its user is disabled.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Lower-case login names: `[a-z0-9][a-z0-9._@-]{0,63}`.
pub fn validate_username(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err("a username is 1–64 characters of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit".to_owned())
    }
}

/// Role bindings from rows (unknown role names are ignored).
pub fn bindings(rows: &[RoleRow]) -> Vec<RoleBinding> {
    rows.iter()
        .filter_map(|r| {
            Role::parse(&r.role).map(|role| RoleBinding {
                project: r.project.clone(),
                role,
            })
        })
        .collect()
}

/// Strips control characters from text a client chose (names, user agents) before
/// it reaches logs or the audit log.
pub fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

impl AuthService {
    /// Builds the service; `limiter` decides where the state lives.
    pub fn new(config: AuthConfig, limiter: Limiter) -> Result<Self, crate::password::HashError> {
        let hasher = Hasher::new(config.hash, config.hash_workers)?;
        let alerts = Alerts::new(config.alerts.clone());
        Ok(AuthService {
            config,
            limiter,
            hasher,
            alerts,
        })
    }

    /// The whole login. Every attempt is recorded in the audit log.
    pub async fn login(
        &self,
        store: &Store,
        keys: &dyn KeyProvider,
        audit: &AuditLog,
        attempt: LoginAttempt,
    ) -> Result<NewSession, LoginError> {
        let typed = printable(attempt.username.trim());
        let username = typed.to_lowercase();
        let account = account_key(&username);
        let ip = ip_key(attempt.ip);
        let ua = printable(&attempt.user_agent);
        let record = |outcome: Outcome, reason: &str| {
            audit.record(
                AuditEvent::new(&typed, "auth.login", &typed)
                    .outcome(outcome, reason)
                    .client(&ip, &ua),
            )
        };

        // 1. Rate limits, before any argon2 work.
        let admission = match self.limiter.admit(&ip, &account).await {
            Ok(a) => a,
            Err(e) => {
                let _ = record(Outcome::Denied, "limiter_unavailable").await;
                return Err(LoginError::Unavailable(e.to_string()));
            }
        };
        if let Admission::Limited { kind, retry_after } = admission {
            if kind == LimitKind::Ip {
                self.alerts.fire(
                    "brute_force",
                    &format!("ip:{ip}"),
                    serde_json::json!({ "reason": "ip_rate_limit", "ip": ip }),
                );
            }
            record(Outcome::Denied, kind.as_str())
                .await
                .map_err(|e| LoginError::Unavailable(e.to_string()))?;
            return Err(LoginError::RateLimited { retry_after });
        }

        // 2. Lockout state, the user, and exactly one argon2 verification.
        let locked = self
            .limiter
            .locked(&account)
            .await
            .map_err(|e| LoginError::Unavailable(e.to_string()))?;
        let user = store.user_by_name(&username).await?;
        let usable = user.as_ref().filter(|u| u.disabled_at.is_none());
        let password_ok = self
            .hasher
            .verify(attempt.password, usable.map(|u| u.password_hash.clone()))
            .await
            .map_err(|e| LoginError::Unavailable(e.to_string()))?;
        let failure_reason = match (&user, usable, password_ok, locked) {
            (None, _, _, _) => Some("unknown_user"),
            (Some(_), None, _, _) => Some("disabled"),
            (_, _, _, Some(_)) => Some("locked"),
            (_, _, false, None) => Some("bad_password"),
            (_, _, true, None) => None,
        };
        if let Some(reason) = failure_reason {
            return Err(self.fail(audit, &typed, &account, &ip, &ua, reason).await);
        }
        let user = usable.expect("checked above").clone();

        // 3. Second factor.
        if user.totp_enabled == 1 {
            let Some(code) = attempt.second_factor else {
                record(Outcome::Failure, "mfa_required")
                    .await
                    .map_err(|e| LoginError::Unavailable(e.to_string()))?;
                return Err(LoginError::MfaRequired);
            };
            if let Err(reason) = self.check_second_factor(store, keys, &user, &code).await? {
                return Err(self.fail(audit, &typed, &account, &ip, &ua, reason).await);
            }
        }

        // 4. Success.
        self.limiter
            .record_success(&account)
            .await
            .map_err(|e| LoginError::Unavailable(e.to_string()))?;
        let roles = bindings(&store.user_roles(&user.id).await?);
        let mfa_enrolment_required = self.config.require_admin_mfa
            && user.totp_enabled != 1
            && roles.iter().any(|b| b.role == Role::Admin);
        let (id, token) = mfa::new_session_token();
        let now = crate::now();
        let expires_at = now + self.config.session_ttl.as_secs() as i64;
        store
            .insert_session(&id, &hash_token(&token), &user.id, now, expires_at)
            .await?;
        // Housekeeping: sessions that expired a day ago are of no use to anyone.
        store.prune_sessions(now - 86_400).await?;
        audit
            .record(
                AuditEvent::new(&user.username, "auth.login", &user.username)
                    .client(&ip, &ua)
                    .details(serde_json::json!({
                        "session": id,
                        "mfa": user.totp_enabled == 1,
                        "mfa_enrolment_required": mfa_enrolment_required,
                    })),
            )
            .await
            .map_err(|e| LoginError::Unavailable(e.to_string()))?;
        Ok(NewSession {
            id,
            token,
            username: user.username,
            expires_at,
            mfa_enrolment_required,
        })
    }

    /// Ok(Ok) when the code is right; Ok(Err(reason)) when it is not.
    async fn check_second_factor(
        &self,
        store: &Store,
        keys: &dyn KeyProvider,
        user: &crate::store::UserRow,
        code: &str,
    ) -> Result<Result<(), &'static str>, LoginError> {
        if mfa::is_recovery_code(code) {
            return Ok(
                if store
                    .use_recovery_code(&user.id, &mfa::recovery_hash(code), crate::now())
                    .await?
                {
                    Ok(())
                } else {
                    Err("bad_recovery_code")
                },
            );
        }
        let (Some(kek), Some(wrapped), Some(sealed)) =
            (&user.totp_kek_id, &user.totp_wrapped_dek, &user.totp_secret)
        else {
            return Ok(Err("totp_missing"));
        };
        let secret = mfa::open(keys, &user.id, kek, wrapped, sealed)
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        let Some(step) = mfa::matching_step(&secret, code, crate::now() as u64) else {
            return Ok(Err("bad_totp"));
        };
        if !store.advance_totp_step(&user.id, step).await? {
            return Ok(Err("totp_replay"));
        }
        Ok(Ok(()))
    }

    /// Counts a failure, records it, raises alerts; always `InvalidCredentials`.
    async fn fail(
        &self,
        audit: &AuditLog,
        typed: &str,
        account: &str,
        ip: &str,
        ua: &str,
        reason: &str,
    ) -> LoginError {
        let outcome = match self.limiter.record_failure(account).await {
            Ok(o) => o,
            Err(e) => {
                let _ = audit
                    .record(
                        AuditEvent::new(typed, "auth.login", typed)
                            .outcome(Outcome::Failure, reason)
                            .client(ip, ua),
                    )
                    .await;
                return LoginError::Unavailable(e.to_string());
            }
        };
        let details = serde_json::json!({ "consecutive_failures": outcome.consecutive });
        if let Err(e) = audit
            .record(
                AuditEvent::new(typed, "auth.login", typed)
                    .outcome(Outcome::Failure, reason)
                    .client(ip, ua)
                    .details(details),
            )
            .await
        {
            return LoginError::Unavailable(e.to_string());
        }
        if outcome.newly_locked {
            let _ = audit
                .record(
                    AuditEvent::new("envseal", "auth.lockout", typed)
                        .client(ip, ua)
                        .details(serde_json::json!({
                            "consecutive_failures": outcome.consecutive,
                            "lockout_seconds": self.config.limits.lockout.as_secs(),
                        })),
                )
                .await;
            self.alerts.fire(
                "account_locked",
                account,
                serde_json::json!({
                    "username": typed,
                    "ip": ip,
                    "consecutive_failures": outcome.consecutive,
                }),
            );
        }
        if outcome.global_failures >= self.config.alert_failures {
            self.alerts.fire(
                "brute_force",
                "global",
                serde_json::json!({
                    "reason": "failure_rate",
                    "failures": outcome.global_failures,
                    "window_seconds": self.config.limits.window.as_secs(),
                }),
            );
        }
        LoginError::InvalidCredentials
    }

    /// The principal of a session token.
    pub async fn authenticate_session(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Principal, SessionAuthError> {
        let hash = hash_token(token);
        let Some(row) = store.session_by_hash(&hash).await? else {
            return Err(SessionAuthError::Rejected(SessionRejection::Invalid));
        };
        if !ct_eq(&hash, &row.token_hash) || row.revoked_at.is_some() || row.disabled_at.is_some() {
            return Err(SessionAuthError::Rejected(SessionRejection::Invalid));
        }
        if row.expires_at <= crate::now() {
            return Err(SessionAuthError::Rejected(SessionRejection::Expired));
        }
        let roles = bindings(&store.user_roles(&row.user_id).await?);
        let mfa_enrolment_required = self.config.require_admin_mfa
            && row.totp_enabled != 1
            && roles.iter().any(|b| b.role == Role::Admin);
        Ok(Principal::user(
            row.id,
            row.username,
            UserScope {
                user_id: row.user_id,
                roles,
                mfa_enrolment_required,
            },
        ))
    }
}

/// Session authentication failures.
#[derive(Debug, thiserror::Error)]
pub enum SessionAuthError {
    /// The token is not accepted.
    #[error("session rejected")]
    Rejected(SessionRejection),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ProxyNet> =
            vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        // Not a proxy: the header is ignored.
        assert_eq!(
            client_ip(Some(stranger), &["1.2.3.4"], &trusted),
            Some(stranger)
        );
        // A proxy: the right-most untrusted hop wins.
        assert_eq!(
            client_ip(Some(lo), &["6.6.6.6, 1.2.3.4, 10.1.2.3"], &trusted),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(client_ip(Some(lo), &[], &trusted), Some(lo));
        assert_eq!(client_ip(Some(lo), &["garbage"], &trusted), Some(lo));
        assert_eq!(client_ip(None, &["1.2.3.4"], &trusted), None);
        assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
        assert!("::1"
            .parse::<ProxyNet>()
            .unwrap()
            .contains("::1".parse().unwrap()));
    }

    #[test]
    fn usernames() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("ops@example.com").is_ok());
        assert!(validate_username("Alice").is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username("-x").is_err());
    }
}

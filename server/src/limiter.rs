//! Login rate limits and account lockout: sliding windows per client address, per
//! account and for the whole server, and a consecutive-failure counter per account.
//!
//! State lives in memory (one node) or in Redis (several replicas enforce one limit):
//! every check-and-record is one atomic step, a mutex in memory and a Lua script in
//! Redis. Accounts are keyed by a hash of the name as typed, whether or not such a
//! user exists, so limits and lockouts behave the same for unknown names.
//!
//! This module knows nothing about HTTP, passwords or the database.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Limits and lockout settings.
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    /// Attempts per client address per window.
    pub per_ip: u32,
    /// Attempts per account name per window.
    pub per_account: u32,
    /// Attempts on the whole server per window.
    pub global: u32,
    /// Window length.
    pub window: Duration,
    /// Consecutive failures that lock an account.
    pub lockout_threshold: u32,
    /// How long a lockout lasts (renewed by every failure during it).
    pub lockout: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            per_ip: 10,
            per_account: 5,
            global: 100,
            window: Duration::from_secs(60),
            lockout_threshold: 5,
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The client address's window is full.
    Ip,
    /// The account's window is full.
    Account,
    /// The server's window is full.
    Global,
}

impl LimitKind {
    /// Name for the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Ip => "ip_rate_limit",
            LimitKind::Account => "account_rate_limit",
            LimitKind::Global => "global_rate_limit",
        }
    }
}

/// The answer to [`Limiter::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; the attempt is counted.
    Allowed,
    /// Refused; not counted. Try again after this long.
    Limited {
        /// Which window is full.
        kind: LimitKind,
        /// When the oldest attempt in that window leaves it.
        retry_after: Duration,
    },
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Consecutive failures of the account so far.
    pub consecutive: u32,
    /// True when this failure locked the account (it was not locked before).
    pub newly_locked: bool,
    /// Failures on the whole server in the current window.
    pub global_failures: u32,
}

/// The state store could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("rate-limit state unavailable: {0}")]
pub struct LimiterError(String);

/// Where the state lives.
pub struct Limiter {
    config: LimitConfig,
    backend: LimiterBackend,
}

enum LimiterBackend {
    Memory(Mutex<Memory>),
    Redis {
        conn: redis::aio::ConnectionManager,
        prefix: String,
    },
}

/// A name as a short fixed-length key (no user text reaches Redis keys or maps).
pub fn account_key(username: &str) -> String {
    let digest = Sha256::digest(username.trim().to_lowercase().as_bytes());
    hex::encode(&digest[..16])
}

/// How long a Redis call may take before the login is refused with 503.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

impl Limiter {
    /// State in this process.
    pub fn memory(config: LimitConfig) -> Self {
        Limiter {
            config,
            backend: LimiterBackend::Memory(Mutex::new(Memory::default())),
        }
    }

    /// State in Redis under `prefix`. Connects now, so a wrong URL fails at start.
    pub async fn redis(config: LimitConfig, url: &str, prefix: &str) -> Result<Self, LimiterError> {
        let client = redis::Client::open(url).map_err(|e| LimiterError(e.to_string()))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            client.get_connection_manager_with_config(cfg),
        )
        .await
        .map_err(|_| LimiterError("timed out connecting to Redis".into()))?
        .map_err(|e| LimiterError(e.to_string()))?;
        Ok(Limiter {
            config,
            backend: LimiterBackend::Redis {
                conn,
                prefix: prefix.to_owned(),
            },
        })
    }

    /// The settings.
    pub fn config(&self) -> &LimitConfig {
        &self.config
    }

    /// Where the state lives: `memory` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            LimiterBackend::Memory(_) => "memory",
            LimiterBackend::Redis { .. } => "redis",
        }
    }

    /// Whether the state store answers (always true in memory).
    pub async fn ping(&self) -> bool {
        match &self.backend {
            LimiterBackend::Memory(_) => true,
            LimiterBackend::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis_call::<String>(redis::cmd("PING").query_async(&mut conn))
                    .await
                    .is_ok()
            }
        }
    }

    /// Checks the three windows and, only if none is full, counts the attempt in all
    /// three, atomically.
    pub async fn admit(&self, ip: &str, account: &str) -> Result<Admission, LimiterError> {
        let c = &self.config;
        let window_ms = c.window.as_millis() as u64;
        let windows = [
            (format!("ip:{ip}"), c.per_ip, LimitKind::Ip),
            (format!("acct:{account}"), c.per_account, LimitKind::Account),
            ("global".to_owned(), c.global, LimitKind::Global),
        ];
        match &self.backend {
            LimiterBackend::Memory(m) => {
                let now = now_ms();
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                m.maybe_prune(now, window_ms, c.lockout.as_millis() as u64);
                for (key, limit, kind) in &windows {
                    let w = m.windows.entry(key.clone()).or_default();
                    while w.front().is_some_and(|t| *t + window_ms <= now) {
                        w.pop_front();
                    }
                    if w.len() >= *limit as usize {
                        let oldest = w.front().copied().unwrap_or(now);
                        return Ok(Admission::Limited {
                            kind: *kind,
                            retry_after: Duration::from_millis(
                                (oldest + window_ms).saturating_sub(now),
                            ),
                        });
                    }
                }
                for (key, _, _) in &windows {
                    m.windows.entry(key.clone()).or_default().push_back(now);
                }
                Ok(Admission::Allowed)
            }
            LimiterBackend::Redis { conn, prefix } => {
                let script = redis::Script::new(ADMIT_LUA);
                let mut inv = script.prepare_invoke();
                for (key, _, _) in &windows {
                    inv.key(format!("{prefix}:rl:{key}"));
                }
                inv.arg(window_ms).arg(member());
                for (_, limit, _) in &windows {
                    inv.arg(*limit);
                }
                let mut conn = conn.clone();
                let (which, retry_ms): (i64, i64) = redis_call(inv.invoke_async(&mut conn)).await?;
                Ok(match which {
                    0 => Admission::Allowed,
                    i => Admission::Limited {
                        kind: windows[(i as usize - 1).min(2)].2,
                        retry_after: Duration::from_millis(retry_ms.max(0) as u64),
                    },
                })
            }
        }
    }

    /// Whether the account is locked now, and for how long still.
    pub async fn locked(&self, account: &str) -> Result<Option<Duration>, LimiterError> {
        match &self.backend {
            LimiterBackend::Memory(m) => {
                let now = now_ms();
                let m = m.lock().unwrap_or_else(|p| p.into_inner());
                Ok(m.accounts
                    .get(account)
                    .and_then(|a| a.locked_until)
                    .filter(|until| *until > now)
                    .map(|until| Duration::from_millis(until - now)))
            }
            LimiterBackend::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let ttl: i64 = redis_call(
                    redis::cmd("PTTL")
                        .arg(format!("{prefix}:lock:{account}"))
                        .query_async(&mut conn),
                )
                .await?;
                Ok((ttl > 0).then(|| Duration::from_millis(ttl as u64)))
            }
        }
    }

    /// Counts a failed attempt: one more consecutive failure (during a lockout too,
    /// which renews it), locking the account at the threshold.
    pub async fn record_failure(&self, account: &str) -> Result<FailureOutcome, LimiterError> {
        let c = &self.config;
        let window_ms = c.window.as_millis() as u64;
        let lock_ms = c.lockout.as_millis() as u64;
        match &self.backend {
            LimiterBackend::Memory(m) => {
                let now = now_ms();
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let a = m.accounts.entry(account.to_owned()).or_default();
                if a.last_failure + lock_ms <= now {
                    a.consecutive = 0;
                }
                a.consecutive += 1;
                a.last_failure = now;
                let was_locked = a.locked_until.is_some_and(|u| u > now);
                if a.consecutive >= c.lockout_threshold {
                    a.locked_until = Some(now + lock_ms);
                }
                let consecutive = a.consecutive;
                let newly_locked = !was_locked && a.locked_until.is_some_and(|u| u > now);
                let g = &mut m.global_failures;
                while g.front().is_some_and(|t| *t + window_ms <= now) {
                    g.pop_front();
                }
                g.push_back(now);
                Ok(FailureOutcome {
                    consecutive,
                    newly_locked,
                    global_failures: g.len() as u32,
                })
            }
            LimiterBackend::Redis { conn, prefix } => {
                let script = redis::Script::new(FAILURE_LUA);
                let mut conn = conn.clone();
                let (consecutive, newly, global): (i64, i64, i64) = redis_call(
                    script
                        .key(format!("{prefix}:fail:{account}"))
                        .key(format!("{prefix}:lock:{account}"))
                        .key(format!("{prefix}:gfail"))
                        .arg(c.lockout_threshold)
                        .arg(lock_ms)
                        .arg(window_ms)
                        .arg(member())
                        .invoke_async(&mut conn),
                )
                .await?;
                Ok(FailureOutcome {
                    consecutive: consecutive as u32,
                    newly_locked: newly == 1,
                    global_failures: global as u32,
                })
            }
        }
    }

    /// A successful login: the consecutive-failure count starts again.
    pub async fn record_success(&self, account: &str) -> Result<(), LimiterError> {
        self.clear(account, false).await
    }

    /// Admin unlock: ends a lockout and clears the failure count.
    pub async fn unlock(&self, account: &str) -> Result<(), LimiterError> {
        self.clear(account, true).await
    }

    async fn clear(&self, account: &str, lock_too: bool) -> Result<(), LimiterError> {
        match &self.backend {
            LimiterBackend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(a) = m.accounts.get_mut(account) {
                    a.consecutive = 0;
                    if lock_too {
                        a.locked_until = None;
                    }
                }
                Ok(())
            }
            LimiterBackend::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("DEL");
                cmd.arg(format!("{prefix}:fail:{account}"));
                if lock_too {
                    cmd.arg(format!("{prefix}:lock:{account}"));
                }
                let _: i64 = redis_call(cmd.query_async(&mut conn)).await?;
                Ok(())
            }
        }
    }
}

async fn redis_call<T>(
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LimiterError> {
    match tokio::time::timeout(REDIS_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LimiterError(e.to_string())),
        Err(_) => Err(LimiterError("Redis did not answer in time".into())),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A unique sorted-set member for one attempt.
fn member() -> String {
    format!("{}-{:016x}", now_ms(), rand::random::<u64>())
}

/// KEYS: the windows. ARGV: window ms, member, then one limit per key.
/// Returns {0, 0} when counted, else {index of the full window, ms until it frees}.
/// Redis's own clock is used so that replicas with skewed clocks agree.
const ADMIT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - win)
  if redis.call('ZCARD', k) >= tonumber(ARGV[2 + i]) then
    local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    local retry = win
    if oldest[2] then retry = tonumber(oldest[2]) + win - now end
    return {i, retry}
  end
end
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, now, ARGV[2])
  redis.call('PEXPIRE', k, win)
end
return {0, 0}
";

/// KEYS: failure counter, lock, global failure window. ARGV: threshold, lock ms,
/// window ms, member. Returns {consecutive, newly locked (0/1), global failures}.
const FAILURE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold = tonumber(ARGV[1])
local lock_ms = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local c = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], lock_ms)
local newly = 0
if c >= threshold then
  if redis.call('EXISTS', KEYS[2]) == 0 then newly = 1 end
  redis.call('SET', KEYS[2], now + lock_ms, 'PX', lock_ms)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - win)
redis.call('ZADD', KEYS[3], now, ARGV[4])
redis.call('PEXPIRE', KEYS[3], win)
return {c, newly, redis.call('ZCARD', KEYS[3])}
";

#[derive(Default)]
struct Memory {
    windows: HashMap<String, VecDeque<u64>>,
    accounts: HashMap<String, AccountState>,
    global_failures: VecDeque<u64>,
    ops: u64,
}

#[derive(Default)]
struct AccountState {
    consecutive: u32,
    last_failure: u64,
    locked_until: Option<u64>,
}

impl Memory {
    /// Drops empty windows and forgotten accounts now and then. Only admitted attempts
    /// create entries, so the maps hold at most a few windows' worth of the global limit.
    fn maybe_prune(&mut self, now: u64, window_ms: u64, lock_ms: u64) {
        self.ops += 1;
        if self.ops % 1024 != 0 {
            return;
        }
        self.windows
            .retain(|_, w| w.back().is_some_and(|t| *t + window_ms > now));
        self.accounts.retain(|_, a| {
            a.locked_until.is_some_and(|u| u > now) || a.last_failure + lock_ms > now
        });
    }
}

/// The client address as a window key.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LimitConfig {
        LimitConfig {
            per_ip: 3,
            per_account: 2,
            global: 5,
            window: Duration::from_secs(60),
            lockout_threshold: 3,
            lockout: Duration::from_secs(900),
        }
    }

    #[tokio::test]
    async fn windows_fill_in_order() {
        let l = Limiter::memory(cfg());
        assert_eq!(l.admit("1.1.1.1", "a").await.unwrap(), Admission::Allowed);
        assert_eq!(l.admit("1.1.1.1", "a").await.unwrap(), Admission::Allowed);
        assert!(matches!(
            l.admit("1.1.1.1", "a").await.unwrap(),
            Admission::Limited {
                kind: LimitKind::Account,
                ..
            }
        ));
        assert_eq!(l.admit("1.1.1.1", "b").await.unwrap(), Admission::Allowed);
        assert!(matches!(
            l.admit("1.1.1.1", "c").await.unwrap(),
            Admission::Limited {
                kind: LimitKind::Ip,
                ..
            }
        ));
        assert_eq!(l.admit("2.2.2.2", "c").await.unwrap(), Admission::Allowed);
        assert_eq!(l.admit("3.3.3.3", "d").await.unwrap(), Admission::Allowed);
        match l.admit("4.4.4.4", "e").await.unwrap() {
            Admission::Limited { kind, retry_after } => {
                assert_eq!(kind, LimitKind::Global);
                assert!(retry_after <= Duration::from_secs(60));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn lockout_after_threshold_and_unlock() {
        let l = Limiter::memory(cfg());
        for i in 1..=2 {
            let o = l.record_failure("a").await.unwrap();
            assert_eq!(o.consecutive, i);
            assert!(!o.newly_locked);
        }
        assert!(l.locked("a").await.unwrap().is_none());
        assert!(l.record_failure("a").await.unwrap().newly_locked);
        assert!(l.locked("a").await.unwrap().is_some());
        // Counted during the lockout too, without a second "newly locked".
        let o = l.record_failure("a").await.unwrap();
        assert_eq!(o.consecutive, 4);
        assert!(!o.newly_locked);
        l.unlock("a").await.unwrap();
        assert!(l.locked("a").await.unwrap().is_none());
        assert_eq!(l.record_failure("a").await.unwrap().consecutive, 1);
        l.record_success("a").await.unwrap();
        assert_eq!(l.record_failure("a").await.unwrap().consecutive, 1);
    }

    #[test]
    fn account_keys_ignore_case_and_hide_the_name() {
        assert_eq!(account_key("Alice"), account_key(" alice"));
        assert!(!account_key("alice").contains("alice"));
        assert_eq!(account_key("x").len(), 32);
    }
}

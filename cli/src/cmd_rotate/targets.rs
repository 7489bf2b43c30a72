//! Where a rotated value is applied and tested: nowhere (generated values), a
//! PostgreSQL role (single or alternating users), a Redis ACL user or `requirepass`,
//! or a manual value's verification command.
//!
//! PostgreSQL gets a SCRAM-SHA-256 verifier, not the password, so the password never
//! reaches its logs; Redis ACL users get a SHA-256 hash (`#…`). Errors name roles and
//! steps, never values or admin URLs.

use super::policy::Rotator;
use crate::client::Client;
use crate::global::EnvTarget;
use anyhow::{bail, Context as _};
use base64::Engine as _;
use envseal_core::SecretValue;
use hmac::Mac as _;
use sha2::Digest as _;
use sqlx::Connection as _;
use std::str::FromStr as _;
use zeroize::Zeroizing;

/// What a target may read.
pub(super) struct Ctx<'a> {
    pub(super) client: &'a Client,
    pub(super) target: &'a EnvTarget,
    pub(super) name: &'a str,
}

/// One target system.
pub(super) trait Target {
    /// Step 2: apply `new` (idempotent: a resumed run applies it again).
    fn set(&mut self, new: &SecretValue) -> anyhow::Result<()>;
    /// Step 3: log in with `new`.
    fn test(&mut self, new: &SecretValue) -> anyhow::Result<()>;
    /// Undo `set` after a failure, so that `old` works again.
    fn revert(&mut self, old: &SecretValue, new: &SecretValue) -> anyhow::Result<()>;
    /// After finish: retire `old` where the target held both.
    fn after_finish(&mut self, _old: &SecretValue, _new: &SecretValue) -> anyhow::Result<()> {
        Ok(())
    }
    /// Other secrets finish writes (name, value).
    fn also(&self, _new: &SecretValue) -> Vec<(String, SecretValue)> {
        Vec::new()
    }
}

impl Rotator {
    /// The target this rotator applies values on.
    pub(super) fn target<'a>(
        &self,
        ctx: &Ctx<'a>,
        old: &SecretValue,
        pending: &SecretValue,
    ) -> anyhow::Result<Box<dyn Target + 'a>> {
        Ok(match self {
            Rotator::SecretKey
            | Rotator::Password(_)
            | Rotator::Hex { .. }
            | Rotator::Base64url { .. } => Box::new(Nothing),
            Rotator::Manual { verify, verify_env } => Box::new(Manual {
                verify: verify.clone(),
                var: verify_env.clone().unwrap_or_else(|| ctx.name.to_owned()),
            }),
            Rotator::Postgres {
                admin_secret, role, ..
            } => Box::new(Postgres::connect(ctx, admin_secret, role.clone(), None)?),
            Rotator::PostgresAlternating {
                admin_secret,
                roles,
                username_secret,
                ..
            } => {
                let in_use = super::get_value(ctx.client, ctx.target, username_secret, None)?;
                let in_use = in_use
                    .as_str()
                    .with_context(|| format!("{username_secret} is not UTF-8"))?;
                let idle = if in_use == roles[0] {
                    &roles[1]
                } else if in_use == roles[1] {
                    &roles[0]
                } else {
                    bail!(
                        "{username_secret} names neither of the alternating roles {} and {}",
                        roles[0],
                        roles[1]
                    );
                };
                Box::new(Postgres::connect(
                    ctx,
                    admin_secret,
                    idle.clone(),
                    Some(username_secret.clone()),
                )?)
            }
            Rotator::RedisAcl {
                admin_secret, user, ..
            } => {
                let url = super::get_value(ctx.client, ctx.target, admin_secret, None)?;
                let url = url
                    .as_str()
                    .with_context(|| format!("{admin_secret} is not UTF-8"))?;
                let info = redis::IntoConnectionInfo::into_connection_info(url)
                    .map_err(|_| anyhow::anyhow!("{admin_secret} is not a Redis URL"))?;
                Box::new(RedisAcl {
                    admin: redis_connect(info.clone(), "the admin connection")?,
                    info,
                    user: user.clone(),
                })
            }
            Rotator::RedisRequirepass { url, .. } => {
                let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
                    .map_err(|_| anyhow::anyhow!("the policy's url is not a Redis URL"))?;
                Box::new(RedisRequirepass::connect(info, old, pending)?)
            }
        })
    }
}

/// Generated values live only in the store.
struct Nothing;

impl Target for Nothing {
    fn set(&mut self, _new: &SecretValue) -> anyhow::Result<()> {
        Ok(())
    }
    fn test(&mut self, _new: &SecretValue) -> anyhow::Result<()> {
        Ok(())
    }
    fn revert(&mut self, _old: &SecretValue, _new: &SecretValue) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A manual value, checked by a command that reads it from its environment.
struct Manual {
    verify: Option<Vec<String>>,
    var: String,
}

impl Target for Manual {
    fn set(&mut self, _new: &SecretValue) -> anyhow::Result<()> {
        Ok(())
    }
    fn test(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        let Some(argv) = &self.verify else {
            return Ok(());
        };
        let (program, args) = argv.split_first().context("the verify command is empty")?;
        let value = new
            .as_str()
            .context("a value checked by a command must be UTF-8")?;
        let status = std::process::Command::new(program)
            .args(args)
            .env(&self.var, value)
            .env_remove("ENVSEAL_TOKEN")
            .stdin(std::process::Stdio::null())
            .status()
            .with_context(|| format!("starting the verify command {program:?}"))?;
        if !status.success() {
            bail!("the verify command {program:?} rejected the new value ({status})");
        }
        Ok(())
    }
    fn revert(&mut self, _old: &SecretValue, _new: &SecretValue) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A PostgreSQL role, through an admin connection.
struct Postgres {
    rt: tokio::runtime::Runtime,
    admin: sqlx::PgConnection,
    options: sqlx::postgres::PgConnectOptions,
    role: String,
    /// Alternating users: the secret naming the role in use.
    username_secret: Option<String>,
}

impl Postgres {
    fn connect(
        ctx: &Ctx<'_>,
        admin_secret: &str,
        role: String,
        username_secret: Option<String>,
    ) -> anyhow::Result<Postgres> {
        let url = super::get_value(ctx.client, ctx.target, admin_secret, None)?;
        let url = url
            .as_str()
            .with_context(|| format!("{admin_secret} is not UTF-8"))?;
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|_| anyhow::anyhow!("{admin_secret} is not a PostgreSQL URL"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let admin = rt
            .block_on(sqlx::PgConnection::connect_with(&options))
            .with_context(|| format!("connecting to PostgreSQL with {admin_secret}"))?;
        Ok(Postgres {
            rt,
            admin,
            options,
            role,
            username_secret,
        })
    }

    fn set_password(&mut self, value: &SecretValue) -> anyhow::Result<()> {
        let verifier = scram_verifier(value)?;
        let sql = Zeroizing::new(format!(
            "ALTER ROLE {} PASSWORD '{}'",
            quote_ident(&self.role),
            verifier.as_str()
        ));
        self.rt
            .block_on(sqlx::Executor::execute(&mut self.admin, sql.as_str()))
            .with_context(|| format!("ALTER ROLE {} PASSWORD", self.role))?;
        Ok(())
    }
}

impl Target for Postgres {
    fn set(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        self.set_password(new)
    }
    fn test(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        let password = new
            .as_str()
            .context("a PostgreSQL password must be UTF-8")?;
        let options = self.options.clone().username(&self.role).password(password);
        self.rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect_with(&options)
                .await
                .with_context(|| format!("logging in as {} with the new password", self.role))?;
            sqlx::Executor::execute(&mut conn, "SELECT 1").await?;
            conn.close().await?;
            anyhow::Ok(())
        })
    }
    fn revert(&mut self, old: &SecretValue, _new: &SecretValue) -> anyhow::Result<()> {
        match self.username_secret {
            // The idle role was not in use: nothing depends on its password.
            Some(_) => Ok(()),
            None => self.set_password(old),
        }
    }
    fn also(&self, _new: &SecretValue) -> Vec<(String, SecretValue)> {
        match &self.username_secret {
            Some(name) => vec![(
                name.clone(),
                SecretValue::new(self.role.as_bytes().to_vec()),
            )],
            None => Vec::new(),
        }
    }
}

/// `"name"` with inner quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's SCRAM-SHA-256 verifier of a password (RFC 5802 / 7677, 4096
/// iterations, 16-byte salt), so `ALTER ROLE` never carries the password itself.
fn scram_verifier(password: &SecretValue) -> anyhow::Result<Zeroizing<String>> {
    let text = password
        .as_str()
        .context("a PostgreSQL password must be UTF-8")?;
    if !text.is_ascii() {
        // PostgreSQL applies SASLprep to non-ASCII passwords; envseal does not.
        bail!("a PostgreSQL password rotated by envseal must be ASCII");
    }
    const ITERATIONS: u32 = 4096;
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    type HmacSha256 = hmac::Hmac<sha2::Sha256>;
    let mac = |key: &[u8], data: &[u8]| -> Zeroizing<[u8; 32]> {
        let mut m = <HmacSha256 as hmac::Mac>::new_from_slice(key).expect("any key length");
        m.update(data);
        Zeroizing::new(m.finalize().into_bytes().into())
    };
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = mac(text.as_bytes(), &first);
    let mut salted = u.clone();
    for _ in 1..ITERATIONS {
        u = mac(text.as_bytes(), &u[..]);
        for (s, b) in salted.iter_mut().zip(u.iter()) {
            *s ^= b;
        }
    }
    let client_key = mac(&salted[..], b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key[..]);
    let server_key = mac(&salted[..], b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Zeroizing::new(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(&server_key[..])
    )))
}

fn redis_connect(info: redis::ConnectionInfo, what: &str) -> anyhow::Result<redis::Connection> {
    let client =
        redis::Client::open(info).map_err(|e| anyhow::anyhow!("{what}: {}", e.kind_text()))?;
    let mut conn = client
        .get_connection_with_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| anyhow::anyhow!("{what}: {}", e.kind_text()))?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map_err(|e| anyhow::anyhow!("{what}: {}", e.kind_text()))?;
    Ok(conn)
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    /// The error's kind and server code, never its detail (which may echo arguments).
    fn kind_text(&self) -> String {
        match self.code() {
            Some(code) => format!("Redis refused ({code})"),
            None => format!("Redis error ({:?})", self.kind()),
        }
    }
}

fn sha256_hex(value: &SecretValue) -> String {
    hex_lower(&sha2::Sha256::digest(value.expose()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Redis ACL user: both passwords are valid between set and finish.
struct RedisAcl {
    admin: redis::Connection,
    info: redis::ConnectionInfo,
    user: String,
}

impl RedisAcl {
    fn setuser(&mut self, rule: &str, what: &str) -> anyhow::Result<()> {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.user)
            .arg(rule)
            .query::<()>(&mut self.admin)
            .map_err(|e| anyhow::anyhow!("ACL SETUSER {} ({what}): {}", self.user, e.kind_text()))
    }
}

impl Target for RedisAcl {
    fn set(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        let exists: redis::Value = redis::cmd("ACL")
            .arg("GETUSER")
            .arg(&self.user)
            .query(&mut self.admin)
            .map_err(|e| anyhow::anyhow!("ACL GETUSER {}: {}", self.user, e.kind_text()))?;
        if exists == redis::Value::Nil {
            bail!("the Redis ACL user {} does not exist", self.user);
        }
        self.setuser(&format!("#{}", sha256_hex(new)), "add the new password")
    }
    fn test(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        let mut info = self.info.clone();
        info.redis.username = Some(self.user.clone());
        info.redis.password = Some(
            new.as_str()
                .context("a Redis password must be UTF-8")?
                .to_owned(),
        );
        redis_connect(
            info,
            &format!("logging in as {} with the new password", self.user),
        )
        .map(drop)
    }
    fn revert(&mut self, old: &SecretValue, new: &SecretValue) -> anyhow::Result<()> {
        if old.expose() != new.expose() {
            self.setuser(&format!("!{}", sha256_hex(new)), "remove the new password")?;
        }
        Ok(())
    }
    fn after_finish(&mut self, old: &SecretValue, new: &SecretValue) -> anyhow::Result<()> {
        if old.expose() != new.expose() {
            self.setuser(&format!("!{}", sha256_hex(old)), "remove the old password")?;
        }
        Ok(())
    }
}

/// Redis's default user: one password, replaced by `CONFIG SET requirepass`.
struct RedisRequirepass {
    admin: redis::Connection,
    info: redis::ConnectionInfo,
}

impl RedisRequirepass {
    /// Connects with the current password, or with the pending one when a resumed
    /// rotation had already set it.
    fn connect(
        info: redis::ConnectionInfo,
        old: &SecretValue,
        pending: &SecretValue,
    ) -> anyhow::Result<Self> {
        let mut last = None;
        for password in [old, pending] {
            let mut with = info.clone();
            with.redis.password = Some(
                password
                    .as_str()
                    .context("a Redis password must be UTF-8")?
                    .to_owned(),
            );
            match redis_connect(with, "connecting to Redis with the current password") {
                Ok(admin) => return Ok(RedisRequirepass { admin, info }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("two attempts"))
    }

    fn requirepass(&mut self, value: &SecretValue) -> anyhow::Result<()> {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(value.expose())
            .query::<()>(&mut self.admin)
            .map_err(|e| anyhow::anyhow!("CONFIG SET requirepass: {}", e.kind_text()))
    }
}

impl Target for RedisRequirepass {
    fn set(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        self.requirepass(new)
    }
    fn test(&mut self, new: &SecretValue) -> anyhow::Result<()> {
        let mut info = self.info.clone();
        info.redis.password = Some(
            new.as_str()
                .context("a Redis password must be UTF-8")?
                .to_owned(),
        );
        redis_connect(info, "logging in with the new password").map(drop)
    }
    fn revert(&mut self, old: &SecretValue, _new: &SecretValue) -> anyhow::Result<()> {
        self.requirepass(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("dify"), "\"dify\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn scram_verifier_has_postgres_format() {
        let v = scram_verifier(&SecretValue::new(b"pencil".to_vec())).unwrap();
        let (head, keys) = v.split_once('$').unwrap().1.split_once('$').unwrap();
        assert!(head.starts_with("4096:"));
        let (stored, server) = keys.split_once(':').unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(stored).unwrap().len(), 32);
        assert_eq!(b64.decode(server).unwrap().len(), 32);
        assert!(scram_verifier(&SecretValue::new("pässword".as_bytes().to_vec())).is_err());
    }
}

//! Rotation policies as the CLI reads them (the server keeps them as secret metadata),
//! the Dify catalogue of default policies and warnings (`cli/data/rotation/dify.json`),
//! and the restart hook run after finish.

use super::generate::{self, PasswordPolicy};
use crate::global::EnvTarget;
use anyhow::{bail, Context as _};
use envseal_core::SecretValue;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A secret's rotation policy.
#[derive(Debug, Deserialize)]
pub(super) struct Policy {
    /// How the new value is made and applied.
    pub(super) rotator: Rotator,
    /// What to run after finish.
    #[serde(default)]
    pub(super) restart: Option<Restart>,
    /// `30d`, … (the server computes due dates).
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) rotate_every: Option<String>,
    /// Linked secrets (the server rewrites them at finish).
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) links: Vec<serde_json::Value>,
}

impl Policy {
    pub(super) fn from_json(json: &serde_json::Value) -> anyhow::Result<Policy> {
        let policy: Policy = serde_json::from_value(json.clone()).context(
            "a policy is {\"rotator\": {\"kind\": …}, \"links\": [...], \"restart\": …}",
        )?;
        policy.rotator.check()?;
        Ok(policy)
    }
}

/// How values are made and where they are applied.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Rotator {
    /// Dify's `SECRET_KEY`: 42 random bytes, base64.
    SecretKey,
    /// A random password.
    Password(PasswordPolicy),
    /// Random bytes as lowercase hex.
    Hex {
        #[serde(default = "default_bytes")]
        bytes: usize,
    },
    /// Random bytes as unpadded base64url.
    Base64url {
        #[serde(default = "default_bytes")]
        bytes: usize,
    },
    /// A PostgreSQL role's password (`ALTER ROLE`), through an admin connection whose
    /// URL is the stored secret `admin_secret`.
    Postgres {
        admin_secret: String,
        role: String,
        #[serde(default)]
        generate: PasswordPolicy,
    },
    /// Two roles taking turns: the idle one gets the new password and becomes current
    /// (`username_secret` holds the role in use).
    PostgresAlternating {
        admin_secret: String,
        roles: [String; 2],
        username_secret: String,
        #[serde(default)]
        generate: PasswordPolicy,
    },
    /// A Redis ACL user (`ACL SETUSER`): the new password is added, tested, and the
    /// old one removed after finish.
    RedisAcl {
        admin_secret: String,
        user: String,
        #[serde(default)]
        generate: PasswordPolicy,
    },
    /// Redis's default user (`CONFIG SET requirepass`), reached at `url` with the
    /// current value.
    RedisRequirepass {
        url: String,
        #[serde(default)]
        generate: PasswordPolicy,
    },
    /// A value only a person can make (an LLM provider key): from stdin, checked by an
    /// optional command that gets it in its environment.
    Manual {
        #[serde(default)]
        verify: Option<Vec<String>>,
        /// The variable the verification command reads (default: the secret's name).
        #[serde(default)]
        verify_env: Option<String>,
    },
}

fn default_bytes() -> usize {
    32
}

impl Rotator {
    fn check(&self) -> anyhow::Result<()> {
        match self {
            Rotator::Password(p)
            | Rotator::Postgres { generate: p, .. }
            | Rotator::PostgresAlternating { generate: p, .. }
            | Rotator::RedisAcl { generate: p, .. }
            | Rotator::RedisRequirepass { generate: p, .. } => p.check()?,
            Rotator::Hex { bytes } | Rotator::Base64url { bytes } => {
                if !(16..=1024).contains(bytes) {
                    bail!("bytes must be between 16 and 1024");
                }
            }
            Rotator::Manual { verify, .. } => {
                if verify.as_ref().is_some_and(|v| v.is_empty()) {
                    bail!("verify is a command as a list: [\"program\", \"arg\", …]");
                }
            }
            Rotator::SecretKey => {}
        }
        if let Rotator::PostgresAlternating { roles, .. } = self {
            if roles[0] == roles[1] {
                bail!("the two alternating roles must differ");
            }
        }
        Ok(())
    }

    /// A fresh value.
    pub(super) fn new_value(&self) -> anyhow::Result<SecretValue> {
        Ok(match self {
            Rotator::SecretKey => generate::secret_key(),
            Rotator::Password(p)
            | Rotator::Postgres { generate: p, .. }
            | Rotator::PostgresAlternating { generate: p, .. }
            | Rotator::RedisAcl { generate: p, .. }
            | Rotator::RedisRequirepass { generate: p, .. } => generate::password(p)?,
            Rotator::Hex { bytes } => generate::hex(*bytes),
            Rotator::Base64url { bytes } => generate::base64url(*bytes),
            Rotator::Manual { .. } => {
                bail!("a manual value is not generated: give it on stdin with --value-stdin")
            }
        })
    }
}

/// What runs after a finished rotation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Restart {
    /// A program and its arguments (no shell). It gets `ENVSEAL_ROTATED` (the name) and
    /// `ENVSEAL_ROTATED_VERSION`, never the value.
    Command(Vec<String>),
    /// A URL that gets `POST {"project", "environment", "secret", "version"}`.
    Webhook(String),
}

impl Restart {
    pub(super) fn run(&self, target: &EnvTarget, name: &str, version: i64) -> anyhow::Result<()> {
        match self {
            Restart::Command(argv) => {
                let (program, rest) = argv.split_first().context("the restart command is empty")?;
                let status = std::process::Command::new(program)
                    .args(rest)
                    .env("ENVSEAL_ROTATED", name)
                    .env("ENVSEAL_ROTATED_VERSION", version.to_string())
                    .env_remove("ENVSEAL_TOKEN")
                    .status()
                    .with_context(|| format!("starting the restart command {program:?}"))?;
                if !status.success() {
                    bail!("the restart command {program:?} exited with {status}");
                }
            }
            Restart::Webhook(url) => {
                ureq::post(url)
                    .timeout(std::time::Duration::from_secs(10))
                    .send_json(serde_json::json!({
                        "project": target.project, "environment": target.env,
                        "secret": name, "version": version,
                    }))
                    .map_err(|e| match e {
                        ureq::Error::Status(code, _) => {
                            anyhow::anyhow!("the restart webhook answered {code}")
                        }
                        ureq::Error::Transport(t) => {
                            anyhow::anyhow!("the restart webhook is unreachable: {}", t.kind())
                        }
                    })?;
            }
        }
        Ok(())
    }
}

/// One catalogue entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Entry {
    /// Default policy when none is stored.
    #[serde(default)]
    pub(super) policy: Option<serde_json::Value>,
    /// Shown before rotating.
    #[serde(default)]
    pub(super) warning: Option<String>,
    /// Ask before rotating (`--yes` for scripts).
    #[serde(default)]
    pub(super) confirm: bool,
}

/// Default policies and warnings for Dify's variables.
pub(super) struct Catalogue(BTreeMap<String, Entry>);

impl Catalogue {
    pub(super) fn dify() -> Catalogue {
        Catalogue(
            serde_json::from_str(include_str!("../../data/rotation/dify.json"))
                .expect("cli/data/rotation/dify.json is checked by its test"),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&Entry> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_policy_parses_and_generates() {
        let c = Catalogue::dify();
        assert!(c.get("SECRET_KEY").is_some_and(|e| e.confirm));
        for (name, entry) in &c.0 {
            envseal_core::validate_env_var_name(name).unwrap();
            if let Some(p) = &entry.policy {
                let policy = Policy::from_json(p).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                assert!(!policy.rotator.new_value().unwrap().is_empty(), "{name}");
            }
            assert!(
                entry.policy.is_some() || entry.warning.is_some(),
                "{name}: empty entry"
            );
        }
    }

    #[test]
    fn bad_policies_are_refused() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({ "rotator": { "kind": "nope" } }),
            serde_json::json!({ "rotator": { "kind": "hex", "bytes": 4 } }),
            serde_json::json!({ "rotator": { "kind": "password", "length": 3 } }),
            serde_json::json!({ "rotator": { "kind": "postgres_alternating", "admin_secret": "A",
                "roles": ["a", "a"], "username_secret": "U" } }),
            serde_json::json!({ "rotator": { "kind": "manual", "verify": [] } }),
        ] {
            assert!(Policy::from_json(&bad).is_err(), "{bad}");
        }
    }
}

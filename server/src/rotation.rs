//! Rotation state (SPEC §7): the four steps create → set → test → finish, persisted per
//! secret so that a crashed run is resumed (or cleaned) by the next one.
//!
//! The target system is changed by the client (`envseal rotate`), which reports each
//! step here. The server keeps the pending value sealed, makes exactly one of two
//! concurrent rotations win (one row per secret, leases for takeover), and finishes
//! in one transaction that also rewrites every linked secret named by the policy.
//! `current` changes only at finish. Nothing here logs or formats a value.

use crate::crypto::{self, Dek, WrappedDek};
use crate::secrets::{Secrets, SecretsError};
use crate::store::{EnvRow, Finish, FinishWrite, NewRotation, RotationRow, Store, StoreError};
use envseal_core::{validate_env_var_name, SecretValue};
use serde::Deserialize;

/// Default lease of a rotation runner, in seconds.
pub const DEFAULT_LEASE_SECS: i64 = 300;
/// Longest lease a runner may ask for.
pub const MAX_LEASE_SECS: i64 = 3600;

/// Why a rotation request failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Storage, crypto or lookup failure.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Another runner holds the rotation, or the caller no longer does.
    #[error("{0}")]
    Conflict(String),
    /// The request does not fit the rotation's state or the policy.
    #[error("{0}")]
    Invalid(String),
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        RotationError::Secrets(e.into())
    }
}

/// How a linked secret embeds the rotated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Embed {
    /// The linked secret is an equal copy.
    Copy,
    /// The linked secret is a URL whose password is the value, percent-encoded.
    UrlPassword,
}

/// A linked secret of a policy.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// How it embeds the value.
    pub embed: Embed,
}

/// The parts of a policy the server acts on. Everything else (rotator kind, target,
/// restart hook) is kept as the client wrote it.
#[derive(Debug, Clone, Deserialize)]
pub struct Policy {
    /// `30d`, `12h`, `90m`, `3600s` (or a bare number of seconds).
    #[serde(default)]
    pub rotate_every: Option<String>,
    /// Secrets written together with this one at finish.
    #[serde(default)]
    pub links: Vec<Link>,
}

impl Policy {
    /// Parses and checks a policy document.
    pub fn parse(json: &serde_json::Value) -> Result<(Policy, Option<i64>), RotationError> {
        if !json.is_object() {
            return Err(RotationError::Invalid(
                "a rotation policy is a JSON object".to_owned(),
            ));
        }
        let policy: Policy = serde_json::from_value(json.clone())
            .map_err(|e| RotationError::Invalid(format!("invalid rotation policy: {e}")))?;
        for link in &policy.links {
            validate_env_var_name(&link.name)
                .map_err(|e| RotationError::Invalid(format!("invalid linked secret name: {e}")))?;
        }
        let every = match &policy.rotate_every {
            Some(text) => Some(parse_duration(text)?),
            None => None,
        };
        Ok((policy, every))
    }
}

/// Parses `30d`, `12h`, `90m`, `45s` or bare seconds.
pub fn parse_duration(text: &str) -> Result<i64, RotationError> {
    let bad = || {
        RotationError::Invalid(format!(
            "rotate_every {text:?} is not a duration like 30d, 12h, 90m or 3600s"
        ))
    };
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(bad()),
    }
}

/// The value a linked secret takes when the rotated value becomes `value`.
pub fn embed(
    embed: Embed,
    linked_current: Option<&SecretValue>,
    value: &SecretValue,
) -> Result<SecretValue, String> {
    match embed {
        Embed::Copy => Ok(SecretValue::new(value.expose().to_vec())),
        Embed::UrlPassword => {
            let current = linked_current
                .ok_or("the linked URL does not exist yet; store it once before rotating")?;
            let text = current.as_str().ok_or("the linked URL is not UTF-8")?;
            let mut url = url::Url::parse(text).map_err(|_| "the linked value is not a URL")?;
            let new = value
                .as_str()
                .ok_or("a password embedded in a URL must be UTF-8")?;
            let encoded = zeroize::Zeroizing::new(
                percent_encoding::utf8_percent_encode(new, USERINFO).to_string(),
            );
            url.set_password(Some(&encoded))
                .map_err(|()| "the linked URL cannot carry a password")?;
            let out = SecretValue::new(url.as_str().as_bytes().to_vec());
            // `Url` keeps its serialisation in a plain String: overwrite it.
            let mut owned: String = url.into();
            zeroize::Zeroize::zeroize(&mut owned);
            Ok(out)
        }
    }
}

/// Everything but RFC 3986 unreserved characters is percent-encoded in a password.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a runner learns when it starts (or takes over) a rotation.
pub struct Started {
    /// The runner's id; every later call names it.
    pub rotation_id: String,
    /// Last step that succeeded before this runner.
    pub step: String,
    /// The current version at creation.
    pub base_version: i64,
    /// Whether an earlier, abandoned rotation was taken over.
    pub resumed: bool,
    /// The pending value (the one given, or the abandoned rotation's).
    pub pending: SecretValue,
}

/// Rotation steps reported by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The pending value was applied on the target.
    Set,
    /// A login with the pending value worked.
    Test,
}

impl Step {
    fn done_label(self) -> &'static str {
        match self {
            Step::Set => "set",
            Step::Test => "tested",
        }
    }
}

/// A step's outcome as the runner reports it.
#[derive(Clone, Copy)]
pub struct Report<'a> {
    /// The runner.
    pub rotation_id: &'a str,
    /// Which step.
    pub step: Step,
    /// `None` for success, else what failed (never a value).
    pub error: Option<&'a str>,
    /// Renewed lease, seconds.
    pub lease_secs: i64,
}

/// What a finished rotation wrote.
pub struct Finished {
    /// The rotated secret's new version.
    pub version: i64,
    /// Every secret written, rotated one first.
    pub names: Vec<String>,
}

/// Rotation operations over a store and the secret service.
pub struct Rotations<'a> {
    store: &'a Store,
    secrets: &'a Secrets,
    keep_versions: i64,
}

fn pending_aad(env: &EnvRow, name: &str, base_version: i64) -> Vec<u8> {
    crypto::secret_aad(
        env.project_id,
        env.id,
        &format!("{name}#pending"),
        base_version + 1,
    )
}

impl<'a> Rotations<'a> {
    /// Wires the service (`keep_versions` as for ordinary writes; at least 2 are kept).
    pub fn new(store: &'a Store, secrets: &'a Secrets, keep_versions: i64) -> Self {
        Rotations {
            store,
            secrets,
            keep_versions,
        }
    }

    async fn live(
        &self,
        env: &EnvRow,
        name: &str,
    ) -> Result<crate::store::SecretRow, RotationError> {
        let row = self.secrets.meta(env, name).await?;
        if row.deleted_at.is_some() {
            return Err(SecretsError::NotFound("secret").into());
        }
        Ok(row)
    }

    async fn open_pending(
        &self,
        env: &EnvRow,
        name: &str,
        r: &RotationRow,
    ) -> Result<SecretValue, RotationError> {
        let dek = self
            .secrets
            .keys()
            .unwrap(&WrappedDek {
                kek_id: r.kek_id.clone(),
                blob: r.wrapped_dek.clone(),
            })
            .await
            .map_err(SecretsError::from)?;
        let mut plain = crypto::open(&dek, &pending_aad(env, name, r.base_version), &r.ciphertext)
            .map_err(SecretsError::from)?;
        Ok(SecretValue::new(std::mem::take(&mut *plain)))
    }

    /// Creates a rotation with `value` as pending. If an abandoned one (lease over)
    /// exists it is taken over and its pending value returned instead, so the target
    /// and the store end with one value. A live one gives `Conflict`.
    pub async fn start(
        &self,
        env: &EnvRow,
        name: &str,
        value: &SecretValue,
        actor: &str,
        now: i64,
        lease_secs: i64,
    ) -> Result<Started, RotationError> {
        let secret = self.live(env, name).await?;
        let lease_until = now + lease_secs.clamp(1, MAX_LEASE_SECS);
        let rotation_id = fresh_id();
        if let Some(existing) = self.store.rotation(secret.id).await? {
            return self
                .take_over(env, name, existing, rotation_id, now, lease_until)
                .await;
        }
        let dek = Dek::generate();
        let sealed = crypto::seal(
            &dek,
            &pending_aad(env, name, secret.current_version),
            value.expose(),
        );
        let wrapped = self
            .secrets
            .keys()
            .wrap(&dek)
            .await
            .map_err(SecretsError::from)?;
        let created = self
            .store
            .create_rotation(NewRotation {
                secret_id: secret.id,
                rotation_id: &rotation_id,
                base_version: secret.current_version,
                kek_id: &wrapped.kek_id,
                wrapped_dek: &wrapped.blob,
                ciphertext: &sealed,
                started_by: actor,
                now,
                lease_until,
            })
            .await;
        match created {
            Ok(()) => Ok(Started {
                rotation_id,
                step: "created".to_owned(),
                base_version: secret.current_version,
                resumed: false,
                pending: SecretValue::new(value.expose().to_vec()),
            }),
            Err(StoreError::Conflict) => match self.store.rotation(secret.id).await? {
                Some(existing) => {
                    self.take_over(env, name, existing, rotation_id, now, lease_until)
                        .await
                }
                None => Err(in_progress(name)),
            },
            Err(e) => Err(e.into()),
        }
    }

    async fn take_over(
        &self,
        env: &EnvRow,
        name: &str,
        existing: RotationRow,
        rotation_id: String,
        now: i64,
        lease_until: i64,
    ) -> Result<Started, RotationError> {
        if existing.lease_until >= now {
            return Err(in_progress(name));
        }
        match self
            .store
            .take_over_rotation(
                existing.secret_id,
                &existing.rotation_id,
                &rotation_id,
                now,
                lease_until,
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(in_progress(name)),
            Err(e) => return Err(e.into()),
        }
        let pending = self.open_pending(env, name, &existing).await?;
        Ok(Started {
            rotation_id,
            step: existing.step,
            base_version: existing.base_version,
            resumed: true,
            pending,
        })
    }

    async fn held(
        &self,
        env: &EnvRow,
        name: &str,
        rotation_id: &str,
    ) -> Result<(crate::store::SecretRow, RotationRow), RotationError> {
        let secret = self.live(env, name).await?;
        match self.store.rotation(secret.id).await? {
            Some(r) if r.rotation_id == rotation_id => Ok((secret, r)),
            Some(_) => Err(RotationError::Conflict(format!(
                "the rotation of {name} was taken over by another run"
            ))),
            None => Err(RotationError::Conflict(format!(
                "no rotation of {name} is in progress"
            ))),
        }
    }

    /// Records a step's outcome and renews the lease.
    pub async fn record(
        &self,
        env: &EnvRow,
        name: &str,
        report: &Report<'_>,
        now: i64,
    ) -> Result<(), RotationError> {
        let Report {
            rotation_id,
            step,
            error,
            lease_secs,
        } = *report;
        let (secret, r) = self.held(env, name, rotation_id).await?;
        if step == Step::Test && error.is_none() && r.step == "created" {
            return Err(RotationError::Invalid(
                "the test step cannot succeed before the set step".to_owned(),
            ));
        }
        let label = error.is_none().then(|| step.done_label());
        match self
            .store
            .record_rotation_step(
                secret.id,
                rotation_id,
                label,
                error,
                now,
                now + lease_secs.clamp(1, MAX_LEASE_SECS),
            )
            .await
        {
            Err(StoreError::Conflict) => Err(RotationError::Conflict(format!(
                "the rotation of {name} was taken over by another run"
            ))),
            other => Ok(other?),
        }
    }

    /// Makes pending current, old current `previous`, and rewrites every linked
    /// secret of the policy plus `also` (values the rotator decided, e.g. the user
    /// name of the alternating-users strategy), in one transaction and one revision.
    pub async fn finish(
        &self,
        env: &EnvRow,
        name: &str,
        rotation_id: &str,
        also: &[(String, SecretValue)],
        actor: &str,
        now: i64,
    ) -> Result<Finished, RotationError> {
        let (secret, r) = self.held(env, name, rotation_id).await?;
        if r.step != "tested" {
            return Err(RotationError::Invalid(format!(
                "the rotation of {name} has not passed its test step (last step: {})",
                r.step
            )));
        }
        let pending = self.open_pending(env, name, &r).await?;
        let links = match self.store.rotation_policy(secret.id).await? {
            Some(p) => {
                let json: serde_json::Value = serde_json::from_str(&p.policy)
                    .map_err(|_| RotationError::Invalid("stored policy is corrupt".to_owned()))?;
                Policy::parse(&json)?.0.links
            }
            None => Vec::new(),
        };
        for (n, _) in also {
            validate_env_var_name(n)
                .map_err(|e| RotationError::Invalid(format!("invalid secret name: {e}")))?;
            if n == name || links.iter().any(|l| &l.name == n) {
                return Err(RotationError::Invalid(format!(
                    "{n} is written by the rotation itself"
                )));
            }
        }
        // Concurrent ordinary writes make the transaction fail; read again and retry.
        for _ in 0..16 {
            let mut values: Vec<(String, i64, SecretValue)> = Vec::new();
            let current = self.live(env, name).await?.current_version;
            values.push((
                name.to_owned(),
                current,
                SecretValue::new(pending.expose().to_vec()),
            ));
            for link in &links {
                let row = self.store.secret(env.id, &link.name).await?;
                let linked_version = row.as_ref().map_or(0, |s| s.current_version);
                let linked_value = match &row {
                    Some(s) if s.deleted_at.is_none() => {
                        Some(self.secrets.get(env, &link.name, None).await?.1)
                    }
                    _ => None,
                };
                let value = embed(link.embed, linked_value.as_ref(), &pending).map_err(|why| {
                    RotationError::Invalid(format!("linked secret {}: {why}", link.name))
                })?;
                values.push((link.name.clone(), linked_version, value));
            }
            for (n, v) in also {
                let version = self
                    .store
                    .secret(env.id, n)
                    .await?
                    .map_or(0, |s| s.current_version);
                values.push((n.clone(), version, SecretValue::new(v.expose().to_vec())));
            }
            let mut sealed = Vec::with_capacity(values.len());
            for (n, version, value) in &values {
                let dek = Dek::generate();
                let aad = crypto::secret_aad(env.project_id, env.id, n, version + 1);
                let ciphertext = crypto::seal(&dek, &aad, value.expose());
                let wrapped = self
                    .secrets
                    .keys()
                    .wrap(&dek)
                    .await
                    .map_err(SecretsError::from)?;
                let fingerprint = self.secrets.fingerprint(value.expose()).await?;
                sealed.push((wrapped, ciphertext, fingerprint));
            }
            let writes = values
                .iter()
                .zip(&sealed)
                .map(
                    |((n, version, _), (wrapped, ciphertext, fingerprint))| FinishWrite {
                        name: n,
                        expected_current: *version,
                        kek_id: &wrapped.kek_id,
                        wrapped_dek: &wrapped.blob,
                        ciphertext,
                        fingerprint,
                    },
                )
                .collect();
            match self
                .store
                .finish_rotation(Finish {
                    env_id: env.id,
                    secret_id: secret.id,
                    rotation_id,
                    writes,
                    actor,
                    now,
                    keep_versions: self.keep_versions,
                })
                .await
            {
                Ok(version) => {
                    return Ok(Finished {
                        version,
                        names: values.into_iter().map(|(n, _, _)| n).collect(),
                    })
                }
                Err(StoreError::Conflict) => {
                    // Lost the rotation itself, or an ordinary write raced us.
                    self.held(env, name, rotation_id).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SecretsError::Busy.into())
    }

    /// Stores a secret's rotation policy after checking it.
    pub async fn set_policy(
        &self,
        env: &EnvRow,
        name: &str,
        policy: &serde_json::Value,
        now: i64,
    ) -> Result<(), RotationError> {
        let secret = self.live(env, name).await?;
        let (parsed, every) = Policy::parse(policy)?;
        if parsed.links.iter().any(|l| l.name == name) {
            return Err(RotationError::Invalid(format!(
                "{name} cannot be linked to itself"
            )));
        }
        let text = serde_json::to_string(policy)
            .map_err(|e| RotationError::Invalid(format!("invalid rotation policy: {e}")))?;
        self.store
            .set_rotation_policy(secret.id, &text, every, now)
            .await?;
        Ok(())
    }

    /// Discards the rotation and its pending value. With `rotation_id`, only the
    /// caller's own; without, only one whose runner's lease is over (`force` also
    /// discards a live one).
    pub async fn cancel(
        &self,
        env: &EnvRow,
        name: &str,
        rotation_id: Option<&str>,
        force: bool,
        now: i64,
    ) -> Result<(), RotationError> {
        let secret = self.live(env, name).await?;
        let Some(r) = self.store.rotation(secret.id).await? else {
            return Err(RotationError::Conflict(format!(
                "no rotation of {name} is in progress"
            )));
        };
        match rotation_id {
            Some(id) if id != r.rotation_id => {
                return Err(RotationError::Conflict(format!(
                    "the rotation of {name} is held by another run"
                )))
            }
            None if !force && r.lease_until >= now => return Err(in_progress(name)),
            _ => {}
        }
        match self
            .store
            .delete_rotation(secret.id, Some(&r.rotation_id))
            .await
        {
            Err(StoreError::NotFound) => Err(RotationError::Conflict(format!(
                "the rotation of {name} changed meanwhile; look again"
            ))),
            other => Ok(other?),
        }
    }
}

fn in_progress(name: &str) -> RotationError {
    RotationError::Conflict(format!(
        "a rotation of {name} is in progress in another run; wait for it, or cancel it"
    ))
}

fn fresh_id() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    format!("rot_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("12h").unwrap(), 12 * 3600);
        assert_eq!(parse_duration("90").unwrap(), 90);
        for bad in ["", "0d", "d", "10y", "-5s", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_password_is_percent_encoded_and_replaced() {
        let url = SecretValue::new(b"redis://:old@redis:6379/1".to_vec());
        let new = SecretValue::new(b"a#b@c/d%e:f".to_vec());
        let out = embed(Embed::UrlPassword, Some(&url), &new).unwrap();
        assert_eq!(
            out.as_str().unwrap(),
            "redis://:a%23b%40c%2Fd%25e%3Af@redis:6379/1"
        );
        let parsed = url::Url::parse(out.as_str().unwrap()).unwrap();
        let decoded = percent_encoding::percent_decode_str(parsed.password().unwrap())
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, "a#b@c/d%e:f");
    }

    #[test]
    fn url_password_needs_a_url() {
        let new = SecretValue::new(b"x".to_vec());
        assert!(embed(Embed::UrlPassword, None, &new).is_err());
        let not_url = SecretValue::new(b"not a url".to_vec());
        assert!(embed(Embed::UrlPassword, Some(&not_url), &new).is_err());
    }
}

//! `envseal run --profile dify`: Dify's secret variables, its shipped default values and
//! the values its services must agree on, checked before a Dify container starts.
//!
//! The knowledge comes from the one Dify catalogue (`envseal_core::dify`, generated
//! from Dify's own files). This module knows nothing about HTTP, files or processes;
//! its errors name variables, never values.

use envseal_core::dify::{catalogue, Catalogue};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which Dify service the container runs (a compose service name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// The API server (`MODE=api`).
    Api,
    /// The Celery worker (`MODE=worker`).
    Worker,
    /// The Celery beat scheduler (`MODE=beat`).
    #[value(name = "worker_beat", alias = "beat")]
    WorkerBeat,
    /// The plugin daemon.
    #[value(name = "plugin_daemon", alias = "plugin-daemon")]
    PluginDaemon,
    /// The code sandbox.
    Sandbox,
}

impl Service {
    /// The compose service name.
    pub fn name(self) -> &'static str {
        match self {
            Service::Api => "api",
            Service::Worker => "worker",
            Service::WorkerBeat => "worker_beat",
            Service::PluginDaemon => "plugin_daemon",
            Service::Sandbox => "sandbox",
        }
    }

    /// The service that Dify's api image runs for a `MODE` value.
    pub fn from_mode(mode: &str) -> Option<Service> {
        match mode {
            "api" => Some(Service::Api),
            "worker" => Some(Service::Worker),
            "beat" => Some(Service::WorkerBeat),
            _ => None,
        }
    }
}

/// Where a value the child would see came from (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Fetched from the server (or its fallback file).
    Envseal,
    /// Already in the launcher's environment (compose `environment:`, image `ENV`).
    Inherited,
    /// Published by the profile under a compose alias.
    Alias,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Envseal => "from envseal",
            Origin::Inherited => "inherited from the container's environment",
            Origin::Alias => "published under its compose alias",
        })
    }
}

/// One thing wrong with a Dify environment. Names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required variable is missing or empty.
    Missing(String),
    /// A secret variable holds one of Dify's shipped default values.
    ShippedDefault {
        /// The variable.
        name: String,
        /// Where its value came from.
        origin: Origin,
    },
    /// Two variables that must be equal differ.
    NotEqual(String, String),
    /// A URL does not carry the password it must carry.
    NotEmbedded {
        /// The URL variable.
        url: String,
        /// The password variable.
        password: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing(name) => write!(f, "{name} is required but missing or empty"),
            Problem::ShippedDefault { name, origin } => write!(
                f,
                "{name} ({origin}) is one of Dify's shipped default values and is in use; \
                 store a real secret, or pass --allow-defaults {name}"
            ),
            Problem::NotEqual(a, b) => write!(f, "{a} and {b} must be equal but differ"),
            Problem::NotEmbedded { url, password } => write!(
                f,
                "{url} does not carry {password} (compared after percent-decoding; \
                 characters such as # @ / : % must be percent-encoded in the URL)"
            ),
        }
    }
}

/// All problems found; the launcher refuses to start when this is returned.
#[derive(Debug, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the Dify profile refuses to start:")?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// The profile: a view of the catalogue.
#[derive(Clone, Copy)]
pub struct Profile {
    catalogue: &'static Catalogue,
}

/// What the child would see: name → (value, origin).
pub type View<'a> = BTreeMap<&'a str, (&'a [u8], Origin)>;

impl Profile {
    /// The catalogue compiled into the binary.
    pub fn load() -> Profile {
        Profile {
            catalogue: catalogue(),
        }
    }

    /// Whether Dify treats `name` as a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        self.catalogue.is_secret(name)
    }

    /// Whether `value` is one of the values Dify ships for a secret variable.
    pub fn is_shipped_default(&self, value: &[u8]) -> bool {
        self.catalogue.is_shipped_default(value)
    }

    /// `(name, source)`: in `service`, compose sets `name` from `${source}`.
    pub fn aliases(
        &self,
        service: Service,
    ) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.catalogue
            .aliases(service.name())
            .map(|a| (a.name, a.source))
    }

    /// The variables `service` cannot start without.
    pub fn required(&self, service: Service) -> impl Iterator<Item = &'static str> + '_ {
        self.catalogue.required(service.name())
    }

    /// Checks what the child would see. A shipped default is refused when Dify reads
    /// it (its feature is on, or it belongs to none) unless its name is in
    /// `allow_defaults`; the placeholder of a feature that is off is not a credential
    /// in use and passes.
    pub fn check(
        &self,
        service: Service,
        view: &View<'_>,
        allow_defaults: &[String],
    ) -> Result<(), Problems> {
        let mut problems = Vec::new();
        for name in self.required(service) {
            if view.get(name).is_none_or(|(v, _)| v.is_empty()) {
                problems.push(Problem::Missing(name.to_owned()));
            }
        }
        let lookup = |n: &str| view.get(n).and_then(|(v, _)| std::str::from_utf8(v).ok());
        {
            for (name, (value, origin)) in view {
                if allow_defaults.iter().any(|a| a == name)
                    || self.catalogue.feature_on(name, lookup) == Some(false)
                {
                    continue;
                }
                if self.is_secret(name) && !value.is_empty() && self.is_shipped_default(value) {
                    problems.push(Problem::ShippedDefault {
                        name: (*name).to_owned(),
                        origin: *origin,
                    });
                }
            }
        }
        let aliases = self.aliases(service).map(|(n, s)| (s, n));
        let mut seen = BTreeSet::new();
        for (a, b) in self.catalogue.equal().iter().copied().chain(aliases) {
            if !seen.insert((a.min(b), a.max(b))) {
                continue;
            }
            if let (Some((va, _)), Some((vb, _))) = (view.get(a), view.get(b)) {
                if !crate::cmd_run::ct_eq(va, vb) {
                    problems.push(Problem::NotEqual(a.to_owned(), b.to_owned()));
                }
            }
        }
        for (url, pw) in self.catalogue.embeds() {
            if let (Some((u, _)), Some((p, _))) = (view.get(url), view.get(pw)) {
                if !p.is_empty() && !redis_url_carries(u, p) {
                    problems.push(Problem::NotEmbedded {
                        url: (*url).to_owned(),
                        password: (*pw).to_owned(),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }
}

/// Whether a `redis://` / `rediss://` URL carries `password` (percent-decoded). URLs
/// of other schemes (a RabbitMQ broker) are not Redis URLs and pass.
fn redis_url_carries(url: &[u8], password: &[u8]) -> bool {
    let Some(rest) = url
        .strip_prefix(b"redis://")
        .or_else(|| url.strip_prefix(b"rediss://"))
    else {
        return !(url.starts_with(b"sentinel://") || url.starts_with(b"redis+"))
            || contains_password(url, password);
    };
    contains_password(rest, password)
}

/// The authority ends at the first `/`, `?` or `#`; userinfo is what precedes its last
/// `@`; the password follows the first `:` of the userinfo.
fn contains_password(after_scheme: &[u8], password: &[u8]) -> bool {
    let end = after_scheme
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..end];
    let Some(at) = authority.iter().rposition(|&b| b == b'@') else {
        return false;
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.iter().position(|&b| b == b':') else {
        return false;
    };
    let Some(decoded) = percent_decode(&userinfo[colon + 1..]) else {
        return false;
    };
    crate::cmd_run::ct_eq(&decoded, password)
}

fn percent_decode(s: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(s.len()));
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(pairs: &'a [(&'a str, &'a str)]) -> View<'a> {
        pairs
            .iter()
            .map(|(n, v)| (*n, (v.as_bytes(), Origin::Envseal)))
            .collect()
    }

    const GOOD: &[(&str, &str)] = &[
        ("SECRET_KEY", "k-1"),
        ("DB_PASSWORD", "db-1"),
        ("REDIS_PASSWORD", "p#ss/w@rd:%"),
        (
            "CELERY_BROKER_URL",
            "redis://:p%23ss%2Fw%40rd%3A%25@redis:6379/1",
        ),
        ("CODE_EXECUTION_API_KEY", "sbx"),
        ("SANDBOX_API_KEY", "sbx"),
        ("PLUGIN_DAEMON_KEY", "pd"),
        ("PLUGIN_DIFY_INNER_API_KEY", "inner"),
        ("INNER_API_KEY_FOR_PLUGIN", "inner"),
    ];

    #[test]
    fn data_parses_and_knows_the_shipped_defaults() {
        let p = Profile::load();
        for name in [
            "SECRET_KEY",
            "DB_PASSWORD",
            "REDIS_PASSWORD",
            "CELERY_BROKER_URL",
            "SANDBOX_API_KEY",
            "PLUGIN_DAEMON_KEY",
            "PLUGIN_DIFY_INNER_API_KEY",
            "SERVER_KEY",
            "API_KEY",
        ] {
            assert!(p.is_secret(name), "{name}");
        }
        for value in [
            "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U",
            "difyai123456",
            "dify-sandbox",
            "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",
            "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",
        ] {
            assert!(p.is_shipped_default(value.as_bytes()), "{value}");
        }
        assert!(!p.is_secret("LOG_LEVEL"));
        assert!(!p.is_secret("ACCESS_TOKEN_EXPIRE_MINUTES"));
        let aliases: Vec<_> = p.aliases(Service::PluginDaemon).collect();
        assert!(aliases.contains(&("SERVER_KEY", "PLUGIN_DAEMON_KEY")));
        assert!(aliases.contains(&("DIFY_INNER_API_KEY", "PLUGIN_DIFY_INNER_API_KEY")));
        assert!(p
            .aliases(Service::Sandbox)
            .any(|a| a == ("API_KEY", "SANDBOX_API_KEY")));
    }

    #[test]
    fn a_good_api_environment_passes() {
        Profile::load()
            .check(Service::Api, &view(GOOD), &[])
            .unwrap();
    }

    #[test]
    fn missing_defaults_and_links_are_named() {
        let p = Profile::load();
        let mut pairs: Vec<(&str, &str)> = GOOD
            .iter()
            .copied()
            .filter(|(n, _)| *n != "SECRET_KEY")
            .collect();
        pairs.push(("VECTOR_STORE", "qdrant"));
        pairs.push(("QDRANT_API_KEY", "difyai123456"));
        for (n, v) in pairs.iter_mut() {
            if *n == "SANDBOX_API_KEY" {
                *v = "other";
            }
            if *n == "CELERY_BROKER_URL" {
                *v = "redis://:p#ss/w@rd:%@redis:6379/1";
            }
        }
        let err = p.check(Service::Api, &view(&pairs), &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            err.0.contains(&Problem::Missing("SECRET_KEY".into())),
            "{text}"
        );
        assert!(text.contains("QDRANT_API_KEY"), "{text}");
        assert!(
            text.contains("CODE_EXECUTION_API_KEY and SANDBOX_API_KEY"),
            "{text}"
        );
        assert!(
            text.contains("CELERY_BROKER_URL does not carry REDIS_PASSWORD"),
            "{text}"
        );
        assert!(
            !text.contains("difyai123456") && !text.contains("p#ss"),
            "{text}"
        );
        // --allow-defaults NAME lets that default through but not the rest.
        let err = p
            .check(Service::Api, &view(&pairs), &["QDRANT_API_KEY".into()])
            .unwrap_err();
        assert!(!err.to_string().contains("QDRANT_API_KEY"));
        assert!(err.to_string().contains("SECRET_KEY"));
    }

    /// Dify's shared environment hands every service the placeholders of storage and
    /// vector-store back ends that are off; they are not credentials in use.
    #[test]
    fn placeholders_of_unused_features_pass_but_defaults_in_use_do_not() {
        let p = Profile::load();
        let mut pairs: Vec<(&str, &str)> = GOOD.to_vec();
        pairs.push(("STORAGE_TYPE", "opendal"));
        pairs.push(("VECTOR_STORE", "qdrant"));
        pairs.push(("ALIYUN_OSS_ACCESS_KEY", "your-access-key"));
        pairs.push(("MINIO_SECRET_KEY", "minioadmin"));
        pairs.push(("WEAVIATE_API_KEY", "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih"));
        p.check(Service::Api, &view(&pairs), &[]).unwrap();
        pairs.push(("QDRANT_API_KEY", "difyai123456"));
        let err = p.check(Service::Api, &view(&pairs), &[]).unwrap_err();
        assert_eq!(
            err.0,
            vec![Problem::ShippedDefault {
                name: "QDRANT_API_KEY".into(),
                origin: Origin::Envseal
            }]
        );
        // Allowing one name does not allow the others.
        pairs.push(("DB_PASSWORD", "difyai123456"));
        let err = p
            .check(Service::Api, &view(&pairs), &["QDRANT_API_KEY".into()])
            .unwrap_err();
        assert!(err.to_string().contains("DB_PASSWORD"), "{err}");
    }

    #[test]
    fn redis_urls() {
        assert!(redis_url_carries(b"redis://:pw@redis:6379/1", b"pw"));
        assert!(redis_url_carries(b"rediss://user:p%40w@h:1/0", b"p@w"));
        assert!(!redis_url_carries(b"redis://:pw@redis:6379/1", b"pw2"));
        assert!(!redis_url_carries(b"redis://redis:6379/1", b"pw"));
        assert!(!redis_url_carries(b"redis://:a#b@redis:6379/1", b"a#b"));
        assert!(!redis_url_carries(b"redis://:bad%zz@redis/1", b"bad"));
        assert!(redis_url_carries(
            b"amqp://guest:guest@rabbit:5672//",
            b"pw"
        ));
    }

    #[test]
    fn plugin_daemon_aliases_must_agree() {
        let p = Profile::load();
        let v = view(&[
            ("SERVER_KEY", "a"),
            ("PLUGIN_DAEMON_KEY", "b"),
            ("DIFY_INNER_API_KEY", "i"),
            ("DB_PASSWORD", "d"),
            ("REDIS_PASSWORD", "r"),
        ]);
        let err = p.check(Service::PluginDaemon, &v, &[]).unwrap_err();
        assert_eq!(
            err.0,
            vec![Problem::NotEqual(
                "PLUGIN_DAEMON_KEY".into(),
                "SERVER_KEY".into()
            )]
        );
    }
}

//! Where the environment comes from: one request to the server with bounded retries
//! and a total deadline, else the encrypted fallback file; and, with `--watch`, a
//! poller that notices changes by ETag.

use super::plan::{self, ChildSpec};
use super::Config;
use crate::client::{Client, ClientError, Conditional};
use crate::fallback::{self, FallbackError, KeySource, Scope};
use envseal_core::wire::EnvironmentExport;
use std::time::{Duration, Instant, SystemTime};

/// An environment and where it came from.
pub(crate) struct Loaded {
    pub(crate) export: EnvironmentExport,
    pub(crate) etag: Option<String>,
    pub(crate) from_fallback: Option<Duration>,
}

impl Loaded {
    /// One line for stderr: names the environment, never a value.
    pub(crate) fn describe(&self) -> String {
        let e = &self.export;
        match self.from_fallback {
            None => format!(
                "{}/{} revision {} ({} secrets) from the server",
                e.project,
                e.environment,
                e.revision,
                e.secrets.len()
            ),
            Some(age) => format!(
                "{}/{} revision {} ({} secrets) from the fallback file, fetched {} s ago \
                 (the server is unreachable)",
                e.project,
                e.environment,
                e.revision,
                e.secrets.len(),
                age.as_secs()
            ),
        }
    }
}

fn key_source(config: &Config) -> anyhow::Result<KeySource> {
    Ok(match &config.fallback_passphrase {
        Some(p) => KeySource::Passphrase(p.clone()),
        None => KeySource::Token(config.global.token()?),
    })
}

fn scope(config: &Config) -> Scope<'_> {
    Scope {
        project: &config.target.project,
        environment: &config.target.env,
    }
}

fn export_path(config: &Config) -> String {
    format!("{}/export", config.target.path())
}

fn client(config: &Config, remaining: Duration) -> anyhow::Result<Client> {
    let mut cc = config.global.client_config()?;
    cc.timeout = cc.timeout.min(remaining);
    cc.connect_timeout = cc.connect_timeout.min(remaining);
    Ok(Client::new(&cc)?)
}

fn read_fallback(config: &Config) -> Result<Loaded, anyhow::Error> {
    let path = config.fallback.as_deref().expect("fallback path");
    let (export, age) = fallback::read(
        path,
        &key_source(config)?,
        &scope(config),
        config.fallback_max_age,
        SystemTime::now(),
    )?;
    Ok(Loaded {
        export,
        etag: None,
        from_fallback: Some(age),
    })
}

/// Writes the fallback file after a successful fetch. A failure is reported, not fatal:
/// the server answered, so the container can start.
fn save_fallback(config: &Config, export: &EnvironmentExport) {
    let Some(path) = config.fallback.as_deref() else {
        return;
    };
    let result = key_source(config).and_then(|key| {
        Ok(fallback::write(
            path,
            &key,
            &scope(config),
            export,
            SystemTime::now(),
        )?)
    });
    if let Err(err) = result {
        eprintln!("envseal: warning: could not write the fallback file: {err:#}");
    }
}

/// Fetches the environment, or falls back. Never waits longer than `--total-timeout`
/// (plus the fallback read).
pub(crate) fn load(config: &Config) -> anyhow::Result<Loaded> {
    if config.fallback_only {
        return read_fallback(config);
    }
    let start = Instant::now();
    let deadline = start + config.total_timeout;
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0;
    let last: ClientError = loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let result = client(config, remaining.max(Duration::from_millis(1)))?
            .get_conditional::<EnvironmentExport>(&export_path(config), None);
        match result {
            Ok(Conditional::Fresh(export, etag)) => {
                check_scope(config, &export)?;
                save_fallback(config, &export);
                return Ok(Loaded {
                    export,
                    etag,
                    from_fallback: None,
                });
            }
            Ok(Conditional::NotModified) => {
                anyhow::bail!("the server answered 304 to an unconditional request")
            }
            Err(err) if err.is_unreachable() => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if attempts > config.retries || remaining.is_zero() {
                    break err;
                }
                std::thread::sleep(backoff.min(remaining));
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(err) => {
                forget_fallback_if_refused(config, &err);
                return Err(err.into());
            }
        }
    };
    let waited = start.elapsed().as_secs_f64();
    let unreachable = format!("{last} (gave up after {attempts} attempts in {waited:.1} s)");
    if config.fallback.is_none() {
        anyhow::bail!("{unreachable}; no fallback file is configured (--fallback-path)");
    }
    match read_fallback(config) {
        Ok(loaded) => Ok(loaded),
        Err(err) => {
            let missing = err
                .downcast_ref::<FallbackError>()
                .is_some_and(|e| matches!(e, FallbackError::Missing(_)));
            if missing {
                anyhow::bail!("{unreachable}; {err:#}")
            }
            anyhow::bail!("{unreachable}; refusing the fallback: {err:#}")
        }
    }
}

/// When the server refuses the token (401: revoked, expired or unknown; 403: no
/// longer allowed here), the fallback file it protected is deleted, so a later outage
/// cannot start from it.
fn forget_fallback_if_refused(config: &Config, err: &ClientError) {
    let refused = matches!(
        err,
        ClientError::Api {
            status: 401 | 403,
            ..
        }
    );
    let Some(path) = config.fallback.as_deref() else {
        return;
    };
    if !refused {
        return;
    }
    match std::fs::remove_file(path) {
        Ok(()) => eprintln!(
            "envseal: the server refused the token; deleted the fallback file {}",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "envseal: warning: the server refused the token but the fallback file {} \
             could not be deleted: {e}",
            path.display()
        ),
    }
}

fn check_scope(config: &Config, export: &EnvironmentExport) -> anyhow::Result<()> {
    anyhow::ensure!(
        export.project == config.target.project && export.environment == config.target.env,
        "the server answered with environment {}/{} instead of {}/{}",
        export.project,
        export.environment,
        config.target.project,
        config.target.env
    );
    Ok(())
}

/// With `--watch`: polls with `If-None-Match` and builds the next child when the
/// environment changed.
pub(crate) struct Watcher {
    config: Config,
    etag: Option<String>,
    revision: i64,
    warned: bool,
}

impl Watcher {
    pub(crate) fn new(config: &Config, loaded: &Loaded) -> Watcher {
        Watcher {
            config: config.clone(),
            etag: loaded.etag.clone(),
            revision: loaded.export.revision,
            warned: false,
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.config.watch_interval
    }

    /// One poll. `Some` when the environment changed and the new one passes every check.
    pub(crate) fn poll(&mut self) -> Option<ChildSpec> {
        let config = &self.config;
        let result = client(config, config.global_timeout()).and_then(|c| {
            Ok(c.get_conditional::<EnvironmentExport>(&export_path(config), self.etag.as_deref())?)
        });
        match result {
            Ok(Conditional::NotModified) => {
                self.warned = false;
                None
            }
            Ok(Conditional::Fresh(export, etag)) => {
                self.warned = false;
                if check_scope(config, &export).is_err() || export.revision == self.revision {
                    self.etag = etag;
                    return None;
                }
                save_fallback(config, &export);
                match plan::build(config, &export) {
                    Ok(spec) => {
                        if !config.quiet {
                            eprintln!(
                                "envseal: {}/{} changed to revision {}; restarting the command",
                                export.project, export.environment, export.revision
                            );
                        }
                        self.etag = etag;
                        self.revision = export.revision;
                        Some(spec)
                    }
                    Err(err) => {
                        eprintln!(
                            "envseal: revision {} is not usable, keeping the running command: \
                             {err:#}",
                            export.revision
                        );
                        self.etag = etag;
                        self.revision = export.revision;
                        None
                    }
                }
            }
            Err(err) => {
                if !self.warned {
                    eprintln!("envseal: warning: --watch cannot poll the server: {err:#}");
                    self.warned = true;
                }
                None
            }
        }
    }
}

//! envseal-server: stores the secrets of a Dify deployment with envelope encryption and
//! serves them to authorised callers over HTTP(S).
//!
//! Layers, outermost first: [`api`] (HTTP and JSON) → [`secrets`] (operations that
//! seal and open values) and [`login`] (people: passwords, limits, lockout, MFA,
//! sessions) → [`crypto`] (AES-256-GCM, key providers) and [`store`] (SQL). Every
//! operation is recorded by [`audit`]. `main.rs` only parses arguments and calls
//! [`run`].
#![warn(missing_docs)]

pub mod alert;
pub mod api;
pub mod audit;
pub mod audit_stream;
pub mod auth;
pub mod cache;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod derived;
pub mod kek;
pub mod limiter;
pub mod login;
pub mod metrics;
pub mod mfa;
pub mod password;
pub mod rotation;
pub mod secrets;
pub mod store;
mod tls;

pub use config::ServerArgs;

use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Opens the store and the key provider and proves the master key opens the
/// database's check record. The part of starting that offline commands share; only a
/// serving process (`exclusive`) takes the SQLite data-directory lock.
pub(crate) async fn open(
    args: &ServerArgs,
    exclusive: bool,
) -> anyhow::Result<(config::Resolved, Arc<store::Store>, secrets::Secrets)> {
    let resolved = args.resolve()?;
    metrics::configure(args.metrics_token()?);
    if let Some(dir) = &resolved.create_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        restrict_dir(dir);
    }
    let url = resolved.database_url.expose();
    let connected = if exclusive {
        store::Store::connect(url).await
    } else {
        store::Store::connect_beside_server(url).await
    };
    let store = Arc::new(connected.map_err(|e| {
        anyhow::anyhow!(
            "opening database {}: {}",
            resolved.database_display,
            resolved.database_url.scrub(&e.to_string())
        )
    })?);
    let keys = open_keys(args, &resolved, &store, None).await?;
    let secrets = secrets::Secrets::new(store.clone(), keys, args.keep_versions);
    secrets.verify_master_key().await?;
    Ok((resolved, store, secrets))
}

/// Opens the store and key provider, verifies the master key, and makes sure an admin
/// token exists. Everything the router needs, ready to serve.
pub async fn prepare(args: &ServerArgs) -> anyhow::Result<Arc<api::AppState>> {
    let (resolved, store, secrets) = open(args, true).await?;
    let filled = secrets.backfill_fingerprints().await?;
    if filled > 0 {
        tracing::info!(
            versions = filled,
            "fingerprinted versions written before fingerprints existed"
        );
    }
    bootstrap_admin(&store).await?;
    let cache_ttl = Duration::from_millis(args.cache_ttl_ms.unwrap_or(match store.backend() {
        store::Backend::Sqlite => 30_000,
        store::Backend::Postgres => 1_000,
    }));
    let auth_config = args.auth_config()?;
    let limiter = match args.redis_url()? {
        Some(url) => limiter::Limiter::redis(auth_config.limits, url.expose(), &args.redis_prefix)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "connecting to Redis {} (ENVSEAL_REDIS_URL): {}",
                    url.redacted(),
                    url.scrub(&e.to_string())
                )
            })?,
        None => {
            if resolved.database_url.expose().starts_with("postgres") {
                tracing::warn!(
                    "login rate limits and lockouts are kept per process; set ENVSEAL_REDIS_URL \
                     so that every replica enforces the same ones"
                );
            }
            limiter::Limiter::memory(auth_config.limits)
        }
    };
    tracing::info!(
        backend = limiter.backend_name(),
        "login rate limits and lockouts ready"
    );
    let leak_limiter = match args.redis_url()? {
        Some(url) => limiter::Limiter::redis(
            auth_config.limits,
            url.expose(),
            &format!("{}:leaks", args.redis_prefix),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "connecting to Redis {} (ENVSEAL_REDIS_URL): {}",
                url.redacted(),
                url.scrub(&e.to_string())
            )
        })?,
        None => limiter::Limiter::memory(auth_config.limits),
    };
    let auth = login::AuthService::new(auth_config, limiter)?;
    let state = api::AppState::with_leak_limiter(
        store,
        secrets,
        auth,
        cache::Cache::new(cache_ttl),
        resolved.tls.is_some(),
        Duration::from_secs(args.request_timeout_secs.max(1)),
        leak_limiter,
    );
    if let Some(streamer) =
        audit_stream::Streamer::start(&args.audit_stream, &args.data_dir, state.store.clone())?
    {
        state.audit.stream_to(streamer);
    }
    state
        .audit
        .record(
            audit::AuditEvent::new("envseal", "server.start", "")
                .details(serde_json::json!({ "key_provider": state.secrets.keys().name() })),
        )
        .await?;
    Ok(state)
}

/// Builds the provider of `kind`: loads the local master key, or logs in to Vault and
/// checks that the Transit key exists. Fails with a clear error and touches nothing
/// in the database when the provider refuses.
pub async fn key_provider(
    kind: config::KekKind,
    args: &ServerArgs,
    resolved: &config::Resolved,
    store: &store::Store,
) -> anyhow::Result<Arc<dyn crypto::KeyProvider>> {
    Ok(match kind {
        config::KekKind::Local => match &resolved.master_key {
            crypto::MasterKeySource::File(path) => {
                Arc::new(crypto::LocalKeyProvider::from_file(path)?)
            }
            crypto::MasterKeySource::Passphrase(pass) => {
                let fresh = serde_json::to_string(&crypto::KdfParams::generate())?;
                let stored = store.meta_init("kdf_params", &fresh).await?;
                let params: crypto::KdfParams =
                    serde_json::from_str(&stored).context("stored passphrase KDF parameters")?;
                let pass = pass.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || {
                        crypto::LocalKeyProvider::from_passphrase(&pass, &params)
                    })
                    .await??,
                )
            }
        },
        config::KekKind::VaultTransit => Arc::new(
            crypto::VaultTransitProvider::connect(args.kek.vault_config()?)
                .await
                .context("connecting to Vault (ENVSEAL_KEK=vault-transit)")?,
        ),
    })
}

/// The server's key provider: a DEK cache in front of the primary provider (`primary`,
/// or `ENVSEAL_KEK`) and the providers kept to unwrap older rows (`ENVSEAL_KEK_PREVIOUS`,
/// plus `ENVSEAL_KEK` itself when `primary` differs).
pub async fn open_keys(
    args: &ServerArgs,
    resolved: &config::Resolved,
    store: &store::Store,
    primary: Option<config::KekKind>,
) -> anyhow::Result<Arc<dyn crypto::KeyProvider>> {
    let first = primary.unwrap_or(args.kek.kind);
    let mut kinds = vec![first];
    for k in std::iter::once(args.kek.kind).chain(args.kek.previous.iter().copied()) {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let mut providers = Vec::with_capacity(kinds.len());
    for k in kinds {
        providers.push(key_provider(k, args, resolved, store).await?);
    }
    let primary = providers.remove(0);
    let ring: Arc<dyn crypto::KeyProvider> = Arc::new(crypto::Keyring::new(primary, providers));
    Ok(Arc::new(crypto::DekCache::new(ring, args.kek.dek_cache())))
}

/// On the very first start, creates the admin token: the one given in
/// `ENVSEAL_BOOTSTRAP_TOKEN`, or a generated one printed once on stdout. The token is
/// stored before the "bootstrapped" marker, so a crash in between cannot leave a
/// database without an admin; at worst a second start creates a second admin token.
async fn bootstrap_admin(store: &store::Store) -> anyhow::Result<()> {
    const MARKER: &str = "bootstrapped";
    if store.meta_get(MARKER).await?.is_some() {
        return Ok(());
    }
    let given = std::env::var("ENVSEAL_BOOTSTRAP_TOKEN").ok();
    let (id, generated) = auth::generate_token();
    let token = match &given {
        Some(t) if t.len() < 32 || t.len() > 256 || t.chars().any(char::is_whitespace) => {
            anyhow::bail!("ENVSEAL_BOOTSTRAP_TOKEN must be 32–256 characters without spaces")
        }
        Some(t) => zeroize::Zeroizing::new(t.clone()),
        None => generated,
    };
    let created = store
        .insert_token(&store::TokenRow {
            id,
            name: "bootstrap-admin".to_owned(),
            token_hash: auth::hash_token(&token),
            project_id: None,
            project_name: None,
            environments: "*".to_owned(),
            access: "admin".to_owned(),
            created_at: now(),
            expires_at: None,
            revoked_at: None,
        })
        .await?;
    store.meta_init(MARKER, &now().to_string()).await?;
    match (created, given.is_some()) {
        // Another replica stored the same given token first.
        (false, _) => {}
        (true, true) => tracing::info!("bootstrap admin token taken from ENVSEAL_BOOTSTRAP_TOKEN"),
        // The one deliberate reveal: the operator must see this token once.
        (true, false) => println!(
            "envseal-server: bootstrap admin token (shown once; store it now):\n{}",
            token.as_str()
        ),
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not restrict data directory to 0700");
    }
}

#[cfg(not(unix))]
fn restrict_dir(_: &std::path::Path) {}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let resolved = args.resolve()?;
    let state = prepare(&args).await?;
    let app = api::app(state.clone());
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let header_timeout = Duration::from_secs(args.header_timeout_secs.max(1));
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match resolved.tls {
        Some(tls) => {
            let config = tls::server_config(&tls)?;
            tracing::info!("envseal-server listening on https://{addr}");
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(config),
            )
            .handshake_timeout(header_timeout);
            let mut server = axum_server::from_tcp(listener).acceptor(acceptor);
            bound_connections(server.http_builder(), header_timeout);
            server.handle(handle).serve(service).await?;
        }
        None => {
            tracing::info!("envseal-server listening on http://{addr}");
            let mut server = axum_server::from_tcp(listener);
            bound_connections(server.http_builder(), header_timeout);
            server.handle(handle).serve(service).await?;
        }
    }
    state.store.close().await;
    tracing::info!("envseal-server stopped");
    Ok(())
}

/// Slow or idle clients cannot hold connections: HTTP/1 headers must arrive within
/// `timeout` (which also bounds the idle time between keep-alive requests), HTTP/2
/// connections are pinged every `timeout` and closed when a ping goes unanswered as
/// long. Header limits sit above the router's (which answers 431 in the JSON shape).
fn bound_connections(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    timeout: Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout)
        .max_headers(api::MAX_HEADERS * 4);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(timeout)
        .keep_alive_timeout(timeout);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

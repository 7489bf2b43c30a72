//! `envseal run`: the container entrypoint launcher (SPEC §5). Fetches one
//! environment, builds the child's environment (and secret files), checks it against
//! a profile, then execs the command or supervises it as a proper init.
//!
//! Values travel only into the child's environment or 0400 files: never to stdout,
//! stderr, logs, error messages or a command line.

mod files;
mod plan;
mod source;
mod supervise;
mod sys;

use crate::global::{EnvTarget, Global};
use crate::profile_dify::{Profile, Service};
use anyhow::Context as _;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use plan::{ChildSpec, SecretFile};

/// `envseal run` arguments.
#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    target: EnvTarget,
    /// Replace variables that are already set in the environment (by default they win).
    #[arg(long = "override")]
    override_existing: bool,
    /// Supervise the command as its init (the default when running as PID 1):
    /// own process group, signals forwarded, zombies reaped.
    #[arg(long)]
    supervise: bool,
    /// Poll the server and restart the command when the environment changes
    /// (implies --supervise).
    #[arg(long)]
    watch: bool,
    /// Time between polls with --watch (seconds, or 30s, 5m…).
    #[arg(long, default_value = "30", value_parser = crate::duration::parse, value_name = "DURATION")]
    watch_interval: Duration,
    /// Time between SIGTERM and SIGKILL when --watch stops the old command.
    #[arg(long, default_value = "10", value_parser = crate::duration::parse, value_name = "DURATION")]
    stop_timeout: Duration,
    /// Deliver NAME as a 0400 file at PATH instead of an environment variable
    /// (repeatable). The directory must be on tmpfs.
    #[arg(long = "file", value_name = "NAME=PATH")]
    files: Vec<String>,
    /// Deliver every secret as a 0400 file DIR/NAME instead of environment variables.
    /// DIR must be on tmpfs.
    #[arg(long, value_name = "DIR")]
    mount: Option<PathBuf>,
    /// Allow --file/--mount outside tmpfs (the value then lands on a disk).
    #[arg(long)]
    allow_non_tmpfs: bool,
    /// Fail unless these secrets are present (comma-separated, repeatable).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    require: Vec<String>,
    /// Deliver only these secrets (comma-separated, repeatable).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// Deliver these secrets even though their names change how programs start
    /// (BASH_ENV, LD_PRELOAD, PATH…; comma-separated, repeatable).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    allow_name: Vec<String>,
    /// Pass these inherited ENVSEAL_* settings to the command (by default it gets
    /// none; ENVSEAL_TOKEN and ENVSEAL_FALLBACK_PASSPHRASE never; comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pass_env: Vec<String>,
    /// Prepend PREFIX to every delivered variable name.
    #[arg(long)]
    prefix: Option<String>,
    /// Print the names that would be delivered and where, then exit. Never values.
    #[arg(long)]
    dry_run: bool,
    /// Say nothing on stderr unless something fails.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Attempts after the first when the server is unreachable.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Give up on the server after this long in total (all attempts).
    #[arg(long, default_value = "15", value_parser = crate::duration::parse, value_name = "DURATION")]
    total_timeout: Duration,
    /// Encrypted fallback file, written after each fetch and read when the server is
    /// unreachable. Put it on a mounted volume.
    #[arg(long, env = "ENVSEAL_FALLBACK_PATH", value_name = "PATH")]
    fallback_path: Option<PathBuf>,
    /// Oldest fallback file accepted (seconds, or 90s, 30m, 24h, 7d).
    #[arg(
        long,
        env = "ENVSEAL_FALLBACK_MAX_AGE",
        default_value = "24h",
        value_parser = crate::duration::parse,
        value_name = "DURATION"
    )]
    fallback_max_age: Duration,
    /// Do not contact the server; start from the fallback file.
    #[arg(long, conflicts_with = "no_fallback")]
    fallback_only: bool,
    /// Neither write nor read a fallback file.
    #[arg(long)]
    no_fallback: bool,
    /// File holding the fallback passphrase (instead of a key derived from the token;
    /// `ENVSEAL_FALLBACK_PASSPHRASE` works too).
    #[arg(long, env = "ENVSEAL_FALLBACK_PASSPHRASE_FILE", value_name = "PATH")]
    fallback_passphrase_file: Option<PathBuf>,
    /// Check the environment against an application's rules before starting.
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// With --profile dify: which compose service this container runs (default: from
    /// MODE, else api).
    #[arg(long, env = "ENVSEAL_DIFY_SERVICE", value_enum)]
    dify_service: Option<Service>,
    /// With --profile: start even though these secrets hold a shipped default value
    /// (comma-separated names, repeatable; every other default in use still fails).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    allow_defaults: Vec<String>,
    /// The command to run, after `--`.
    #[arg(
        last = true,
        required_unless_present = "dry_run",
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

/// Application profiles.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ProfileName {
    /// Dify's api, worker, beat, plugin daemon and sandbox containers.
    Dify,
}

/// Exit code when the command cannot be found.
const EXIT_NOT_FOUND: u8 = 127;
/// Exit code when the command exists but cannot be executed.
const EXIT_CANNOT_EXEC: u8 = 126;

/// Runs `envseal run`.
pub fn run(global: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    sys::capture_inherited();
    let config = Config::resolve(global, args)?;
    let early = if config.supervise && !config.dry_run {
        Some(supervise::EarlyStop::install()?)
    } else {
        None
    };
    let loaded = source::load(&config)?;
    let spec = plan::build(&config, &loaded.export)?;
    if config.dry_run {
        plan::print_dry_run(&config, &loaded, &spec)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !config.quiet {
        eprintln!("envseal: {}", loaded.describe());
        spec.report_kept();
    }
    if config.supervise {
        let watch = config.watch.then(|| source::Watcher::new(&config, &loaded));
        supervise::supervise(spec, watch, config.stop_timeout, early)
    } else {
        Ok(supervise::exec(spec))
    }
}

/// Checked settings.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) global: Global,
    pub(crate) target: EnvTarget,
    pub(crate) override_existing: bool,
    pub(crate) supervise: bool,
    pub(crate) watch: bool,
    pub(crate) watch_interval: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) files: Vec<(String, PathBuf)>,
    pub(crate) mount: Option<PathBuf>,
    pub(crate) allow_non_tmpfs: bool,
    pub(crate) require: Vec<String>,
    pub(crate) only: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) allow_names: Vec<String>,
    pub(crate) pass_env: Vec<String>,
    pub(crate) dry_run: bool,
    pub(crate) quiet: bool,
    pub(crate) retries: u32,
    pub(crate) total_timeout: Duration,
    pub(crate) fallback: Option<PathBuf>,
    pub(crate) fallback_max_age: Duration,
    pub(crate) fallback_only: bool,
    pub(crate) fallback_passphrase: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub(crate) profile: Option<(Profile, Service)>,
    pub(crate) allow_defaults: Vec<String>,
    pub(crate) command: Vec<OsString>,
}

impl Config {
    fn global_timeout(&self) -> Duration {
        self.global.timeout
    }
}

fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    envseal_core::validate_env_var_name(name).with_context(|| format!("in {what}"))
}

impl Config {
    fn resolve(global: &Global, a: RunArgs) -> anyhow::Result<Config> {
        envseal_core::validate_slug("project", &a.target.project)?;
        envseal_core::validate_slug("environment", &a.target.env)?;
        let mut files = Vec::new();
        for spec in &a.files {
            let (name, path) = spec
                .split_once('=')
                .with_context(|| format!("--file {spec:?} must be NAME=PATH"))?;
            check_name("--file", name)?;
            let path = PathBuf::from(path);
            anyhow::ensure!(
                path.is_absolute() && path.file_name().is_some(),
                "--file {name}=…: the path must be an absolute file path"
            );
            anyhow::ensure!(
                !files.iter().any(|(n, _)| n == name),
                "--file names {name} twice"
            );
            anyhow::ensure!(
                !files.iter().any(|(_, p)| p == &path),
                "--file {name}: path {} is already used by another --file",
                path.display()
            );
            files.push((name.to_owned(), path));
        }
        for name in a.require.iter().chain(&a.only) {
            check_name("--require/--only", name)?;
        }
        for name in &a.allow_name {
            check_name("--allow-name", name)?;
        }
        for name in &a.pass_env {
            check_name("--pass-env", name)?;
            anyhow::ensure!(
                name.starts_with(envseal_core::name::RESERVED_PREFIX),
                "--pass-env {name}: only ENVSEAL_* settings are held back; others pass anyway"
            );
            anyhow::ensure!(
                !plan::NEVER_PASSED.contains(&name.as_str()),
                "--pass-env {name}: the launcher's credentials never reach the command"
            );
        }
        let prefix = a.prefix.unwrap_or_default();
        if !prefix.is_empty() {
            check_name("--prefix", &format!("{prefix}X"))?;
        }
        let profile = match a.profile {
            None => None,
            Some(ProfileName::Dify) => {
                anyhow::ensure!(
                    prefix.is_empty(),
                    "--prefix cannot be combined with --profile dify: Dify reads fixed names"
                );
                let service = a
                    .dify_service
                    .or_else(|| {
                        std::env::var("MODE")
                            .ok()
                            .and_then(|m| Service::from_mode(&m))
                    })
                    .unwrap_or(Service::Api);
                Some((Profile::load(), service))
            }
        };
        let fallback = if a.no_fallback { None } else { a.fallback_path };
        anyhow::ensure!(
            !a.fallback_only || fallback.is_some(),
            "--fallback-only needs --fallback-path (or ENVSEAL_FALLBACK_PATH)"
        );
        let fallback_passphrase = match &a.fallback_passphrase_file {
            Some(path) => {
                let bytes = zeroize::Zeroizing::new(std::fs::read(path).with_context(|| {
                    format!("reading fallback passphrase file {}", path.display())
                })?);
                let trimmed = bytes.trim_ascii_end();
                anyhow::ensure!(
                    !trimmed.is_empty(),
                    "fallback passphrase file {} is empty",
                    path.display()
                );
                Some(zeroize::Zeroizing::new(trimmed.to_vec()))
            }
            None => std::env::var_os("ENVSEAL_FALLBACK_PASSPHRASE")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    use std::os::unix::ffi::OsStringExt as _;
                    zeroize::Zeroizing::new(p.into_vec())
                }),
        };
        let pid1 = nix::unistd::getpid().as_raw() == 1;
        Ok(Config {
            global: global.clone(),
            target: a.target,
            override_existing: a.override_existing,
            supervise: a.supervise || a.watch || pid1,
            watch: a.watch,
            watch_interval: a.watch_interval,
            stop_timeout: a.stop_timeout,
            files,
            mount: a.mount,
            allow_non_tmpfs: a.allow_non_tmpfs,
            require: a.require,
            only: a.only,
            prefix,
            allow_names: a.allow_name,
            pass_env: a.pass_env,
            dry_run: a.dry_run,
            quiet: a.quiet,
            retries: a.retries,
            total_timeout: a.total_timeout,
            fallback,
            fallback_max_age: a.fallback_max_age,
            fallback_only: a.fallback_only,
            fallback_passphrase,
            profile,
            allow_defaults: a.allow_defaults,
            command: a.command,
        })
    }
}

/// Constant-time equality for secret bytes.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}

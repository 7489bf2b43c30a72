//! `envseal export`: a whole environment as a .env file or a JSON object (name → value).
//! This prints values by design; it is the explicit reveal for a whole environment.

use crate::global::{EnvTarget, Global};
use anyhow::Context as _;
use envseal_core::wire::EnvironmentExport;
use std::io::Write as _;
use std::process::ExitCode;
use zeroize::{Zeroize as _, Zeroizing};

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    target: EnvTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "env")]
    format: Format,
    /// Export only these secrets (comma-separated, repeatable); each must exist.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// Export only secrets whose names start with PREFIX.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// `NAME='value'` lines that sh, bash and docker compose read back exactly.
    Env,
    /// One JSON object of name → value.
    Json,
    /// Kubernetes Secrets, one per Dify component (BorisPolonsky/dify-helm names).
    K8sSecret,
    /// ExternalSecret manifests with dify-helm's remote keys (no values printed).
    ExternalSecret,
    /// Kubernetes Secrets with douban/charts' names and keys.
    K8sSecretDouban,
}

pub fn run(global: &Global, args: ExportArgs) -> anyhow::Result<ExitCode> {
    for name in &args.only {
        envseal_core::validate_env_var_name(name).context("in --only")?;
    }
    let export: EnvironmentExport = global
        .client()?
        .get(&format!("{}/export", args.target.path()))?;
    let missing: Vec<String> = args
        .only
        .iter()
        .filter(|n| !export.secrets.contains_key(*n))
        .map(
            |n| match crate::suggest::closest(n, export.secrets.keys().map(String::as_str)) {
                Some(s) => format!("{n} (did you mean {s}?)"),
                None => n.clone(),
            },
        )
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "--only names secrets missing from {}/{}: {}",
        export.project,
        export.environment,
        missing.join(", ")
    );
    let selected = export.secrets.iter().filter(|(name, _)| {
        (args.only.is_empty() || args.only.contains(name))
            && args
                .prefix
                .as_ref()
                .is_none_or(|p| name.starts_with(p.as_str()))
    });
    // Everything is rendered before anything is written: a refused value leaves no
    // half-written file behind.
    let mut rendered = Zeroizing::new(Vec::<u8>::new());
    match args.format {
        Format::Json => {
            let mut map = serde_json::Map::new();
            for (name, wire) in selected {
                let value = wire.decode()?;
                let text = value.as_str().with_context(|| {
                    format!("{name} is binary; JSON export carries text values only")
                })?;
                map.insert(name.clone(), serde_json::Value::String(text.to_owned()));
            }
            serde_json::to_writer(&mut *rendered, &map)?;
            rendered.push(b'\n');
            for (_, v) in map.iter_mut() {
                if let serde_json::Value::String(s) = v {
                    s.zeroize();
                }
            }
        }
        Format::K8sSecret | Format::ExternalSecret | Format::K8sSecretDouban => {
            let mut map = std::collections::BTreeMap::new();
            for (name, wire) in selected {
                let value = wire.decode()?;
                let text = value.as_str().with_context(|| {
                    format!("{name} is binary; Kubernetes stringData carries text values only")
                })?;
                map.insert(name.clone(), text.to_owned());
            }
            let yaml = match args.format {
                Format::K8sSecret => crate::export_k8s::helm_secrets(&map, None),
                Format::K8sSecretDouban => crate::export_k8s::douban_secrets(&map, None),
                _ => {
                    crate::export_k8s::external_secrets(&map, None, crate::export_k8s::SECRET_STORE)
                }
            };
            let yaml = Zeroizing::new(yaml);
            for text in map.values_mut() {
                text.zeroize();
            }
            rendered.extend_from_slice(yaml.as_bytes());
        }
        Format::Env => {
            for (name, wire) in selected {
                let value = wire.decode()?;
                let text = value.as_str().with_context(|| {
                    format!("{name} is binary; .env files carry text values only")
                })?;
                let quoted = Zeroizing::new(env_quote(text).map_err(|why| {
                    anyhow::anyhow!(
                        "{name} {why}, which a .env file cannot carry exactly for both sh and \
                         docker compose; nothing was written. Use --format json"
                    )
                })?);
                rendered.extend_from_slice(name.as_bytes());
                rendered.push(b'=');
                rendered.extend_from_slice(quoted.as_bytes());
                rendered.push(b'\n');
            }
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Why a value cannot be written as a `.env` line that both a POSIX shell and
/// docker compose read back byte for byte.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvQuoteError {
    /// A shell variable cannot hold NUL.
    #[error("contains a NUL byte")]
    Nul,
    /// Inside single quotes nothing escapes a single quote in both readers alike.
    #[error("contains a single quote (')")]
    SingleQuote,
    /// Compose folds CR LF into LF and may drop a lone CR.
    #[error("contains a carriage return")]
    CarriageReturn,
    /// Compose reads `\'` as an escaped quote, so a trailing backslash runs on.
    #[error("ends with a backslash")]
    TrailingBackslash,
}

/// Single-quotes `value` for a `.env` file read by `sh`/`bash` (`set -a; . ./x.env`)
/// and by docker compose. Inside single quotes neither reader expands `$`, backticks,
/// backslashes or anything else, and a newline is kept as is, so the bytes read back
/// are exactly `value` and nothing runs. The few values this form cannot carry are
/// refused rather than altered.
pub fn env_quote(value: &str) -> Result<String, EnvQuoteError> {
    if value.contains('\0') {
        return Err(EnvQuoteError::Nul);
    }
    if value.contains('\'') {
        return Err(EnvQuoteError::SingleQuote);
    }
    if value.contains('\r') {
        return Err(EnvQuoteError::CarriageReturn);
    }
    if value.ends_with('\\') {
        return Err(EnvQuoteError::TrailingBackslash);
    }
    Ok(format!("'{value}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_single_quotes_around_the_exact_bytes() {
        assert_eq!(env_quote("a\"b\\c\nd$e`f`").unwrap(), "'a\"b\\c\nd$e`f`'");
        assert_eq!(env_quote("").unwrap(), "''");
    }

    #[test]
    fn values_neither_reader_can_take_back_exactly_are_refused() {
        assert_eq!(env_quote("it's"), Err(EnvQuoteError::SingleQuote));
        assert_eq!(env_quote("a\0b"), Err(EnvQuoteError::Nul));
        assert_eq!(env_quote("a\r\nb"), Err(EnvQuoteError::CarriageReturn));
        assert_eq!(env_quote("a\\"), Err(EnvQuoteError::TrailingBackslash));
    }
}

//! `envseal export`: a whole environment as a .env file or a JSON object (name → value).
//! This prints values by design; it is the explicit reveal for a whole environment.

use crate::global::{EnvTarget, Global};
use anyhow::Context as _;
use envseal_core::wire::EnvironmentExport;
use std::io::Write as _;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    target: EnvTarget,
    /// Output format.
    #[arg(long, value_enum, default_value = "env")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// `NAME="value"` lines (double-quoted, escaped).
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
    let export: EnvironmentExport = global
        .client()?
        .get(&format!("{}/export", args.target.path()))?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let mut map = serde_json::Map::new();
            for (name, wire) in &export.secrets {
                let value = wire.decode()?;
                let text = value.as_str().with_context(|| {
                    format!("{name} is binary; JSON export carries text values only")
                })?;
                map.insert(name.clone(), serde_json::Value::String(text.to_owned()));
            }
            serde_json::to_writer(&mut out, &map)?;
            out.write_all(b"\n")?;
        }
        Format::K8sSecret | Format::ExternalSecret | Format::K8sSecretDouban => {
            let mut map = std::collections::BTreeMap::new();
            for (name, wire) in &export.secrets {
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
            out.write_all(yaml.as_bytes())?;
        }
        Format::Env => {
            for (name, wire) in &export.secrets {
                let value = wire.decode()?;
                let text = value.as_str().with_context(|| {
                    format!("{name} is binary; .env files carry text values only")
                })?;
                writeln!(out, "{name}={}", dotenv_quote(text))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Double-quotes a value the way dotenv readers (docker compose, python-dotenv)
/// unquote it: `\\`, `\"`, `\n`, `\r` and `\$` are escaped.
fn dotenv_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting_escapes_specials() {
        assert_eq!(super::dotenv_quote("a\"b\\c\nd$e"), r#""a\"b\\c\nd\$e""#);
    }
}

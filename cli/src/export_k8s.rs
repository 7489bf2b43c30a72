//! Kubernetes manifests for a Dify environment, named and keyed as the Helm charts
//! expect (the chart keys live in the Dify catalogue, `envseal_core::dify`):
//!
//! - `k8s-secret`: one `Secret` per component of BorisPolonsky/dify-helm (`dify-api`,
//!   `dify-sandbox`, …), keyed by Dify's variable names so `envFrom.secretRef` loads
//!   them as the variables Dify reads;
//! - `external-secret`: the matching `ExternalSecret`s, whose `remoteRef` key and
//!   property (`dify/api` / `secret_key`, …) are the chart's;
//! - `k8s-secret-douban`: the Secrets of douban/charts (`dify`, `dify-sandbox`,
//!   `dify-plugin-daemon`, with that chart's key names).
//!
//! Strings are written as JSON strings, which YAML reads as double-quoted scalars,
//! so any value survives unchanged. Nothing here talks to the network or a cluster.

use envseal_core::dify::{catalogue, ChartKey};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The `SecretStore` the ExternalSecrets read from (see `examples/k8s/`).
pub const SECRET_STORE: &str = "dify-secret-store";

/// The prefix of every Secret name of the dify-helm layout.
pub const HELM_PREFIX: &str = "dify-";

fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Chart keys present in `values`, grouped by Secret (in catalogue order).
fn grouped<'a>(
    chart: &str,
    values: &'a BTreeMap<String, String>,
) -> Vec<(&'static str, Vec<(ChartKey, &'a str)>)> {
    let mut groups: Vec<(&'static str, Vec<(ChartKey, &'a str)>)> = Vec::new();
    for key in catalogue().chart_keys(chart) {
        let Some(value) = values.get(key.name) else {
            continue;
        };
        match groups.iter_mut().find(|(s, _)| *s == key.secret) {
            Some((_, keys)) => keys.push((key, value)),
            None => groups.push((key.secret, vec![(key, value)])),
        }
    }
    groups
}

fn secret_doc(out: &mut String, name: &str, namespace: Option<&str>, data: &[(&str, &str)]) {
    out.push_str("---\napiVersion: v1\nkind: Secret\nmetadata:\n");
    let _ = writeln!(out, "  name: {}", q(name));
    if let Some(ns) = namespace {
        let _ = writeln!(out, "  namespace: {}", q(ns));
    }
    out.push_str("  labels:\n    app.kubernetes.io/managed-by: \"envseal\"\n");
    out.push_str("type: Opaque\nstringData:\n");
    for (k, v) in data {
        let _ = writeln!(out, "  {}: {}", q(k), q(v));
    }
}

/// `Secret`s for BorisPolonsky/dify-helm: `dify-<component>`, keyed by variable name.
pub fn helm_secrets(values: &BTreeMap<String, String>, namespace: Option<&str>) -> String {
    let mut out = String::new();
    for (secret, keys) in grouped("helm", values) {
        let mut data: Vec<(&str, &str)> = Vec::new();
        for (k, v) in &keys {
            if !data.iter().any(|(n, _)| *n == k.name) {
                data.push((k.name, v));
            }
        }
        secret_doc(
            &mut out,
            &format!("{HELM_PREFIX}{secret}"),
            namespace,
            &data,
        );
    }
    out
}

/// `Secret`s for douban/charts, with that chart's Secret and key names.
pub fn douban_secrets(values: &BTreeMap<String, String>, namespace: Option<&str>) -> String {
    let mut out = String::new();
    for (secret, keys) in grouped("douban", values) {
        let data: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.key, *v)).collect();
        secret_doc(&mut out, secret, namespace, &data);
    }
    out
}

/// `ExternalSecret`s whose remote refs are the chart's (`dify/<component>` +
/// property); the target Secrets are the ones `helm_secrets` writes. Needs no values.
pub fn external_secrets(
    names: &BTreeMap<String, String>,
    namespace: Option<&str>,
    store: &str,
) -> String {
    let mut out = String::new();
    for (secret, keys) in grouped("helm", names) {
        out.push_str("---\napiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\n");
        out.push_str("metadata:\n");
        let _ = writeln!(out, "  name: {}", q(&format!("{HELM_PREFIX}{secret}")));
        if let Some(ns) = namespace {
            let _ = writeln!(out, "  namespace: {}", q(ns));
        }
        out.push_str("spec:\n  refreshInterval: \"1h\"\n  secretStoreRef:\n");
        let _ = writeln!(out, "    name: {}\n    kind: \"SecretStore\"", q(store));
        out.push_str("  target:\n");
        let _ = writeln!(out, "    name: {}", q(&format!("{HELM_PREFIX}{secret}")));
        out.push_str("    creationPolicy: \"Owner\"\n  data:\n");
        let mut seen = Vec::new();
        for (k, _) in keys {
            if seen.contains(&k.name) {
                continue;
            }
            seen.push(k.name);
            let _ = writeln!(out, "    - secretKey: {}", q(k.name));
            out.push_str("      remoteRef:\n");
            let _ = writeln!(out, "        key: {}", q(&format!("dify/{}", k.secret)));
            let _ = writeln!(out, "        property: {}", q(k.key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, String> {
        [
            ("SECRET_KEY", "k\"1\n"),
            ("DB_PASSWORD", "d"),
            ("PLUGIN_DAEMON_KEY", "p"),
            ("PLUGIN_DIFY_INNER_API_KEY", "i"),
            ("CODE_EXECUTION_API_KEY", "s"),
            ("LOG_LEVEL", "INFO"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn helm_secrets_are_named_per_component() {
        let y = helm_secrets(&values(), Some("dify"));
        assert!(y.contains("name: \"dify-api\""), "{y}");
        assert!(y.contains("\"SECRET_KEY\": \"k\\\"1\\n\""), "{y}");
        assert!(y.contains("name: \"dify-plugin-daemon\""), "{y}");
        assert!(!y.contains("LOG_LEVEL"));
    }

    #[test]
    fn database_appears_once_per_secret() {
        let y = helm_secrets(&values(), None);
        assert_eq!(
            y.matches("\"DB_PASSWORD\"").count(),
            2,
            "database and postgresql"
        );
    }
}

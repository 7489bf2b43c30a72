//! Dify's shipped default credentials, as the scanner sees them: read from the one
//! Dify catalogue (`envseal_core::dify`), which is generated from Dify's own files.
//!
//! These values are public; a deployment still using one is as exposed as one that
//! leaked a secret, so the scanner reports them as default credentials.

use envseal_core::dify::catalogue;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Shipped value → the variables Dify ships it under (built once).
fn by_value() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static MAP: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        for (name, value) in catalogue().defaults() {
            m.entry(value).or_default().push(name);
        }
        m
    })
}

/// Whether `value` is one of Dify's distinctive shipped defaults.
pub(crate) fn is_distinctive_default(value: &str) -> bool {
    catalogue().is_distinctive(value)
}

/// Whether `name = value` is a Dify shipped default (distinctive value, or the
/// value Dify ships for that variable name, also under a prefix such as
/// `MY_DB_PASSWORD` for `DB_PASSWORD`).
pub(crate) fn is_default(name: Option<&str>, value: &str) -> bool {
    if is_distinctive_default(value) {
        return true;
    }
    let Some(name) = name else { return false };
    let Some(names) = by_value().get(value) else {
        return false;
    };
    let upper = name.to_ascii_uppercase();
    names.iter().any(|n| {
        upper == *n
            || upper
                .strip_suffix(n)
                .is_some_and(|head| head.ends_with('_'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert!(is_default(Some("DB_PASSWORD"), "difyai123456"));
        assert!(is_default(Some("COUCHBASE_PASSWORD"), "password"));
        assert!(is_default(Some("MY_COUCHBASE_PASSWORD"), "password"));
        assert!(!is_default(Some("OTHER_PASSWORD"), "password"));
        assert!(is_default(None, "dify-sandbox"));
        assert!(is_default(None, "dify-agent-run-token-for-dev-only"));
        assert!(!is_default(None, "password"));
    }
}

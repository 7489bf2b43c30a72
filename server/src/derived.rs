//! Derived values: a secret whose stored value is a template over other secrets of
//! its environment, resolved in the export from the same snapshot.
//!
//! `redis://:${REDIS_PASSWORD|urlencode}@redis:6379/1` publishes a URL that follows
//! the password; `${PLUGIN_DAEMON_KEY}` publishes one secret under a second name.
//! `$$` is a literal `$`; every other `$` must open a `${NAME}` or
//! `${NAME|urlencode}` reference. Unknown references and cycles are rejected when the
//! template is written. This module never formats a value: errors name secrets.

use envseal_core::SecretValue;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use std::collections::{BTreeMap, BTreeSet};

/// `urlencode`: everything but RFC 3986's unreserved characters is percent-encoded.
pub const URLENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a template cannot be stored or resolved. Names only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerivedError {
    /// Not a valid template.
    #[error("invalid template: {0}")]
    Syntax(&'static str),
    /// A filter other than `urlencode`.
    #[error("unknown filter in a reference to {0} (only `urlencode` is supported)")]
    Filter(String),
    /// A reference to a secret the environment does not have.
    #[error("{name} refers to {missing}, which is not a secret of this environment")]
    Unknown {
        /// The derived secret.
        name: String,
        /// The missing reference.
        missing: String,
    },
    /// References that lead back to where they started.
    #[error("derived values form a cycle: {0}")]
    Cycle(String),
    /// A template or referenced value that is not UTF-8.
    #[error("{0} is not UTF-8 text, so it cannot be used in a template")]
    NotText(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Ref { name: String, urlencode: bool },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Parses `${NAME}`, `${NAME|urlencode}` and `$$`.
    pub fn parse(src: &str) -> Result<Template, DerivedError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(d) = rest.find('$') {
            text.push_str(&rest[..d]);
            let after = &rest[d + 1..];
            if let Some(r) = after.strip_prefix('$') {
                text.push('$');
                rest = r;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                return Err(DerivedError::Syntax(
                    "a `$` must open `${NAME}` (write `$$` for a literal `$`)",
                ));
            };
            let close = body
                .find('}')
                .ok_or(DerivedError::Syntax("a `${` is never closed"))?;
            let inner = &body[..close];
            let (name, filter) = match inner.split_once('|') {
                Some((n, f)) => (n.trim(), Some(f.trim())),
                None => (inner.trim(), None),
            };
            envseal_core::validate_env_var_name(name)
                .map_err(|_| DerivedError::Syntax("a reference must name a secret: ${NAME}"))?;
            let urlencode = match filter {
                None => false,
                Some("urlencode") => true,
                Some(_) => return Err(DerivedError::Filter(name.to_owned())),
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Ref {
                name: name.to_owned(),
                urlencode,
            });
            rest = &body[close + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    /// The secrets the template refers to.
    pub fn references(&self) -> BTreeSet<&str> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Part::Ref { name, .. } => Some(name.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }
}

/// One secret of a snapshot: its stored value and whether that value is a template.
pub struct Stored {
    /// The stored bytes (the template, for a derived secret).
    pub value: SecretValue,
    /// Whether `value` is a template.
    pub derived: bool,
}

/// Checks, before it is written, that `name = template` leaves the environment
/// resolvable: every reference exists and no cycle appears. `others` maps every
/// other live secret to its template (`Some`) or `None` for a plain value.
pub fn check(
    name: &str,
    template: &Template,
    others: &BTreeMap<String, Option<Template>>,
) -> Result<(), DerivedError> {
    let lookup = |n: &str| -> Option<Option<&Template>> {
        if n == name {
            Some(Some(template))
        } else {
            others.get(n).map(Option::as_ref)
        }
    };
    // Depth-first from `name`; a path that comes back to a name on it is a cycle.
    fn visit<'a>(
        n: &'a str,
        lookup: &dyn Fn(&str) -> Option<Option<&'a Template>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), DerivedError> {
        if done.contains(n) {
            return Ok(());
        }
        if path.contains(&n) {
            let start = path.iter().position(|p| *p == n).unwrap_or(0);
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(n);
            return Err(DerivedError::Cycle(cycle.join(" -> ")));
        }
        let Some(Some(t)) = lookup(n) else {
            done.insert(n);
            return Ok(());
        };
        path.push(n);
        for r in t.references() {
            if lookup(r).is_none() {
                return Err(DerivedError::Unknown {
                    name: n.to_owned(),
                    missing: r.to_owned(),
                });
            }
            visit(r, lookup, path, done)?;
        }
        path.pop();
        done.insert(n);
        Ok(())
    }
    visit(name, &lookup, &mut Vec::new(), &mut BTreeSet::new())
}

/// Resolves every derived secret of one snapshot; plain values pass unchanged.
pub fn resolve(
    snapshot: Vec<(String, Stored)>,
) -> Result<Vec<(String, SecretValue)>, DerivedError> {
    let mut templates: BTreeMap<String, Template> = BTreeMap::new();
    let mut plain: BTreeMap<String, SecretValue> = BTreeMap::new();
    let mut order = Vec::with_capacity(snapshot.len());
    for (name, s) in snapshot {
        order.push(name.clone());
        if s.derived {
            let text = s
                .value
                .as_str()
                .ok_or_else(|| DerivedError::NotText(name.clone()))?;
            templates.insert(name, Template::parse(text)?);
        } else {
            plain.insert(name, s.value);
        }
    }
    let mut resolved: BTreeMap<String, SecretValue> = BTreeMap::new();
    fn eval(
        name: &str,
        templates: &BTreeMap<String, Template>,
        plain: &BTreeMap<String, SecretValue>,
        resolved: &mut BTreeMap<String, SecretValue>,
        path: &mut Vec<String>,
    ) -> Result<(), DerivedError> {
        if resolved.contains_key(name) || plain.contains_key(name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            path.push(name.to_owned());
            return Err(DerivedError::Cycle(path.join(" -> ")));
        }
        let t = &templates[name];
        path.push(name.to_owned());
        let mut out = zeroize::Zeroizing::new(Vec::new());
        for part in &t.0 {
            match part {
                Part::Text(s) => out.extend_from_slice(s.as_bytes()),
                Part::Ref { name: r, urlencode } => {
                    if !plain.contains_key(r) && !templates.contains_key(r) {
                        return Err(DerivedError::Unknown {
                            name: name.to_owned(),
                            missing: r.clone(),
                        });
                    }
                    eval(r, templates, plain, resolved, path)?;
                    let v = plain.get(r).or_else(|| resolved.get(r)).expect("evaluated");
                    if *urlencode {
                        let enc =
                            percent_encoding::percent_encode(v.expose(), URLENCODE).to_string();
                        out.extend_from_slice(enc.as_bytes());
                        let mut enc = enc;
                        zeroize::Zeroize::zeroize(&mut enc);
                    } else {
                        out.extend_from_slice(v.expose());
                    }
                }
            }
        }
        path.pop();
        resolved.insert(name.to_owned(), SecretValue::new(std::mem::take(&mut *out)));
        Ok(())
    }
    for name in templates.keys() {
        eval(name, &templates, &plain, &mut resolved, &mut Vec::new())?;
    }
    Ok(order
        .into_iter()
        .map(|n| {
            let v = plain
                .remove(&n)
                .or_else(|| resolved.remove(&n))
                .expect("every name resolved");
            (n, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(v: &str, derived: bool) -> Stored {
        Stored {
            value: SecretValue::new(v.as_bytes().to_vec()),
            derived,
        }
    }

    #[test]
    fn templates_resolve_with_percent_encoding_and_aliases() {
        let out = resolve(vec![
            (
                "CELERY_BROKER_URL".into(),
                stored("redis://:${REDIS_PASSWORD|urlencode}@redis:6379/1", true),
            ),
            ("REDIS_PASSWORD".into(), stored("p#s@/%w", false)),
            ("SERVER_KEY".into(), stored("${PLUGIN_DAEMON_KEY}", true)),
            ("PLUGIN_DAEMON_KEY".into(), stored("k$1", false)),
            ("PRICE".into(), stored("$$5 ${SERVER_KEY}", true)),
        ])
        .unwrap();
        let m: BTreeMap<_, _> = out
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            m["CELERY_BROKER_URL"],
            "redis://:p%23s%40%2F%25w@redis:6379/1"
        );
        assert_eq!(m["SERVER_KEY"], "k$1");
        assert_eq!(m["PRICE"], "$5 k$1");
    }

    #[test]
    fn unknown_references_and_cycles_are_rejected_by_name() {
        let t = |s: &str| Template::parse(s).unwrap();
        let mut others = BTreeMap::new();
        others.insert("A".to_owned(), Some(t("${B}")));
        others.insert("C".to_owned(), None);
        let err = check("B", &t("x${A}"), &others).unwrap_err();
        assert_eq!(err, DerivedError::Cycle("B -> A -> B".into()));
        let err = check("D", &t("${NOPE}"), &others).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
        check("D", &t("${C|urlencode}"), &others).unwrap();
        check("S", &t("${S}"), &others).unwrap_err();
        for bad in ["$x", "${", "${1A}", "${A|base64}"] {
            Template::parse(bad).unwrap_err();
        }
    }
}

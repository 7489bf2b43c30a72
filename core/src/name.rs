//! Names: secret names are environment-variable names; projects and environments are
//! slugs. Anything else is rejected with an error that says why, never dropped.

use std::fmt;

/// Why a name was rejected. The offending name is included because names are not
/// secret; values never are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} name is empty")]
    Empty {
        /// What was being named ("secret", "project", "environment").
        kind: &'static str,
    },
    /// The name is longer than allowed.
    #[error("{kind} name {name:?} is longer than {max} characters")]
    TooLong {
        /// What was being named.
        kind: &'static str,
        /// The name, truncated for display.
        name: Printable,
        /// The limit.
        max: usize,
    },
    /// The name contains a character that is not allowed.
    #[error("{kind} name {name:?} is invalid: {rule}")]
    Invalid {
        /// What was being named.
        kind: &'static str,
        /// The name, made safe to print.
        name: Printable,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The name starts with `ENVSEAL_`, which the launcher keeps for its own settings.
    #[error(
        "{kind} name {name:?} is reserved: names starting with {RESERVED_PREFIX} are \
         envseal's own settings"
    )]
    Reserved {
        /// What was being named.
        kind: &'static str,
        /// The name, made safe to print.
        name: Printable,
    },
    /// The name changes how a program starts or which code it loads.
    #[error(
        "{kind} name {name:?} is refused: {name} {why}; allow it explicitly for this \
         name if that is intended"
    )]
    Dangerous {
        /// What was being named.
        kind: &'static str,
        /// The name, made safe to print.
        name: Printable,
        /// What a process started with it would do.
        why: &'static str,
    },
}

/// A name made safe to show in a terminal or log: control characters are escaped and
/// it is cut at 80 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Printable(String);

impl Printable {
    fn new(raw: &str) -> Self {
        let mut out = String::new();
        for (i, c) in raw.chars().enumerate() {
            if i >= 80 {
                out.push('…');
                break;
            }
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        Printable(out)
    }
}

impl fmt::Debug for Printable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

impl fmt::Display for Printable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest secret name accepted.
pub const MAX_SECRET_NAME: usize = 256;
/// Longest project or environment name accepted.
pub const MAX_SLUG: usize = 64;

/// Checks that `name` is an environment-variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn validate_env_var_name(name: &str) -> Result<(), NameError> {
    const KIND: &str = "secret";
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty { kind: KIND });
    };
    if name.len() > MAX_SECRET_NAME {
        return Err(NameError::TooLong {
            kind: KIND,
            name: Printable::new(name),
            max: MAX_SECRET_NAME,
        });
    }
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(NameError::Invalid {
            kind: KIND,
            name: Printable::new(name),
            rule: "must match [A-Za-z_][A-Za-z0-9_]*",
        });
    }
    Ok(())
}

/// Prefix of the launcher's own settings; no secret may use it.
pub const RESERVED_PREFIX: &str = "ENVSEAL_";

/// The table of names that change how a program starts (`core/data/dangerous_names.tsv`).
const DANGEROUS_TABLE: &str = include_str!("../data/dangerous_names.tsv");

/// One entry of the table: an exact name, or a prefix when it ends in `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DangerousName {
    /// The name, or the prefix without its `*`.
    pub pattern: &'static str,
    /// Whether `pattern` is a prefix.
    pub prefix: bool,
    /// What a process started with such a variable would do.
    pub why: &'static str,
}

/// Every entry of the dangerous-name table, in file order.
pub fn dangerous_names() -> impl Iterator<Item = DangerousName> {
    DANGEROUS_TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (pattern, why) = line.split_once('\t').unwrap_or((line, ""));
            match pattern.strip_suffix('*') {
                Some(p) => DangerousName {
                    pattern: p,
                    prefix: true,
                    why,
                },
                None => DangerousName {
                    pattern,
                    prefix: false,
                    why,
                },
            }
        })
}

/// The table entry `name` falls under, if any.
pub fn dangerous(name: &str) -> Option<DangerousName> {
    dangerous_names().find(|d| {
        if d.prefix {
            name.starts_with(d.pattern)
        } else {
            name == d.pattern
        }
    })
}

/// Checks that a secret called `name` may be stored or delivered as an environment
/// variable: a valid name, not under [`RESERVED_PREFIX`] (never allowed), and not in
/// the dangerous-name table unless `allowed` says this name was allowed explicitly.
pub fn check_deliverable(name: &str, allowed: bool) -> Result<(), NameError> {
    const KIND: &str = "secret";
    validate_env_var_name(name)?;
    if name.starts_with(RESERVED_PREFIX) {
        return Err(NameError::Reserved {
            kind: KIND,
            name: Printable::new(name),
        });
    }
    if let Some(d) = dangerous(name) {
        if !allowed {
            return Err(NameError::Dangerous {
                kind: KIND,
                name: Printable::new(name),
                why: d.why,
            });
        }
    }
    Ok(())
}

/// Checks a project or environment name: `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
pub fn validate_slug(kind: &'static str, name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty { kind });
    };
    if name.len() > MAX_SLUG {
        return Err(NameError::TooLong {
            kind,
            name: Printable::new(name),
            max: MAX_SLUG,
        });
    }
    let ok_rest = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) || !chars.all(ok_rest) {
        return Err(NameError::Invalid {
            kind,
            name: Printable::new(name),
            rule: "must match [a-z0-9][a-z0-9_-]*",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        for ok in ["A", "_", "SECRET_KEY", "a1", "_x_9"] {
            assert_eq!(validate_env_var_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "É", "A\n", "A.B"] {
            assert!(validate_env_var_name(bad).is_err(), "{bad:?}");
        }
        let long = "A".repeat(MAX_SECRET_NAME + 1);
        assert!(matches!(
            validate_env_var_name(&long),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn slugs() {
        for ok in ["dify", "prod", "a-b_c", "0"] {
            assert_eq!(validate_slug("project", ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "Dify", "a b", "a/b", "../x"] {
            assert!(validate_slug("project", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dangerous_name_table_is_well_formed() {
        let entries: Vec<_> = dangerous_names().collect();
        assert!(entries.len() >= 20, "{}", entries.len());
        let mut seen = std::collections::BTreeSet::new();
        for d in &entries {
            assert!(!d.why.is_empty(), "{} has no reason", d.pattern);
            assert!(seen.insert((d.pattern, d.prefix)), "{} twice", d.pattern);
            if d.prefix {
                assert!(!d.pattern.is_empty());
            } else {
                assert_eq!(validate_env_var_name(d.pattern), Ok(()), "{}", d.pattern);
            }
        }
    }

    #[test]
    fn dangerous_names_are_refused_unless_allowed() {
        for name in [
            "BASH_ENV",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "PYTHONSTARTUP",
            "NODE_OPTIONS",
            "PATH",
            "DYLD_INSERT_LIBRARIES",
        ] {
            let err = check_deliverable(name, false).unwrap_err();
            assert!(matches!(err, NameError::Dangerous { .. }), "{name}: {err}");
            assert!(err.to_string().contains("allow it explicitly"), "{err}");
            assert_eq!(check_deliverable(name, true), Ok(()), "{name}");
        }
        for name in [
            "SECRET_KEY",
            "DB_PASSWORD",
            "PATHS",
            "XLD_PRELOAD",
            "NODE_ENV",
        ] {
            assert_eq!(check_deliverable(name, false), Ok(()), "{name}");
        }
    }

    #[test]
    fn envseal_prefix_is_reserved_even_when_allowed() {
        for allowed in [false, true] {
            let err = check_deliverable("ENVSEAL_X", allowed).unwrap_err();
            assert!(matches!(err, NameError::Reserved { .. }), "{err}");
            assert!(err.to_string().contains("ENVSEAL_"), "{err}");
        }
        assert!(check_deliverable("1BAD", true).is_err());
    }

    #[test]
    fn errors_escape_control_characters() {
        let err = validate_env_var_name("A\u{1b}[31mB")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(err.contains("\\u{1b}"), "{err}");
    }
}

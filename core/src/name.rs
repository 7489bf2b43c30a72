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
    fn errors_escape_control_characters() {
        let err = validate_env_var_name("A\u{1b}[31mB")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(err.contains("\\u{1b}"), "{err}");
    }
}

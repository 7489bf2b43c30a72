//! A `.env` reader that follows docker compose's rules: `#` comments (whole lines, and
//! ` #` after an unquoted value), `export`, `KEY=value` and `KEY: value`, single quotes
//! (literal, only `\'` escaped), double quotes (`\n`, `\r`, `\t`, `\\`, `\"`, `\$`,
//! octal `\0NNN`, … then interpolation), multi-line quoted values, CRLF line ends, a
//! UTF-8 byte-order mark, and `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}` and `$$`.
//!
//! Every assignment comes back with the lines it spans, so a caller can rewrite the
//! file without it. Errors name a line and, at most, a key; never a value.

use std::collections::BTreeMap;

/// One `KEY=value` statement.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as written (compose allows `.`, `-`, `[` and `]` besides `[A-Za-z0-9_]`).
    pub key: String,
    /// The value after unquoting and interpolation; `None` for a bare `KEY` line
    /// (compose then takes the value from its own environment).
    pub value: Option<String>,
    /// First line of the statement (0-based).
    pub first_line: usize,
    /// Last line of the statement (0-based, inclusive).
    pub last_line: usize,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("lines", &(self.first_line..=self.last_line))
            .finish()
    }
}

/// Why a file could not be read. Carries line numbers and keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// A key holds a character compose does not allow.
    #[error("line {line}: unexpected character {ch:?} in a variable name")]
    BadKey {
        /// 1-based line.
        line: usize,
        /// The character.
        ch: char,
    },
    /// A key with a space inside.
    #[error("line {line}: a variable name cannot contain a space")]
    KeyWithSpace {
        /// 1-based line.
        line: usize,
    },
    /// A quote that is never closed.
    #[error("line {line}: unterminated quoted value of {key}")]
    Unterminated {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
    },
    /// `${` not followed by a valid reference.
    #[error("line {line}: invalid interpolation in the value of {key}")]
    InvalidTemplate {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
    },
    /// `${VAR:?…}` / `${VAR?…}` with VAR missing.
    #[error("line {line}: {key} requires {var}, which is not set")]
    Required {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
        /// The missing variable.
        var: String,
    },
}

/// Parses `src`. `lookup` answers variables from outside the file (earlier files,
/// compose's own environment); it is asked before the file's own earlier values, as
/// compose does.
pub fn parse(
    src: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Entry>, DotenvError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let line_of = |pos: usize| src[..pos].bytes().filter(|&b| b == b'\n').count();
    let mut entries: Vec<Entry> = Vec::new();
    let mut own: BTreeMap<String, String> = BTreeMap::new();
    let mut pos = 0;
    loop {
        // Statement start: skip whitespace and comment lines.
        let rest = &src[pos..];
        let Some(skip) = rest.find(|c: char| !c.is_whitespace()) else {
            break;
        };
        pos += skip;
        if src[pos..].starts_with('#') {
            match src[pos..].find('\n') {
                Some(nl) => {
                    pos += nl;
                    continue;
                }
                None => break,
            }
        }
        let start = pos;
        let line = line_of(start) + 1;
        // `export` prefix.
        let mut s = &src[pos..];
        if let Some(after) = s.strip_prefix("export") {
            if after.starts_with(|c: char| c.is_whitespace()) {
                s = after.trim_start_matches(is_space);
            }
        }
        // Key.
        let mut key_end = None;
        for (i, c) in s.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key_end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                ch => return Err(DotenvError::BadKey { line, ch }),
            }
        }
        let Some((i, term)) = key_end else {
            // A last line without `=` and without a newline: a bare key.
            let key = s.trim_end().to_owned();
            check_key(&key, line)?;
            let end = src.len();
            entries.push(Entry {
                key,
                value: None,
                first_line: line - 1,
                last_line: line_of(end),
            });
            break;
        };
        let key = s[..i].trim_end().to_owned();
        check_key(&key, line)?;
        let after_key = &s[i + 1..];
        let consumed = src.len() - after_key.len();
        if term == '\n' {
            if let Some(v) = lookup(&key) {
                own.insert(key.clone(), v);
            }
            entries.push(Entry {
                key,
                value: None,
                first_line: line - 1,
                last_line: line - 1,
            });
            pos = consumed;
            continue;
        }
        let v = after_key.trim_start_matches(is_space);
        let vstart = src.len() - v.len();
        let mapping = |name: &str| lookup(name).or_else(|| own.get(name).cloned());
        let (value, next) = match v.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => {
                let mut chars: Vec<u8> = Vec::new();
                let mut escape = false;
                let mut close = None;
                for (j, &b) in v.as_bytes().iter().enumerate().skip(1) {
                    if b != q {
                        if !escape && b == b'\\' {
                            escape = true;
                            continue;
                        }
                        if escape {
                            escape = false;
                            chars.push(b'\\');
                        }
                        chars.push(b);
                        continue;
                    }
                    if escape {
                        escape = false;
                        chars.push(b);
                        continue;
                    }
                    close = Some(j);
                    break;
                }
                let Some(j) = close else {
                    return Err(DotenvError::Unterminated { line, key });
                };
                let raw = String::from_utf8(chars).expect("split at ASCII bytes");
                let value = if q == b'"' {
                    substitute(&expand_escapes(&raw), &mapping).map_err(|e| e.at(line, &key))?
                } else {
                    raw
                };
                (value, vstart + j + 1)
            }
            _ => {
                let (line_text, next) = match v.find('\n') {
                    Some(nl) => (&v[..nl], vstart + nl + 1),
                    None => (v, src.len()),
                };
                let text = line_text.split(" #").next().unwrap_or("").trim_end();
                let value = substitute(text, &mapping).map_err(|e| e.at(line, &key))?;
                (value, next)
            }
        };
        let last = line_of(next.saturating_sub(1).max(start));
        own.insert(key.clone(), value.clone());
        entries.push(Entry {
            key,
            value: Some(value),
            first_line: line - 1,
            last_line: last,
        });
        pos = next;
    }
    Ok(entries)
}

/// The resulting variables (later assignments win).
pub fn to_map(entries: &[Entry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|e| Some((e.key.clone(), e.value.clone()?)))
        .collect()
}

fn check_key(key: &str, line: usize) -> Result<(), DotenvError> {
    if key.contains(' ') {
        return Err(DotenvError::KeyWithSpace { line });
    }
    Ok(())
}

/// Whitespace other than a line break (compose's `isSpace`).
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// Double-quoted escapes; `\$` becomes `$$` so interpolation leaves a literal `$`.
fn expand_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            let ch = s[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let simple = match b[i + 1] {
            b'a' => Some('\u{7}'),
            b'b' => Some('\u{8}'),
            b'c' => None,
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'v' => Some('\u{b}'),
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'$' => {
                out.push_str("$$");
                i += 2;
                continue;
            }
            b'0' => {
                let digits = b[i + 2..]
                    .iter()
                    .take(3)
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let d = &s[i + 2..i + 2 + digits];
                // `\0NNN` is the octal escape `\NNN`; anything else is left as `\NNN`.
                match (digits, u32::from_str_radix(d, 8)) {
                    (3, Ok(n)) if n <= 0xff => out.push(char::from(n as u8)),
                    _ => {
                        out.push('\\');
                        out.push_str(d);
                    }
                }
                i += 2 + digits;
                continue;
            }
            _ => None,
        };
        match simple {
            Some(c) => {
                out.push(c);
                i += 2;
            }
            // `\c` and unknown escapes stay as written.
            None => {
                out.push('\\');
                i += 1;
            }
        }
    }
    out
}

/// An interpolation failure before the line and key are known.
#[derive(Debug)]
enum TemplateError {
    Invalid,
    Required(String),
}

impl TemplateError {
    fn at(self, line: usize, key: &str) -> DotenvError {
        match self {
            TemplateError::Invalid => DotenvError::InvalidTemplate {
                line,
                key: key.to_owned(),
            },
            TemplateError::Required(var) => DotenvError::Required {
                line,
                key: key.to_owned(),
                var,
            },
        }
    }
}

fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'_' || b[0].is_ascii_alphabetic()) {
        return 0;
    }
    1 + b[1..]
        .iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

/// Compose's interpolation of one value.
fn substitute(s: &str, mapping: &dyn Fn(&str) -> Option<String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(d) = rest.find('$') {
        out.push_str(&rest[..d]);
        let after = &rest[d + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let n = name_len(after);
        if n > 0 {
            out.push_str(&mapping(&after[..n]).unwrap_or_default());
            rest = &after[n..];
            continue;
        }
        let Some(inner_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        // `${` must be a valid braced reference closed on this line.
        let n = name_len(inner_start);
        let close = closing_brace(inner_start);
        let (Some(close), true) = (close, n > 0) else {
            return Err(TemplateError::Invalid);
        };
        let body = &inner_start[..close];
        let op = &body[n..];
        if !op.is_empty() && !valid_operator(op) {
            return Err(TemplateError::Invalid);
        }
        out.push_str(&braced(&body[..n], op, mapping)?);
        rest = &inner_start[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `:-x`, `-x`, `:+x`, `+x`, `:?x`, `?x` (the regex compose matches against).
fn valid_operator(op: &str) -> bool {
    let op = op.strip_prefix(':').unwrap_or(op);
    !op.contains('\n') && op.starts_with(['-', '+', '?'])
}

/// Index of the `}` closing a reference whose `{` has been consumed, counting nested
/// `${…}` pairs as compose does.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 1;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => return None,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'{' => {
                depth += 1;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    name: &str,
    op: &str,
    mapping: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let value = mapping(name);
    if op.is_empty() {
        return Ok(value.unwrap_or_default());
    }
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let arg = &op[1..];
    let present = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match op.as_bytes()[0] {
        b'-' if present => Ok(value.unwrap_or_default()),
        b'-' => substitute(arg, mapping),
        b'+' if present => substitute(arg, mapping),
        b'+' => Ok(value.unwrap_or_default()),
        _ if present => Ok(value.unwrap_or_default()),
        _ => Err(TemplateError::Required(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(src: &str) -> BTreeMap<String, String> {
        to_map(&parse(src, &|_| None).unwrap())
    }

    #[test]
    fn compose_rules() {
        let m = map(concat!(
            "\u{feff}# comment\r\n",
            "A=plain value # inline\r\n",
            "export B='single $A \\' quoted'\n",
            "C=\"double\\n$A\\$X \\\"q\\\" \\\\ \\0101\"\n",
            "D: yaml style\n",
            "E=\n",
            "F=${A:-x}/${UNSET:-dflt}/${UNSET-h}/${E:-empty}/${E-set}\n",
            "G=\"multi\r\nline\" # after\n",
            "H=a#b c\t#d\n",
            "I=${UNSET:-${A}}$$\n",
            "  J  =  spaced  \n",
        ));
        assert_eq!(m["A"], "plain value");
        assert_eq!(m["B"], "single $A ' quoted");
        assert_eq!(m["C"], "double\nplain value$X \"q\" \\ A");
        assert_eq!(m["D"], "yaml style");
        assert_eq!(m["E"], "");
        assert_eq!(m["F"], "plain value/dflt/h/empty/");
        assert_eq!(m["G"], "multi\r\nline");
        assert_eq!(m["H"], "a#b c\t#d");
        assert_eq!(m["I"], "plain value$");
        assert_eq!(m["J"], "spaced");
    }

    #[test]
    fn spans_cover_multi_line_values() {
        let e = parse("A=1\nB=\"x\ny\nz\"\n# c\nC=3", &|_| None).unwrap();
        let spans: Vec<_> = e
            .iter()
            .map(|e| (e.key.as_str(), e.first_line, e.last_line))
            .collect();
        assert_eq!(spans, [("A", 0, 0), ("B", 1, 3), ("C", 5, 5)]);
    }

    #[test]
    fn lookup_comes_first_and_bare_keys_inherit() {
        let e = parse("A=file\nB=$A\nOUTER\n", &|k| {
            (k == "A").then(|| "outer".into())
        })
        .unwrap();
        let m = to_map(&e);
        assert_eq!(m["B"], "outer");
        assert_eq!(e[2].value, None);
    }

    #[test]
    fn errors_name_lines_and_keys_never_values() {
        let canary = "canary-9f1e";
        let cases = [
            format!("A=1\nB=\"{canary}\n"),
            format!("A=${{}}{canary}"),
            format!("K=${{X:?{canary}}}"),
            format!("BAD KEY={canary}"),
            format!("B@D={canary}"),
        ];
        for src in cases {
            let err = parse(&src, &|_| None).unwrap_err().to_string();
            assert!(err.starts_with("line "), "{err}");
            assert!(!err.contains(canary), "{err}");
        }
    }
}

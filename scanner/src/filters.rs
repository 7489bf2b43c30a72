//! Value and path filters that turn candidates into non-findings: placeholders,
//! references, documented example keys, low entropy, lock files. Pure functions over
//! strings; they know nothing about where a value came from.

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &str) -> f64 {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Markers of a value that stands for a secret without being one.
const PLACEHOLDER_WORDS: &[&str] = &[
    "xxxx",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "example",
    "dummy",
    "sample",
    "replace",
    "insert_",
    "insert-",
    "redacted",
    "****",
    "....",
    "…",
    "fixme",
    "foobar",
    "lorem",
    "<",
    ">",
    "notreal",
    "not_real",
    "not-real",
    "put_",
    "enter_",
    "enter-",
    "secret_here",
    "key_here",
    "_here",
    "-here",
];

/// Whether a value is a placeholder such as `your-key-here`, `xxxx…`, `changeme`,
/// `<token>`, a run of one character or an ascending run like `12345678`.
pub(crate) fn is_placeholder(value: &str) -> bool {
    if is_placeholder_text(value) {
        return true;
    }
    // The part after a key prefix (`gsk_`, `dop_v1_`, `sk-or-v1-`): an all-zero or
    // repeated body is a placeholder whatever prefix it wears.
    let head = &value.as_bytes()[..value.len().min(12)];
    head.iter()
        .rposition(|b| matches!(b, b'-' | b'_' | b'.'))
        .map(|i| &value[i + 1..])
        .filter(|body| body.len() >= 8)
        .is_some_and(is_placeholder_text)
}

fn is_placeholder_text(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    // Short words only as words (`your-key-here`, `TODO`), not inside random text.
    for w in ["your", "todo"] {
        if lower.match_indices(w).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + w.len()..].chars().next();
            let edge = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
            edge(before) || edge(after)
        }) {
            return true;
        }
    }
    let bytes = lower.as_bytes();
    if bytes.is_empty() {
        return true;
    }
    // One character repeated (after an optional prefix): aaaa…, 0000…, ____.
    let distinct = {
        let mut seen = [false; 256];
        let mut n = 0;
        for &b in bytes {
            if !seen[b as usize] {
                seen[b as usize] = true;
                n += 1;
            }
        }
        n
    };
    if distinct <= 2 && bytes.len() >= 4 {
        return true;
    }
    // A repeated unit: abcabcabc, 0123456789abcdef0123456789abcdef.
    if (8..=256).contains(&bytes.len())
        && (1..=bytes.len() / 2).any(|p| bytes[p..] == bytes[..bytes.len() - p])
    {
        return true;
    }
    // Ascending runs: 0123456789, abcdefgh.
    let mut run = 1;
    for w in bytes.windows(2) {
        if w[1] == w[0].wrapping_add(1) {
            run += 1;
            if run >= 8 && run * 2 >= bytes.len() {
                return true;
            }
        } else {
            run = 1;
        }
    }
    false
}

/// Whether a value refers to a secret held elsewhere: `${VAR}`, `$VAR`,
/// `os.environ[...]`, `{{ secrets.X }}`, `%(x)s`, a vault or sops reference.
pub(crate) fn is_reference(value: &str) -> bool {
    let v = value.trim();
    if v.starts_with('$') || is_sigil_reference(v) {
        return true;
    }
    const REFS: &[&str] = &[
        "${",
        "{{",
        "}}",
        "$(",
        "%(",
        "<%",
        "os.environ",
        "os.getenv",
        "getenv(",
        "process.env",
        "env(",
        "env[",
        "environ[",
        "environ.get",
        "settings.",
        "config.",
        "secrets.",
        "vault:",
        "enc[",
        "arn:aws:",
        "secretref",
        "valuefrom",
        "secretkeyref",
        "$ansible_vault",
    ];
    let lower = v.to_ascii_lowercase();
    REFS.iter().any(|r| lower.contains(r))
}

/// `%NAME%` (Windows), `@name` / `@Microsoft.KeyVault(…)` (Azure app settings) and
/// YAML tags such as `!Ref X` / `!vault |`. A value that merely begins with `%`, `@`
/// or `!` (a generated password) is not a reference.
fn is_sigil_reference(v: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && s.as_bytes()[0].is_ascii_alphabetic()
    };
    if let Some(rest) = v.strip_prefix('%') {
        return rest.starts_with('(') || rest.strip_suffix('%').is_some_and(ident);
    }
    if let Some(rest) = v.strip_prefix('@') {
        return rest.to_ascii_lowercase().starts_with("microsoft.keyvault(")
            || rest.split('.').all(ident);
    }
    if let Some(rest) = v.strip_prefix('!') {
        let tag = rest.split([' ', '\t']).next().unwrap_or("");
        return ident(tag) && (rest.len() == tag.len() || rest[tag.len()..].starts_with(' '));
    }
    false
}

/// Documented example keys (AWS, Stripe, jwt.io…) and values containing `EXAMPLE`.
pub(crate) fn is_documented_example(value: &str) -> bool {
    if value.contains("EXAMPLE") || value.to_ascii_lowercase().contains("example") {
        return true;
    }
    // Published sample keys that are not marked as such.
    const KNOWN: &[&str] = &[
        // Stripe's documentation keys.
        "4eC39HqLyjWDarjtT1zdp7dc",
        "BQokikJOvBiI2HlWgH4olfQ2",
        // jwt.io's default token signature.
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        // GitHub's documentation token.
        "16C7e42F292c6912E7710c838347Ae178B4a",
        // The Azure storage emulator's published account key.
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    ];
    KNOWN.iter().any(|k| value.contains(k))
}

/// Passwords so common in local test setups that reporting them is noise
/// (unless they are one of Dify's shipped defaults, checked before this).
pub(crate) fn is_trivial_password(value: &str) -> bool {
    const TRIVIAL: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "postgres",
        "postgresql",
        "mysql",
        "root",
        "admin",
        "test",
        "tests",
        "testing",
        "secret",
        "guest",
        "user",
        "redis",
        "rabbitmq",
        "mongo",
        "mongodb",
        "example",
        "changeme",
        "default",
        "letmein",
        "pwd",
        "1234",
        "12345",
        "123456",
        "mariadb",
        "sa",
        "oracle",
        "docker",
        "dev",
        "development",
        "local",
        "demo",
        "qwerty",
        "toor",
        "hunter2",
        "sqlx",
        "pg",
    ];
    let lower = value.to_ascii_lowercase();
    TRIVIAL.contains(&lower.as_str())
}

/// Whether `s` is a UUID.
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Counts of character classes: (lower, upper, digit, other).
pub(crate) fn classes(s: &str) -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for b in s.bytes() {
        if b.is_ascii_lowercase() {
            c.0 += 1;
        } else if b.is_ascii_uppercase() {
            c.1 += 1;
        } else if b.is_ascii_digit() {
            c.2 += 1;
        } else {
            c.3 += 1;
        }
    }
    c
}

/// Whether a random-looking token mixes letters and digits the way generated keys do
/// (a pure word such as `abcdefghijklmnop` or an identifier is not one).
pub(crate) fn looks_generated(s: &str, min_entropy: f64) -> bool {
    let (lo, up, di, _) = classes(s);
    let kinds = usize::from(lo > 0) + usize::from(up > 0) + usize::from(di > 0);
    kinds >= 2 && entropy(s) >= min_entropy
}

/// Lock files: their hashes are not secrets and nothing in them is configuration.
pub(crate) fn is_lock_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    name.ends_with(".lock")
        || matches!(
            name.as_str(),
            "package-lock.json"
                | "pnpm-lock.yaml"
                | "npm-shrinkwrap.json"
                | "go.sum"
                | "packages.lock.json"
                | "gradle.lockfile"
        )
}

/// Configuration files where a secret-named assignment is a finding: `.env` files,
/// YAML, JSON, TOML, INI, properties, Dockerfiles and compose files.
pub fn is_config_path(path: &str) -> bool {
    if is_lock_file(path) {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if name == ".env"
        || name.starts_with(".env.")
        || name.ends_with(".env")
        || name.starts_with("env.")
        || name.starts_with("dockerfile")
        || name.ends_with(".dockerfile")
        || name.starts_with("containerfile")
        || name == ".npmrc"
        || name == ".pypirc"
        || name == ".netrc"
        || name == ".git-credentials"
    {
        return true;
    }
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    matches!(
        ext,
        "yaml" | "yml" | "json" | "toml" | "ini" | "cfg" | "conf" | "properties" | "env" | "tfvars"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for v in [
            "your-openai-key-here",
            "xxxxxxxxxxxxxxxx",
            "changeme",
            "<token>",
            "00000000",
            "1234567890",
            "sk-xxxxxxxxxxxxxxxxxxxxxxxx",
            "gsk_0000000000000000000000000000000000000000000000000000",
            "dop_v1_0000000000000000000000000000000000000000000000000000000000000000",
            "sbp_0123456789012345678901234567890123456789",
            "hvs.abababababababababababababababababababab",
        ] {
            assert!(is_placeholder(v), "{v}");
        }
        for v in ["q8Zr2LmX0pT4vN7w", "difyai123456", "hunter2!"] {
            assert!(!is_placeholder(v), "{v}");
        }
    }

    #[test]
    fn references() {
        for v in [
            "${DB_PASSWORD}",
            "$SECRET",
            "os.environ['X']",
            "{{ secrets.TOKEN }}",
        ] {
            assert!(is_reference(v), "{v}");
        }
        assert!(!is_reference("q8Zr2LmX0pT4vN7w"));
        for v in [
            "%APPDATA%",
            "%(password)s",
            "@Microsoft.KeyVault(SecretUri=x)",
            "!Ref DbPass",
        ] {
            assert!(is_reference(v), "{v}");
        }
    }

    #[test]
    fn generated_passwords_starting_with_a_sigil_are_values_not_references() {
        for v in [
            "%Kq9#zL@2mW!xP7",
            "@8fGh%2kL#pQ9z",
            "!Zx9@Lm#4Kq%8w",
            "%ab12CD",
        ] {
            assert!(!is_reference(v), "{v}");
        }
    }

    #[test]
    fn config_paths() {
        for p in [
            ".env",
            "docker/.env.example",
            "a/b.yaml",
            "Dockerfile",
            "compose.yml",
            "x.ini",
        ] {
            assert!(is_config_path(p), "{p}");
        }
        for p in [
            "src/main.rs",
            "Cargo.lock",
            "web/pnpm-lock.yaml",
            "README.md",
        ] {
            assert!(!is_config_path(p), "{p}");
        }
    }

    #[test]
    fn entropy_orders_values() {
        assert!(entropy("aaaaaaaa") < 0.1);
        assert!(entropy("q8Zr2LmX0pT4vN7w") > 3.5);
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    }
}

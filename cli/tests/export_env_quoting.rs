//! `envseal export --format env` output is read back byte for byte, and runs nothing,
//! by a real `sh` and `bash` (`set -a; . ./file`) and under docker compose's `.env`
//! rules; values that form cannot carry are refused, never altered.

use envseal::cmd_export::{env_quote, EnvQuoteError};
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

/// Sources `file` in `shell` with `set -a` and writes `$V` to `out`, byte for byte.
fn read_back(shell: &str, dir: &Path, file: &Path) -> Vec<u8> {
    let out = dir.join(format!("out-{shell}"));
    let status = Command::new(shell)
        .current_dir(dir)
        .arg("-c")
        .arg("set -a; . \"$1\"; printf '%s' \"$V\" > \"$2\"")
        .arg(shell)
        .arg(file)
        .arg(&out)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .expect("running the shell");
    assert!(status.success(), "{shell} failed to source the file");
    std::fs::read(out).expect("shell output")
}

/// docker compose's `.env` rules for a single-quoted value: the value runs to the
/// first `'` not preceded by a backslash and is taken literally (no escapes, no
/// interpolation); CR LF is read as LF.
fn compose_read(line: &str) -> Option<String> {
    let text = line.replace("\r\n", "\n");
    let (_, raw) = text.split_once('=')?;
    let rest = raw.strip_prefix('\'')?;
    let bytes = rest.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'\'' && (i == 0 || bytes[i - 1] != b'\\') {
            let after = &rest[i + 1..];
            if !after.trim_end_matches('\n').is_empty() {
                return None;
            }
            return Some(rest[..i].to_owned());
        }
    }
    None
}

fn check_round_trip(value: &str) -> Result<(), TestCaseError> {
    match env_quote(value) {
        Ok(quoted) => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("x.env");
            let line = format!("V={quoted}\n");
            std::fs::write(&file, &line).unwrap();
            for shell in ["sh", "bash"] {
                prop_assert_eq!(read_back(shell, dir.path(), &file), value.as_bytes());
            }
            let composed = compose_read(&line);
            prop_assert_eq!(composed.as_deref(), Some(value));
            let entries: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with("out-") && n != "x.env")
                .collect();
            prop_assert!(entries.is_empty(), "sourcing created {:?}", entries);
        }
        Err(why) => {
            let expected = match why {
                EnvQuoteError::Nul => value.contains('\0'),
                EnvQuoteError::SingleQuote => value.contains('\''),
                EnvQuoteError::CarriageReturn => value.contains('\r'),
                EnvQuoteError::TrailingBackslash => value.ends_with('\\'),
            };
            prop_assert!(expected, "refused {:?} for {:?}", why, value);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_text_round_trips_through_sh_bash_and_compose_rules(value in any::<String>()) {
        check_round_trip(&value)?;
    }

    #[test]
    fn shell_metacharacters_round_trip(value in "[ -~\\n\\t]{0,40}") {
        check_round_trip(&value)?;
    }
}

#[test]
fn export_env_backticks_and_substitutions_run_nothing() {
    for value in [
        "`touch pwned`",
        "$(touch pwned)",
        "${HOME:-x}$(touch pwned)",
        "a\"b`touch pwned`\\\"",
        "line1\nline2 `touch pwned`\n",
        "\\$(touch pwned)x",
        "; touch pwned #",
    ] {
        check_round_trip(value).unwrap();
    }
}

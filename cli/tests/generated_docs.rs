//! Everything generated from the clap definitions: the CLI reference `docs/cli.md`
//! (checked current), bash completion loaded in a real bash, man pages, and
//! `--version` naming the commit.

use std::path::PathBuf;
use std::process::Command;

fn envseal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_envseal"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn cli_reference_is_current() {
    let path = repo_root().join("docs/cli.md");
    let generated = envseal::cmd_docs::reference();
    if std::env::var("ENVSEAL_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/cli.md is stale: run ENVSEAL_UPDATE_DOCS=1 cargo test -p envseal --test \
         generated_docs cli_reference_is_current"
    );
    for needle in [
        "`envseal secrets set`",
        "`--allow-empty`",
        "`envseal run`",
        "`--allow-name` `NAMES`",
        "`envseal completions`",
        "\"created_at\"",
    ] {
        assert!(
            generated.contains(needle),
            "{needle} missing from the reference"
        );
    }
}

#[test]
fn bash_completion_completes_sec_to_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("envseal.bash");
    let out = envseal().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = r#"
        source "$1" || exit 3
        complete -p envseal >/dev/null || exit 4
        COMP_WORDS=(envseal sec); COMP_CWORD=1; COMP_LINE="envseal sec"; COMP_POINT=${#COMP_LINE}
        _envseal envseal sec envseal
        printf '%s\n' "${COMPREPLY[@]}"
        COMP_WORDS=(envseal secrets s); COMP_CWORD=2; COMP_LINE="envseal secrets s"; COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _envseal envseal s secrets
        printf 'sub:%s\n' "${COMPREPLY[@]}"
    "#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", probe, "bash"])
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = stdout.lines().collect();
    assert!(words.contains(&"secrets"), "{stdout}");
    assert!(
        !words.contains(&"scan"),
        "`sec` also completed to scan: {stdout}"
    );
    assert!(words.contains(&"sub:set"), "{stdout}");
}

#[test]
fn completions_exist_for_every_supported_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = envseal().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("secrets"), "{shell}: {text}");
    }
    let out = envseal().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let status = envseal()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    for page in [
        "envseal.1",
        "envseal-secrets.1",
        "envseal-secrets-set.1",
        "envseal-run.1",
        "envseal-tokens-rotate.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    let out = envseal().arg("man").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH envseal 1"));
}

#[test]
fn version_names_the_commit() {
    let out = envseal().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert!(
        text.starts_with(&format!("envseal {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    if std::env::var_os("ENVSEAL_BUILD_COMMIT").is_none() {
        assert!(text.contains(head.trim()), "{text} lacks {head}");
    }
}

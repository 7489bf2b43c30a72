//! The real pre-commit framework runs the hook from `.pre-commit-hooks.yaml`: a
//! commit that adds a key is blocked, a clean one passes.

#[path = "../../scanner/tests/common/corpus.rs"]
mod corpus;
#[path = "../../scanner/tests/common/git.rs"]
mod git;

use std::path::PathBuf;
use std::process::Command;

fn find_pre_commit() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/envseal-ci-tools/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("pre-commit"))
        .find(|p| p.is_file())
}

#[test]
fn pre_commit_hook_blocks_a_key_and_passes_a_clean_commit() {
    let Some(pre_commit) = find_pre_commit() else {
        if std::env::var("ENVSEAL_TEST_STRICT").as_deref() == Ok("1") {
            panic!("pre-commit is not on PATH and ENVSEAL_TEST_STRICT=1");
        }
        eprintln!("skipping: pre-commit is not on PATH (pip install pre-commit)");
        return;
    };
    // A hook repository holding this project's real .pre-commit-hooks.yaml.
    let mut hooks = git::Repo::new();
    let manifest = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.pre-commit-hooks.yaml"),
    )
    .expect("the hooks manifest exists at the repository root");
    hooks.write(".pre-commit-hooks.yaml", &manifest);
    let rev = hooks.commit("hooks");

    let mut project = git::Repo::new();
    project.write(
        ".pre-commit-config.yaml",
        &format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: envseal-scan\n",
            hooks.path().display()
        ),
    );
    project.commit("config");
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_envseal"))
        .parent()
        .unwrap()
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .current_dir(project.path())
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", cache.path())
            .env("HOME", project.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap()
    };
    let install = run(&[pre_commit.to_str().unwrap(), "install"]);
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );

    let key = corpus::github_token('p');
    project.write("deploy.sh", &format!("export GITHUB_TOKEN={key}\n"));
    project.git(&["add", "deploy.sh"]);
    // A commit attempt: did it succeed, and what did git and the hook print.
    let commit = |extra: &[&str]| {
        let out = run(&[&["git", "commit", "-q"], extra].concat());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = commit(&["-m", "leak"]);
    assert!(!ok, "the commit with a key must be blocked:\n{text}");
    assert!(text.contains("github-token"), "{text}");
    assert!(
        !text.contains(&key),
        "the hook output must not reveal the key"
    );
    assert_eq!(project.git(&["rev-list", "--count", "HEAD"]), "1");

    project.git(&["reset", "-q"]);
    std::fs::remove_file(project.path().join("deploy.sh")).unwrap();
    project.write("notes.md", "nothing secret here\n");
    project.git(&["add", "notes.md"]);
    let (ok, text) = commit(&["-m", "clean"]);
    assert!(ok, "{text}");
    assert_eq!(project.git(&["rev-list", "--count", "HEAD"]), "2");

    // `git commit -a` stages into a temporary index (GIT_INDEX_FILE) just before the
    // hook runs: a key in a modified, unstaged tracked file is still blocked.
    let key = corpus::github_token('p');
    project.write("notes.md", &format!("token: {key}\n"));
    let (ok, text) = commit(&["-a", "-m", "leak"]);
    assert!(!ok, "commit -a must be blocked:\n{text}");
    assert!(text.contains("github-token"), "{text}");
    assert_eq!(project.git(&["rev-list", "--count", "HEAD"]), "2");
}

//! Git scans over real repositories built with the `git` command line: history-only
//! secrets, other branches, tags, renames, packed and loose objects, encodings,
//! ranges, staged changes, corrupt objects and huge blobs.

mod common;

use common::corpus::{github_token, openai_project_key, password, rand_str};
use common::git::Repo;
use envseal_scan::{git, NoProgress, Notice, ScanOptions, ScanResult, Scanner};

fn scan(repo: &Repo) -> ScanResult {
    git::scan_repository(
        repo.path(),
        &Scanner::new(),
        &ScanOptions::default(),
        &[],
        &NoProgress,
    )
    .expect("scan runs")
}

fn only<'a>(result: &'a ScanResult, value: &str) -> &'a envseal_scan::Finding {
    let matching: Vec<_> = result
        .findings
        .iter()
        .filter(|f| f.secret.expose() == value)
        .collect();
    assert_eq!(matching.len(), 1, "exactly one finding for the value");
    matching[0]
}

#[test]
fn secret_added_then_deleted_is_found_in_history_with_its_commit() {
    let mut repo = Repo::new();
    repo.write("README.md", "hello\n");
    repo.commit("init");
    let key = github_token('p');
    repo.write("ci/deploy.sh", &format!("TOKEN={key}\n"));
    let introduced = repo.commit("add deploy");
    std::fs::remove_file(repo.path().join("ci/deploy.sh")).unwrap();
    repo.commit("remove deploy");
    for packed in [false, true] {
        if packed {
            repo.pack();
        }
        let result = scan(&repo);
        let f = only(&result, &key);
        assert_eq!(f.rule.id(), "github-token");
        assert_eq!(f.first.path.as_deref(), Some("ci/deploy.sh"));
        assert_eq!(f.first.line, 1);
        assert_eq!(
            f.first.commit.as_ref().unwrap().id,
            introduced,
            "packed={packed}"
        );
    }
}

#[test]
fn secret_only_on_another_branch_and_in_a_tag_is_found() {
    let mut repo = Repo::new();
    repo.write("a.txt", "a\n");
    repo.commit("init");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let key = openai_project_key();
    repo.write("llm.py", &format!("KEY = \"{key}\"\n"));
    let on_branch = repo.commit("feature");
    repo.git(&["checkout", "-q", "main"]);
    // A tag on a commit that no branch contains.
    repo.git(&["checkout", "-q", "--detach", "main"]);
    let pw = password();
    repo.write("db/.env", &format!("DB_PASSWORD={pw}\n"));
    let tagged = repo.commit("tagged only");
    repo.git(&["tag", "-a", "v9", "-m", "release"]);
    repo.git(&["checkout", "-q", "main"]);
    let result = scan(&repo);
    assert_eq!(
        only(&result, &key).first.commit.as_ref().unwrap().id,
        on_branch
    );
    let f = only(&result, &pw);
    assert_eq!(f.rule.id(), "secret-assignment");
    assert_eq!(f.first.commit.as_ref().unwrap().id, tagged);
}

#[test]
fn renamed_file_lists_both_paths_and_the_original_commit() {
    let mut repo = Repo::new();
    let key = format!(
        "{}_{}_{}",
        "sk",
        "live",
        rand_str(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            24
        )
    );
    repo.write("old/pay.rb", &format!("Stripe.api_key = '{key}'\n"));
    let first = repo.commit("add");
    std::fs::create_dir_all(repo.path().join("new")).unwrap();
    repo.git(&["mv", "old/pay.rb", "new/payments.rb"]);
    repo.commit("rename");
    let result = scan(&repo);
    let f = only(&result, &key);
    assert_eq!(f.first.path.as_deref(), Some("old/pay.rb"));
    assert_eq!(f.first.commit.as_ref().unwrap().id, first);
    assert_eq!(f.others.len(), 1);
    assert_eq!(f.others[0].path.as_deref(), Some("new/payments.rb"));
    // One blob, scanned once.
    assert_eq!(result.stats.blobs, 1);
}

#[test]
fn kubernetes_secret_and_percent_encoded_url_passwords_in_history() {
    use base64::Engine as _;
    let mut repo = Repo::new();
    let key = openai_project_key();
    let pw = password();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    repo.write(
        "k8s/llm-secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: llm\ndata:\n  OPENAI_API_KEY: {}\n  DB_PASSWORD: {}\n",
            b64(&key),
            b64(&pw)
        ),
    );
    let url_pw = format!(
        "{}#{}@x",
        rand_str(b"abcdefghijkmnpqrstuvwxyz23456789", 8),
        rand_str(b"ABCDEFGHJKLMNPQRSTUVWXYZ", 6)
    );
    let enc = url_pw.replace('#', "%23").replace('@', "%40");
    repo.write(
        "settings.py",
        &format!("DATABASE_URL = 'postgresql://dify:{enc}@db:5432/dify'\n"),
    );
    repo.commit("k8s");
    let result = scan(&repo);
    let f = only(&result, &key);
    assert_eq!(f.rule.id(), "openai-api-key");
    assert_eq!(f.encoding, envseal_scan::Encoding::Base64);
    assert_eq!(f.first.line, 6);
    assert_eq!(only(&result, &pw).rule.id(), "secret-assignment");
    let u = only(&result, &url_pw);
    assert_eq!(u.rule.id(), "postgres-url-password");
    assert_eq!(u.encoding, envseal_scan::Encoding::Percent);
}

#[test]
fn one_finding_per_value_across_files_and_commits() {
    let mut repo = Repo::new();
    let key = github_token('o');
    repo.write("a.sh", &format!("A={key}\n"));
    repo.commit("a");
    repo.write("b/c.json", &format!("{{\"t\": \"{key}\"}}\n"));
    repo.commit("b");
    let result = scan(&repo);
    let f = only(&result, &key);
    assert_eq!(f.first.path.as_deref(), Some("a.sh"));
    assert_eq!(f.others.len(), 1);
    assert_eq!(result.findings.len(), 1);
}

#[test]
fn since_and_state_scan_only_new_commits() {
    let mut repo = Repo::new();
    let old = github_token('p');
    repo.write("old.sh", &format!("T={old}\n"));
    let base = repo.commit("old");
    let new = github_token('u');
    repo.write("new.sh", &format!("T={new}\n"));
    let newest = repo.commit("new");
    let result = git::scan_repository(
        repo.path(),
        &Scanner::new(),
        &ScanOptions::default(),
        &[git::resolve_commit(repo.path(), "HEAD~1").unwrap()],
        &NoProgress,
    )
    .unwrap();
    assert_eq!(result.findings.len(), 1);
    assert_eq!(result.findings[0].secret.expose(), new);
    assert_eq!(result.findings[0].first.commit.as_ref().unwrap().id, newest);
    assert_eq!(git::resolve_commit(repo.path(), "main~1").unwrap(), base);
    // With the current tips hidden there is nothing new.
    let tips = git::tips(repo.path()).unwrap();
    let result = git::scan_repository(
        repo.path(),
        &Scanner::new(),
        &ScanOptions::default(),
        &tips,
        &NoProgress,
    )
    .unwrap();
    assert!(result.findings.is_empty());
}

#[test]
fn staged_reports_only_what_the_next_commit_adds() {
    let mut repo = Repo::new();
    let committed = github_token('p');
    repo.write("app/.env", &format!("GITHUB_TOKEN={committed}\n"));
    repo.commit("existing");
    let staged = password();
    repo.write(
        "app/.env",
        &format!("GITHUB_TOKEN={committed}\nDB_PASSWORD={staged}\n"),
    );
    repo.git(&["add", "app/.env"]);
    let unstaged = github_token('s');
    repo.write("later.sh", &format!("T={unstaged}\n"));
    let result = git::scan_staged(repo.path(), &Scanner::new(), &ScanOptions::default()).unwrap();
    let values: Vec<_> = result
        .findings
        .iter()
        .map(|f| f.secret.expose().to_owned())
        .collect();
    assert_eq!(values, vec![staged.clone()]);
    assert_eq!(result.findings[0].first.path.as_deref(), Some("app/.env"));
    assert_eq!(result.findings[0].first.line, 2);
    // Nothing staged: clean.
    repo.commit("commit it");
    let result = git::scan_staged(repo.path(), &Scanner::new(), &ScanOptions::default()).unwrap();
    assert!(result.findings.is_empty());
}

/// The staged diff skips directories whose cached tree matches HEAD; whatever the
/// index's TREE extension holds, the staged set must be what git itself reports.
#[test]
fn staged_matches_git_in_nested_directories_with_and_without_cached_trees() {
    let mut repo = Repo::new();
    let old = github_token('p');
    for dir in ["a", "a/b", "a/b/c", "d", "e/f"] {
        for i in 0..3 {
            repo.write(&format!("{dir}/f{i}.txt"), &format!("plain {dir} {i}\n"));
        }
    }
    repo.write("a/b/c/old.env", &format!("GITHUB_TOKEN={old}\n"));
    repo.write("q", "a file that becomes a directory\n");
    repo.write("gone/x.txt", "removed from the index\n");
    repo.commit("tree");

    let mut staged = Vec::new();
    let mut stage = |repo: &Repo, path: &str| {
        let key = github_token('p');
        repo.write(path, &format!("GITHUB_TOKEN={key}\n"));
        repo.git(&["add", path]);
        staged.push((path.to_owned(), key));
    };
    stage(&repo, "a/b/c/deep.env"); // new file, deep
    stage(&repo, "a/b/f1.txt"); // changed file in the middle
    stage(&repo, "x/y/z.env"); // new directory chain
    repo.git(&["rm", "-q", "q"]);
    stage(&repo, "q/r.env"); // a file replaced by a directory
    repo.git(&["rm", "-q", "--cached", "gone/x.txt"]); // removals add nothing
                                                       // Changed but not staged, and untracked: not part of the next commit.
    repo.write("d/f0.txt", &format!("GITHUB_TOKEN={}\n", github_token('p')));
    repo.write(
        "e/f/new.env",
        &format!("GITHUB_TOKEN={}\n", github_token('p')),
    );
    // A value already committed elsewhere is still new in a new file.
    repo.write("e/copy.env", &format!("GITHUB_TOKEN={old}\n"));
    repo.git(&["add", "e/copy.env"]);
    staged.push(("e/copy.env".to_owned(), old.clone()));
    staged.sort();

    let check = |what: &str| {
        let mut git_says: Vec<String> = repo
            .git(&["diff", "--cached", "--name-only", "--diff-filter=AM"])
            .lines()
            .map(str::to_owned)
            .collect();
        git_says.sort();
        let want: Vec<String> = staged.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(git_says, want, "{what}: the fixture itself");
        let result =
            git::scan_staged(repo.path(), &Scanner::new(), &ScanOptions::default()).unwrap();
        let mut found: Vec<(String, String)> = result
            .findings
            .iter()
            .map(|f| {
                (
                    f.first.path.clone().unwrap_or_default(),
                    f.secret.expose().to_owned(),
                )
            })
            .collect();
        found.sort();
        assert_eq!(found, staged, "{what}");
    };
    // `git write-tree` fills the TREE extension: unchanged directories are skipped.
    repo.git(&["write-tree"]);
    check("with cached trees");
    // Rebuilt by `git add` alone the index has no TREE extension: every directory
    // is compared.
    std::fs::remove_file(repo.path().join(".git/index")).unwrap();
    repo.git(&["add", "-A", "."]);
    repo.git(&["rm", "-q", "--cached", "d/f0.txt", "e/f/new.env"]);
    repo.git(&["checkout", "HEAD", "--", "d/f0.txt"]);
    repo.git(&["add", "d/f0.txt"]);
    check("without cached trees");
}

/// In a sparse index a directory outside the cone is one entry naming its tree; a
/// staged change inside it must still be scanned.
#[test]
fn staged_changes_inside_a_sparse_directory_are_scanned() {
    let mut repo = Repo::new();
    repo.write("a/f.txt", "in the cone\n");
    repo.write("b/f.txt", "outside the cone\n");
    repo.commit("base");
    let key = github_token('p');
    repo.write("b/deep/k.env", &format!("GITHUB_TOKEN={key}\n"));
    repo.commit("key outside the cone");
    repo.git(&["sparse-checkout", "set", "--cone", "--sparse-index", "a"]);
    // The index keeps the second commit's trees, HEAD goes back to the first: the
    // key is staged, inside the sparse directory entry `b/`.
    repo.git(&["reset", "-q", "--soft", "HEAD~1"]);
    let listed = repo.git(&["ls-files", "--sparse"]);
    assert!(
        listed.lines().any(|l| l == "b/"),
        "not a sparse index: {listed}"
    );
    assert_eq!(
        repo.git(&["diff", "--cached", "--name-only"]).trim(),
        "b/deep/k.env"
    );
    let result = git::scan_staged(repo.path(), &Scanner::new(), &ScanOptions::default()).unwrap();
    let found: Vec<_> = result
        .findings
        .iter()
        .map(|f| (f.first.path.clone(), f.secret.expose().to_owned()))
        .collect();
    assert_eq!(found, vec![(Some("b/deep/k.env".to_owned()), key)]);
}

#[test]
fn staged_in_a_repository_without_commits() {
    let repo = Repo::new();
    let key = github_token('p');
    repo.write("x.sh", &format!("T={key}\n"));
    repo.git(&["add", "x.sh"]);
    let result = git::scan_staged(repo.path(), &Scanner::new(), &ScanOptions::default()).unwrap();
    assert_eq!(result.findings.len(), 1);
}

#[test]
fn huge_blobs_are_skipped_with_a_notice() {
    let mut repo = Repo::new();
    let key = github_token('p');
    repo.write("big.txt", &format!("{}\nT={key}\n", "a".repeat(10_000)));
    repo.commit("big");
    let opts = ScanOptions {
        max_blob_size: 1000,
        ..ScanOptions::default()
    };
    let result =
        git::scan_repository(repo.path(), &Scanner::new(), &opts, &[], &NoProgress).unwrap();
    assert!(result.findings.is_empty());
    assert!(result
        .notices
        .iter()
        .any(|n| matches!(n, Notice::TooLarge { size, .. } if *size > 10_000)));
}

#[test]
fn corrupt_loose_object_is_a_notice_not_a_crash() {
    let mut repo = Repo::new();
    let key = github_token('p');
    repo.write("good.sh", &format!("T={key}\n"));
    repo.write("bad.txt", "this blob will be damaged\n");
    repo.commit("two files");
    let bad = repo.git(&["hash-object", "bad.txt"]);
    let obj = repo
        .path()
        .join(".git/objects")
        .join(&bad[..2])
        .join(&bad[2..]);
    let mut perms = std::fs::metadata(&obj).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&obj, perms).unwrap();
    std::fs::write(&obj, b"\x78\x9c garbage that is not zlib").unwrap();
    let result = scan(&repo);
    only(&result, &key);
    assert!(result
        .notices
        .iter()
        .any(|n| matches!(n, Notice::Unreadable { what, .. } if what.contains(&bad))));
}

#[test]
fn corrupt_pack_is_a_notice_not_a_crash() {
    let mut repo = Repo::new();
    for i in 0..20 {
        repo.write(
            &format!("f{i}.txt"),
            &format!("{}\n", rand_str(b"abcdef0123456789", 2000)),
        );
    }
    let key = github_token('p');
    repo.write("k.sh", &format!("T={key}\n"));
    repo.commit("many");
    repo.pack();
    let pack_dir = repo.path().join(".git/objects/pack");
    let pack = std::fs::read_dir(&pack_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let mut perms = std::fs::metadata(&pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).unwrap();
    std::fs::write(&pack, bytes).unwrap();
    // The damaged entries are found by their CRC32 and reported; what can still be
    // read is scanned. Never a panic, never silence.
    match git::scan_repository(
        repo.path(),
        &Scanner::new(),
        &ScanOptions::default(),
        &[],
        &NoProgress,
    ) {
        Ok(result) => {
            let notices: Vec<String> = result.notices.iter().map(|n| n.to_string()).collect();
            assert!(
                notices.iter().any(|n| n.contains("fail their CRC32 check")),
                "damage must be reported: {notices:?}"
            );
            let about_the_pack = notices.iter().filter(|n| n.contains("read pack ")).count();
            assert_eq!(
                about_the_pack, 1,
                "one notice per damaged pack: {notices:?}"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn not_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = git::scan_repository(
        dir.path(),
        &Scanner::new(),
        &ScanOptions::default(),
        &[],
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--no-git"), "{err}");
}

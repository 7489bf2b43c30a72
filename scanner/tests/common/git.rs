//! A throwaway Git repository driven through the real `git` command line.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Repo {
    pub dir: tempfile::TempDir,
    commits: u32,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repo { dir, commits: 0 };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let date = format!("{} +0000", 1_700_000_000 + u64::from(self.commits) * 60);
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .stdin(std::process::Stdio::null())
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    /// Packs every reachable object into one pack and drops the loose copies
    /// (plumbing only: `rev-list | pack-objects`, then `prune-packed`).
    pub fn pack(&self) {
        use std::io::Write as _;
        let objects = self.git(&["rev-list", "--objects", "--all"]);
        let mut child = Command::new("git")
            .args(["pack-objects", "-q", ".git/objects/pack/pack"])
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("git pack-objects runs");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(format!("{objects}\n").as_bytes())
            .expect("write object list");
        assert!(child.wait().expect("pack-objects finishes").success());
        self.git(&["prune-packed"]);
    }

    pub fn write(&self, path: &str, content: &str) -> PathBuf {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        full
    }

    /// Stages everything and commits; returns the commit id.
    pub fn commit(&mut self, msg: &str) -> String {
        self.commits += 1;
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

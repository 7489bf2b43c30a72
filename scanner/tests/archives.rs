//! Archives and compressed blobs in history: `.zip`, `.jar`, `.whl`, `.gz`, `.tgz`
//! and `.tar` are opened, findings name the inner path, and bombs stay within the
//! size limit with a notice.

mod common;

use common::corpus::{github_token, password};
use common::git::Repo;
use envseal_scan::{git, NoProgress, Notice, ScanOptions, Scanner};
use std::io::Write as _;

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

fn gzip_of(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn write_bytes(repo: &Repo, path: &str, data: &[u8]) {
    let p = repo.path().join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[test]
fn archives_in_history_are_opened_and_findings_name_the_inner_path() {
    let mut repo = Repo::new();
    let (k1, k2, k3, k4, k5, k6) = (
        github_token('p'),
        github_token('o'),
        github_token('s'),
        github_token('u'),
        github_token('r'),
        github_token('p'),
    );
    let pw = password();
    let env = format!("DB_PASSWORD={pw}\nGITHUB_TOKEN={k1}\n");
    write_bytes(
        &repo,
        "dist/config.zip",
        &zip_of(&[("app/.env", env.as_bytes())]),
    );
    write_bytes(
        &repo,
        "logs/run.log.gz",
        &gzip_of(format!("token {k2}\n").as_bytes()),
    );
    let inner_tar = tar_of(&[("secrets/prod.sh", format!("export T={k3}\n").as_bytes())]);
    write_bytes(&repo, "release/bundle.tgz", &gzip_of(&inner_tar));
    write_bytes(
        &repo,
        "libs/app.jar",
        &zip_of(&[(
            "META-INF/app.properties",
            format!("token={k4}\n").as_bytes(),
        )]),
    );
    write_bytes(
        &repo,
        "wheels/pkg-1.0-py3-none-any.whl",
        &zip_of(&[("pkg/conf.py", format!("KEY = \"{k5}\"\n").as_bytes())]),
    );
    write_bytes(
        &repo,
        "backup/plain.tar",
        &tar_of(&[("etc/tok", format!("{k6}\n").as_bytes())]),
    );
    repo.commit("archives");
    let result = git::scan_repository(
        repo.path(),
        &Scanner::new(),
        &ScanOptions::default(),
        &[],
        &NoProgress,
    )
    .unwrap();
    let place = |v: &str| {
        result
            .findings
            .iter()
            .find(|f| f.secret.expose() == v)
            .and_then(|f| f.first.path.clone())
            .unwrap_or_else(|| panic!("not found; notices: {:?}", result.notices))
    };
    assert_eq!(place(&pw), "dist/config.zip!app/.env");
    assert_eq!(place(&k1), "dist/config.zip!app/.env");
    assert_eq!(place(&k2), "logs/run.log.gz");
    assert_eq!(place(&k3), "release/bundle.tgz!secrets/prod.sh");
    assert_eq!(place(&k4), "libs/app.jar!META-INF/app.properties");
    assert_eq!(place(&k5), "wheels/pkg-1.0-py3-none-any.whl!pkg/conf.py");
    assert_eq!(place(&k6), "backup/plain.tar!etc/tok");
}

#[test]
fn zip_bomb_and_gzip_bomb_stay_within_the_size_limit_with_a_notice() {
    let mut repo = Repo::new();
    let key = github_token('p');
    let zeros = vec![0u8; 48 << 20];
    // A zip whose first entry expands 1000-fold, and a real file after it.
    let bomb = zip_of(&[
        ("zeros.bin", &zeros),
        ("keys.env", format!("T={key}\n").as_bytes()),
    ]);
    write_bytes(&repo, "bomb.zip", &bomb);
    write_bytes(&repo, "bomb.gz", &gzip_of(&zeros));
    // Nested: a zip of zips.
    let inner = zip_of(&[("z.bin", &zeros[..(8 << 20)])]);
    let nested = zip_of(&[("a.zip", &inner), ("b.zip", &inner), ("c.zip", &inner)]);
    write_bytes(&repo, "nested.zip", &nested);
    repo.commit("bombs");
    let opts = ScanOptions {
        max_blob_size: 4 << 20,
        ..ScanOptions::default()
    };
    let result =
        git::scan_repository(repo.path(), &Scanner::new(), &opts, &[], &NoProgress).unwrap();
    let notes: Vec<String> = result.notices.iter().map(|n| n.to_string()).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("zeros.bin") && n.contains("limit")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("gzip") && n.contains("limit")),
        "{notes:?}"
    );
    assert!(
        result
            .findings
            .iter()
            .any(|f| f.secret.expose() == key
                && f.first.path.as_deref() == Some("bomb.zip!keys.env")),
        "{notes:?}"
    );
    assert!(result
        .notices
        .iter()
        .all(|n| !matches!(n, Notice::Unreadable { .. })));
}

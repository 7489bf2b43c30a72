//! Scanning a plain directory (`--no-git`): every regular file below it, in
//! parallel, without following symbolic links and skipping `.git` directories.

use crate::detect::Scanner;
use crate::report::{group, Source, SourceLocation};
use crate::{Notice, Progress, ScanError, ScanOptions, ScanResult, Stats};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

fn walk(dir: &Path, out: &mut Vec<PathBuf>, notices: &mut Vec<Notice>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            notices.push(Notice::Unreadable {
                what: dir.display().to_string(),
                source: Box::new(e),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            if entry.file_name() != ".git" {
                walk(&path, out, notices);
            }
        } else if ft.is_file() {
            out.push(path);
        }
    }
}

/// Scans every file under `root` (or `root` itself if it is a file).
pub fn scan_directory(
    root: &Path,
    scanner: &Scanner,
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> Result<ScanResult, ScanError> {
    let meta = std::fs::metadata(root).map_err(|source| ScanError::Io {
        path: root.display().to_string(),
        source,
    })?;
    let mut files = Vec::new();
    let mut notices = Vec::new();
    let base = if meta.is_dir() {
        walk(root, &mut files, &mut notices);
        root.to_path_buf()
    } else {
        files.push(root.to_path_buf());
        root.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    files.sort();
    progress.start(files.len() as u64);
    let notices = Mutex::new(notices);
    let (blobs, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let sources: Vec<Source> = files
        .par_iter()
        .filter_map(|file| {
            progress.inc(1);
            let rel = file
                .strip_prefix(&base)
                .unwrap_or(file)
                .to_string_lossy()
                .replace('\\', "/");
            let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            if size > opts.max_blob_size {
                notices
                    .lock()
                    .expect("no poisoning")
                    .push(Notice::TooLarge { what: rel, size });
                return None;
            }
            let data = match std::fs::read(file) {
                Ok(d) => d,
                Err(e) => {
                    notices
                        .lock()
                        .expect("no poisoning")
                        .push(Notice::Unreadable {
                            what: rel,
                            source: Box::new(e),
                        });
                    return None;
                }
            };
            blobs.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            let (hits, notes) =
                crate::archive::scan_blob(scanner, &data, opts.max_blob_size, |d| {
                    scanner.scan(d, Some(&rel))
                });
            for message in notes {
                notices.lock().expect("no poisoning").push(Notice::Archive {
                    what: rel.clone(),
                    message,
                });
            }
            (!hits.is_empty()).then(|| Source {
                locations: vec![SourceLocation {
                    path: Some(rel),
                    commit: None,
                    blob: None,
                }],
                hits,
            })
        })
        .collect();
    progress.finish();
    Ok(ScanResult {
        findings: group(sources),
        notices: notices.into_inner().expect("no poisoning"),
        stats: Stats {
            blobs: blobs.into_inner(),
            bytes: bytes.into_inner(),
            ..Stats::default()
        },
    })
}

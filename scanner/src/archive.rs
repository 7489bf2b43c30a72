//! Archives and compressed blobs (`.zip`, `.jar`, `.whl`, `.gz`, `.tgz`, `.tar`):
//! recognised by their magic bytes, expanded in memory within bounds on nesting
//! depth, total expanded size, per-entry expansion ratio and entry count, so a zip
//! bomb costs at most the size limit. Everything cut short is reported.
//!
//! No I/O: bytes in, named inner files out.

use crate::detect::{Hit, Scanner};
use std::io::Read as _;

/// Bounds for one outer blob or file.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Archives inside archives are opened this deep (1: only the outer one).
    pub max_depth: u8,
    /// Bytes all entries of one outer blob may expand to together.
    pub max_total: u64,
    /// An entry may expand to at most this many times its compressed size.
    pub max_ratio: u64,
    /// Entries read from one outer blob.
    pub max_entries: usize,
}

impl Limits {
    /// Depth 3, ratio 200, 10,000 entries, and `max_total` (the blob size limit).
    pub fn new(max_total: u64) -> Self {
        Limits {
            max_depth: 3,
            max_total,
            max_ratio: 200,
            max_entries: 10_000,
        }
    }
}

/// An archive format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Zip (also `.jar`, `.whl`, `.apk`, `.docx`…).
    Zip,
    /// Gzip (`.gz`, `.tgz`).
    Gzip,
    /// POSIX tar.
    Tar,
}

/// The archive format of `data`, from its magic bytes.
pub fn sniff(data: &[u8]) -> Option<Format> {
    if data.starts_with(b"PK\x03\x04") {
        Some(Format::Zip)
    } else if data.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Format::Gzip)
    } else if data.len() >= 512 && &data[257..262] == b"ustar" {
        Some(Format::Tar)
    } else {
        None
    }
}

/// One file found inside an archive.
pub struct Entry {
    /// Its path inside the outer blob: `inner/dir/file`, `a.tar!b/c.env` when nested.
    pub path: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// What came out of one outer blob.
#[derive(Default)]
pub struct Expanded {
    /// The files (archives inside are expanded in their place).
    pub entries: Vec<Entry>,
    /// What was cut short or could not be read, one sentence each.
    pub notices: Vec<String>,
}

/// Expands `data` (an archive) within `limits`.
pub fn expand(data: &[u8], limits: &Limits) -> Expanded {
    let mut out = Expanded::default();
    let mut budget = limits.max_total;
    walk(data, "", 1, limits, &mut budget, &mut out);
    out
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}!{name}")
    }
}

/// Reads at most `cap` bytes; `Err(read)` when there was more.
fn read_capped(r: impl std::io::Read, cap: u64) -> std::io::Result<Result<Vec<u8>, Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        buf.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
        Ok(Err(buf))
    } else {
        Ok(Ok(buf))
    }
}

fn place(
    data: Vec<u8>,
    path: String,
    depth: u8,
    limits: &Limits,
    budget: &mut u64,
    out: &mut Expanded,
) {
    if out.entries.len() >= limits.max_entries {
        return;
    }
    if sniff(&data).is_some() && depth < limits.max_depth {
        walk(&data, &path, depth + 1, limits, budget, out);
    } else {
        out.entries.push(Entry { path, data });
    }
}

fn walk(
    data: &[u8],
    prefix: &str,
    depth: u8,
    limits: &Limits,
    budget: &mut u64,
    out: &mut Expanded,
) {
    let what = if prefix.is_empty() { "archive" } else { prefix };
    match sniff(data) {
        Some(Format::Gzip) => {
            let cap = (*budget).min((data.len() as u64).saturating_mul(limits.max_ratio));
            match read_capped(flate2::read::MultiGzDecoder::new(data), cap) {
                Ok(Ok(bytes)) => {
                    *budget -= bytes.len() as u64;
                    // The decompressed stream stands in the place of the outer blob.
                    place(bytes, prefix.to_owned(), depth, limits, budget, out);
                }
                Ok(Err(head)) => {
                    out.notices.push(format!(
                        "{what}: gzip stream expands beyond {cap} bytes (size or ratio limit); scanned the first {cap}"
                    ));
                    *budget -= head.len() as u64;
                    let path = prefix.to_owned();
                    out.entries.push(Entry { path, data: head });
                }
                Err(e) => out
                    .notices
                    .push(format!("{what}: not a readable gzip stream ({e})")),
            }
        }
        Some(Format::Tar) => {
            let mut archive = tar::Archive::new(data);
            let entries = match archive.entries() {
                Ok(e) => e,
                Err(e) => {
                    out.notices
                        .push(format!("{what}: not a readable tar archive ({e})"));
                    return;
                }
            };
            for entry in entries {
                if out.entries.len() >= limits.max_entries {
                    out.notices.push(format!(
                        "{what}: more than {} entries; the rest were not scanned",
                        limits.max_entries
                    ));
                    return;
                }
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        out.notices.push(format!("{what}: damaged tar entry ({e})"));
                        return;
                    }
                };
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let path = join(prefix, &name);
                let size = entry.header().size().unwrap_or(u64::MAX);
                if size > *budget {
                    out.notices.push(format!(
                        "{path}: {size} bytes is over what is left of the archive size limit; not scanned"
                    ));
                    return;
                }
                match read_capped(entry, *budget) {
                    Ok(Ok(bytes)) => {
                        *budget -= bytes.len() as u64;
                        place(bytes, path, depth, limits, budget, out);
                    }
                    Ok(Err(_)) | Err(_) => {
                        out.notices
                            .push(format!("{path}: could not be read within the size limit"));
                        return;
                    }
                }
            }
        }
        Some(Format::Zip) => {
            let mut zip = match zip::ZipArchive::new(std::io::Cursor::new(data)) {
                Ok(z) => z,
                Err(e) => {
                    out.notices
                        .push(format!("{what}: not a readable zip archive ({e})"));
                    return;
                }
            };
            for i in 0..zip.len() {
                if out.entries.len() >= limits.max_entries {
                    out.notices.push(format!(
                        "{what}: more than {} entries; the rest were not scanned",
                        limits.max_entries
                    ));
                    return;
                }
                let file = match zip.by_index(i) {
                    Ok(f) => f,
                    Err(e) => {
                        out.notices
                            .push(format!("{what}: entry {i} could not be read ({e})"));
                        continue;
                    }
                };
                if file.is_dir() {
                    continue;
                }
                let name = file
                    .name()
                    .map(|n| n.into_owned())
                    .unwrap_or_else(|_| String::from_utf8_lossy(file.name_raw()).into_owned());
                let path = join(prefix, &name);
                let cap = (*budget).min(
                    file.compressed_size()
                        .max(1)
                        .saturating_mul(limits.max_ratio),
                );
                if file.size() > cap {
                    out.notices.push(format!(
                        "{path}: declares {} bytes from {} compressed (over the size or ratio limit); not scanned",
                        file.size(),
                        file.compressed_size()
                    ));
                    continue;
                }
                match read_capped(file, cap) {
                    Ok(Ok(bytes)) => {
                        *budget -= bytes.len() as u64;
                        place(bytes, path, depth, limits, budget, out);
                    }
                    Ok(Err(_)) => out.notices.push(format!(
                        "{path}: expands beyond its declared size and the limit; not scanned"
                    )),
                    Err(e) => out.notices.push(format!("{path}: could not be read ({e})")),
                }
            }
        }
        None => {}
    }
}

/// The hits of one blob or file: `plain(data)` for ordinary bytes; for an archive,
/// the hits of every inner file (judged by its inner path and marked with it), plus
/// sentences for what was cut short.
pub(crate) fn scan_blob(
    scanner: &Scanner,
    data: &[u8],
    max_total: u64,
    plain: impl FnOnce(&[u8]) -> Vec<Hit>,
) -> (Vec<Hit>, Vec<String>) {
    if sniff(data).is_none() {
        return (plain(data), Vec::new());
    }
    let expanded = expand(data, &Limits::new(max_total));
    let mut hits = Vec::new();
    for entry in expanded.entries {
        if entry.path.is_empty() {
            hits.extend(scanner.scan(&entry.data, None));
            continue;
        }
        for mut h in scanner.scan(&entry.data, Some(&entry.path)) {
            h.inner = Some(entry.path.clone());
            hits.push(h);
        }
    }
    (hits, expanded.notices)
}

//! Reading Git with `gix`: every object in the object database once (packs by
//! delta-tree traversal, in parallel; loose objects), attribution of blobs with hits
//! to the commits and paths that introduced them, commit ranges (`--since`, state
//! files) and the staged changes of the next commit.
//!
//! Never shells out to `git` and never writes to the repository.

use crate::detect::{Hit, PathKind, Scanner};
use crate::filters::is_config_path;
use crate::report::{group, CommitInfo, Source, SourceLocation};
use crate::{Notice, Progress, ScanError, ScanOptions, ScanResult, Stats};
use gix::hash::ObjectId;
use gix::objs::{Find as _, FindExt as _};
use gix::odb::pack::index::traverse::{Algorithm, SafetyCheck};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

fn git_err(
    context: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ScanError {
    move |source| ScanError::Git { context, source }
}

macro_rules! git {
    ($ctx:expr, $e:expr) => {
        $e.map_err(|e| ScanError::Git {
            context: $ctx,
            source: Box::new(e),
        })
    };
}

/// Opens the repository at (or above) `path`.
fn open(path: &Path) -> Result<gix::Repository, ScanError> {
    let mut repo = gix::discover(path).map_err(|e| ScanError::NotARepository {
        path: path.display().to_string(),
        source: Box::new(e),
    })?;
    repo.object_cache_size_if_unset(16 * 1024 * 1024);
    Ok(repo)
}

/// The commit ids every reference (branches, tags, remotes, stash, HEAD) points at.
pub fn tips(path: &Path) -> Result<Vec<String>, ScanError> {
    let repo = open(path)?;
    Ok(ref_tips(&repo)?.iter().map(ToString::to_string).collect())
}

fn ref_tips(repo: &gix::Repository) -> Result<Vec<ObjectId>, ScanError> {
    let mut out = Vec::new();
    let refs = git!("listing references", repo.references())?;
    let all = git!("listing references", refs.all())?;
    for r in all {
        let Ok(mut r) = r else { continue };
        let Ok(id) = r.peel_to_id() else { continue };
        if let Ok(header) = repo.find_header(id) {
            if header.kind() == gix::object::Kind::Commit {
                out.push(id.detach());
            }
        }
    }
    if let Ok(head) = repo.head_id() {
        out.push(head.detach());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Resolves a revision (`main`, `v1.0`, `HEAD~3`, an id) to a commit id.
pub fn resolve_commit(path: &Path, rev: &str) -> Result<String, ScanError> {
    let repo = open(path)?;
    let id = repo
        .rev_parse_single(rev)
        .map_err(|e| ScanError::BadRevision {
            rev: rev.to_owned(),
            source: Box::new(e),
        })?;
    let commit = git!("resolving a revision", id.object())?;
    let commit = git!("resolving a revision", commit.peel_to_commit())?;
    Ok(commit.id.to_string())
}

/// Scans the whole object database, or, when `hidden` is not empty, only the blobs
/// that commits reachable from the references but not from `hidden` introduced.
pub fn scan_repository(
    path: &Path,
    scanner: &Scanner,
    opts: &ScanOptions,
    hidden: &[String],
    progress: &dyn Progress,
) -> Result<ScanResult, ScanError> {
    let repo = open(path)?;
    if hidden.is_empty() {
        scan_all_objects(&repo, scanner, opts, progress)
    } else {
        let hidden = hidden
            .iter()
            .map(|h| {
                ObjectId::from_hex(h.as_bytes()).map_err(|e| ScanError::BadRevision {
                    rev: h.clone(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        scan_range(&repo, scanner, opts, &hidden, progress)
    }
}

#[derive(Debug)]
struct Stop;
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}
impl std::error::Error for Stop {}

struct Collector<'a> {
    scanner: &'a Scanner,
    /// Explicit kinds (ranges, where paths come from the diffs).
    kinds: HashMap<ObjectId, PathKind>,
    /// The kind of blobs not in `kinds`.
    default_kind: PathKind,
    max: u64,
    hits: Mutex<Vec<(ObjectId, Vec<Hit>)>>,
    notices: Mutex<Vec<Notice>>,
    blobs: AtomicU64,
    bytes: AtomicU64,
}

impl Collector<'_> {
    fn blob(&self, id: ObjectId, data: &[u8]) {
        if data.len() as u64 > self.max {
            self.notices
                .lock()
                .expect("no poisoning")
                .push(Notice::TooLarge {
                    what: format!("blob {id}"),
                    size: data.len() as u64,
                });
            return;
        }
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let kind = self.kinds.get(&id).copied().unwrap_or(self.default_kind);
        let (hits, notes) = crate::archive::scan_blob(self.scanner, data, self.max, |d| {
            self.scanner.scan_kind(d, kind)
        });
        if !notes.is_empty() {
            let mut n = self.notices.lock().expect("no poisoning");
            for message in notes {
                n.push(Notice::Archive {
                    what: format!("blob {id}"),
                    message,
                });
            }
        }
        if !hits.is_empty() {
            self.hits.lock().expect("no poisoning").push((id, hits));
        }
    }
}

fn list_packs(objects: &Path) -> Vec<PathBuf> {
    let mut packs: Vec<PathBuf> = std::fs::read_dir(objects.join("pack"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    packs.sort();
    packs
}

fn scan_all_objects(
    repo: &gix::Repository,
    scanner: &Scanner,
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> Result<ScanResult, ScanError> {
    let objects = repo.common_dir().join("objects");
    let hash = repo.object_hash();
    // The history walk (paths, attribution, which blobs are configuration) runs on
    // its own thread while the object pass scans every blob with the provider
    // detectors; configuration blobs get a second look with every detector after.
    let sync = repo.clone().into_sync();
    let walker = std::thread::spawn(move || walk_history(&sync.to_thread_local()));
    let collector = Collector {
        scanner,
        kinds: HashMap::new(),
        default_kind: PathKind::Other,
        max: opts.max_blob_size,
        hits: Mutex::new(Vec::new()),
        notices: Mutex::new(Vec::new()),
        blobs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let packs = list_packs(&objects);
    let loose = gix::odb::loose::Store::at(&objects, hash);
    let loose_ids: Vec<ObjectId> = loose.iter().filter_map(Result::ok).collect();

    let mut bundles = Vec::new();
    let mut total = loose_ids.len() as u64;
    for idx in &packs {
        match gix::odb::pack::Bundle::at(idx, hash) {
            Ok(b) => {
                total += u64::from(b.index.num_objects());
                bundles.push(b);
            }
            Err(e) => collector
                .notices
                .lock()
                .expect("no poisoning")
                .push(Notice::Unreadable {
                    what: format!("pack {}", idx.display()),
                    source: Box::new(e),
                }),
        }
    }
    progress.start(total);
    let interrupt = AtomicBool::new(false);
    for bundle in &bundles {
        let c = &collector;
        let mut pending = 0u64;
        let processor = move |kind: gix::object::Kind,
                              data: &[u8],
                              entry: &gix::odb::pack::index::Entry,
                              _: &dyn gix::progress::Progress|
              -> Result<(), Stop> {
            pending += 1;
            if pending == 256 {
                progress.inc(pending);
                pending = 0;
            }
            if kind == gix::object::Kind::Blob {
                c.blob(entry.oid, data);
            }
            Ok(())
        };
        // Damage shows as a pack entry whose CRC32 differs from the index's. A sound
        // pack is then decoded without hashing every object again; a damaged one
        // (or one whose index has no CRC32s) with every object checksum verified.
        let damaged = damaged_entries(bundle);
        let check = match damaged {
            Some(0) => SafetyCheck::SkipFileAndObjectChecksumVerification,
            _ => SafetyCheck::SkipFileChecksumVerification,
        };
        let crc_note = damaged
            .filter(|&n| n > 0)
            .map(|n| format!("{n} entries fail their CRC32 check"));
        let outcome = bundle.index.traverse(
            &bundle.pack,
            &mut gix::progress::Discard,
            &interrupt,
            processor,
            gix::odb::pack::index::traverse::Options {
                traversal: Algorithm::DeltaTreeLookup,
                thread_limit: opts.threads,
                check,
                alloc_limit_bytes: None,
                make_pack_lookup_cache: || gix::odb::pack::cache::Never,
            },
        );
        let what = format!("pack {}", bundle.pack.path().display());
        match (outcome, crc_note) {
            (Ok(_), None) => {}
            (Ok(_), Some(note)) => {
                c.notices
                    .lock()
                    .expect("no poisoning")
                    .push(Notice::Unreadable {
                        what,
                        source: note.into(),
                    })
            }
            (Err(e), note) => {
                // A damaged pack: say so (once), then read what can be read object
                // by object.
                let source = match note {
                    Some(note) => format!("{note}; {e}").into(),
                    None => Box::new(e) as Box<dyn std::error::Error + Send + Sync>,
                };
                c.notices
                    .lock()
                    .expect("no poisoning")
                    .push(Notice::Unreadable { what, source });
                let ids: Vec<ObjectId> = bundle.index.iter().map(|e| e.oid).collect();
                read_each(repo, &ids, c);
            }
        }
    }
    read_each(repo, &loose_ids, &collector);
    progress.inc(loose_ids.len() as u64);
    progress.finish();

    let Collector {
        hits,
        notices,
        blobs,
        bytes,
        ..
    } = collector;
    let history = walker.join().map_err(|_| ScanError::Git {
        context: "walking the history",
        source: "the history walk panicked".into(),
    })??;
    let mut hits = hits.into_inner().expect("no poisoning");
    hits.retain(|(id, _)| !history.config.contains(id));
    let config_ids: Vec<ObjectId> = history.config.iter().copied().collect();
    let second = Collector {
        scanner,
        kinds: HashMap::new(),
        default_kind: PathKind::Config,
        max: opts.max_blob_size,
        hits: Mutex::new(Vec::new()),
        notices: Mutex::new(Vec::new()), // already reported by the object pass
        blobs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    read_each(repo, &config_ids, &second);
    hits.extend(second.hits.into_inner().expect("no poisoning"));
    hits.sort_by_key(|h| h.0);
    let stats = Stats {
        blobs: blobs.into_inner(),
        bytes: bytes.into_inner(),
        commits: history.commits.len() as u64,
    };
    let sources = hits
        .into_iter()
        .map(|(id, hits)| Source {
            locations: history.locations(&id),
            hits,
        })
        .collect();
    Ok(ScanResult {
        findings: group(sources),
        notices: notices.into_inner().expect("no poisoning"),
        stats,
    })
}

/// How many entries of the pack fail the CRC32 recorded in its index (each entry's
/// compressed bytes, header included), or `None` for an index without CRC32s.
fn damaged_entries(bundle: &gix::odb::pack::Bundle) -> Option<usize> {
    let mut entries: Vec<(u64, u32)> = bundle
        .index
        .iter()
        .map(|e| e.crc32.map(|crc| (e.pack_offset, crc)))
        .collect::<Option<_>>()?;
    entries.sort_unstable_by_key(|&(offset, _)| offset);
    let pack = &bundle.pack;
    let end = pack.pack_end() as u64;
    let damaged = (0..entries.len())
        .into_par_iter()
        .with_min_len(256)
        .filter(|&i| {
            let (start, want) = entries[i];
            let stop = entries.get(i + 1).map_or(end, |&(next, _)| next);
            match pack.entry_slice(start..stop) {
                Some(bytes) if start < stop => gix::features::hash::crc32(bytes) != want,
                _ => true,
            }
        })
        .count();
    Some(damaged)
}

/// Reads objects one by one (loose objects, damaged packs), in parallel; objects
/// that cannot be read become notices.
fn read_each(repo: &gix::Repository, ids: &[ObjectId], c: &Collector<'_>) {
    if ids.is_empty() {
        return;
    }
    let sync = repo.clone().into_sync();
    ids.par_iter().for_each_init(
        || (sync.to_thread_local(), Vec::new()),
        |(repo, buf), id| match repo.objects.try_find(id, buf) {
            Ok(Some(data)) => {
                if data.kind == gix::object::Kind::Blob {
                    c.blob(*id, data.data);
                }
            }
            Ok(None) => {}
            Err(e) => c
                .notices
                .lock()
                .expect("no poisoning")
                .push(Notice::Unreadable {
                    what: format!("object {id}"),
                    source: e,
                }),
        },
    );
}

struct CommitMeta {
    id: ObjectId,
    time: i64,
    tree: ObjectId,
    first_parent: Option<ObjectId>,
}

/// All commits reachable from the references (minus those reachable from
/// `hidden`), oldest first.
fn commits(repo: &gix::Repository, hidden: &[ObjectId]) -> Result<Vec<CommitMeta>, ScanError> {
    let tips = ref_tips(repo)?;
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let walk = git!(
        "walking commits",
        repo.rev_walk(tips)
            .with_hidden(hidden.iter().copied())
            .all()
    )?;
    let mut out = Vec::new();
    for info in walk {
        let info = git!("walking commits", info)?;
        let commit = git!("reading a commit", info.object())?;
        let tree = git!("reading a commit", commit.tree_id())?.detach();
        let time = commit.time().map(|t| t.seconds).unwrap_or(0);
        let first_parent = commit.parent_ids().next().map(gix::Id::detach);
        out.push(CommitMeta {
            id: info.id,
            time,
            tree,
            first_parent,
        });
    }
    // The walk yields children before parents; reversing and then sorting stably
    // by time gives parents before children, oldest first.
    out.reverse();
    out.sort_by_key(|c| c.time);
    Ok(out)
}

struct TreeEntry {
    name: Vec<u8>,
    id: ObjectId,
    is_tree: bool,
}

fn read_tree(
    repo: &gix::Repository,
    id: &ObjectId,
    buf: &mut Vec<u8>,
) -> Result<Vec<TreeEntry>, ScanError> {
    let tree = repo
        .objects
        .find_tree(id, buf)
        .map_err(|e| git_err("reading a tree")(Box::new(e)))?;
    Ok(tree
        .entries
        .iter()
        .filter(|e| e.mode.is_tree() || e.mode.is_blob_or_symlink())
        .map(|e| TreeEntry {
            name: e.filename.to_vec(),
            id: e.oid.to_owned(),
            is_tree: e.mode.is_tree(),
        })
        .collect())
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + name.len() + 1);
    if !prefix.is_empty() {
        p.extend_from_slice(prefix);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Every blob reachable from the references, with every path it appears at and
/// the oldest commit that put it there; each distinct tree is read once.
struct History {
    commits: Vec<CommitInfo>,
    paths: Vec<String>,
    /// Blob → (commit index, path index), oldest first, one entry per path.
    blobs: HashMap<ObjectId, Vec<(u32, u32)>>,
    /// Blobs seen at a configuration path.
    config: HashSet<ObjectId>,
}

impl History {
    fn locations(&self, id: &ObjectId) -> Vec<SourceLocation> {
        match self.blobs.get(id) {
            Some(locs) => locs
                .iter()
                .map(|&(c, p)| SourceLocation {
                    path: Some(self.paths[p as usize].clone()),
                    commit: Some(self.commits[c as usize].clone()),
                    blob: Some(id.to_string()),
                })
                .collect(),
            None => vec![SourceLocation {
                path: None,
                commit: None,
                blob: Some(id.to_string()),
            }],
        }
    }
}

fn walk_history(repo: &gix::Repository) -> Result<History, ScanError> {
    let commits = commits(repo, &[])?;
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut blobs: HashMap<ObjectId, Vec<(u32, u32)>> = HashMap::new();
    let mut paths: Vec<String> = Vec::new();
    let mut path_ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut config: HashSet<ObjectId> = HashSet::new();
    let mut buf = Vec::new();
    for (ci, c) in commits.iter().enumerate() {
        let ci = u32::try_from(ci).unwrap_or(u32::MAX);
        let mut stack: Vec<(ObjectId, Vec<u8>)> = vec![(c.tree, Vec::new())];
        while let Some((tree, prefix)) = stack.pop() {
            if !seen.insert(tree) {
                continue;
            }
            let Ok(entries) = read_tree(repo, &tree, &mut buf) else {
                continue; // a missing or damaged tree hides only its own paths
            };
            for e in entries {
                let path = join(&prefix, &e.name);
                if e.is_tree {
                    if !seen.contains(&e.id) {
                        stack.push((e.id, path));
                    }
                    continue;
                }
                let next = u32::try_from(paths.len()).unwrap_or(u32::MAX);
                let pi = *path_ids.entry(path).or_insert_with_key(|p| {
                    paths.push(String::from_utf8_lossy(p).into_owned());
                    next
                });
                let locs = blobs.entry(e.id).or_default();
                if !locs.iter().any(|&(_, p)| p == pi) {
                    locs.push((ci, pi));
                    if is_config_path(&paths[pi as usize]) {
                        config.insert(e.id);
                    }
                }
            }
        }
    }
    Ok(History {
        commits: commits
            .iter()
            .map(|c| CommitInfo {
                id: c.id.to_string(),
                time: c.time,
            })
            .collect(),
        paths,
        blobs,
        config,
    })
}

/// Blobs (with paths) a tree adds or changes relative to another.
fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: ObjectId,
    prefix: &[u8],
    buf: &mut Vec<u8>,
    out: &mut Vec<(ObjectId, Vec<u8>)>,
) -> Result<(), ScanError> {
    if old == Some(new) {
        return Ok(());
    }
    let old_entries: HashMap<Vec<u8>, (ObjectId, bool)> = match old {
        Some(o) => read_tree(repo, &o, buf)?
            .into_iter()
            .map(|e| (e.name, (e.id, e.is_tree)))
            .collect(),
        None => HashMap::new(),
    };
    for e in read_tree(repo, &new, buf)? {
        let before = old_entries.get(&e.name);
        if before.is_some_and(|(id, _)| *id == e.id) {
            continue;
        }
        let path = join(prefix, &e.name);
        if e.is_tree {
            let old_sub = before.filter(|(_, t)| *t).map(|(id, _)| *id);
            diff_trees(repo, old_sub, e.id, &path, buf, out)?;
        } else {
            out.push((e.id, path));
        }
    }
    Ok(())
}

fn scan_range(
    repo: &gix::Repository,
    scanner: &Scanner,
    opts: &ScanOptions,
    hidden: &[ObjectId],
    progress: &dyn Progress,
) -> Result<ScanResult, ScanError> {
    let commits = commits(repo, hidden)?;
    let mut buf = Vec::new();
    let mut introduced: HashMap<ObjectId, Vec<SourceLocation>> = HashMap::new();
    let mut order: Vec<ObjectId> = Vec::new();
    for c in &commits {
        let parent_tree = match c.first_parent {
            Some(p) => {
                let commit = git!("reading a commit", repo.find_commit(p))?;
                Some(git!("reading a commit", commit.tree_id())?.detach())
            }
            None => None,
        };
        let mut changed = Vec::new();
        diff_trees(repo, parent_tree, c.tree, b"", &mut buf, &mut changed)?;
        for (blob, path) in changed {
            let path = String::from_utf8_lossy(&path).into_owned();
            let locs = introduced.entry(blob).or_insert_with(|| {
                order.push(blob);
                Vec::new()
            });
            if !locs
                .iter()
                .any(|l| l.path.as_deref() == Some(path.as_str()))
            {
                locs.push(SourceLocation {
                    path: Some(path),
                    commit: Some(CommitInfo {
                        id: c.id.to_string(),
                        time: c.time,
                    }),
                    blob: Some(blob.to_string()),
                });
            }
        }
    }
    let kinds = introduced
        .iter()
        .map(|(id, locs)| {
            let config = locs
                .iter()
                .any(|l| l.path.as_deref().is_some_and(is_config_path));
            (
                *id,
                if config {
                    PathKind::Config
                } else {
                    PathKind::Other
                },
            )
        })
        .collect();
    let collector = Collector {
        scanner,
        kinds,
        default_kind: PathKind::Unknown,
        max: opts.max_blob_size,
        hits: Mutex::new(Vec::new()),
        notices: Mutex::new(Vec::new()),
        blobs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    progress.start(order.len() as u64);
    read_each(repo, &order, &collector);
    progress.inc(order.len() as u64);
    progress.finish();
    let hits = collector.hits.into_inner().expect("no poisoning");
    let sources = hits
        .into_iter()
        .map(|(id, hits)| Source {
            locations: introduced.remove(&id).unwrap_or_default(),
            hits,
        })
        .collect();
    Ok(ScanResult {
        findings: group(sources),
        notices: collector.notices.into_inner().expect("no poisoning"),
        stats: Stats {
            blobs: collector.blobs.into_inner(),
            bytes: collector.bytes.into_inner(),
            commits: commits.len() as u64,
        },
    })
}

/// The index entries that differ from HEAD: (path, staged blob, blob at HEAD).
///
/// Walks the index directory by directory next to HEAD's trees. A directory whose
/// cached tree (the index's TREE extension, which git keeps valid for directories
/// nothing was staged in) equals HEAD's tree is skipped whole, so the cost follows
/// what was staged, not the size of the repository.
struct StagedDiff<'a> {
    repo: &'a gix::Repository,
    index: &'a gix::index::State,
    out: &'a mut Vec<(String, ObjectId, Option<ObjectId>)>,
}

impl StagedDiff<'_> {
    /// `entries`: the index entries below one directory, whose path (with its
    /// trailing `/`) is `prefix` bytes long; `cached`/`head`: that directory's
    /// cached tree and tree at HEAD.
    fn dir(
        &mut self,
        entries: &[gix::index::Entry],
        prefix: usize,
        cached: Option<&gix::index::extension::Tree>,
        head: Option<ObjectId>,
    ) -> Result<(), ScanError> {
        if let (Some(cached), Some(head)) = (cached, head) {
            if cached.num_entries.is_some() && cached.id == head {
                return Ok(());
            }
        }
        let head_entries = self.tree_map(head)?;
        let mut i = 0;
        while i < entries.len() {
            let path = entries[i].path(self.index);
            let rel = &path[prefix..];
            if let Some(slash) = memchr::memchr(b'/', rel) {
                // Every entry below `name/` follows this one in the sorted index.
                let name = &rel[..=slash];
                let end = i + entries[i..]
                    .partition_point(|e| e.path(self.index)[prefix..].starts_with(name));
                let name = &name[..slash];
                let sub_cached = cached.and_then(|c| {
                    let children = &c.children;
                    match children.binary_search_by(|t| t.name.as_slice().cmp(name)) {
                        Ok(at) => Some(&children[at]),
                        // Not sorted as expected: look at each.
                        Err(_) => children.iter().find(|t| t.name.as_slice() == name),
                    }
                });
                let sub_head = match head_entries.get(name) {
                    Some(&(true, id)) => Some(id),
                    _ => None,
                };
                self.dir(&entries[i..end], prefix + slash + 1, sub_cached, sub_head)?;
                i = end;
                continue;
            }
            let entry = &entries[i];
            i += 1;
            // Conflicts and submodules are not blobs of the next commit.
            if entry.stage() != gix::index::entry::Stage::Unconflicted
                || entry.mode == gix::index::entry::Mode::COMMIT
            {
                continue;
            }
            if entry.mode == gix::index::entry::Mode::DIR {
                // A sparse index keeps a directory outside the cone as one entry
                // (`dir/`, reached here with an empty `rel`) naming its tree: compare
                // that tree with HEAD's.
                if rel.is_empty() && head != Some(entry.id) {
                    let dir = path.strip_suffix(b"/").unwrap_or(path);
                    self.trees(entry.id, head, dir)?;
                }
                continue;
            }
            let old = match head_entries.get(rel) {
                Some(&(false, id)) => Some(id),
                _ => None,
            };
            if old != Some(entry.id) {
                self.out
                    .push((String::from_utf8_lossy(path).into_owned(), entry.id, old));
            }
        }
        Ok(())
    }

    /// The entries of the tree `id` by name: (is a tree, id). Empty for `None`.
    fn tree_map(
        &self,
        id: Option<ObjectId>,
    ) -> Result<HashMap<Vec<u8>, (bool, ObjectId)>, ScanError> {
        let mut map = HashMap::new();
        if let Some(id) = id {
            let mut buf = Vec::new();
            let tree = git!(
                "reading HEAD",
                self.repo.objects.find_tree_iter(&id, &mut buf)
            )?;
            for entry in tree {
                let entry = git!("reading HEAD", entry)?;
                map.insert(
                    entry.filename.to_vec(),
                    (entry.mode.is_tree(), entry.oid.to_owned()),
                );
            }
        }
        Ok(map)
    }

    /// Blobs of the staged tree `new` (at `dir`) that differ from HEAD's tree `old`.
    fn trees(&mut self, new: ObjectId, old: Option<ObjectId>, dir: &[u8]) -> Result<(), ScanError> {
        let old = self.tree_map(old)?;
        let mut buf = Vec::new();
        let mut entries = Vec::new();
        for entry in git!(
            "reading the index",
            self.repo.objects.find_tree_iter(&new, &mut buf)
        )? {
            let entry = git!("reading the index", entry)?;
            entries.push((entry.filename.to_vec(), entry.mode, entry.oid.to_owned()));
        }
        for (name, mode, id) in entries {
            let path = [dir, b"/", &name].concat();
            let before = old.get(&name).copied();
            if mode.is_tree() {
                let before = before.and_then(|(tree, id)| tree.then_some(id));
                if before != Some(id) {
                    self.trees(id, before, &path)?;
                }
            } else if !mode.is_commit() {
                let before = before.and_then(|(tree, id)| (!tree).then_some(id));
                if before != Some(id) {
                    self.out
                        .push((String::from_utf8_lossy(&path).into_owned(), id, before));
                }
            }
        }
        Ok(())
    }
}

/// Scans what the next commit would add: index entries whose content differs from
/// `HEAD`. Values already present in the `HEAD` version of the same file are not
/// reported (they are not being added now).
pub fn scan_staged(
    path: &Path,
    scanner: &Scanner,
    opts: &ScanOptions,
) -> Result<ScanResult, ScanError> {
    let repo = open(path)?;
    // The index was just written by git: its trailing checksum is not recomputed
    // (hashing a large index costs more than the rest of the hook).
    let index = match gix::index::File::at(
        repo.index_path(),
        repo.object_hash(),
        true,
        gix::index::decode::Options::default(),
    ) {
        Ok(index) => index,
        Err(gix::index::file::init::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            gix::index::File::from_state(
                gix::index::State::new(repo.object_hash()),
                repo.index_path(),
            )
        }
        Err(e) => return Err(git_err("reading the index")(Box::new(e))),
    };
    let head_tree = match git!("reading HEAD", repo.head_tree_id_or_empty())?.detach() {
        id if id.is_empty_tree() => None,
        id => Some(id),
    };
    let mut changed = Vec::new();
    StagedDiff {
        repo: &repo,
        index: &index,
        out: &mut changed,
    }
    .dir(index.entries(), 0, index.tree(), head_tree)?;
    let sync = repo.clone().into_sync();
    let notices = Mutex::new(Vec::new());
    let blobs = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let sources: Vec<Source> = changed
        .par_iter()
        .map_init(
            || (sync.to_thread_local(), Vec::new(), Vec::new()),
            |(repo, buf, old_buf), (path, id, old)| {
                let data = match repo.objects.try_find(id, buf) {
                    Ok(Some(d)) => d.data,
                    Ok(None) => return None,
                    Err(e) => {
                        notices
                            .lock()
                            .expect("no poisoning")
                            .push(Notice::Unreadable {
                                what: format!("staged {path}"),
                                source: e,
                            });
                        return None;
                    }
                };
                if data.len() as u64 > opts.max_blob_size {
                    notices
                        .lock()
                        .expect("no poisoning")
                        .push(Notice::TooLarge {
                            what: format!("staged {path}"),
                            size: data.len() as u64,
                        });
                    return None;
                }
                blobs.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                let (mut hits, notes) =
                    crate::archive::scan_blob(scanner, data, opts.max_blob_size, |d| {
                        scanner.scan(d, Some(path))
                    });
                for message in notes {
                    notices.lock().expect("no poisoning").push(Notice::Archive {
                        what: format!("staged {path}"),
                        message,
                    });
                }
                if hits.is_empty() {
                    return None;
                }
                if let Some(old) = old {
                    if let Ok(Some(before)) = repo.objects.try_find(old, old_buf) {
                        let before = before.data;
                        hits.retain(|h| {
                            memchr::memmem::find(before, h.secret.expose().as_bytes()).is_none()
                        });
                    }
                }
                Some(Source {
                    locations: vec![SourceLocation {
                        path: Some(path.clone()),
                        commit: None,
                        blob: Some(id.to_string()),
                    }],
                    hits,
                })
            },
        )
        .flatten()
        .collect();
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

//! Findings: one per distinct secret value, with the location that introduced it
//! first and every other place it appears; plus baselines keyed by fingerprint.
//!
//! Plain data, no serialisation: output formats live in `output`.

use crate::detect::{Encoding, Hit};
use crate::filters::{is_config_path, is_lock_file};
use crate::rules::Rule;
use crate::secret::{FingerprintParams, Fingerprinter, ParamsError, SecretValue};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// A commit that holds a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
}

/// Where a value was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Path inside the repository or directory (`None` for an unreachable blob).
    pub path: Option<String>,
    /// 1-based line.
    pub line: u32,
    /// The commit that introduced the blob at this path (Git scans).
    pub commit: Option<CommitInfo>,
    /// The blob id (Git scans).
    pub blob: Option<String>,
}

/// One distinct secret value.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Rule (the most specific one that matched the value).
    pub rule: Rule,
    /// The value.
    pub secret: SecretValue,
    /// [`Fingerprinter::fingerprint`] of the value, once [`fingerprint_all`] ran
    /// (computing it is deliberately expensive, so grouping does not).
    pub fingerprint: Option<String>,
    /// How the value was encoded where it was first seen.
    pub encoding: Encoding,
    /// Where it was first introduced (earliest commit; first path otherwise).
    pub first: Location,
    /// Every other location.
    pub others: Vec<Location>,
    /// Server match (`--check-server`): `project/environment/NAME`.
    pub live: Option<String>,
}

/// A blob or file and what matched in it, before grouping by value.
pub struct Source {
    /// Where the bytes live (one entry per path/commit they were seen at).
    pub locations: Vec<SourceLocation>,
    /// Hits in the bytes.
    pub hits: Vec<Hit>,
}

/// A place a source's bytes were seen.
#[derive(Clone, Debug)]
pub struct SourceLocation {
    /// Path (None: unreachable blob).
    pub path: Option<String>,
    /// Commit.
    pub commit: Option<CommitInfo>,
    /// Blob id.
    pub blob: Option<String>,
}

/// Groups hits by value, keeping the most specific rule, dropping config-only hits
/// at non-config paths and secret assignments in lock files.
pub fn group(sources: Vec<Source>) -> Vec<Finding> {
    struct Acc {
        rule: Rule,
        secret: SecretValue,
        encoding: Encoding,
        locs: Vec<Location>,
    }
    let mut by_value: BTreeMap<String, Acc> = BTreeMap::new();
    for source in sources {
        for hit in &source.hits {
            for loc in &source.locations {
                // A hit inside an archive is judged by its inner path and reported
                // as `outer!inner`.
                let full = match (&loc.path, &hit.inner) {
                    (Some(p), Some(i)) => Some(format!("{p}!{i}")),
                    (None, Some(i)) => Some(format!("!{i}")),
                    (p, None) => p.clone(),
                };
                let path = hit.inner.as_deref().or(loc.path.as_deref());
                if hit.config_only && !path.is_some_and(is_config_path) {
                    continue;
                }
                if hit.code_only && path.is_some_and(is_config_path) {
                    continue;
                }
                if hit.rule.is_generic() && path.is_some_and(is_lock_file) {
                    continue;
                }
                let location = Location {
                    path: full,
                    line: hit.line,
                    commit: loc.commit.clone(),
                    blob: loc.blob.clone(),
                };
                let acc = by_value
                    .entry(hit.secret.expose().to_owned())
                    .or_insert_with(|| Acc {
                        rule: hit.rule,
                        secret: hit.secret.clone(),
                        encoding: hit.encoding,
                        locs: Vec::new(),
                    });
                if hit.rule < acc.rule {
                    acc.rule = hit.rule;
                }
                if !acc.locs.contains(&location) {
                    acc.locs.push(location);
                }
            }
        }
    }
    let mut out: Vec<Finding> = by_value
        .into_values()
        .filter(|a| !a.locs.is_empty())
        .map(|mut a| {
            a.locs.sort_by(|x, y| {
                let tx = x.commit.as_ref().map_or(i64::MAX, |c| c.time);
                let ty = y.commit.as_ref().map_or(i64::MAX, |c| c.time);
                (tx, &x.path, x.line).cmp(&(ty, &y.path, y.line))
            });
            let first = a.locs.remove(0);
            Finding {
                rule: a.rule,
                fingerprint: None,
                secret: a.secret,
                encoding: a.encoding,
                first,
                others: a.locs,
                live: None,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.first.path, a.first.line, a.rule).cmp(&(&b.first.path, b.first.line, b.rule))
    });
    out
}

/// Fills in every finding's fingerprint under `fp` (in parallel: each one is an
/// argon2id evaluation).
pub fn fingerprint_all(findings: &mut [Finding], fp: &Fingerprinter) {
    findings
        .par_iter_mut()
        .for_each(|f| f.fingerprint = Some(fp.fingerprint(&f.secret)));
}

/// A set of accepted findings, keyed by fingerprint (not line numbers, so moving a
/// known value does not resurrect it).
#[derive(Debug)]
pub struct Baseline {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Version 1: unkeyed SHA-256 fingerprints, read for migration only.
    Legacy(HashSet<String>),
    /// Version 2: argon2id under the recorded parameters.
    Salted {
        params: FingerprintParams,
        fingerprints: HashSet<String>,
    },
}

/// A baseline file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// I/O.
    #[error("baseline {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Not the expected JSON.
    #[error("baseline {path} is not a valid envseal baseline: {source}")]
    Parse {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A version this build does not know.
    #[error("baseline {path} has version {version}; this envseal reads versions 1 and 2")]
    Version {
        /// File.
        path: String,
        /// The version found.
        version: u64,
    },
    /// Version 2 without usable fingerprint parameters.
    #[error("baseline {path}: {source}")]
    Params {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: ParamsError,
    },
    /// A finding without a fingerprint was to be written.
    #[error("baseline {path}: findings must be fingerprinted before they are written")]
    Unfingerprinted {
        /// File.
        path: String,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BaselineFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<FingerprintParams>,
    findings: Vec<BaselineEntry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BaselineEntry {
    fingerprint: String,
    rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

impl Baseline {
    /// Loads a baseline: version 2 (`{"version":2,"fingerprint":{argon2id
    /// parameters and salt},"findings":[{"fingerprint":…}]}`) or, for migration,
    /// version 1 (see [`Baseline::is_legacy`]).
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: shown(),
            source,
        })?;
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| BaselineError::Parse {
                path: shown(),
                source,
            })?;
        let version = raw.get("version").and_then(serde_json::Value::as_u64);
        if let Some(v) = version.filter(|v| !matches!(v, 1 | 2)) {
            return Err(BaselineError::Version {
                path: shown(),
                version: v,
            });
        }
        let file: BaselineFile =
            serde_json::from_value(raw).map_err(|source| BaselineError::Parse {
                path: shown(),
                source,
            })?;
        let fingerprints = file.findings.into_iter().map(|e| e.fingerprint).collect();
        let kind = match (file.version, file.fingerprint) {
            (1, _) => Kind::Legacy(fingerprints),
            (_, Some(params)) => {
                params
                    .fingerprinter()
                    .map_err(|source| BaselineError::Params {
                        path: shown(),
                        source,
                    })?;
                Kind::Salted {
                    params,
                    fingerprints,
                }
            }
            (_, None) => {
                return Err(BaselineError::Params {
                    path: shown(),
                    source: ParamsError::missing(),
                })
            }
        };
        Ok(Baseline { kind })
    }

    /// Whether this is a version 1 baseline, whose unkeyed SHA-256 fingerprints a
    /// dictionary reverses cheaply. It still suppresses what it lists so that a
    /// migration run loses nothing; callers tell the user to rewrite it.
    pub fn is_legacy(&self) -> bool {
        matches!(self.kind, Kind::Legacy(_))
    }

    /// The parameters findings must be fingerprinted with before [`contains`]
    /// (version 2), or `None` for a version 1 baseline.
    ///
    /// [`contains`]: Baseline::contains
    pub fn params(&self) -> Option<&FingerprintParams> {
        match &self.kind {
            Kind::Legacy(_) => None,
            Kind::Salted { params, .. } => Some(params),
        }
    }

    /// Writes `findings` (fingerprinted under `params`) as a version 2 baseline.
    pub fn write(
        path: &Path,
        findings: &[Finding],
        params: &FingerprintParams,
    ) -> Result<(), BaselineError> {
        let shown = || path.display().to_string();
        let mut entries = Vec::with_capacity(findings.len());
        for f in findings {
            let fingerprint = f
                .fingerprint
                .clone()
                .ok_or_else(|| BaselineError::Unfingerprinted { path: shown() })?;
            entries.push(BaselineEntry {
                fingerprint,
                rule: f.rule.id().to_owned(),
                file: f.first.path.clone(),
            });
        }
        let file = BaselineFile {
            version: 2,
            fingerprint: Some(params.clone()),
            findings: entries,
        };
        let text = serde_json::to_string_pretty(&file).map_err(|source| BaselineError::Parse {
            path: shown(),
            source,
        })?;
        std::fs::write(path, text + "\n").map_err(|source| BaselineError::Io {
            path: shown(),
            source,
        })
    }

    /// Whether a finding is accepted. For version 2 the finding must carry its
    /// fingerprint under [`Baseline::params`].
    pub fn contains(&self, finding: &Finding) -> bool {
        match &self.kind {
            Kind::Legacy(set) => set.contains(&finding.secret.legacy_fingerprint()),
            Kind::Salted { fingerprints, .. } => finding
                .fingerprint
                .as_ref()
                .is_some_and(|f| fingerprints.contains(f)),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Legacy(s)
            | Kind::Salted {
                fingerprints: s, ..
            } => s.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

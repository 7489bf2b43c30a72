//! Findings: one per distinct secret value, with the location that introduced it
//! first and every other place it appears; plus baselines keyed by fingerprint.
//!
//! Plain data, no serialisation: output formats live in `output`.

use crate::detect::{Encoding, Hit};
use crate::filters::{is_config_path, is_lock_file};
use crate::rules::Rule;
use crate::secret::SecretValue;
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
    /// [`SecretValue::fingerprint`].
    pub fingerprint: String,
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
                let path = loc.path.as_deref();
                if hit.config_only && !path.is_some_and(is_config_path) {
                    continue;
                }
                if hit.rule == Rule::SecretAssignment && path.is_some_and(is_lock_file) {
                    continue;
                }
                let location = Location {
                    path: loc.path.clone(),
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
                fingerprint: a.secret.fingerprint(),
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

/// A set of accepted findings, keyed by fingerprint (not line numbers, so moving a
/// known value does not resurrect it).
#[derive(Default, Debug)]
pub struct Baseline {
    fingerprints: HashSet<String>,
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
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BaselineFile {
    version: u32,
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
    /// Loads a baseline (`{"version":1,"findings":[{"fingerprint":…}]}`).
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file: BaselineFile =
            serde_json::from_str(&text).map_err(|source| BaselineError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Baseline {
            fingerprints: file.findings.into_iter().map(|e| e.fingerprint).collect(),
        })
    }

    /// Writes `findings` as a baseline file.
    pub fn write(path: &Path, findings: &[Finding]) -> Result<(), BaselineError> {
        let file = BaselineFile {
            version: 1,
            findings: findings
                .iter()
                .map(|f| BaselineEntry {
                    fingerprint: f.fingerprint.clone(),
                    rule: f.rule.id().to_owned(),
                    file: f.first.path.clone(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|source| BaselineError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        std::fs::write(path, text + "\n").map_err(|source| BaselineError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Whether a finding is accepted.
    pub fn contains(&self, finding: &Finding) -> bool {
        self.fingerprints.contains(&finding.fingerprint)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

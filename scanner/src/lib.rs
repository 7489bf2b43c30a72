//! The leak scanner (SPEC §6): finds secrets in Git history, directories and staged
//! changes, and reports one finding per distinct value.
//!
//! Knows nothing about the envseal server or HTTP: the scanner never talks to the
//! network. (`envseal scan --check-server` is a CLI feature layered on the findings.)
#![warn(missing_docs)]

pub mod archive;
pub mod detect;
mod dify;
pub mod dir;
pub mod filters;
pub mod git;
pub mod output;
pub mod report;
pub mod rules;
pub mod secret;

pub use detect::{Encoding, Hit, Scanner};
pub use report::{Baseline, Finding, Location};
pub use rules::Rule;
pub use secret::{FingerprintParams, Fingerprinter, SecretValue};

/// Knobs shared by every kind of scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Blobs and files bigger than this are skipped with a notice.
    pub max_blob_size: u64,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_blob_size: detect::DEFAULT_MAX_SIZE,
            threads: None,
        }
    }
}

/// Receives progress from long scans (the CLI draws a bar).
pub trait Progress: Sync {
    /// The number of units (objects or files) the scan will visit.
    fn start(&self, _total: u64) {}
    /// `n` more units done.
    fn inc(&self, _n: u64) {}
    /// Done.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Something the scan skipped, reported so that nothing is skipped silently.
#[derive(Debug)]
pub enum Notice {
    /// Bigger than `--max-blob-size`.
    TooLarge {
        /// Which blob or file.
        what: String,
        /// Its size in bytes.
        size: u64,
    },
    /// An archive or compressed blob was opened only in part (bounds, damage).
    Archive {
        /// Which blob or file.
        what: String,
        /// What was cut short, with the inner path.
        message: String,
    },
    /// Could not be read (corrupt object or pack, permissions).
    Unreadable {
        /// Which object, pack or file.
        what: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::TooLarge { what, size } => {
                write!(f, "skipped {what}: {size} bytes is over the size limit")
            }
            Notice::Unreadable { what, source } => write!(f, "could not read {what}: {source}"),
            Notice::Archive { what, message } => write!(f, "in {what}: {message}"),
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Blobs or files scanned.
    pub blobs: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Commits walked for attribution or in the range.
    pub commits: u64,
}

/// What a scan found.
#[derive(Debug)]
pub struct ScanResult {
    /// One per distinct value.
    pub findings: Vec<Finding>,
    /// What was skipped.
    pub notices: Vec<Notice>,
    /// Counters.
    pub stats: Stats,
}

/// A scan that could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The path is not inside a Git repository.
    #[error("{path} is not a Git repository (use --no-git to scan it as a directory)")]
    NotARepository {
        /// Path given.
        path: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A revision did not resolve.
    #[error("cannot resolve revision {rev:?}")]
    BadRevision {
        /// The revision.
        rev: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading the repository failed.
    #[error("git: {context}")]
    Git {
        /// What was being done.
        context: &'static str,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

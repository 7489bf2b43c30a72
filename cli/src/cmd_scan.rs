//! `envseal scan`: the leak scanner (SPEC §6). Parses arguments, picks the kind of
//! scan, applies the baseline, optionally asks the server which values are live,
//! prints the report and turns it into an exit code (0 clean, 1 findings, 2 error).
//!
//! Values leave this process only with `--check-server` (to the configured envseal
//! server) and reach stdout only with `--reveal`.

use crate::global::Global;
use anyhow::Context as _;
use envseal_scan::{
    dir, git, output, report, Baseline, Finding, FingerprintParams, Progress, ScanOptions,
    ScanResult, Scanner,
};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Redacted, for people.
    Human,
    /// `{"findings":[…]}`.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// `envseal scan` arguments.
#[derive(clap::Args)]
pub struct ScanArgs {
    /// Repository or directory (default: the current directory).
    path: Option<PathBuf>,
    /// Scan the files of a directory instead of a Git history.
    #[arg(long, conflicts_with_all = ["staged", "since", "state"])]
    no_git: bool,
    /// Scan only what the next commit would add (the index against HEAD).
    #[arg(long, conflicts_with_all = ["since", "state"])]
    staged: bool,
    /// Scan only commits not reachable from REV.
    #[arg(long, value_name = "REV")]
    since: Option<String>,
    /// Incremental state file: scan only commits added since the last run that used
    /// it, then record the current branch and tag tips in it.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Include the full secret value (field `secret` in JSON and SARIF).
    #[arg(long)]
    reveal: bool,
    /// Ignore findings whose fingerprint is in this baseline file.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Write the current findings as a baseline file and exit 0.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Skip blobs and files larger than this many bytes (with a notice).
    #[arg(long, default_value_t = envseal_scan::detect::DEFAULT_MAX_SIZE)]
    max_blob_size: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Ask the envseal server (ENVSEAL_ADDR, ENVSEAL_TOKEN) which found values are
    /// live stored secrets. Sends the candidate values to that server only.
    #[arg(long)]
    check_server: bool,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    version: u32,
    tips: Vec<String>,
}

fn read_state(path: &Path) -> anyhow::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let state: StateFile = serde_json::from_str(&text)
                .with_context(|| format!("state file {} is not valid", path.display()))?;
            Ok(state.tips)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading state file {}", path.display())),
    }
}

fn write_state(path: &Path, tips: Vec<String>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&StateFile { version: 1, tips })?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text + "\n")
        .with_context(|| format!("writing state file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing state file {}", path.display()))
}

/// Runs `envseal scan`.
pub fn run(global: &Global, args: ScanArgs) -> anyhow::Result<ExitCode> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let opts = ScanOptions {
        max_blob_size: args.max_blob_size,
        threads: args.threads,
    };
    if let Some(n) = args.threads {
        // Ignore the error when a pool already exists (tests calling run twice).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    if let (Some(b), Some(file)) = (&baseline, &args.baseline) {
        if b.is_legacy() {
            eprintln!("{}", legacy_notice(file));
        }
    }
    let params = fingerprint_params(baseline.as_ref(), args.write_baseline.as_deref());
    let fingerprinter = params
        .fingerprinter()
        .context("fingerprint parameters of the baseline")?;
    let scanner = Scanner::new();
    let show_bar = !args.no_progress && !args.staged && std::io::stderr().is_terminal();
    let bar = Bar(if show_bar {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "scanning {bar:30} {pos}/{len} objects {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    });

    let mut new_tips = None;
    let mut result: ScanResult = if args.no_git {
        dir::scan_directory(&path, &scanner, &opts, &bar)?
    } else if args.staged {
        git::scan_staged(&path, &scanner, &opts)?
    } else {
        let mut hidden = Vec::new();
        if let Some(rev) = &args.since {
            hidden.push(git::resolve_commit(&path, rev)?);
        }
        if let Some(state) = &args.state {
            hidden.extend(read_state(state)?);
            new_tips = Some(git::tips(&path)?);
        }
        git::scan_repository(&path, &scanner, &opts, &hidden, &bar)?
    };

    report::fingerprint_all(&mut result.findings, &fingerprinter);
    if let Some(file) = &args.write_baseline {
        Baseline::write(file, &result.findings, &params)?;
        eprintln!(
            "envseal: wrote {} fingerprint(s) to {} (version 2, argon2id)",
            result.findings.len(),
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(baseline) = &baseline {
        result.findings.retain(|f| !baseline.contains(f));
    }
    if args.check_server && !result.findings.is_empty() {
        check_server(global, &mut result.findings)?;
    }

    let text = match args.format {
        Format::Human => output::human(
            &result,
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        ),
        Format::Json => output::json(&result, args.reveal),
        Format::Sarif => {
            for n in &result.notices {
                eprintln!("envseal: notice: {}", output::sanitize(&n.to_string()));
            }
            output::sarif(&result.findings, Some(&params), args.reveal)
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    if let (Some(state), Some(tips)) = (&args.state, new_tips) {
        write_state(state, tips)?;
    }
    Ok(if result.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What to say when a version 1 baseline is read.
fn legacy_notice(file: &Path) -> String {
    let f = file.display();
    format!(
        "envseal: baseline {f} is version 1: its fingerprints are unkeyed SHA-256 hashes \
         that a dictionary reverses cheaply. It was used for this run; migrate it with \
         `envseal scan --baseline {f} --write-baseline {f}` (version 2, salted argon2id) \
         and commit the rewritten file."
    )
}

/// The fingerprint parameters of this run: the baseline's (so its fingerprints
/// match), else those of the baseline about to be rewritten (so an unchanged set
/// of findings rewrites to the same file), else fresh ones with a new salt.
fn fingerprint_params(baseline: Option<&Baseline>, target: Option<&Path>) -> FingerprintParams {
    baseline
        .and_then(Baseline::params)
        .cloned()
        .or_else(|| {
            target
                .filter(|t| t.exists())
                .and_then(|t| Baseline::load(t).ok())
                .and_then(|b| b.params().cloned())
        })
        .unwrap_or_else(FingerprintParams::generate)
}

#[derive(serde::Serialize)]
struct CheckRequest<'a> {
    candidates: Vec<Candidate<'a>>,
}

#[derive(serde::Serialize)]
struct Candidate<'a> {
    value: &'a str,
    id: usize,
}

#[derive(serde::Deserialize)]
struct CheckResponse {
    matches: Vec<CheckMatch>,
}

#[derive(serde::Deserialize)]
struct CheckMatch {
    id: usize,
    project: String,
    environment: String,
    name: String,
}

/// `POST /v1/leaks/check` in batches; marks matching findings `live`.
fn check_server(global: &Global, findings: &mut [Finding]) -> anyhow::Result<()> {
    const BATCH: usize = 500;
    let client = global.client()?;
    for (batch_no, chunk) in findings.chunks_mut(BATCH).enumerate() {
        let request = CheckRequest {
            candidates: chunk
                .iter()
                .enumerate()
                .map(|(i, f)| Candidate {
                    value: f.secret.expose(),
                    id: batch_no * BATCH + i,
                })
                .collect(),
        };
        let response: CheckResponse = client
            .send("POST", "/v1/leaks/check", &request)
            .context("asking the envseal server which values are live (--check-server)")?;
        for m in response.matches {
            if let Some(i) = m.id.checked_sub(batch_no * BATCH) {
                if let Some(f) = chunk.get_mut(i) {
                    f.live = Some(format!("{}/{}/{}", m.project, m.environment, m.name));
                }
            }
        }
    }
    Ok(())
}

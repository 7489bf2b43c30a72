//! Output formats at the edge: the redacted human report, JSON and SARIF 2.1.0.
//!
//! Values appear only in the JSON/SARIF field `secret` and only when `reveal` is
//! set; everything else carries the redacted form and the fingerprint.

use crate::report::{Finding, Location};
use crate::rules::Rule;
use crate::secret::FingerprintParams;
use crate::{Notice, ScanResult};
use serde::Serialize;
use std::fmt::Write as _;

/// Terminal-safe text: control characters (escape sequences in a hostile path)
/// are shown escaped.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn date(secs: i64) -> String {
    // Civil date from Unix seconds (UTC), after Howard Hinnant's algorithm.
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn place(loc: &Location) -> String {
    let path =
        loc.path.as_deref().map(sanitize).unwrap_or_else(|| {
            format!("(unreachable blob {})", loc.blob.as_deref().unwrap_or("?"))
        });
    let mut s = format!("{path}:{}", loc.line);
    if let Some(c) = &loc.commit {
        let _ = write!(
            s,
            " in commit {} ({})",
            &c.id[..c.id.len().min(12)],
            date(c.time)
        );
    }
    s
}

/// The human report. `color` adds ANSI colours.
pub fn human(result: &ScanResult, color: bool) -> String {
    let (red, yellow, dim, bold, reset) = if color {
        ("\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "", "")
    };
    let mut out = String::new();
    for f in &result.findings {
        let _ = writeln!(
            out,
            "{bold}{red}{}{reset}  {}  {bold}{}{reset}{}",
            f.rule.id(),
            f.rule.description(),
            f.secret.redacted(),
            match f.encoding {
                crate::Encoding::Plain => String::new(),
                e => format!(" ({}-encoded)", e.as_str()),
            }
        );
        if let Some(live) = &f.live {
            let _ = writeln!(out, "  {bold}{red}LIVE: {}{reset}", sanitize(live));
        }
        let _ = writeln!(out, "  first: {}", place(&f.first));
        for o in &f.others {
            let _ = writeln!(out, "  {dim}also:  {}{reset}", place(o));
        }
        if let Some(fp) = &f.fingerprint {
            let _ = writeln!(out, "  {dim}fingerprint {fp}{reset}");
        }
    }
    for n in &result.notices {
        let _ = writeln!(out, "{yellow}notice:{reset} {}", sanitize(&n.to_string()));
    }
    let n = result.findings.len();
    let _ = writeln!(
        out,
        "{}{} finding{}{} ({} blobs or files, {} bytes scanned)",
        if n > 0 { red } else { "" },
        n,
        if n == 1 { "" } else { "s" },
        reset,
        result.stats.blobs,
        result.stats.bytes
    );
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: Vec<JsonFinding<'a>>,
    notices: Vec<String>,
    stats: JsonStats,
}

#[derive(Serialize)]
struct JsonStats {
    blobs: u64,
    bytes: u64,
    commits: u64,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'static str,
    description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    file: Option<&'a str>,
    line: u32,
    commit: Option<&'a str>,
    date: Option<String>,
    encoding: &'static str,
    redacted: String,
    locations: Vec<JsonLocation<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonLocation<'a> {
    file: Option<&'a str>,
    line: u32,
    commit: Option<&'a str>,
    blob: Option<&'a str>,
}

fn json_loc(l: &Location) -> JsonLocation<'_> {
    JsonLocation {
        file: l.path.as_deref(),
        line: l.line,
        commit: l.commit.as_ref().map(|c| c.id.as_str()),
        blob: l.blob.as_deref(),
    }
}

/// `{"findings":[…]}`; `locations` lists every location, the first one first.
pub fn json(result: &ScanResult, reveal: bool) -> String {
    let report = JsonReport {
        findings: result
            .findings
            .iter()
            .map(|f| JsonFinding {
                rule: f.rule.id(),
                description: f.rule.description(),
                fingerprint: f.fingerprint.as_deref(),
                file: f.first.path.as_deref(),
                line: f.first.line,
                commit: f.first.commit.as_ref().map(|c| c.id.as_str()),
                date: f.first.commit.as_ref().map(|c| date(c.time)),
                encoding: f.encoding.as_str(),
                redacted: f.secret.redacted(),
                locations: std::iter::once(&f.first)
                    .chain(&f.others)
                    .map(json_loc)
                    .collect(),
                live: f.live.as_deref(),
                secret: reveal.then(|| f.secret.expose()),
            })
            .collect(),
        notices: result.notices.iter().map(Notice::to_string).collect(),
        stats: JsonStats {
            blobs: result.stats.blobs,
            bytes: result.stats.bytes,
            commits: result.stats.commits,
        },
    };
    serde_json::to_string_pretty(&report).expect("plain data serialises") + "\n"
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sarif<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<SarifRun<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRun<'a> {
    tool: SarifTool,
    results: Vec<SarifResult<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<SarifRunProperties<'a>>,
}

/// How the run's `partialFingerprints` were computed, so a later run (or a
/// baseline) can reproduce them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRunProperties<'a> {
    fingerprint: &'a FingerprintParams,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifTool {
    driver: SarifDriver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifDriver {
    name: &'static str,
    version: &'static str,
    rules: Vec<SarifRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRule {
    id: &'static str,
    name: &'static str,
    short_description: SarifText,
    default_configuration: SarifConfig,
}

#[derive(Serialize)]
struct SarifConfig {
    level: &'static str,
}

#[derive(Serialize)]
struct SarifText {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    rule_index: usize,
    level: &'static str,
    message: SarifText,
    locations: Vec<SarifLocation<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partial_fingerprints: Option<SarifFingerprints<'a>>,
    properties: SarifProperties<'a>,
}

#[derive(Serialize)]
struct SarifFingerprints<'a> {
    #[serde(rename = "envsealValue/v2")]
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifProperties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a str>,
    redacted: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation<'a> {
    physical_location: SarifPhysical<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifPhysical<'a> {
    artifact_location: SarifArtifact<'a>,
    region: SarifRegion,
}

#[derive(Serialize)]
struct SarifArtifact<'a> {
    uri: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRegion {
    start_line: u32,
}

fn sarif_loc(l: &Location) -> Option<SarifLocation<'_>> {
    Some(SarifLocation {
        physical_location: SarifPhysical {
            artifact_location: SarifArtifact {
                uri: l.path.as_deref()?,
            },
            region: SarifRegion {
                start_line: l.line.max(1),
            },
        },
    })
}

/// A SARIF 2.1.0 log with one result per finding. `params`: what the findings'
/// fingerprints were computed with (recorded in the run's properties; the SARIF
/// carries no unsalted hash of any value).
pub fn sarif(findings: &[Finding], params: Option<&FingerprintParams>, reveal: bool) -> String {
    let all = Rule::all();
    let rules = all
        .iter()
        .map(|r| SarifRule {
            id: r.id(),
            name: r.id(),
            short_description: SarifText {
                text: r.description().to_owned(),
            },
            default_configuration: SarifConfig { level: "error" },
        })
        .collect();
    let results = findings
        .iter()
        .map(|f| SarifResult {
            rule_id: f.rule.id(),
            rule_index: all.iter().position(|r| *r == f.rule).unwrap_or(0),
            level: "error",
            message: SarifText {
                text: format!("{} ({})", f.rule.description(), f.secret.redacted()),
            },
            locations: std::iter::once(&f.first)
                .chain(&f.others)
                .filter_map(sarif_loc)
                .collect(),
            partial_fingerprints: f
                .fingerprint
                .as_deref()
                .map(|value| SarifFingerprints { value }),
            properties: SarifProperties {
                commit: f.first.commit.as_ref().map(|c| c.id.as_str()),
                redacted: f.secret.redacted(),
                secret: reveal.then(|| f.secret.expose()),
            },
        })
        .collect();
    let log = Sarif {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: vec![SarifRun {
            tool: SarifTool {
                driver: SarifDriver {
                    name: "envseal",
                    version: env!("CARGO_PKG_VERSION"),
                    rules,
                },
            },
            results,
            properties: params.map(|fingerprint| SarifRunProperties { fingerprint }),
        }],
    };
    serde_json::to_string_pretty(&log).expect("plain data serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_700_000_000), "2023-11-14");
    }

    #[test]
    fn sanitize_escapes_control_characters() {
        assert_eq!(sanitize("a\x1b[31mb"), "a\\u{1b}[31mb");
    }
}

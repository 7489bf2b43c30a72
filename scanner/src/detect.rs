//! The matching engine: one Aho-Corasick pass over a buffer finds keywords, each
//! keyword opens a small window (its line, a few lines around it, or a PEM block),
//! and only there do the detectors' regexes and filters run. Base64 runs that encode
//! a known key prefix, and `data:` values of Kubernetes Secrets, are decoded and
//! scanned again; URL passwords are percent-decoded.
//!
//! Works on bytes only: no I/O, no paths except an optional hint, no network.

use crate::dify;
use crate::filters::{
    classes, entropy, is_config_path, is_documented_example, is_lock_file, is_placeholder,
    is_reference, is_trivial_password, is_uuid, looks_generated,
};
use crate::rules::{Checksum, Rule, RuleDef, DATA_RULES};
use crate::secret::SecretValue;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use regex::bytes::Regex;

/// How a value appeared in the scanned bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// As is.
    Plain,
    /// Inside a base64 string.
    Base64,
    /// Percent-encoded (a URL password).
    Percent,
}

impl Encoding {
    /// `plain`, `base64` or `percent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::Base64 => "base64",
            Encoding::Percent => "percent",
        }
    }
}

/// One match inside one buffer.
#[derive(Clone, Debug)]
pub struct Hit {
    /// What was found.
    pub rule: Rule,
    /// The value.
    pub secret: SecretValue,
    /// 1-based line of the match in the buffer.
    pub line: u32,
    /// How it was encoded.
    pub encoding: Encoding,
    /// The hit only counts in a configuration file (`.env`, YAML, …); the caller
    /// decides once it knows the path.
    pub config_only: bool,
    /// The hit only counts outside configuration files (source code).
    pub code_only: bool,
    /// The file inside an archive or compressed blob the value was found in.
    pub inner: Option<String>,
    /// Byte offset in the buffer (lines are counted once, at the end of a scan).
    offset: usize,
}

/// Largest buffer the scanner looks at by default (bigger blobs are skipped with a
/// notice by the callers).
pub const DEFAULT_MAX_SIZE: u64 = 32 * 1024 * 1024;

/// Lines longer than this are searched only near each keyword.
const MAX_LINE: usize = 4096;
/// Base64 decoding goes at most this deep.
const MAX_DEPTH: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Det {
    OpenAiProject,
    SkKey,
    Anthropic,
    Google,
    AzureContext,
    AzureSignature,
    Zhipu,
    AwsId,
    AwsSecret,
    GitHub,
    GitHubFine,
    GitLab,
    Slack,
    SlackHook,
    Stripe,
    HuggingFace,
    SendGrid,
    Pem,
    Jwt,
    Url,
    DifyApp,
    DifyDataset,
    Assignment,
    /// A base64 run that encodes a known key prefix.
    Base64,
    /// A rule from a rule file (index into `DATA_RULES`).
    Data(u16),
}

#[derive(Clone, Copy)]
enum Window {
    /// The keyword's line.
    Line,
    /// The keyword's line and this many lines on either side.
    Around(usize),
    /// From the keyword's line to the end of a PEM block.
    Pem,
    /// The base64 run containing the keyword.
    Run,
}

struct Spec {
    det: Det,
    keywords: &'static [&'static str],
    window: Window,
    regex: Option<&'static str>,
}

const B64_TRIGGER: Trigger = Trigger {
    det: Det::Base64,
    window: Window::Run,
    regex: None,
};

const B64_PREFIXES: &[&str] = &[
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-ant-",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "AIza",
    "hf_",
    "SG.",
    "sk_live_",
    "rk_live_",
    "-----BEGIN",
];

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            det: Det::OpenAiProject,
            keywords: &["sk-proj-", "sk-svcacct-", "sk-admin-"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Za-z0-9_-])(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,300})"),
        },
        Spec {
            det: Det::SkKey,
            keywords: &["sk-"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Za-z0-9_-])(sk-[A-Za-z0-9]{32,64})(?:[^A-Za-z0-9_-]|$)"),
        },
        Spec {
            det: Det::Anthropic,
            keywords: &["sk-ant-"],
            window: Window::Line,
            regex: Some(r"(sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_-]{80,120})"),
        },
        Spec {
            det: Det::Google,
            keywords: &["AIza"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})(?:[^A-Za-z0-9_-]|$)"),
        },
        Spec {
            det: Det::AzureContext,
            keywords: &["azure"],
            window: Window::Around(3),
            regex: Some(
                r#"(?i)(?:key|secret|token|credential)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?([0-9a-f]{32}|[0-9a-z]{84})(?:[^0-9a-z]|$)"#,
            ),
        },
        Spec {
            det: Det::AzureSignature,
            keywords: &["JQQJ9"],
            window: Window::Line,
            regex: Some(
                r"(?:^|[^0-9A-Za-z])([0-9A-Za-z]{52}JQQJ9[0-9A-Za-z]{27})(?:[^0-9A-Za-z]|$)",
            ),
        },
        Spec {
            det: Det::Zhipu,
            keywords: &["zhipu", "bigmodel", "glm"],
            window: Window::Around(3),
            regex: Some(r"(?:^|[^0-9A-Za-z])([0-9a-f]{32}\.[0-9A-Za-z]{16})(?:[^0-9A-Za-z]|$)"),
        },
        Spec {
            det: Det::AwsId,
            keywords: &["AKIA", "ASIA", "ABIA", "ACCA"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Z0-9])((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})(?:[^A-Z0-9]|$)"),
        },
        Spec {
            det: Det::AwsSecret,
            keywords: &[
                "aws_secret",
                "aws-secret",
                "awssecret",
                "secret_access_key",
                "secretaccesskey",
                "AKIA",
                "ASIA",
            ],
            window: Window::Around(2),
            regex: Some(r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"),
        },
        Spec {
            det: Det::GitHub,
            keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36})(?:[^A-Za-z0-9_]|$)"),
        },
        Spec {
            det: Det::GitHubFine,
            keywords: &["github_pat_"],
            window: Window::Line,
            regex: Some(r"(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?:[^A-Za-z0-9_]|$)"),
        },
        Spec {
            det: Det::GitLab,
            keywords: &["glpat-", "gldt-", "glrt-", "glptt-", "gloas-", "glcbt-"],
            window: Window::Line,
            regex: Some(
                r"(?:^|[^A-Za-z0-9_-])((?:glpat|gldt|glrt|glptt|glft|glsoat|gloas|glcbt|glimt|glagent)-[A-Za-z0-9_.-]{20,80})",
            ),
        },
        Spec {
            det: Det::Slack,
            keywords: &["xox", "xapp-"],
            window: Window::Line,
            regex: Some(r"(xox[abeprs]-[0-9A-Za-z-]{10,250}|xapp-[0-9]-[A-Za-z0-9-]{20,250})"),
        },
        Spec {
            det: Det::SlackHook,
            keywords: &["hooks.slack.com"],
            window: Window::Line,
            regex: Some(
                r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_+-]{20,200})",
            ),
        },
        Spec {
            det: Det::Stripe,
            keywords: &["k_live_", "k_test_"],
            window: Window::Line,
            regex: Some(
                r"(?:^|[^A-Za-z0-9_])((?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,247})(?:[^A-Za-z0-9_]|$)",
            ),
        },
        Spec {
            det: Det::HuggingFace,
            keywords: &["hf_", "api_org_"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Za-z0-9_])((?:hf|api_org)_[A-Za-z]{34})(?:[^A-Za-z0-9_]|$)"),
        },
        Spec {
            det: Det::SendGrid,
            keywords: &["SG."],
            window: Window::Line,
            regex: Some(r"(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?:[^A-Za-z0-9_-]|$)"),
        },
        Spec {
            det: Det::Pem,
            keywords: &["-----BEGIN"],
            window: Window::Pem,
            regex: None,
        },
        Spec {
            det: Det::Jwt,
            keywords: &["eyJ"],
            window: Window::Line,
            regex: Some(
                r"(?:^|[^A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,})",
            ),
        },
        Spec {
            det: Det::Url,
            keywords: &[
                "postgres://",
                "postgresql://",
                "postgresql+",
                "postgres+",
                "mysql://",
                "mysql+",
                "mariadb://",
                "mariadb+",
                "redis://",
                "rediss://",
                "sentinel://",
                "amqp://",
                "amqps://",
                "mongodb://",
                "mongodb+srv://",
            ],
            window: Window::Line,
            regex: Some(
                r#"(?i)((?:postgres(?:ql)?|mysql|mariadb|rediss?|sentinel|amqps?|mongodb)(?:\+[a-z0-9]+)?)://([^:/?#@\s"'<>]*):([^@\s"'<>/]+)@([^\s/:"'<>?#;,]+)"#,
            ),
        },
        Spec {
            det: Det::DifyApp,
            keywords: &["app-"],
            window: Window::Line,
            regex: Some(r"(?:^|[^A-Za-z0-9_-])(app-[A-Za-z0-9]{24})(?:[^A-Za-z0-9_-]|$)"),
        },
        Spec {
            det: Det::DifyDataset,
            keywords: &["dataset-", "ds-"],
            window: Window::Line,
            regex: Some(
                r"(?:^|[^A-Za-z0-9_-])((?:dataset|ds)-[A-Za-z0-9]{24})(?:[^A-Za-z0-9_-]|$)",
            ),
        },
        Spec {
            det: Det::Assignment,
            keywords: &[
                "password",
                "passwd",
                "pwd",
                "secret",
                "token",
                "api_key",
                "apikey",
                "api-key",
                "access_key",
                "accesskey",
                "private_key",
                "privatekey",
                "credential",
                "account_key",
                "server_key",
                "daemon_key",
                "encryption_key",
                "signing_key",
                "master_key",
                "auth_key",
                "_pass",
            ],
            window: Window::Line,
            regex: None,
        },
    ]
}

/// Which detector a keyword triggers and which window it opens.
#[derive(Clone, Copy)]
struct Trigger {
    det: Det,
    window: Window,
    /// Index into `Scanner::regexes`.
    regex: Option<usize>,
}

/// A keyword automaton and, per pattern, the detectors it triggers (including
/// those of every pattern that can overlap it, which a non-overlapping search
/// would otherwise hide).
struct Keywords {
    ac: AhoCorasick,
    triggers: Vec<Vec<Trigger>>,
}

impl Keywords {
    fn build(entries: &[(String, Trigger)], case_insensitive: bool) -> Keywords {
        let mut patterns: Vec<String> = Vec::new();
        let mut base: Vec<Vec<Trigger>> = Vec::new();
        for (pattern, trigger) in entries {
            let key = if case_insensitive {
                pattern.to_ascii_lowercase()
            } else {
                pattern.clone()
            };
            let i = patterns.iter().position(|p| *p == key).unwrap_or_else(|| {
                patterns.push(key);
                base.push(Vec::new());
                patterns.len() - 1
            });
            if !base[i].iter().any(|t| t.det == trigger.det) {
                base[i].push(*trigger);
            }
        }
        // A pattern that starts with another is redundant: the shorter one matches
        // wherever it does, so it takes over its detectors. Fewer patterns keep the
        // automaton's prefilter (Teddy handles a few dozen) in play.
        let mut keep = vec![true; patterns.len()];
        for i in 0..patterns.len() {
            for j in 0..patterns.len() {
                if i != j && keep[i] && keep[j] && patterns[j].starts_with(patterns[i].as_str()) {
                    keep[j] = false;
                    let moved = base[j].clone();
                    for t in moved {
                        if !base[i].iter().any(|x| x.det == t.det) {
                            base[i].push(t);
                        }
                    }
                }
            }
        }
        let mut k = keep.iter();
        patterns.retain(|_| *k.next().expect("same length"));
        let mut k = keep.iter();
        base.retain(|_| *k.next().expect("same length"));
        let mut triggers = base.clone();
        for (i, a) in patterns.iter().enumerate() {
            for (j, b) in patterns.iter().enumerate() {
                if i != j && overlaps(a, b) {
                    for t in &base[j] {
                        if !triggers[i].iter().any(|x| x.det == t.det) {
                            triggers[i].push(*t);
                        }
                    }
                }
            }
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(case_insensitive)
            .build(&patterns[..])
            .expect("keyword automaton builds");
        Keywords { ac, triggers }
    }
}

/// The compiled detectors. Build once, share across threads.
///
/// Two keyword sets: configuration files get every detector with ASCII
/// case-insensitive keywords (secret-named assignments: `password`, `Api_Key`…);
/// everything else gets the provider detectors with case-sensitive keywords, which
/// a prefilter can skip through several times faster.
pub struct Scanner {
    config: Keywords,
    other: Keywords,
    /// Base64 encodings of key prefixes, exact case, searched separately so the
    /// keyword automata keep their prefilters; a run is decoded only if it holds one.
    b64: AhoCorasick,
    /// The rule files' keywords (exact case; context words in their usual
    /// spellings): every rule for configuration files (and unknown paths), the
    /// rules that are not `config_only` for the rest.
    data_config: Keywords,
    data_other: Keywords,
    /// Every rule-file rule (paths not known yet; the caller drops what does not
    /// fit the path).
    data_all: Keywords,
    regexes: Vec<Regex>,
    pem_begin: Regex,
}

/// What the scanner knows about the path of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// A configuration file (`.env`, YAML, JSON, TOML, INI, Dockerfile…).
    Config,
    /// Any other file.
    Other,
    /// Unknown: run everything and mark config-only hits for the caller.
    Unknown,
}

/// Spellings of a case-insensitive context word for the case-sensitive set:
/// `azure`, `AZURE`, `Azure`, and camel case (`secretAccessKey`).
fn case_variants(word: &str) -> Vec<String> {
    let lower = word.to_ascii_lowercase();
    let upper = word.to_ascii_uppercase();
    let mut cap = lower.clone();
    cap[..1].make_ascii_uppercase();
    let camel: String = lower
        .split('_')
        .enumerate()
        .map(|(i, p)| {
            let mut q = p.to_owned();
            if i > 0 && !q.is_empty() {
                q[..1].make_ascii_uppercase();
            }
            q
        })
        .collect();
    let mut out = vec![lower];
    for v in [upper, cap, camel] {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Whether a match of `a` can hide a match of `b` in a non-overlapping search:
/// `b` inside `a`, or a suffix of `a` starting `b`.
fn overlaps(a: &str, b: &str) -> bool {
    a.contains(b) || (1..a.len()).any(|k| b.starts_with(&a[k..]))
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

/// The base64 substrings that appear when `prefix` is encoded at each of the three
/// byte alignments.
fn base64_needles(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..3usize {
        let mut bytes = vec![0u8; k];
        bytes.extend_from_slice(prefix.as_bytes());
        let enc = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
        let first = (8 * k).div_ceil(6);
        let last = (8 * (k + prefix.len())) / 6; // exclusive
        if last > first + 4 {
            out.push(enc[first..last].to_owned());
        }
    }
    out
}

impl Scanner {
    /// Compiles every detector.
    pub fn new() -> Self {
        let mut all: Vec<(String, Trigger)> = Vec::new();
        let mut sensitive: Vec<(String, Trigger)> = Vec::new();
        let mut regexes = Vec::new();
        for spec in specs() {
            let regex = spec.regex.map(|r| {
                regexes.push(Regex::new(r).expect("detector regexes are valid"));
                regexes.len() - 1
            });
            let trigger = Trigger {
                det: spec.det,
                window: spec.window,
                regex,
            };
            for kw in spec.keywords {
                all.push(((*kw).to_owned(), trigger));
                match spec.det {
                    Det::Assignment => {}
                    Det::AzureContext | Det::Zhipu | Det::AwsSecret => {
                        if !matches!(*kw, "aws-secret" | "awssecret" | "secretaccesskey") {
                            for v in case_variants(kw) {
                                sensitive.push((v, trigger));
                            }
                        }
                    }
                    // `postgresql://` → `postgres`: prefixes merge into one pattern.
                    Det::Url => sensitive.push((
                        kw.chars().take_while(char::is_ascii_alphabetic).collect(),
                        trigger,
                    )),
                    _ => sensitive.push(((*kw).to_owned(), trigger)),
                }
            }
        }
        let mut data_keywords: Vec<(String, Trigger)> = Vec::new();
        let mut data_other: Vec<(String, Trigger)> = Vec::new();
        let mut data_all: Vec<(String, Trigger)> = Vec::new();
        for (i, def) in DATA_RULES.iter().enumerate() {
            let re = Regex::new(def.regex)
                .unwrap_or_else(|e| panic!("rule {} in {}: {e}", def.id, def.file));
            regexes.push(re);
            let trigger = Trigger {
                det: Det::Data(u16::try_from(i).expect("fewer than 65536 rules")),
                window: if def.window == 0 {
                    Window::Line
                } else {
                    Window::Around(usize::from(def.window))
                },
                regex: Some(regexes.len() - 1),
            };
            for kw in def.keywords {
                let spellings = if def.ignore_case {
                    case_variants(kw)
                } else {
                    vec![(*kw).to_owned()]
                };
                for v in spellings {
                    if !def.config_only {
                        data_other.push((v.clone(), trigger));
                    }
                    if !def.code_only {
                        data_keywords.push((v.clone(), trigger));
                    }
                    data_all.push((v, trigger));
                }
            }
        }
        let needles: Vec<String> = B64_PREFIXES
            .iter()
            .flat_map(|p| base64_needles(p))
            .collect();
        Scanner {
            config: Keywords::build(&all, true),
            other: Keywords::build(&sensitive, false),
            b64: AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&needles)
                .expect("needle automaton builds"),
            data_config: Keywords::build(&data_keywords, false),
            data_other: Keywords::build(&data_other, false),
            data_all: Keywords::build(&data_all, false),
            regexes,
            pem_begin: Regex::new(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
                .expect("valid regex"),
        }
    }

    /// Scans one buffer. `path` (when known) decides whether config-only hits count;
    /// without it they are returned marked `config_only` for the caller to decide.
    pub fn scan(&self, data: &[u8], path: Option<&str>) -> Vec<Hit> {
        let kind = match path {
            None => PathKind::Unknown,
            Some(p) if is_config_path(p) => PathKind::Config,
            Some(_) => PathKind::Other,
        };
        let mut hits = self.scan_kind(data, kind);
        if path.is_some_and(is_lock_file) {
            hits.retain(|h| !h.rule.is_generic());
        }
        hits
    }

    /// Scans one buffer whose path kind is known (Git blobs: from the tree walk).
    pub fn scan_kind(&self, data: &[u8], kind: PathKind) -> Vec<Hit> {
        let mut hits = Vec::new();
        if is_binary(data) {
            return hits;
        }
        let keywords = match kind {
            PathKind::Other => &self.other,
            PathKind::Config | PathKind::Unknown => &self.config,
        };
        let data_keywords = match kind {
            PathKind::Other => &self.data_other,
            PathKind::Config => &self.data_config,
            PathKind::Unknown => &self.data_all,
        };
        self.scan_into(&[keywords, data_keywords], data, 0, &mut hits);
        if kind == PathKind::Other {
            hits.retain(|h| !h.config_only);
        }
        number_lines(data, &mut hits);
        dedup_hits(&mut hits);
        hits
    }

    fn scan_into(&self, keywords: &[&Keywords; 2], data: &[u8], depth: u8, hits: &mut Vec<Hit>) {
        let mut windows: Vec<(Trigger, usize, usize)> = Vec::new();
        for set in keywords {
            for m in set.ac.find_iter(data) {
                for trig in &set.triggers[m.pattern().as_usize()] {
                    if let Det::Data(i) = trig.det {
                        if !keyword_at_boundary(&DATA_RULES[usize::from(i)], data, m.start()) {
                            continue;
                        }
                    }
                    let (s, e) = window(data, m.start(), m.end(), trig.window);
                    windows.push((*trig, s, e));
                }
            }
        }
        if depth < MAX_DEPTH {
            let mut run_end = 0;
            for m in self.b64.find_iter(data) {
                if m.start() < run_end {
                    continue; // same base64 run as the previous needle
                }
                let (s, e) = window(data, m.start(), m.end(), Window::Run);
                run_end = e;
                windows.push((B64_TRIGGER, s, e));
            }
        }
        if windows.is_empty() {
            return;
        }
        windows.sort_unstable_by_key(|&(t, s, _)| (t.det, s));
        // Merge overlapping windows of one detector (long lines, keyword runs) so no
        // byte is searched twice by the same detector.
        windows.dedup_by(|next, prev| {
            if next.0.det == prev.0.det && next.1 <= prev.2 {
                prev.2 = prev.2.max(next.2);
                true
            } else {
                false
            }
        });
        let mut k8s_secret: Option<bool> = None;
        for (trig, s, e) in windows {
            let win = &data[s..e];
            match trig.det {
                Det::Base64 => {
                    if depth < MAX_DEPTH {
                        self.decode_run(keywords, data, s, e, depth, hits);
                    }
                }
                Det::Pem => self.pem(data, s, e, hits),
                Det::Assignment => {
                    let is_k8s = *k8s_secret.get_or_insert_with(|| is_k8s_secret(data));
                    assignment(data, s, e, is_k8s, hits);
                }
                det => {
                    let re = &self.regexes[trig.regex.expect("regex detector")];
                    for caps in re.captures_iter(win) {
                        let g = match det {
                            Det::Data(_) => caps.name("secret"),
                            _ => caps.get(1),
                        };
                        let Some(g) = g else { continue };
                        let abs = s + g.start();
                        if det == Det::Url {
                            url(data, s, &caps, hits);
                            continue;
                        }
                        let Ok(value) = std::str::from_utf8(g.as_bytes()) else {
                            continue;
                        };
                        if let Det::Data(i) = det {
                            let def = &DATA_RULES[usize::from(i)];
                            if data_rule_accepts(def, value, data, abs) {
                                let config_only = def.config_only;
                                let rule = Rule::Data(i);
                                push(hits, data, abs, rule, value, Encoding::Plain, config_only);
                            }
                            continue;
                        }
                        if let Some(rule) = classify(det, value, data, abs) {
                            push(hits, data, abs, rule, value, Encoding::Plain, false);
                        }
                    }
                }
            }
        }
    }

    fn decode_run(
        &self,
        keywords: &[&Keywords; 2],
        data: &[u8],
        s: usize,
        e: usize,
        depth: u8,
        hits: &mut Vec<Hit>,
    ) {
        let run = &data[s..e];
        if run.len() < 16 || s >= 7 && &data[s - 7..s] == b"base64," || !self.b64.is_match(run) {
            return;
        }
        let Some(decoded) = decode_base64(run) else {
            return;
        };
        if is_binary(&decoded) {
            return;
        }
        let mut inner = Vec::new();
        self.scan_into(keywords, &decoded, depth + 1, &mut inner);
        if has_allow_marker(data, s) {
            return;
        }
        for mut h in inner {
            h.offset = s;
            h.encoding = Encoding::Base64;
            hits.push(h);
        }
    }

    fn pem(&self, data: &[u8], s: usize, e: usize, hits: &mut Vec<Hit>) {
        let win = &data[s..e];
        for begin in self.pem_begin.find_iter(win) {
            let rest = &win[begin.end()..];
            let Some(end_rel) = memchr::memmem::find(rest, b"-----END") else {
                return;
            };
            let body = &rest[..end_rel];
            let tail = &rest[end_rel..];
            let close =
                memchr::memmem::find(&tail[8..], b"-----").map_or(tail.len(), |i| i + 8 + 5);
            let b64 = body
                .iter()
                .filter(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
                .count();
            if b64 < 64
                || memchr::memmem::find(body, b"...").is_some()
                || memchr::memmem::find(body, "\u{2026}".as_bytes()).is_some()
                || is_placeholder_body(body)
            {
                continue;
            }
            let abs = s + begin.start();
            let block = &data[abs..s + begin.end() + end_rel + close];
            let Ok(value) = std::str::from_utf8(block) else {
                continue;
            };
            push(
                hits,
                data,
                abs,
                Rule::PrivateKey,
                value,
                Encoding::Plain,
                false,
            );
        }
    }
}

fn is_placeholder_body(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("xxxx") || text.contains("your") || text.contains("example") || text.contains("<")
}

/// Whether the buffer looks binary (a NUL byte in its first 8 KiB).
pub fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(8192)]).is_some()
}

fn is_k8s_secret(data: &[u8]) -> bool {
    memchr::memmem::find(data, b"kind: Secret").is_some()
}

/// The line around `pos`, looking at most `MAX_LINE + 1` bytes either way (a longer
/// line comes back clipped, which callers treat as "too long"), so that many
/// keywords on one enormous line cost linear time.
fn line_bounds(data: &[u8], pos: usize) -> (usize, usize) {
    let lo = pos.saturating_sub(MAX_LINE + 1);
    let hi = (pos + MAX_LINE + 1).min(data.len());
    let start = memchr::memrchr(b'\n', &data[lo..pos]).map_or(lo, |i| lo + i + 1);
    let end = memchr::memchr(b'\n', &data[pos..hi]).map_or(hi, |i| pos + i);
    (start, end)
}

/// Fills in `line` for every hit with one pass over the buffer.
fn number_lines(data: &[u8], hits: &mut [Hit]) {
    hits.sort_by_key(|h| h.offset);
    let (mut line, mut at) = (1u32, 0usize);
    for h in hits {
        let to = h.offset.min(data.len());
        if to > at {
            let n = memchr::memchr_iter(b'\n', &data[at..to]).count();
            line = line.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            at = to;
        }
        h.line = line;
    }
}

fn window(data: &[u8], ms: usize, me: usize, kind: Window) -> (usize, usize) {
    match kind {
        Window::Line => {
            let (s, e) = line_bounds(data, ms);
            if e - s > MAX_LINE {
                (ms.saturating_sub(256).max(s), (me + 2048).min(e))
            } else {
                (s, e)
            }
        }
        Window::Around(n) => {
            let (mut s, mut e) = line_bounds(data, ms);
            for _ in 0..n {
                if s > 0 && ms - s < 2048 {
                    s = line_bounds(data, s - 1).0;
                }
                if e < data.len() && e - ms < 2048 {
                    e = line_bounds(data, e + 1).1;
                }
            }
            (s.max(ms.saturating_sub(4096)), e.min(me + 4096))
        }
        Window::Pem => {
            let (s, _) = line_bounds(data, ms);
            (s, (ms + 65536).min(data.len()))
        }
        Window::Run => {
            let is_b64 =
                |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_');
            let mut s = ms;
            while s > 0 && is_b64(data[s - 1]) && ms - s < 65536 {
                s -= 1;
            }
            let mut e = me;
            while e < data.len() && is_b64(data[e]) && e - me < 65536 {
                e += 1;
            }
            (s, e)
        }
    }
}

fn decode_base64(run: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    let cfg = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let std = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    let trimmed: &[u8] = {
        let mut t = run;
        while let [rest @ .., b'='] = t {
            t = rest;
        }
        let cut = t.len() - t.len() % 4 * usize::from(t.len() % 4 == 1);
        &t[..cut]
    };
    std.decode(trimmed)
        .ok()
        .or_else(|| url.decode(trimmed).ok())
}

const ALLOW_MARKERS: &[&[u8]] = &[
    b"envseal:allow",
    b"gitleaks:allow",
    b"pragma: allowlist secret",
];

fn has_allow_marker(data: &[u8], pos: usize) -> bool {
    let (s, e) = line_bounds(data, pos.min(data.len()));
    let line = &data[s..e];
    ALLOW_MARKERS
        .iter()
        .any(|m| memchr::memmem::find(line, m).is_some())
}

fn push(
    hits: &mut Vec<Hit>,
    data: &[u8],
    pos: usize,
    rule: Rule,
    value: &str,
    encoding: Encoding,
    config_only: bool,
) {
    if has_allow_marker(data, pos) {
        return;
    }
    let rule = if rule != Rule::DifyDefault && dify::is_distinctive_default(value) {
        Rule::DifyDefault
    } else {
        rule
    };
    hits.push(Hit {
        rule,
        secret: SecretValue::new(value),
        line: 0,
        offset: pos,
        encoding,
        config_only,
        code_only: rule.def().is_some_and(|d| d.code_only),
        inner: None,
    });
}

fn dedup_hits(hits: &mut Vec<Hit>) {
    hits.sort_by(|a, b| {
        (a.secret.expose(), a.rule, a.line).cmp(&(b.secret.expose(), b.rule, b.line))
    });
    hits.dedup_by(|a, b| a.secret == b.secret && a.rule == b.rule);
}

/// Keeps one hit per distinct value: the one whose rule comes first in [`Rule::all`].
pub fn best_per_value(mut hits: Vec<Hit>) -> Vec<Hit> {
    hits.sort_by(|a, b| {
        (a.secret.expose(), a.rule, a.line).cmp(&(b.secret.expose(), b.rule, b.line))
    });
    hits.dedup_by(|a, b| a.secret == b.secret);
    hits
}

fn context_has(data: &[u8], pos: usize, words: &[&str]) -> bool {
    let s = pos.saturating_sub(1024);
    let e = (pos + 1024).min(data.len());
    let lower = data[s..e].to_ascii_lowercase();
    words
        .iter()
        .any(|w| memchr::memmem::find(&lower, w.as_bytes()).is_some())
}

/// GitHub's token checksum: the last six characters are the base62 CRC32 of the
/// thirty random characters before them.
pub(crate) fn github_checksum_ok(token: &str) -> bool {
    let Some(body) = token.get(4..) else {
        return false;
    };
    if body.len() != 36 {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62_6(crc32fast::hash(random.as_bytes())) == check
}

/// `n` in base62 (`0-9A-Za-z`), left-padded with `0` to six characters.
pub(crate) fn base62_6(mut n: u32) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    let mut i = 6;
    while n > 0 && i > 0 {
        i -= 1;
        out[i] = A[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn jwt_ok(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return false;
    };
    let dec = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    };
    let Some(header) = dec(h) else { return false };
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    !alg.is_empty() && !alg.eq_ignore_ascii_case("none") && dec(p).is_some()
}

/// Decides whether a regex match is a finding and under which rule.
fn classify(det: Det, value: &str, data: &[u8], pos: usize) -> Option<Rule> {
    if is_documented_example(value) {
        return None;
    }
    // Judge the part after a short prefix such as `sk-` or `ghp_`; a separator further
    // in (or one that leaves almost nothing) is part of the random body itself, as in
    // a Google key ending in `_`.
    let body = value
        .find(['-', '_', '.'])
        .filter(|&i| i < 12 && value.len() - i > 8)
        .map_or(value, |i| &value[i + 1..]);
    if is_placeholder(body) {
        return None;
    }
    match det {
        Det::OpenAiProject => {
            let tail = &value[value[3..].find('-').map_or(0, |i| i + 4)..];
            looks_generated(tail, 4.0).then_some(Rule::OpenAi)
        }
        Det::SkKey => {
            let tail = &value[3..];
            if tail.contains("T3BlbkFJ") {
                return Some(Rule::OpenAi);
            }
            if is_hex32(tail) {
                if !looks_generated(tail, 3.0) {
                    return None;
                }
                return Some(if context_has(data, pos, &["deepseek"]) {
                    Rule::DeepSeek
                } else if context_has(
                    data,
                    pos,
                    &[
                        "dashscope",
                        "qwen",
                        "aliyun",
                        "bailian",
                        "tongyi",
                        "alibaba",
                    ],
                ) {
                    Rule::DashScope
                } else {
                    Rule::LlmApiKey
                });
            }
            if !looks_generated(tail, 4.0) {
                return None;
            }
            let (lo, up, di, _) = classes(tail);
            if lo == 0 || up == 0 || di == 0 {
                return None;
            }
            Some(if context_has(data, pos, &["moonshot", "kimi"]) {
                Rule::Moonshot
            } else {
                Rule::LlmApiKey
            })
        }
        Det::Anthropic => looks_generated(&value[14..], 4.0).then_some(Rule::Anthropic),
        Det::Google => looks_generated(&value[4..], 3.5).then_some(Rule::GoogleApiKey),
        Det::AzureContext => {
            if !context_has(
                data,
                pos,
                &["openai", "cognitive", "api-key", "api_key", "apikey"],
            ) {
                return None;
            }
            let (lo, up, di, _) = classes(value);
            (di > 0 && lo + up > 0 && looks_generated(value, 3.0)).then_some(Rule::AzureOpenAi)
        }
        Det::AzureSignature => looks_generated(value, 4.0).then_some(Rule::AzureOpenAi),
        Det::Zhipu => looks_generated(&value[33..], 3.0).then_some(Rule::Zhipu),
        Det::AwsId => looks_generated(&value[4..], 3.0).then_some(Rule::AwsAccessKeyId),
        Det::AwsSecret => {
            let (lo, up, di, _) = classes(value);
            if lo == 0 || up == 0 || di == 0 || entropy(value) < 4.0 {
                return None;
            }
            if !context_has(
                data,
                pos,
                &["aws", "secret_access", "secretaccess", "akia", "asia"],
            ) {
                return None;
            }
            Some(Rule::AwsSecretAccessKey)
        }
        Det::GitHub => github_checksum_ok(value).then_some(Rule::GitHubToken),
        Det::GitHubFine => looks_generated(&value[11..], 4.0).then_some(Rule::GitHubFineGrainedPat),
        Det::GitLab => {
            let tail = value.trim_end_matches(['.', '-']);
            let body = &tail[tail.find('-').map_or(0, |i| i + 1)..];
            looks_generated(body, 3.5).then_some(Rule::GitLabToken)
        }
        Det::Slack => {
            let (_, _, di, _) = classes(value);
            (di >= 4 && entropy(value) >= 3.0).then_some(Rule::SlackToken)
        }
        Det::SlackHook => {
            let last = value.rsplit('/').next().unwrap_or("");
            looks_generated(last, 3.0).then_some(Rule::SlackWebhook)
        }
        Det::Stripe => looks_generated(&value[8..], 3.5).then_some(Rule::StripeKey),
        Det::HuggingFace => {
            let tail = &value[value.rfind('_').map_or(0, |i| i + 1)..];
            let (lo, up, _, _) = classes(tail);
            (lo > 0 && up > 0 && entropy(tail) >= 3.5).then_some(Rule::HuggingFace)
        }
        Det::SendGrid => looks_generated(&value[3..], 4.0).then_some(Rule::SendGrid),
        Det::Jwt => jwt_ok(value).then_some(Rule::Jwt),
        Det::DifyApp | Det::DifyDataset => {
            let tail = &value[value.find('-').map_or(0, |i| i + 1)..];
            let (lo, up, di, _) = classes(tail);
            if lo == 0 || up == 0 || di == 0 || entropy(tail) < 3.5 {
                return None;
            }
            Some(if det == Det::DifyApp {
                Rule::DifyAppKey
            } else {
                Rule::DifyDatasetKey
            })
        }
        Det::Pem | Det::Url | Det::Assignment | Det::Base64 | Det::Data(_) => None,
    }
}

/// Whether a keyword match at `pos` may start a value of `def`: a prefix keyword
/// (`boundary`) counts only at the start of a token, so `est_` inside `test_` opens
/// no window. Matches of another, overlapping keyword are let through.
fn keyword_at_boundary(def: &RuleDef, data: &[u8], pos: usize) -> bool {
    if !def.boundary || def.ignore_case || pos == 0 {
        return true;
    }
    let own = def
        .keywords
        .iter()
        .any(|k| data[pos..].starts_with(k.as_bytes()));
    let prev = data[pos - 1];
    !own || !(prev.is_ascii_alphanumeric() || prev == b'_')
}

/// The part of a data rule's value after its keyword prefix (the whole value when
/// it does not start with one, or when the prefix would leave almost nothing).
fn data_body<'a>(def: &RuleDef, value: &'a str) -> &'a str {
    if def.ignore_case {
        return value;
    }
    def.keywords
        .iter()
        .filter(|k| value.starts_with(*k) && value.len() > k.len() + 8)
        .map(|k| &value[k.len()..])
        .min_by_key(|b| b.len())
        .unwrap_or(value)
}

/// The generic checks of a rule file's rule: placeholder, documented example,
/// entropy, character classes, checksum and context words.
fn data_rule_accepts(def: &RuleDef, value: &str, data: &[u8], pos: usize) -> bool {
    let body = data_body(def, value);
    if is_documented_example(value)
        || is_placeholder(body)
        || is_placeholder(value)
        || is_reference(value)
    {
        return false;
    }
    if entropy(body) < def.entropy {
        return false;
    }
    let (lo, up, di, _) = classes(body);
    let have = u8::from(lo > 0) | u8::from(up > 0) << 1 | u8::from(di > 0) << 2;
    if have & def.classes != def.classes {
        return false;
    }
    let checksum_ok = match def.checksum {
        Checksum::None => true,
        Checksum::Crc32Base62 => crc32_base62_ok(body),
    };
    checksum_ok && (def.context.is_empty() || context_has(data, pos, def.context))
}

/// A body whose last six characters are the base62 CRC32 of the rest.
pub(crate) fn crc32_base62_ok(body: &str) -> bool {
    if body.len() <= 6 || !body.is_ascii() {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_6(crc32fast::hash(random.as_bytes())) == check
}

/// A connection URL with a password; `base` is where the searched window starts.
fn url(data: &[u8], base: usize, caps: &regex::bytes::Captures<'_>, hits: &mut Vec<Hit>) {
    let (Some(scheme), Some(user), Some(pass), Some(host)) =
        (caps.get(1), caps.get(2), caps.get(3), caps.get(4))
    else {
        return;
    };
    let scheme = String::from_utf8_lossy(scheme.as_bytes()).to_ascii_lowercase();
    let raw = String::from_utf8_lossy(pass.as_bytes()).into_owned();
    let decoded = percent_encoding::percent_decode_str(&raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| raw.clone());
    let encoding = if decoded != raw {
        Encoding::Percent
    } else {
        Encoding::Plain
    };
    let user = String::from_utf8_lossy(user.as_bytes());
    let host = String::from_utf8_lossy(host.as_bytes()).to_ascii_lowercase();
    let pos = base + pass.start();
    let malformed_escape = raw
        .split('%')
        .skip(1)
        .any(|rest| rest.len() < 2 || !rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if dify::is_distinctive_default(&decoded) {
        push(
            hits,
            data,
            pos,
            Rule::DifyDefault,
            &decoded,
            encoding,
            false,
        );
        return;
    }
    if decoded.len() < 6
        || malformed_escape
        || is_reference(&raw)
        || is_human_placeholder(&decoded)
        || decoded.contains(char::is_whitespace)
        || decoded.contains(['[', ']'])
        || raw.contains('{')
        || raw.contains('$')
        || is_placeholder(&decoded)
        || is_documented_example(&decoded)
        || is_trivial_password(&decoded)
        || decoded == user
        || host.contains("example")
        || matches!(
            decoded.as_str(),
            "pass" | "pw" | "secret" | "password" | "***"
        )
    {
        return;
    }
    let local = matches!(
        host.as_str(),
        "localhost" | "127.0.0.1" | "0.0.0.0" | "::1" | "[::1]" | "host.docker.internal"
    );
    if local && (decoded.len() < 10 || entropy(&decoded) < 3.0) {
        return;
    }
    let rule = if scheme.starts_with("postgres") {
        Rule::PostgresUrl
    } else if scheme.starts_with("mysql") || scheme.starts_with("mariadb") {
        Rule::MysqlUrl
    } else if scheme.starts_with("redis") || scheme.starts_with("sentinel") {
        Rule::RedisUrl
    } else if scheme.starts_with("amqp") {
        Rule::AmqpUrl
    } else {
        Rule::MongoUrl
    };
    push(hits, data, pos, rule, &decoded, encoding, false);
}

/// Word-based passwords of examples and test setups (`Password123!`,
/// `mysecretpassword`, `testpass`).
fn is_human_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    ["password", "passwd", "secret", "changeme"]
        .iter()
        .any(|w| lower.contains(w))
        || lower.starts_with("test")
}

/// A code identifier or path (`crate::SessionToken`, `settings.API_KEY`).
fn is_code_path(value: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
    };
    value.contains("::") && value.split("::").all(ident)
        || value.contains('.')
            && value.split('.').all(ident)
            && value.split('.').count() >= 2
            && !value.bytes().any(|b| b.is_ascii_digit())
}

/// Whether an assignment's name says it holds a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace(['-', '.'], "_");
    const EXCLUDE: &[&str] = &[
        "public",
        "publishable",
        "tokens",
        "tokenizer",
        "token_type",
        "expire",
        "expiry",
        "_file",
        "_path",
        "_dir",
        "_url",
        "_uri",
        "_endpoint",
        "enabled",
        "_enable",
        "_type",
        "length",
        "_size",
        "timeout",
        "_mode",
        "provider",
        "_name",
        "_user",
        "username",
        "header",
        "max_",
        "min_",
        "_count",
        "_ttl",
        "minutes",
        "seconds",
        "_days",
        "_hours",
        "algorithm",
        "_method",
        "policy",
        "_prefix",
        "_format",
        "_region",
        "_version",
        "_limit",
        "_field",
        "_param",
        "_label",
        "placeholder",
        "_hint",
        "_required",
        "rotation",
        "_location",
        "_ref",
        "_class",
        "_storage",
        "_id",
        "_ids",
        "_input",
        "_regex",
        "_pattern",
        "_message",
        "_description",
        "_title",
        "reset",
        "forgot",
        "_policy",
        "_strength",
        "_kind",
        "_scope",
        "_audience",
        "_issuer",
        "_key_name",
        "_secret_name",
        "_mount",
        "_volume",
    ];
    if n.ends_with("_id") || EXCLUDE.iter().any(|x| n.contains(x)) {
        return false;
    }
    const INCLUDE: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_key",
        "accesskey",
        "private_key",
        "privatekey",
        "credential",
        "account_key",
        "server_key",
        "daemon_key",
        "encryption_key",
        "signing_key",
        "master_key",
        "auth_key",
        "authkey",
    ];
    INCLUDE.iter().any(|x| n.contains(x))
        || n.ends_with("_pass")
        || n.ends_with("_pwd")
        || n == "pass"
        || n == "pwd"
}

/// Splits a config line into `(name, value, value_offset)`: `.env` / INI / TOML
/// (`NAME=value`, `name = "value"`), YAML / compose (`name: value`, `- NAME=value`),
/// JSON (`"name": "value",`) and Dockerfile (`ENV NAME=value`, `ENV NAME value`).
pub(crate) fn parse_assignment(line: &str) -> Option<(&str, &str, usize)> {
    let base = line.as_ptr() as usize;
    let mut rest = line.trim_start();
    for prefix in ["- ", "export ", "ENV ", "ARG ", "set "] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r.trim_start();
        }
    }
    if rest.starts_with('#') || rest.starts_with("//") || rest.starts_with(';') {
        return None;
    }
    let quoted = rest.starts_with('"') || rest.starts_with('\'');
    let name_start = usize::from(quoted);
    let name_len = rest[name_start..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &rest[name_start..name_start + name_len];
    let mut after = &rest[name_start + name_len..];
    if quoted {
        after = after.strip_prefix(['"', '\''])?;
    }
    let trimmed = after.trim_start();
    let value_part = if let Some(v) = trimmed
        .strip_prefix(':')
        .or_else(|| trimmed.strip_prefix('='))
    {
        if v.starts_with('=') {
            return None; // `==` comparison
        }
        v.trim_start()
    } else if line.trim_start().starts_with("ENV ") && after.starts_with(' ') {
        trimmed
    } else {
        return None;
    };
    let (value, off) = if let Some(q) = value_part
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')
    {
        let inner = &value_part[1..];
        let end = inner.find(q)?;
        (&inner[..end], inner.as_ptr() as usize - base)
    } else {
        let end = value_part
            .find(" #")
            .or_else(|| value_part.find(" //"))
            .unwrap_or(value_part.len());
        let v = value_part[..end].trim_end().trim_end_matches(',');
        (v, value_part.as_ptr() as usize - base)
    };
    Some((name, value, off))
}

/// `${VAR:-default}` / `${VAR-default}` → the default; other `${…}` → None.
fn compose_default(value: &str) -> Option<Option<&str>> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    let idx = inner.find(['-', ':', '?']);
    Some(idx.and_then(|i| {
        let d = inner[i..].trim_start_matches(':');
        d.strip_prefix('-').filter(|d| !d.is_empty())
    }))
}

fn assignment(data: &[u8], s: usize, e: usize, k8s_secret: bool, hits: &mut Vec<Hit>) {
    if e - s > MAX_LINE {
        return; // minified text, not configuration
    }
    let Ok(line) = std::str::from_utf8(&data[s..e]) else {
        return;
    };
    let Some((name, raw_value, off)) = parse_assignment(line) else {
        return;
    };
    if !is_secret_name(name) {
        return;
    }
    let mut value = raw_value.trim();
    if let Some(d) = compose_default(value) {
        match d {
            Some(d) => value = d,
            None => return,
        }
    }
    let pos = s + off;
    let mut encoding = Encoding::Plain;
    let decoded;
    if k8s_secret && value.len() >= 8 && value.len() % 4 == 0 {
        if let Some(bytes) = decode_base64(value.as_bytes()) {
            if let Ok(text) = String::from_utf8(bytes) {
                if !text.is_empty() && text.chars().all(|c| !c.is_control() || c == '\n') {
                    decoded = text;
                    value = decoded.trim_end_matches('\n');
                    encoding = Encoding::Base64;
                }
            }
        }
    }
    if value.is_empty() {
        return;
    }
    if dify::is_default(Some(name), value) {
        push(hits, data, pos, Rule::DifyDefault, value, encoding, true);
        return;
    }
    let lower = value.to_ascii_lowercase();
    if is_reference(value)
        || is_human_placeholder(value)
        || is_code_path(value)
        || is_placeholder(value)
        || is_documented_example(value)
        || value.contains(char::is_whitespace)
        || value.contains("://")
        || value.starts_with('/')
        || value.starts_with("./")
        || value.starts_with("~/")
        || value.starts_with('[')
        || value.starts_with('{')
        || value.starts_with('|')
        || value.starts_with('>')
        || is_uuid(value)
        || value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || matches!(
            lower.as_str(),
            "true" | "false" | "null" | "none" | "nil" | "undefined" | "yes" | "no" | "on" | "off"
        )
        || name.to_ascii_lowercase().contains(&lower)
        || is_trivial_password(value)
    {
        return;
    }
    let (_, _, di, other) = classes(value);
    let n = name.to_ascii_lowercase();
    let password_like = n.contains("pass") || n.contains("pwd");
    let ok = if password_like {
        value.len() >= 6 && (di + other > 0 || (value.len() >= 12 && entropy(value) >= 3.0))
    } else {
        value.is_ascii()
            && value.len() >= 8
            && ((di > 0 && looks_generated(value, 2.8))
                || (value.len() >= 20 && entropy(value) >= 3.5)
                || (other > 0 && value.len() >= 12))
    };
    if ok {
        push(
            hits,
            data,
            pos,
            Rule::SecretAssignment,
            value,
            encoding,
            true,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    /// Expands a rule example template: `{KIND:N}` is N random characters of an
    /// alphabet (`alnum`, `hex`, `HEX`, `lower`, `upper`, `digit`, `b64`, `url`),
    /// `{crc:N}` N base62 characters and their six-character base62 CRC32, `{uuid}`
    /// a random UUID; `{{`/`}}` are literal braces.
    pub(crate) fn expand(template: &str) -> String {
        fn pick(alphabet: &[u8], n: usize) -> String {
            let mut rng = rand::thread_rng();
            loop {
                let s: String = (0..n)
                    .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                    .collect();
                let has = |f: fn(&u8) -> bool| !alphabet.iter().any(f) || s.bytes().any(|b| f(&b));
                if n < 6
                    || has(u8::is_ascii_lowercase)
                        && has(u8::is_ascii_uppercase)
                        && has(u8::is_ascii_digit)
                        && !is_placeholder(&s)
                {
                    return s;
                }
            }
        }
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            let end = tail.find('}').expect("closed placeholder");
            let spec = &tail[1..end];
            rest = &tail[end + 1..];
            if spec == "uuid" {
                let h = pick(b"0123456789abcdef", 32);
                out.push_str(&format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ));
                continue;
            }
            let (kind, n) = spec.split_once(':').expect("KIND:N");
            let n: usize = n.parse().expect("length");
            let alphabet: &[u8] = match kind {
                "alnum" | "crc" => ALNUM,
                "hex" => b"0123456789abcdef",
                "HEX" => b"0123456789ABCDEF",
                "lower" => b"abcdefghijklmnopqrstuvwxyz",
                "upper" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                "digit" => b"0123456789",
                "b64" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                "url" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                other => panic!("unknown template kind {other}"),
            };
            let body = pick(alphabet, n);
            if kind == "crc" {
                let check = base62_6(crc32fast::hash(body.as_bytes()));
                out.push_str(&body);
                out.push_str(&check);
            } else {
                out.push_str(&body);
            }
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn every_rule_file_rule_finds_its_positive_and_not_its_negative_examples() {
        let s = Scanner::new();
        let mut failures = Vec::new();
        for (i, def) in DATA_RULES.iter().enumerate() {
            let rule = Rule::Data(u16::try_from(i).unwrap());
            assert!(
                !def.positive.is_empty() && !def.negative.is_empty(),
                "{}",
                def.id
            );
            let paths: &[&str] = if def.config_only {
                &["example.env"]
            } else if def.code_only {
                &["example.txt"]
            } else {
                &["example.env", "example.txt"]
            };
            for t in def.positive {
                for path in paths {
                    for _ in 0..4 {
                        let text = expand(t);
                        let hits = s.scan(text.as_bytes(), Some(path));
                        if !hits.iter().any(|h| h.rule == rule) {
                            failures.push(format!(
                                "{} ({}): positive {t:?} in {path}",
                                def.id, def.file
                            ));
                            break;
                        }
                    }
                }
            }
            for t in def.negative {
                for path in ["example.env", "example.txt"] {
                    let text = expand(t);
                    let hits = s.scan(text.as_bytes(), Some(path));
                    if hits.iter().any(|h| h.rule == rule) {
                        failures.push(format!(
                            "{} ({}): negative {t:?} in {path}",
                            def.id, def.file
                        ));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn all_zero_repeated_and_your_key_here_values_are_placeholders_for_every_rule() {
        let s = Scanner::new();
        for (i, def) in DATA_RULES.iter().enumerate() {
            let rule = Rule::Data(u16::try_from(i).unwrap());
            for t in def.positive {
                // Swap each generated part for a placeholder of the same shape.
                for fill in ["0", "ab", "YOUR_KEY_HERE_"] {
                    let mut text = String::new();
                    let mut rest = *t;
                    while let Some(i) = rest.find('{') {
                        if rest[i..].starts_with("{{") {
                            text.push_str(&rest[..i + 2]);
                            rest = &rest[i + 2..];
                            continue;
                        }
                        let end = i + rest[i..].find('}').unwrap();
                        let spec = &rest[i + 1..end];
                        let n = spec.split_once(':').map_or(36, |(_, n)| n.parse().unwrap());
                        let n = if spec.starts_with("crc") { n + 6 } else { n };
                        text.push_str(&rest[..i]);
                        text.push_str(&fill.repeat(n).chars().take(n).collect::<String>());
                        rest = &rest[end + 1..];
                    }
                    text.push_str(rest);
                    let text = text.replace("{{", "{").replace("}}", "}");
                    let hits = s.scan(text.as_bytes(), Some("example.env"));
                    assert!(!hits.iter().any(|h| h.rule == rule), "{}: {text:?}", def.id);
                }
            }
        }
    }

    #[test]
    fn case_sensitive_keyword_set_stays_small_enough_for_a_prefilter() {
        let s = Scanner::new();
        assert!(
            s.other.ac.patterns_len() <= 64,
            "{}",
            s.other.ac.patterns_len()
        );
    }

    #[test]
    fn base62_checksum_matches_a_known_vector() {
        assert_eq!(base62_6(0), "000000");
        assert_eq!(base62_6(61), "00000z");
        assert_eq!(base62_6(62), "000010");
    }

    #[test]
    fn base64_needles_cover_three_alignments() {
        let n = base64_needles("sk-proj-");
        assert_eq!(n.len(), 3);
        let enc = base64::engine::general_purpose::STANDARD.encode(b"xx sk-proj-abc");
        assert!(n.iter().any(|x| enc.contains(x.as_str())));
    }

    #[test]
    fn assignment_parser() {
        assert_eq!(
            parse_assignment("DB_PASSWORD=abc").map(|x| (x.0, x.1)),
            Some(("DB_PASSWORD", "abc"))
        );
        assert_eq!(
            parse_assignment(r#"  "password": "abc d","#).map(|x| (x.0, x.1)),
            Some(("password", "abc d"))
        );
        assert_eq!(
            parse_assignment("  - KEY=v # c").map(|x| (x.0, x.1)),
            Some(("KEY", "v"))
        );
        assert_eq!(
            parse_assignment("ENV TOKEN abc").map(|x| (x.0, x.1)),
            Some(("TOKEN", "abc"))
        );
        assert_eq!(parse_assignment("if a == b"), None);
        assert_eq!(compose_default("${A:-x}"), Some(Some("x")));
        assert_eq!(compose_default("${A}"), Some(None));
    }

    #[test]
    fn secret_names() {
        for n in [
            "DB_PASSWORD",
            "SECRET_KEY",
            "openai_api_key",
            "apiKey",
            "PLUGIN_DAEMON_KEY",
            "GITHUB_TOKEN",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "MAX_TOKENS",
            "SECRET_ID",
            "TIDB_PUBLIC_KEY",
            "PASSWORD_FILE",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }
}

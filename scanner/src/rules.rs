//! The rule catalogue: stable rule ids, descriptions and their reporting priority.
//! Provider formats live in data files (`scanner/rules/*.toml`, compiled in by
//! `build.rs` into [`DATA_RULES`], ordered high, medium, low confidence, then
//! code-only rules); the variants of [`Rule`] other than
//! [`Rule::Data`] name the detectors whose checks are code in `detect` (Dify
//! defaults, connection URLs, PEM blocks, JWTs, secret-named assignments, and the
//! formats with context-dependent classification). Knows nothing about matching.

use std::fmt;

/// How sure a rule is that a match is a live secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confidence {
    /// A distinctive prefix, length and alphabet (and checksum where there is one).
    High,
    /// A distinctive shape that also occurs in non-secrets.
    Medium,
    /// A generic shape that counts only beside context words.
    Low,
}

/// A checksum a format carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// None.
    None,
    /// The last six characters are the base62 CRC32 of the thirty before them
    /// (GitHub's and npm's token format).
    Crc32Base62,
}

/// One rule from a rule file. See docs/scanner.md for the meaning of each field.
#[derive(Debug)]
pub struct RuleDef {
    /// Stable id.
    pub id: &'static str,
    /// One line for humans.
    pub name: &'static str,
    /// The provider (one rule file per provider).
    pub provider: &'static str,
    /// The rule file.
    pub file: &'static str,
    /// Prefilter keywords.
    pub keywords: &'static [&'static str],
    /// Keywords are context words matched in any case.
    pub ignore_case: bool,
    /// A keyword counts only at the start of a token.
    pub boundary: bool,
    /// Lines searched on either side of the keyword's line.
    pub window: u8,
    /// The regex; the value is the named capture `secret`.
    pub regex: &'static str,
    /// Minimum Shannon entropy (bits per character) of the value after its prefix.
    pub entropy: f64,
    /// Character classes the value after its prefix must contain (1 lower, 2 upper,
    /// 4 digit).
    pub classes: u8,
    /// Checksum.
    pub checksum: Checksum,
    /// Words (any case) of which one must occur within 1 KiB of the value.
    pub context: &'static [&'static str],
    /// Confidence.
    pub confidence: Confidence,
    /// Counts only in configuration files.
    pub config_only: bool,
    /// Runs only on files that are not configuration files (source code; the
    /// secret-assignment engine rule covers configuration).
    pub code_only: bool,
    /// Examples that must be found (templates, see docs/scanner.md).
    pub positive: &'static [&'static str],
    /// Examples that must not be found.
    pub negative: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/data_rules.rs"));

/// What kind of secret a finding is. The order is the reporting priority: when one
/// value is found by several detectors, the earliest rule here names the finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// One of Dify's shipped default credentials.
    DifyDefault,
    /// OpenAI (`sk-proj-`, `sk-svcacct-`, `sk-admin-`, legacy `sk-…T3BlbkFJ…`).
    OpenAi,
    /// Anthropic (`sk-ant-api03-…`).
    Anthropic,
    /// Google API key (`AIza…`).
    GoogleApiKey,
    /// Azure OpenAI / Cognitive Services key (32 hex with context, or the 84-char format).
    AzureOpenAi,
    /// DeepSeek (`sk-` + 32 hex with DeepSeek context).
    DeepSeek,
    /// Alibaba DashScope / Qwen (`sk-` + 32 hex with DashScope context).
    DashScope,
    /// Moonshot / Kimi (`sk-` + 48 with Moonshot context).
    Moonshot,
    /// Zhipu / GLM (`<32 hex>.<16>` with Zhipu context).
    Zhipu,
    /// An `sk-` LLM provider key whose provider the context does not tell.
    LlmApiKey,
    /// AWS access key id.
    AwsAccessKeyId,
    /// AWS secret access key (40 chars, with AWS context).
    AwsSecretAccessKey,
    /// GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`), CRC32 checked.
    GitHubToken,
    /// GitHub fine-grained personal access token (`github_pat_`).
    GitHubFineGrainedPat,
    /// GitLab token (`glpat-`, `gldt-`, `glrt-`, …).
    GitLabToken,
    /// Slack token (`xoxb-`, `xoxp-`, `xapp-`, …).
    SlackToken,
    /// Slack incoming webhook URL.
    SlackWebhook,
    /// Stripe secret or restricted key.
    StripeKey,
    /// Hugging Face token (`hf_`).
    HuggingFace,
    /// SendGrid API key (`SG.`).
    SendGrid,
    /// PEM private key block.
    PrivateKey,
    /// Dify app API key (`app-`).
    DifyAppKey,
    /// Dify knowledge (dataset) API key (`dataset-`, `ds-`).
    DifyDatasetKey,
    /// PostgreSQL URL with a password.
    PostgresUrl,
    /// MySQL / MariaDB URL with a password.
    MysqlUrl,
    /// Redis URL with a password.
    RedisUrl,
    /// AMQP URL with a password.
    AmqpUrl,
    /// MongoDB URL with a password.
    MongoUrl,
    /// Signed JSON Web Token.
    Jwt,
    /// A rule from a rule file: an index into [`DATA_RULES`], which `build.rs`
    /// orders by confidence (high first), then file. Engine rules come first, so a
    /// value both match keeps the engine rule's more specific checks.
    Data(u16),
    /// A secret-named assignment (`*_PASSWORD=…`, `*_API_KEY: …`) in a config file.
    SecretAssignment,
}

impl Rule {
    /// Every rule, in priority order: the engine rules with the data rules in
    /// their place.
    pub fn all() -> Vec<Rule> {
        let mut out = Vec::new();
        for r in Self::ENGINE {
            out.push(*r);
            if *r == Rule::Jwt {
                out.extend((0..DATA_RULES.len()).map(|i| Rule::Data(i as u16)));
            }
        }
        out
    }

    /// The rule file rule with this id.
    pub fn data_by_id(id: &str) -> Option<Rule> {
        DATA_RULES
            .iter()
            .position(|d| d.id == id)
            .map(|i| Rule::Data(i as u16))
    }

    /// A rule for generic shapes (secret-named assignments, rule-file rules below
    /// high confidence): lock files never yield these.
    pub fn is_generic(self) -> bool {
        match self {
            Rule::SecretAssignment => true,
            Rule::Data(_) => self.def().is_some_and(|d| d.confidence != Confidence::High),
            _ => false,
        }
    }

    /// The definition of a data rule.
    pub fn def(self) -> Option<&'static RuleDef> {
        match self {
            Rule::Data(i) => DATA_RULES.get(usize::from(i)),
            _ => None,
        }
    }

    /// The rules whose checks are code, in priority order.
    const ENGINE: &'static [Rule] = &[
        Rule::DifyDefault,
        Rule::OpenAi,
        Rule::Anthropic,
        Rule::GoogleApiKey,
        Rule::AzureOpenAi,
        Rule::DeepSeek,
        Rule::DashScope,
        Rule::Moonshot,
        Rule::Zhipu,
        Rule::LlmApiKey,
        Rule::AwsAccessKeyId,
        Rule::AwsSecretAccessKey,
        Rule::GitHubToken,
        Rule::GitHubFineGrainedPat,
        Rule::GitLabToken,
        Rule::SlackToken,
        Rule::SlackWebhook,
        Rule::StripeKey,
        Rule::HuggingFace,
        Rule::SendGrid,
        Rule::PrivateKey,
        Rule::DifyAppKey,
        Rule::DifyDatasetKey,
        Rule::PostgresUrl,
        Rule::MysqlUrl,
        Rule::RedisUrl,
        Rule::AmqpUrl,
        Rule::MongoUrl,
        Rule::Jwt,
        Rule::SecretAssignment,
    ];

    /// The stable id used in reports, baselines and SARIF.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Data(i) => DATA_RULES[usize::from(i)].id,
            Rule::DifyDefault => "dify-default-credential",
            Rule::OpenAi => "openai-api-key",
            Rule::Anthropic => "anthropic-api-key",
            Rule::GoogleApiKey => "google-api-key",
            Rule::AzureOpenAi => "azure-openai-api-key",
            Rule::DeepSeek => "deepseek-api-key",
            Rule::DashScope => "dashscope-api-key",
            Rule::Moonshot => "moonshot-api-key",
            Rule::Zhipu => "zhipu-api-key",
            Rule::LlmApiKey => "llm-api-key",
            Rule::AwsAccessKeyId => "aws-access-key-id",
            Rule::AwsSecretAccessKey => "aws-secret-access-key",
            Rule::GitHubToken => "github-token",
            Rule::GitHubFineGrainedPat => "github-fine-grained-pat",
            Rule::GitLabToken => "gitlab-token",
            Rule::SlackToken => "slack-token",
            Rule::SlackWebhook => "slack-webhook-url",
            Rule::StripeKey => "stripe-secret-key",
            Rule::HuggingFace => "huggingface-token",
            Rule::SendGrid => "sendgrid-api-key",
            Rule::PrivateKey => "private-key",
            Rule::DifyAppKey => "dify-app-api-key",
            Rule::DifyDatasetKey => "dify-dataset-api-key",
            Rule::PostgresUrl => "postgres-url-password",
            Rule::MysqlUrl => "mysql-url-password",
            Rule::RedisUrl => "redis-url-password",
            Rule::AmqpUrl => "amqp-url-password",
            Rule::MongoUrl => "mongodb-url-password",
            Rule::Jwt => "jwt",
            Rule::SecretAssignment => "secret-assignment",
        }
    }

    /// One line for humans.
    pub fn description(self) -> &'static str {
        match self {
            Rule::Data(i) => DATA_RULES[usize::from(i)].name,
            Rule::DifyDefault => "Dify shipped default credential still in use",
            Rule::OpenAi => "OpenAI API key",
            Rule::Anthropic => "Anthropic API key",
            Rule::GoogleApiKey => "Google API key",
            Rule::AzureOpenAi => "Azure OpenAI / Cognitive Services key",
            Rule::DeepSeek => "DeepSeek API key",
            Rule::DashScope => "Alibaba DashScope (Qwen) API key",
            Rule::Moonshot => "Moonshot (Kimi) API key",
            Rule::Zhipu => "Zhipu (GLM) API key",
            Rule::LlmApiKey => "LLM provider API key (sk-…)",
            Rule::AwsAccessKeyId => "AWS access key id",
            Rule::AwsSecretAccessKey => "AWS secret access key",
            Rule::GitHubToken => "GitHub token",
            Rule::GitHubFineGrainedPat => "GitHub fine-grained personal access token",
            Rule::GitLabToken => "GitLab token",
            Rule::SlackToken => "Slack token",
            Rule::SlackWebhook => "Slack webhook URL",
            Rule::StripeKey => "Stripe secret key",
            Rule::HuggingFace => "Hugging Face token",
            Rule::SendGrid => "SendGrid API key",
            Rule::PrivateKey => "Private key (PEM)",
            Rule::DifyAppKey => "Dify app API key",
            Rule::DifyDatasetKey => "Dify knowledge API key",
            Rule::PostgresUrl => "PostgreSQL URL with password",
            Rule::MysqlUrl => "MySQL URL with password",
            Rule::RedisUrl => "Redis URL with password",
            Rule::AmqpUrl => "AMQP URL with password",
            Rule::MongoUrl => "MongoDB URL with password",
            Rule::Jwt => "JSON Web Token",
            Rule::SecretAssignment => "Secret-named assignment in a configuration file",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_all_is_sorted() {
        let all = Rule::all();
        let mut ids: Vec<_> = all.iter().map(|r| r.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(DATA_RULES.len() >= 40, "{}", DATA_RULES.len());
    }
}

//! The rule catalogue: stable rule ids, descriptions and their reporting priority.
//! Knows nothing about matching; `detect` decides which rule a value belongs to.

use std::fmt;

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
    /// A secret-named assignment (`*_PASSWORD=…`, `*_API_KEY: …`) in a config file.
    SecretAssignment,
}

impl Rule {
    /// Every rule, in priority order.
    pub const ALL: &'static [Rule] = &[
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
        let mut ids: Vec<_> = Rule::ALL.iter().map(|r| r.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Rule::ALL.len());
        assert!(Rule::ALL.windows(2).all(|w| w[0] < w[1]));
    }
}

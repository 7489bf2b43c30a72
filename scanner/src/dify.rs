//! Dify's shipped default credentials (`docker/.env.example`, `docker-compose.yaml`).
//!
//! These values are public; a deployment still using one is as exposed as one that
//! leaked a secret, so the scanner reports them as default credentials.

/// Values distinctive enough to be Dify's wherever they appear as a secret.
const DISTINCTIVE: &[&str] = &[
    "difyai123456",
    "Difyai123456",
    "Dify123456",
    "difyai12345",
    "dify-sandbox",
    "difypassword",
    "Dify@123",
    "Dify@1234",
    "Qazwsxedc!@#123",
    // The shipped SECRET_KEY (public; this table is what recognises it).
    "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U", // envseal:allow
    // PLUGIN_DAEMON_KEY / SERVER_KEY.
    "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",
    // PLUGIN_DIFY_INNER_API_KEY / DIFY_INNER_API_KEY.
    "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",
    // WEAVIATE_API_KEY.
    "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih",
];

/// Defaults that are only Dify's when bound to the variable Dify ships them under.
const BY_NAME: &[(&str, &str)] = &[
    ("AZURE_BLOB_ACCOUNT_KEY", "difyai"),
    ("COUCHBASE_PASSWORD", "password"),
    ("ANALYTICDB_PASSWORD", "testpassword"),
    ("MATRIXONE_PASSWORD", "111"),
    ("TIDB_ON_QDRANT_API_KEY", "dify"),
    ("TIDB_PRIVATE_KEY", "dify"),
    ("ORACLE_PASSWORD", "dify"),
    ("ORACLE_WALLET_PASSWORD", "dify"),
    ("OPENSEARCH_PASSWORD", "admin"),
    ("TENCENT_VECTOR_DB_API_KEY", "dify"),
    ("ELASTICSEARCH_PASSWORD", "elastic"),
    ("BAIDU_VECTOR_DB_API_KEY", "dify"),
    ("LINDORM_PASSWORD", "admin"),
    ("HUAWEI_CLOUD_PASSWORD", "admin"),
    ("UPSTASH_VECTOR_TOKEN", "dify"),
    ("MINIO_ACCESS_KEY", "minioadmin"),
    ("MINIO_SECRET_KEY", "minioadmin"),
    ("MINIO_ROOT_PASSWORD", "minioadmin"),
];

/// Whether `value` is one of Dify's distinctive shipped defaults.
pub(crate) fn is_distinctive_default(value: &str) -> bool {
    DISTINCTIVE.contains(&value)
}

/// Whether `name = value` is a Dify shipped default (distinctive value, or the
/// value Dify ships for that variable name).
pub(crate) fn is_default(name: Option<&str>, value: &str) -> bool {
    if is_distinctive_default(value) {
        return true;
    }
    let Some(name) = name else { return false };
    let upper = name.to_ascii_uppercase();
    BY_NAME
        .iter()
        .any(|(n, v)| *v == value && (upper == *n || upper.ends_with(&format!("_{n}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert!(is_default(Some("DB_PASSWORD"), "difyai123456"));
        assert!(is_default(Some("COUCHBASE_PASSWORD"), "password"));
        assert!(!is_default(Some("OTHER_PASSWORD"), "password"));
        assert!(is_default(None, "dify-sandbox"));
    }
}

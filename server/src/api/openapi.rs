//! Completes the OpenAPI document from `openapi_errors.json`: every error answer each
//! operation can give (all in the one `ErrorBody` shape), and the name rules of path
//! parameters and body fields as JSON Schema patterns, so that a schema-valid request
//! is never refused as `invalid_name`.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const TABLE: &str = include_str!("openapi_errors.json");

#[derive(Deserialize)]
struct Table {
    common: Vec<u16>,
    extra: BTreeMap<String, Vec<u16>>,
    names: BTreeMap<String, NameRule>,
    parameters: Vec<ParamRule>,
    properties: Vec<PropertyRule>,
}

#[derive(Deserialize)]
struct NameRule {
    pattern: String,
    max_length: usize,
}

#[derive(Deserialize)]
struct ParamRule {
    path_prefix: String,
    param: String,
    name: String,
}

#[derive(Deserialize)]
struct PropertyRule {
    schema: String,
    property: String,
    #[serde(default)]
    items: bool,
    /// A name rule, or
    #[serde(default)]
    name: Option<String>,
    /// schema keywords to set.
    #[serde(default)]
    set: serde_json::Map<String, Value>,
}

fn table() -> Table {
    serde_json::from_str(TABLE).expect("openapi_errors.json is valid (checked by tests)")
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
}

fn constrain(schema: &mut Value, rule: &NameRule) {
    schema["type"] = json!("string");
    schema["pattern"] = json!(rule.pattern);
    schema["minLength"] = json!(1);
    schema["maxLength"] = json!(rule.max_length);
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Applies the table to a serialised document.
pub(super) fn complete(doc: &mut Value) {
    let t = table();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                let Some(op) = item.get_mut(method) else {
                    continue;
                };
                let key = format!("{method} {path}");
                let statuses = t
                    .common
                    .iter()
                    .chain(t.extra.get(&key).into_iter().flatten());
                for status in statuses {
                    let responses = &mut op["responses"];
                    if responses.get(status.to_string()).is_none() {
                        responses[status.to_string()] = json!({
                            "description": reason(*status),
                            "content": { "application/json": {
                                "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
                        });
                    }
                }
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    for p in params.iter_mut().filter(|p| p["in"] == "path") {
                        let rule = t.parameters.iter().find(|r| {
                            path.starts_with(&r.path_prefix) && p["name"] == r.param.as_str()
                        });
                        if let Some(rule) = rule {
                            constrain(&mut p["schema"], &t.names[&rule.name]);
                        }
                    }
                }
            }
        }
    }
    for rule in &t.properties {
        let schema = &mut doc["components"]["schemas"][&rule.schema];
        let prop = if rule.property.is_empty() {
            schema
        } else {
            &mut schema["properties"][&rule.property]
        };
        let target = if rule.items { &mut prop["items"] } else { prop };
        if let Some(name) = &rule.name {
            constrain(target, &t.names[name]);
        }
        for (k, v) in &rule.set {
            target[k] = v.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_json::to_value(super::super::openapi()).unwrap()
    }

    #[test]
    fn table_names_only_what_exists() {
        let t = table();
        let doc = document();
        for key in t.extra.keys() {
            let (method, path) = key.split_once(' ').unwrap();
            assert!(doc["paths"][path][method].is_object(), "no operation {key}");
        }
        for rule in t
            .parameters
            .iter()
            .map(|r| &r.name)
            .chain(t.properties.iter().filter_map(|r| r.name.as_ref()))
        {
            assert!(t.names.contains_key(rule), "no name rule {rule}");
        }
        for rule in t.properties.iter().filter(|r| !r.property.is_empty()) {
            let prop = &doc["components"]["schemas"][&rule.schema]["properties"][&rule.property];
            assert!(
                prop.is_object(),
                "no property {}.{}",
                rule.schema,
                rule.property
            );
        }
        for r in t.names.values() {
            regex::Regex::new(&r.pattern).unwrap();
        }
    }

    #[test]
    fn openapi_lists_error_answers_and_name_patterns() {
        let doc = super::super::openapi_document();
        let mut path_params = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["400", "401", "403", "404", "405", "413", "431", "500"] {
                    let r = &op["responses"][status];
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        path_params += 1;
                        assert!(p["schema"]["pattern"].is_string(), "{method} {path}: {p}");
                    }
                }
            }
        }
        assert!(path_params > 20);
        assert_eq!(
            doc["paths"]["/v1/leaks/check"]["post"]["responses"]["429"]["content"]
                ["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert_eq!(
            doc["components"]["schemas"]["CreateProject"]["properties"]["name"]["pattern"],
            "^[a-z0-9][a-z0-9_-]*$"
        );
    }

    /// The base64 pattern accepts exactly what the value decoder accepts.
    #[test]
    fn base64_pattern_agrees_with_the_decoder() {
        use base64::Engine as _;
        let t = table();
        let rule = t
            .properties
            .iter()
            .find(|r| r.schema == "PutSecret" && r.property == "value_base64")
            .unwrap();
        let re = regex::Regex::new(rule.set["pattern"].as_str().unwrap()).unwrap();
        for s in [
            "", "QQ==", "QR==", "QUI=", "QUJ=", "QUJD", "0", "QUJD\n", "Q===", "////", "QUJDRA==",
        ] {
            let ok = base64::engine::general_purpose::STANDARD.decode(s).is_ok();
            assert_eq!(re.is_match(s), ok, "{s:?}");
        }
    }

    /// The patterns say what the validators accept.
    #[test]
    fn name_patterns_agree_with_the_validators() {
        let t = table();
        let re = |n: &str| regex::Regex::new(&t.names[n].pattern).unwrap();
        let samples = [
            "dify",
            "prod-1",
            "a_b",
            "Dify",
            "-x",
            "_x",
            "",
            "x.y",
            "OPENAI_API_KEY",
            "_A1",
            "1A",
            "a\u{202e}b",
            "ops@example.com",
            "x y",
        ];
        for s in samples {
            let slug = envseal_core::validate_slug("project", s).is_ok();
            assert_eq!(re("slug").is_match(s) && s.len() <= 64, slug, "slug {s:?}");
            let var = envseal_core::validate_env_var_name(s).is_ok();
            assert_eq!(
                re("secret").is_match(s) && s.len() <= 256,
                var,
                "secret {s:?}"
            );
            let user = crate::login::validate_username(s).is_ok();
            assert_eq!(
                re("username").is_match(s) && s.len() <= 64,
                user,
                "username {s:?}"
            );
        }
    }
}

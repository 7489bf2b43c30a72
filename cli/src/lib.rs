//! The envseal command line as a library: one module per subcommand, plus the API
//! client and shared options. `main.rs` only parses and dispatches.
//!
//! Nothing here prints, logs or passes a secret value on a command line, except the
//! explicit reveals (`secrets get --reveal`, `export`, `tokens create`).

pub mod app;
pub mod client;
pub mod cmd_audit;
pub mod cmd_docs;
pub mod cmd_export;
pub mod cmd_import;
pub mod cmd_login;
pub mod cmd_projects;
pub mod cmd_rotate;
pub mod cmd_run;
pub mod cmd_scan;
pub mod cmd_secrets;
pub mod cmd_tokens;
pub mod cmd_users;
pub mod duration;
pub mod export_k8s;
pub mod fallback;
pub mod global;
pub mod output;
pub mod profile_dify;
pub mod report;
pub mod suggest;

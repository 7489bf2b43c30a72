//! The secret model and the wire types that envseal-server and the envseal CLI share.
//!
//! This crate knows nothing about HTTP, SQL, cryptography or processes: it only says
//! what a valid name is, how a value travels as JSON, and what the API's bodies look
//! like. Both binaries depend on it so that the contract lives in one place.
#![warn(missing_docs)]

pub mod audit_anchor;
pub mod dify;
pub mod dotenv;
pub mod name;
pub mod value;
pub mod wire;

pub use name::{check_deliverable, validate_env_var_name, validate_slug, NameError};
pub use value::{SecretValue, WireValue, WireValueError, MAX_VALUE_BYTES};

//! The leak scanner (SPEC §6): finds secrets in Git history, directories and staged
//! changes, and reports one finding per distinct value.
//!
//! Knows nothing about the envseal server or HTTP: the scanner never talks to the
//! network. (`envseal scan --check-server` is a CLI feature layered on the findings.)
#![warn(missing_docs)]

pub mod detect;
mod dify;
pub mod filters;
pub mod rules;
pub mod secret;

pub use detect::{Encoding, Hit, Scanner};
pub use rules::Rule;
pub use secret::SecretValue;

//! Shared helpers for the scanner's integration tests: the generated corpus and
//! small Git helpers. Keys are random at run time; none is written in the source.
#![allow(dead_code, unreachable_pub)]

pub mod corpus;
pub mod git;

//! Git helpers for tests.

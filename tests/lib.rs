//! End-to-end and UI tests for refresh-endpoint live in `tests/tests/`.

pub mod redis_server;
pub mod replicas;

//! End-to-end and UI tests for refresh-endpoint live in `tests/tests/`.

pub mod postgres_server;
pub mod redis_server;
pub mod replicas;
pub mod tls_server;

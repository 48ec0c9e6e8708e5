//! Mock refresh-session providers on loopback (placeholder; being written).

//! Cross-crate criterion benchmarks of the reference workload.

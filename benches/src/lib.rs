//! Cross-crate benchmarks of the reference workload: the clean-window timing shared with the
//! PyTorch twin ([`windows`]) and the `reference` binary that times the dmtl side with it.

pub mod windows;

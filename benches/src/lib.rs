//! Cross-crate benchmarks of the reference workload: the clean-window timing shared with the
//! PyTorch twin ([`windows`]) and the `reference` binary that times the dmtl side with it; the
//! workloads of the `scaling` binary, which measures how cost grows with the work ([`scaling`]).

pub mod scaling;
pub mod windows;

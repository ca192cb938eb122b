//! Two-tower student: retrieval over its item vectors.

pub mod retrieval;

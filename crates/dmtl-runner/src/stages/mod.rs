//! The training and evaluation stages of the pipeline, one file each; every stage takes its
//! inputs ([`StageInputs`], the teacher's scores) and returns its outputs (a model, a row of the
//! table), and writes only its own checkpoint into the run folder:
//!
//! - [`teacher`]: train (or load) the teacher, then score the test rows (its row) and the
//!   training rows (the soft labels DMTL distils);
//! - [`students`]: train one two-tower model, save it, evaluate it offline and by retrieval;
//! - [`references`]: the oracle (simulated data) and random rows;
//! - [`training`]: what the training stages share (their inputs, progress, curves, errors).

pub mod references;
pub mod students;
pub mod teacher;
pub mod training;

pub use training::StageInputs;

//! User vectors for serving, with the user tower's MLP in f32 (the default) or bf16.
//!
//! A [`UserEncoder`] is prepared once from a [`Student`] (under [`Precision::Bf16`] the MLP's
//! weights are rounded and packed then, see [`dmtl_tensor::bf16`]) and encodes batch after
//! batch through the student's own user tower ([`Student::user_vectors_batch`], the same code
//! as training's forward): the field embeddings are gathered and concatenated in f32, only
//! the MLP's products run in bf16 when packed, and the [`Similarity::Cosine`] normalisation
//! follows in f32. So a change to the tower reaches the encoder with nothing to copy. Under
//! [`Precision::F32`], and under [`Precision::Bf16`] on a CPU without AVX-512 BF16, the encoder
//! runs the f32 tower itself, with the same results bit for bit.
//!
//! [`Similarity::Cosine`]: crate::config::Similarity::Cosine

use dmtl_data::Batch;
use dmtl_tensor::bf16::{self, Backend, Bf16Mlp};
use ndarray::Array2;

use crate::error::Result;
use crate::two_tower::Student;

/// The arithmetic of the user tower's MLP at inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 throughout, as in training.
    #[default]
    F32,
    /// Inputs and weights of every layer rounded to bf16, products accumulated in f32
    /// (about `2^-7` relative error per layer). On a CPU without AVX-512 BF16 the MLP runs
    /// in f32 instead ([`UserEncoder::backend`] says which).
    Bf16,
}

/// User vectors of batches at a chosen [`Precision`], for a student that no longer changes
/// (the bf16 weights are a copy taken by [`Student::user_encoder`]).
#[derive(Debug)]
pub struct UserEncoder<'s> {
    student: &'s Student,
    precision: Precision,
    /// The user MLP packed for the bf16 kernel; `None` where the f32 tower runs.
    packed: Option<Bf16Mlp>,
}

impl Student {
    /// Prepares user-vector inference at `precision`; under [`Precision::Bf16`] on a CPU with
    /// AVX-512 BF16 the user MLP is packed here, once.
    ///
    /// Fails when the user MLP's parameters do not have the shapes of its layers.
    pub fn user_encoder(&self, precision: Precision) -> Result<UserEncoder<'_>> {
        match precision {
            Precision::F32 => Ok(UserEncoder {
                student: self,
                precision,
                packed: None,
            }),
            Precision::Bf16 if bf16::available() => self.user_encoder_on(Backend::Bf16),
            Precision::Bf16 => self.user_encoder_on(Backend::F32),
        }
    }

    /// [`Precision::Bf16`] inference with the MLP's arithmetic chosen by the caller:
    /// [`Backend::F32`] is what a CPU without AVX-512 BF16 runs (the f32 tower), so that path
    /// can be run on any CPU.
    ///
    /// Fails when the user MLP's parameters do not have the shapes of its layers, or for
    /// [`Backend::Bf16`] on a CPU without AVX-512 BF16.
    pub fn user_encoder_on(&self, backend: Backend) -> Result<UserEncoder<'_>> {
        let packed = match backend {
            Backend::F32 => None,
            Backend::Bf16 => Some(Bf16Mlp::with_backend(
                self.towers().user_mlp(),
                self.store(),
                backend,
            )?),
        };
        Ok(UserEncoder {
            student: self,
            precision: Precision::Bf16,
            packed,
        })
    }
}

impl UserEncoder<'_> {
    /// The precision asked for.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The arithmetic the MLP actually runs: [`Backend::F32`] under [`Precision::F32`] or on a
    /// CPU without AVX-512 BF16.
    pub fn backend(&self) -> Backend {
        self.packed.as_ref().map_or(Backend::F32, |m| m.backend())
    }

    /// The user vectors of one batch, as [`Student::user_vectors_batch`] (that very code, with
    /// the bf16 MLP where one was packed).
    ///
    /// # Shapes
    /// -> `(batch.n_rows, dim)`.
    ///
    /// Fails when the batch does not fit the schema and vocabularies.
    pub fn user_vectors_batch(&self, batch: &Batch) -> Result<Array2<f32>> {
        self.student
            .user_vectors_batch_packed(batch, self.packed.as_ref())
    }
}

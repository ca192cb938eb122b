//! User vectors for serving, with the user tower's MLP in f32 (the default) or bf16.
//!
//! A [`UserEncoder`] is prepared once from a [`Student`] (under [`Precision::Bf16`] the MLP's
//! weights are rounded and packed then, see [`dmtl_tensor::bf16`]) and encodes batch after
//! batch. The field embeddings are gathered and concatenated in f32 as in
//! [`Student::user_vectors_batch`]; only the MLP's products run in bf16, and the
//! [`Similarity::Cosine`] normalisation follows in f32. Under [`Precision::F32`] the encoder
//! is [`Student::user_vectors_batch`] itself, with the same results.

use dmtl_data::Batch;
use dmtl_tensor::bf16::{Backend, Bf16Mlp};
use dmtl_tensor::parallel::forward_rows;
use ndarray::Array2;

use crate::config::Similarity;
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
    mlp: Option<Bf16Mlp>,
}

impl Student {
    /// Prepares user-vector inference at `precision`; under [`Precision::Bf16`] the user MLP is
    /// packed here, once.
    ///
    /// Fails when the user MLP's parameters do not have the shapes of its layers.
    pub fn user_encoder(&self, precision: Precision) -> Result<UserEncoder<'_>> {
        let mlp = match precision {
            Precision::F32 => None,
            Precision::Bf16 => Some(Bf16Mlp::new(self.towers().user_mlp(), self.store())?),
        };
        Ok(UserEncoder { student: self, mlp })
    }
}

impl UserEncoder<'_> {
    /// The precision asked for.
    pub fn precision(&self) -> Precision {
        if self.mlp.is_some() {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }

    /// The arithmetic the MLP actually runs: [`Backend::F32`] under [`Precision::F32`] or on a
    /// CPU without AVX-512 BF16.
    pub fn backend(&self) -> Backend {
        self.mlp.as_ref().map_or(Backend::F32, |m| m.backend())
    }

    /// The user vectors of one batch, as [`Student::user_vectors_batch`].
    ///
    /// # Shapes
    /// -> `(batch.n_rows, dim)`.
    ///
    /// Fails when the batch does not fit the schema and vocabularies.
    pub fn user_vectors_batch(&self, batch: &Batch) -> Result<Array2<f32>> {
        let Some(mlp) = &self.mlp else {
            return self.student.user_vectors_batch(batch);
        };
        let towers = self.student.towers();
        towers
            .user_fields()
            .check_fields(&batch.fields, batch.n_rows)?;
        let h = forward_rows(self.student.store(), batch.n_rows, |g, r| {
            let b = &*batch.part(r);
            towers.user_fields().forward_fields(g, &b.fields, b.n_rows)
        });
        let mut u = mlp.forward(h.view());
        if let Similarity::Cosine { temperature } = towers.similarity() {
            // The same arithmetic as the graph's normalisation and scaling.
            const EPS: f32 = 1e-12;
            let scale = 1.0 / temperature;
            for mut row in u.rows_mut() {
                let n = (row.dot(&row) + EPS).sqrt();
                row.mapv_inplace(|v| v / n * scale);
            }
        }
        Ok(u)
    }
}

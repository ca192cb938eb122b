//! Gradient exchange: the sum over ranks of every rank's gradients, in two calls per step.
//!
//! - **Dense gradients** (every [`ParamKind::Dense`] parameter, in id order) are flattened into
//!   ONE buffer, followed by one presence flag per parameter and any extra values the caller
//!   adds (losses, counts), and all-reduced once.
//! - **Embedding gradients** ([`ParamKind::Embedding`]) travel as sparse rows: one all-gather of
//!   row ids (a header of one word per table, then the rows) and one of their values. Every rank
//!   merges the gathered rows table by table, rank 0's first, with
//!   [`SparseGrad::coalesce`] (each row summed in rank order), so every rank gets the
//!   bit-identical merged `SparseGrad`, and the lazy sparse Adam applies the same update
//!   everywhere.
//!
//! A parameter has a gradient in the result when it has one on any rank, as when
//! [`Grads::merge`] sums the shards of one process. Values are summed as they are: a NaN on one
//! rank reaches every rank, so the checks after the exchange decide alike on every rank.

use dmtl_tensor::{Grad, Grads, ParamId, ParamKind, ParamStore, SparseGrad};
use ndarray::{Array2, ArrayView2};

use crate::{Collective, DistError, Gathered};

/// Where each gradient goes in the exchanged buffers; depends only on the store's parameters,
/// so it is built once per model and is the same on every rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Dense parameters in id order, with their shapes.
    dense: Vec<(ParamId, (usize, usize))>,
    /// Sum of their sizes.
    dense_values: usize,
    /// Embedding tables in id order: `(id, vocabulary, dim)`.
    tables: Vec<(ParamId, usize, usize)>,
}

/// What one call of [`sum_over_ranks`] sent from this rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExchangeStats {
    /// Floats in the all-reduced buffer: dense gradient entries, one flag per dense
    /// parameter, and the extra values.
    pub reduced_floats: usize,
    /// Embedding rows this rank sent (over all tables).
    pub sparse_rows: usize,
    /// Bytes this rank sent to the all-gathers: `sparse_rows x (4 + 4 x dim)` plus a 4-byte
    /// header per table.
    pub gathered_bytes: usize,
}

impl ExchangeStats {
    /// Bytes of the all-reduced buffer: `reduced_floats x 4`.
    pub fn reduced_bytes(&self) -> usize {
        self.reduced_floats * 4
    }
}

/// The result of [`sum_over_ranks`].
#[derive(Debug, Clone)]
pub struct Summed {
    /// The gradients summed over ranks (each rank's scaled by its weight first).
    pub grads: Grads,
    /// The extra values, summed over ranks (not scaled).
    pub extras: Vec<f32>,
    /// What this rank sent.
    pub stats: ExchangeStats,
}

impl Layout {
    /// The layout of `store`'s parameters.
    pub fn new(store: &ParamStore) -> Layout {
        let mut dense = Vec::new();
        let mut tables = Vec::new();
        for (id, p) in store.iter() {
            match p.kind {
                ParamKind::Dense => dense.push((id, p.value.dim())),
                ParamKind::Embedding => tables.push((id, p.value.nrows(), p.value.ncols())),
            }
        }
        let dense_values = dense.iter().map(|(_, (r, c))| r * c).sum();
        Layout {
            dense,
            dense_values,
            tables,
        }
    }

    /// Length of the all-reduced buffer for `extras` extra values: every dense gradient entry,
    /// one presence flag per dense parameter, the extras.
    pub fn reduced_len(&self, extras: usize) -> usize {
        self.dense_values + self.dense.len() + extras
    }

    /// The dense parameters' gradients times `weight`, flattened in id order (zeros for a
    /// parameter without one), then one flag per parameter (1 when it has a gradient), then
    /// `extra`.
    pub fn flatten_dense(&self, grads: &Grads, weight: f32, extra: &[f32]) -> Vec<f32> {
        let mut buf = Vec::with_capacity(self.reduced_len(extra.len()));
        for &(id, (rows, cols)) in &self.dense {
            match grads.get(id) {
                Some(Grad::Dense(d)) => buf.extend(d.iter().map(|&x| x * weight)),
                Some(Grad::Sparse(s)) => buf.extend(s.to_dense(rows).iter().map(|&x| x * weight)),
                None => buf.resize(buf.len() + rows * cols, 0.0),
            }
        }
        buf.extend(
            self.dense
                .iter()
                .map(|&(id, _)| if grads.get(id).is_some() { 1.0 } else { 0.0 }),
        );
        buf.extend_from_slice(extra);
        buf
    }

    /// Puts the dense gradients of a (summed) buffer from [`Layout::flatten_dense`] into `out`:
    /// those whose flag is positive (a gradient on some rank). Returns the extra values.
    ///
    /// # Panics
    /// When `buf` is shorter than the dense part of the layout.
    pub fn unflatten_dense<'b>(&self, buf: &'b [f32], out: &mut Grads) -> &'b [f32] {
        let flags = &buf[self.dense_values..self.dense_values + self.dense.len()];
        let mut start = 0;
        for (&(id, (rows, cols)), &flag) in self.dense.iter().zip(flags) {
            let n = rows * cols;
            if flag > 0.0 {
                let v = Array2::from_shape_vec((rows, cols), buf[start..start + n].to_vec())
                    .expect("the layout's shape");
                out.accumulate_dense(id, v);
            }
            start += n;
        }
        &buf[self.dense_values + self.dense.len()..]
    }

    /// The embedding gradients times `weight` as the all-gathers send them: row ids (one header
    /// word per table, 0 when it has no gradient and `rows + 1` otherwise, then every table's
    /// rows) and their values (every table's rows, row-major). An embedding table holding a
    /// dense gradient sends every row.
    pub fn pack_sparse(&self, grads: &Grads, weight: f32) -> (Vec<u32>, Vec<f32>) {
        let mut header = Vec::with_capacity(self.tables.len());
        let mut rows = Vec::new();
        let mut values = Vec::new();
        for &(id, vocab, _) in &self.tables {
            let (r, v): (Vec<u32>, ArrayView2<'_, f32>) = match grads.get(id) {
                None => {
                    header.push(0);
                    continue;
                }
                Some(Grad::Sparse(s)) => (s.rows.clone(), s.values.view()),
                Some(Grad::Dense(d)) => ((0..vocab as u32).collect(), d.view()),
            };
            header.push(r.len() as u32 + 1);
            rows.extend(r);
            values.extend(v.iter().map(|&x| x * weight));
        }
        header.extend(rows);
        (header, values)
    }

    /// Merges the gathered output of [`Layout::pack_sparse`] of every rank into `out`: for
    /// each table with a gradient on some rank, the rows of rank 0, 1, ... concatenated and
    /// coalesced (each row's values summed in rank order). The same input gives the same bits
    /// on every rank. `rank` is the calling rank, named in errors.
    ///
    /// # Errors
    /// [`DistError::Layout`] naming the first rank whose part does not fit the layout (wrong
    /// header, lengths, or a row past the vocabulary).
    pub fn merge_sparse(
        &self,
        rank: usize,
        rows: &Gathered<u32>,
        values: &Gathered<f32>,
        out: &mut Grads,
    ) -> Result<(), DistError> {
        let n_tables = self.tables.len();
        let mut merged_rows: Vec<Vec<u32>> = vec![Vec::new(); n_tables];
        let mut merged_values: Vec<Vec<f32>> = vec![Vec::new(); n_tables];
        let mut present = vec![false; n_tables];
        if rows.ranks() != values.ranks() {
            return Err(DistError::Layout {
                rank,
                from: rank,
                reason: format!(
                    "{} parts of row ids but {} of values",
                    rows.ranks(),
                    values.ranks()
                ),
            });
        }
        for (from, (ids, vals)) in rows.parts().zip(values.parts()).enumerate() {
            let bad = |reason: String| DistError::Layout { rank, from, reason };
            if ids.len() < n_tables {
                return Err(bad(format!(
                    "{} header words for {n_tables} embedding tables",
                    ids.len()
                )));
            }
            let (header, mut ids) = ids.split_at(n_tables);
            let mut vals = vals;
            for (t, (&h, &(_, vocab, dim))) in header.iter().zip(&self.tables).enumerate() {
                if h == 0 {
                    continue;
                }
                present[t] = true;
                let n = h as usize - 1;
                if ids.len() < n || vals.len() < n * dim {
                    return Err(bad(format!(
                        "embedding table {t} announces {n} rows that are not all sent"
                    )));
                }
                let (r, rest) = ids.split_at(n);
                let (v, vrest) = vals.split_at(n * dim);
                if let Some(&row) = r.iter().find(|&&row| row as usize >= vocab) {
                    return Err(bad(format!(
                        "embedding table {t} gets row {row}, past its {vocab} rows"
                    )));
                }
                merged_rows[t].extend_from_slice(r);
                merged_values[t].extend_from_slice(v);
                (ids, vals) = (rest, vrest);
            }
            if !ids.is_empty() || !vals.is_empty() {
                return Err(bad(format!(
                    "{} row ids and {} values more than its header announces",
                    ids.len(),
                    vals.len()
                )));
            }
        }
        for (t, &(id, _, dim)) in self.tables.iter().enumerate() {
            if !present[t] {
                continue;
            }
            let n = merged_rows[t].len();
            let v = ArrayView2::from_shape((n, dim), &merged_values[t]).expect("checked lengths");
            out.accumulate_sparse(id, SparseGrad::coalesce(&merged_rows[t], v));
        }
        Ok(())
    }
}

/// The sum over ranks of every rank's `grads` times its `weight` (1 for a plain sum; a rank's
/// share of the global batch, [`crate::Shares::weight`], for the gradient of the global mean
/// when each rank's gradient is the mean over its own rows), and of every rank's `extra`
/// values (summed as they are, in the same all-reduce). Three collective calls: one
/// all-reduce of the dense gradients, two all-gathers of the embedding rows.
///
/// With one rank and `weight` 1 the gradients are returned as they are.
///
/// # Errors
/// What the collective returns, and [`DistError::Layout`] when another rank's gradients do not
/// fit `layout`.
pub fn sum_over_ranks<C: Collective + ?Sized>(
    coll: &C,
    layout: &Layout,
    grads: &Grads,
    weight: f32,
    extra: &[f32],
) -> Result<Summed, DistError> {
    let mut buf = layout.flatten_dense(grads, weight, extra);
    let (rows, values) = layout.pack_sparse(grads, weight);
    let stats = ExchangeStats {
        reduced_floats: buf.len(),
        sparse_rows: rows.len() - layout.tables.len(),
        gathered_bytes: 4 * (rows.len() + values.len()),
    };
    if coll.size() == 1 && weight == 1.0 {
        return Ok(Summed {
            grads: grads.clone(),
            extras: extra.to_vec(),
            stats,
        });
    }
    coll.all_reduce_sum(&mut buf)?;
    let rows = coll.all_gather_u32(&rows)?;
    let values = coll.all_gather_f32(&values)?;
    let mut out = Grads::new(layout.dense.len() + layout.tables.len());
    let extras = layout.unflatten_dense(&buf, &mut out).to_vec();
    layout.merge_sparse(coll.rank(), &rows, &values, &mut out)?;
    Ok(Summed {
        grads: out,
        extras,
        stats,
    })
}

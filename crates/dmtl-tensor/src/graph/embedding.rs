//! Forward pass of the embedding lookups: rows of a table, and pooled bags of rows.

use ndarray::Array2;

use super::kernels::{for_each_row, go_parallel, shape};
use super::{Graph, Op, Pooling, Var};
use crate::params::ParamId;

impl Graph<'_> {
    /// Rows `ids` of embedding table `table`. Its gradient is sparse.
    ///
    /// # Shapes
    /// `table`: `(vocab, dim)`, `ids`: `n` ids -> `(n, dim)`.
    ///
    /// # Panics
    /// When an id is outside the table, or `table` is not a parameter of the store.
    pub fn embedding(&self, table: ParamId, ids: &[u32]) -> Var {
        let t = self.store.value(table);
        let (vocab, dim) = shape(&t);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            panic!(
                "dmtl-tensor: embedding `{}`: id {bad} outside the table of {vocab} rows",
                self.store.get(table).name
            );
        }
        if let (Some(flat), false) = (t.as_slice(), go_parallel(ids.len() * dim)) {
            // Rows appended to a fresh buffer: no zero-fill that the copies overwrite anyway.
            let mut buf: Vec<f32> = Vec::with_capacity(ids.len() * dim);
            for &i in ids {
                let i = i as usize;
                buf.extend_from_slice(&flat[i * dim..(i + 1) * dim]);
            }
            let out = Array2::from_shape_vec((ids.len(), dim), buf).expect("one row per id");
            return self.push(
                out,
                Op::Embedding {
                    table,
                    ids: ids.to_vec(),
                },
            );
        }
        let mut out = Array2::<f32>::zeros((ids.len(), dim));
        let fill = |(r, mut row): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
            row.assign(&t.row(ids[r] as usize))
        };
        for_each_row(&mut out, go_parallel(ids.len() * dim), fill);
        self.push(
            out,
            Op::Embedding {
                table,
                ids: ids.to_vec(),
            },
        )
    }

    /// Pooled bags of rows of `table`: bag `b` pools `ids[offsets[b]..offsets[b + 1]]`,
    /// giving `(offsets.len() - 1, dim)`. An empty bag pools to zeros.
    ///
    /// # Shapes
    /// `table`: `(vocab, dim)`, `ids`: all bags' ids, `offsets`: `n + 1` bag boundaries ->
    /// `(n, dim)`.
    ///
    /// # Panics
    /// When offsets are not non-decreasing from 0 to `ids.len()`, an id is outside the table,
    /// or `table` is not a parameter of the store.
    pub fn embedding_bag(
        &self,
        table: ParamId,
        ids: &[u32],
        offsets: &[u32],
        pooling: Pooling,
    ) -> Var {
        let t = self.store.value(table);
        let (vocab, dim) = shape(&t);
        let name = &self.store.get(table).name;
        assert!(
            !offsets.is_empty()
                && offsets[0] == 0
                && *offsets.last().unwrap() as usize == ids.len()
                && offsets.windows(2).all(|w| w[0] <= w[1]),
            "dmtl-tensor: embedding_bag `{name}`: offsets must rise from 0 to ids.len() = {}",
            ids.len()
        );
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            panic!(
                "dmtl-tensor: embedding_bag `{name}`: id {bad} outside the table of {vocab} rows"
            );
        }
        let n = offsets.len() - 1;
        let mut out = Array2::<f32>::zeros((n, dim));
        let fill = |(b, mut row): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
            let bag = &ids[offsets[b] as usize..offsets[b + 1] as usize];
            for &i in bag {
                row += &t.row(i as usize);
            }
            if pooling == Pooling::Mean && bag.len() > 1 {
                row.mapv_inplace(|x| x / bag.len() as f32);
            }
        };
        for_each_row(&mut out, go_parallel(ids.len() * dim), fill);
        self.push(
            out,
            Op::EmbeddingBag {
                table,
                ids: ids.to_vec(),
                offsets: offsets.to_vec(),
                pooling,
            },
        )
    }
}

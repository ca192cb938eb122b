//! Named parameters, their gradients, and their safetensors files.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rayon::prelude::*;

use crate::error::TensorError;
use crate::init::Init;
use crate::tensor_file::{self, TensorFile};
use crate::threads::for_each_row;

/// Handle of a parameter inside a [`ParamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

/// How a parameter is used, which decides how its gradient is stored and updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A dense weight or bias: every step updates every entry.
    Dense,
    /// An embedding table `(vocabulary, dim)`: gradients are sparse (only the rows a batch
    /// touched) and lazy optimizers update only those rows.
    Embedding,
}

/// One named parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Dotted name, e.g. `teacher.expert.0.layer.1.weight`; the key in safetensors files.
    pub name: String,
    /// The value, always 2-d. A bias is `(1, n)`.
    pub value: Array2<f32>,
    /// Dense or embedding.
    pub kind: ParamKind,
    /// Saved as a 1-d tensor of `cols` entries (a bias, as PyTorch stores it).
    pub saved_1d: bool,
}

impl Param {
    /// The shape written to safetensors files.
    pub fn saved_shape(&self) -> Vec<usize> {
        if self.saved_1d {
            vec![self.value.ncols()]
        } else {
            self.value.shape().to_vec()
        }
    }
}

/// Every parameter of a model, by name, in registration order.
#[derive(Debug, Clone, Default)]
pub struct ParamStore {
    params: Vec<Param>,
    by_name: HashMap<String, ParamId>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every parameter's value, mutably, in id order: for optimizers that update several
    /// parameters at once.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Array2<f32>> {
        self.params.iter_mut().map(|p| &mut p.value)
    }

    /// Registers a parameter with the given value.
    ///
    /// # Shapes
    /// `value`: `(rows, cols)`, kept as it is (a bias is `(1, n)`, a table `(vocab, dim)`).
    ///
    /// # Panics
    /// When `name` is already registered (a programming error in model code).
    pub fn add(&mut self, name: &str, value: Array2<f32>, kind: ParamKind) -> ParamId {
        self.try_add(name, value, kind, false)
            .unwrap_or_else(|e| panic!("dmtl-tensor: {e}"))
    }

    /// Registers a parameter; errors on a duplicate name.
    ///
    /// # Shapes
    /// `value`: `(rows, cols)`, saved as `[cols]` when `saved_1d` (then `rows` should be 1).
    pub fn try_add(
        &mut self,
        name: &str,
        value: Array2<f32>,
        kind: ParamKind,
        saved_1d: bool,
    ) -> Result<ParamId, TensorError> {
        if self.by_name.contains_key(name) {
            return Err(TensorError::DuplicateName(name.to_string()));
        }
        let id = ParamId(self.params.len());
        self.params.push(Param {
            name: name.to_string(),
            value: value.as_standard_layout().into_owned(),
            kind,
            saved_1d,
        });
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// Registers a dense `(rows, cols)` weight drawn from `init`.
    ///
    /// # Panics
    /// When `name` is already registered, or as [`Init::sample`].
    pub fn weight<R: Rng + ?Sized>(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        init: Init,
        rng: &mut R,
    ) -> ParamId {
        self.add(name, init.sample(rows, cols, rng), ParamKind::Dense)
    }

    /// Registers a bias of `n` zeros, stored `(1, n)` and saved 1-d as PyTorch does.
    ///
    /// # Panics
    /// When `name` is already registered.
    pub fn bias(&mut self, name: &str, n: usize) -> ParamId {
        self.try_add(name, Array2::zeros((1, n)), ParamKind::Dense, true)
            .unwrap_or_else(|e| panic!("dmtl-tensor: {e}"))
    }

    /// Registers an embedding table `(vocab, dim)` drawn from `init`.
    ///
    /// # Panics
    /// When `name` is already registered, or as [`Init::sample`].
    pub fn embedding<R: Rng + ?Sized>(
        &mut self,
        name: &str,
        vocab: usize,
        dim: usize,
        init: Init,
        rng: &mut R,
    ) -> ParamId {
        self.add(name, init.sample(vocab, dim, rng), ParamKind::Embedding)
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when no parameter is registered.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalars over all parameters.
    pub fn num_scalars(&self) -> usize {
        self.params.iter().map(|p| p.value.len()).sum()
    }

    /// The parameter behind `id`.
    ///
    /// # Panics
    /// When `id` is not a parameter of this store.
    pub fn get(&self, id: ParamId) -> &Param {
        &self.params[id.0]
    }

    /// Its value, `(rows, cols)`.
    ///
    /// # Panics
    /// When `id` is not a parameter of this store.
    pub fn value(&self, id: ParamId) -> ArrayView2<'_, f32> {
        self.params[id.0].value.view()
    }

    /// Mutable access to its value, `(rows, cols)`.
    ///
    /// # Panics
    /// When `id` is not a parameter of this store.
    pub fn value_mut(&mut self, id: ParamId) -> &mut Array2<f32> {
        &mut self.params[id.0].value
    }

    /// The id registered under `name`.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }

    /// All parameters with their ids, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Param)> {
        self.params.iter().enumerate().map(|(i, p)| (ParamId(i), p))
    }

    /// Serializes every parameter to safetensors bytes (f32, little-endian, names as keys).
    pub fn to_safetensors_bytes(&self) -> Vec<u8> {
        let tensors = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.saved_shape(), &p.value));
        tensor_file::encode(tensors, None)
    }

    /// Writes every parameter to a safetensors file, atomically (a temporary file renamed over
    /// `path`, so a crash never leaves a half-written file). PyTorch reads it with
    /// `safetensors.torch.load_file`.
    pub fn save(&self, path: &Path) -> Result<(), TensorError> {
        crate::io::atomic_write(path, &self.to_safetensors_bytes())
    }

    /// Loads values for every parameter from a safetensors file.
    ///
    /// The file must hold exactly this store's names with the same shapes and dtype f32;
    /// otherwise nothing is changed and the error names the first tensor that differs.
    pub fn load(&mut self, path: &Path) -> Result<(), TensorError> {
        let bytes = std::fs::read(path).map_err(|source| TensorError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(&bytes, path)
    }

    /// As [`ParamStore::load`], from bytes already in memory (`origin` names them in errors).
    pub fn load_bytes(&mut self, bytes: &[u8], origin: &Path) -> Result<(), TensorError> {
        let file = TensorFile::parse(bytes, origin)?;
        let mut staged = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let value = file.matrix(&p.name, &p.saved_shape(), p.value.dim())?;
            staged.push(value.ok_or_else(|| {
                file.mismatch(format!(
                    "tensor `{}` is missing (is this a checkpoint of another model?)",
                    p.name
                ))
            })?);
        }
        if file.len() != self.params.len() {
            let extra = file
                .names()
                .into_iter()
                .find(|n| !self.by_name.contains_key(*n))
                .unwrap_or_default();
            return Err(file.mismatch(format!(
                "file holds tensor `{extra}` that the model does not have (is this a checkpoint of another model?)"
            )));
        }
        for (p, v) in self.params.iter_mut().zip(staged) {
            p.value = v;
        }
        Ok(())
    }
}

/// The gradient of an embedding table: only the rows a batch touched.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseGrad {
    /// Distinct row indices, ascending.
    pub rows: Vec<u32>,
    /// Their gradients, `(rows.len(), dim)`.
    pub values: Array2<f32>,
}

impl SparseGrad {
    /// Sums duplicate rows of `(rows[j], values.row(j))` pairs into distinct ascending rows.
    ///
    /// # Shapes
    /// `rows`: `n` row ids, `values`: `(n, dim)` -> `values` `(distinct rows, dim)`.
    ///
    /// # Panics
    /// When `values` has fewer than `n` rows.
    pub fn coalesce(rows: &[u32], values: ArrayView2<'_, f32>) -> SparseGrad {
        // One packed key `(row, position)` per entry: sorting plain integers is much faster
        // than sorting indices through a key lookup, and gives the same order.
        let mut keys: Vec<u64> = rows
            .iter()
            .enumerate()
            .map(|(j, &r)| (u64::from(r) << 32) | j as u64)
            .collect();
        keys.sort_unstable();
        let order: Vec<u32> = keys.iter().map(|&k| k as u32).collect();
        let mut uniq = Vec::new();
        let mut starts = Vec::new();
        for (pos, &k) in keys.iter().enumerate() {
            let r = (k >> 32) as u32;
            if uniq.last() != Some(&r) {
                uniq.push(r);
                starts.push(pos);
            }
        }
        starts.push(order.len());
        let dim = values.ncols();
        // SAFETY: every distinct row has at least one entry, whose values `fill` writes to
        // the whole output row before adding the others.
        let mut out = unsafe { crate::uninit::matrix(uniq.len(), dim) };
        let fill = |(u, mut dst): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
            let entries = &order[starts[u]..starts[u + 1]];
            // `0 + x`: the sum a zeroed start gives, sign of zero included.
            dst.zip_mut_with(&values.row(entries[0] as usize), |d, &x| *d = 0.0 + x);
            for &j in &entries[1..] {
                dst += &values.row(j as usize);
            }
        };
        for_each_row(
            &mut out,
            rows.len() * dim > 1 << 15 && rayon::current_thread_index().is_none(),
            fill,
        );
        SparseGrad {
            rows: uniq,
            values: out,
        }
    }

    /// Expands to a dense matrix (for tests and checks).
    ///
    /// # Shapes
    /// `values`: `(k, dim)` -> `(vocab, dim)`.
    ///
    /// # Panics
    /// When a row is not below `vocab`.
    pub fn to_dense(&self, vocab: usize) -> Array2<f32> {
        let mut d = Array2::zeros((vocab, self.values.ncols()));
        for (k, &r) in self.rows.iter().enumerate() {
            d.row_mut(r as usize).assign(&self.values.row(k));
        }
        d
    }
}

/// A parameter's gradient: dense, or sparse rows of an embedding table.
#[derive(Debug, Clone, PartialEq)]
pub enum Grad {
    /// Same shape as the parameter.
    Dense(Array2<f32>),
    /// Touched rows of an embedding table.
    Sparse(SparseGrad),
}

impl Grad {
    /// Sum of squares of the entries.
    pub fn sum_sq(&self) -> f64 {
        let v = match self {
            Grad::Dense(d) => d.view(),
            Grad::Sparse(s) => s.values.view(),
        };
        v.iter().map(|&x| (x as f64) * (x as f64)).sum()
    }

    /// The stored entries (all of a dense gradient, the touched rows of a sparse one).
    pub fn values_mut(&mut self) -> &mut Array2<f32> {
        match self {
            Grad::Dense(d) => d,
            Grad::Sparse(s) => &mut s.values,
        }
    }

    /// The stored entries.
    pub fn values(&self) -> &Array2<f32> {
        match self {
            Grad::Dense(d) => d,
            Grad::Sparse(s) => &s.values,
        }
    }
}

/// Adds `g` to the gradient held in `slot` (dense to dense, sparse rows to sparse rows, sparse
/// rows into a dense one), or stores it there.
fn add_grad(slot: &mut Option<Grad>, g: Grad) {
    match (slot.as_mut(), g) {
        (None, g) => *slot = Some(g),
        (Some(Grad::Dense(d)), Grad::Dense(g)) => *d += &g,
        (Some(Grad::Sparse(s)), Grad::Dense(g)) => {
            let mut d = s.to_dense(g.nrows());
            d += &g;
            *slot = Some(Grad::Dense(d));
        }
        (Some(Grad::Dense(d)), Grad::Sparse(g)) => {
            for (k, &r) in g.rows.iter().enumerate() {
                let mut row = d.row_mut(r as usize);
                row += &g.values.row(k);
            }
        }
        (Some(Grad::Sparse(s)), Grad::Sparse(g)) => {
            let rows: Vec<u32> = s.rows.iter().chain(g.rows.iter()).copied().collect();
            let vals = ndarray::concatenate(Axis(0), &[s.values.view(), g.values.view()])
                .expect("same embedding width");
            *s = SparseGrad::coalesce(&rows, vals.view());
        }
    }
}

/// True when no entry of `v` is a NaN or an infinity; 64 entries at a time without an early
/// exit inside a block, so the test vectorises.
fn all_finite(v: ArrayView2<'_, f32>) -> bool {
    match v.as_slice_memory_order() {
        Some(s) => s
            .chunks(64)
            .all(|c| c.iter().fold(true, |ok, x| ok & x.is_finite())),
        None => v.iter().all(|x| x.is_finite()),
    }
}

/// The gradients of one backward pass, by parameter.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    grads: Vec<Option<Grad>>,
}

impl Grads {
    /// No gradients for a store of `n` parameters.
    pub fn new(n: usize) -> Self {
        Grads {
            grads: vec![None; n],
        }
    }

    /// The gradient of `id`, if the loss depends on it.
    pub fn get(&self, id: ParamId) -> Option<&Grad> {
        self.grads.get(id.0).and_then(|g| g.as_ref())
    }

    /// Gradients by parameter id, for optimizers.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Grad)> {
        self.grads
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (ParamId(i), g)))
    }

    /// Adds a dense gradient for `id`.
    ///
    /// # Shapes
    /// `g`: the parameter's `(rows, cols)`.
    ///
    /// # Panics
    /// When `g`'s shape differs from the gradient already held for `id`.
    pub fn accumulate_dense(&mut self, id: ParamId, g: Array2<f32>) {
        self.ensure(id);
        add_grad(&mut self.grads[id.0], Grad::Dense(g));
    }

    /// Adds sparse rows for embedding table `id`.
    ///
    /// # Shapes
    /// `g.values`: `(k, dim)`, one row per entry of `g.rows`.
    ///
    /// # Panics
    /// When `dim` differs from the gradient already held for `id`, or a row lies outside it.
    pub fn accumulate_sparse(&mut self, id: ParamId, g: SparseGrad) {
        self.ensure(id);
        add_grad(&mut self.grads[id.0], Grad::Sparse(g));
    }

    /// Adds every gradient of `other` to this one (dense to dense, sparse rows to sparse rows):
    /// the gradient of a sum of losses from the gradients of its terms. Parameters are merged
    /// side by side on Rayon's threads; each one's sum is the same as one at a time.
    ///
    /// # Panics
    /// When a gradient's shape differs from the one it is added to.
    pub fn merge(&mut self, other: Grads) {
        if self.grads.len() < other.grads.len() {
            self.grads.resize(other.grads.len(), None);
        }
        self.grads
            .par_iter_mut()
            .zip(other.grads.into_par_iter())
            .for_each(|(mine, theirs)| {
                if let Some(g) = theirs {
                    add_grad(mine, g);
                }
            });
    }

    fn ensure(&mut self, id: ParamId) {
        if self.grads.len() <= id.0 {
            self.grads.resize(id.0 + 1, None);
        }
    }

    /// Euclidean norm over every gradient entry.
    pub fn global_norm(&self) -> f64 {
        self.iter().map(|(_, g)| g.sum_sq()).sum::<f64>().sqrt()
    }

    /// Scales all gradients so their global norm is at most `max_norm`; returns the norm before.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.global_norm();
        if norm > max_norm && norm > 0.0 {
            let s = (max_norm / norm) as f32;
            for g in self.grads.iter_mut().flatten() {
                g.values_mut().mapv_inplace(|x| x * s);
            }
        }
        norm
    }

    /// The first parameter whose gradient holds a NaN or infinity.
    pub fn first_non_finite(&self) -> Option<ParamId> {
        // Parameters are scanned side by side; `find_first` still reports the lowest id.
        let all: Vec<(ParamId, &Grad)> = self.iter().collect();
        all.into_par_iter()
            .find_first(|(_, g)| !all_finite(g.values().view()))
            .map(|(id, _)| id)
    }

    /// Errors naming the first parameter whose gradient holds a NaN or infinity.
    pub fn check_finite(&self, store: &ParamStore) -> Result<(), TensorError> {
        match self.first_non_finite() {
            Some(id) => Err(TensorError::NonFinite(store.get(id).name.clone())),
            None => Ok(()),
        }
    }
}

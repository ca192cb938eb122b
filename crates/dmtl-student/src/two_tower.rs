//! The two-tower student of DMTL.
//!
//! Zhao et al., "Distillation based Multi-task Learning: A Candidate Generation Model for
//! Improving Reading Duration", arXiv 2102.07142 (the student, section 3.3); the towers follow
//! DSSM (Huang et al., CIKM 2013) and YouTube's candidate generator (Covington et al.,
//! RecSys 2016).
//!
//! A user tower maps the user and context fields to `u`, an item tower the item fields to `v`;
//! the score is `s = <u, v>` (or a temperature-scaled cosine, see [`Similarity`]) and
//! `p = sigmoid(s)`. Each tower has embedding tables of its own
//! (`student.user_tower.embedding.<column>`, `student.item_tower.embedding.<column>`) and an
//! MLP (`student.<side>_tower.layer.<k>.{weight,bias}`, PyTorch's `nn.Linear` layout). Because
//! the score is an inner product, the item vectors can be computed once and indexed
//! ([`crate::retrieval`]); either tower runs on its own.

use std::path::Path;

use dmtl_data::{Batch, Dataset, FieldData, Schema, Side, Vocabularies};
use dmtl_tensor::bf16::Bf16Mlp;
use dmtl_tensor::nn::{Mlp, MlpConfig};
use dmtl_tensor::parallel::forward_rows;
use dmtl_tensor::{Activation, Graph, ParamStore, Var};
use dmtl_train::{checkpoint, FieldEmbeddings};
use ndarray::{Array2, Axis, Zip};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::{Similarity, StudentConfig};
use crate::error::{Result, StudentError};

/// File name of a checkpoint's parameters inside its directory.
pub const WEIGHTS_FILE: &str = "student.safetensors";
/// File name of a checkpoint's configuration inside its directory.
pub const CONFIG_FILE: &str = "student.toml";
/// Prefix of every parameter name.
pub const PREFIX: &str = "student";
const FILES: checkpoint::Files = checkpoint::Files {
    weights: WEIGHTS_FILE,
    config: CONFIG_FILE,
};

/// The towers' parameters as handles into some [`ParamStore`]: the student's own, or a store
/// shared with the teacher for joint training.
#[derive(Debug, Clone)]
pub struct TwoTower {
    user_fields: FieldEmbeddings,
    item_fields: FieldEmbeddings,
    user_mlp: Mlp,
    item_mlp: Mlp,
    similarity: Similarity,
    dim: usize,
}

impl TwoTower {
    /// Registers both towers' tables and layers in `store` under `prefix` (`<prefix>.user_tower`,
    /// `<prefix>.item_tower`), initialised from `config.seed`.
    ///
    /// Fails when the configuration is invalid, the schema has no user/context or no item
    /// feature, or a column lacks its vocabulary.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        config: &StudentConfig,
        schema: &Schema,
        vocabs: &Vocabularies,
    ) -> Result<TwoTower> {
        config.validate("<config>")?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let user_name = format!("{prefix}.user_tower");
        let item_name = format!("{prefix}.item_tower");
        let user_fields = FieldEmbeddings::new(
            store,
            &user_name,
            schema,
            vocabs,
            &[Side::User, Side::Context],
            &config.embedding,
            &mut rng,
        )?;
        let item_fields = FieldEmbeddings::new(
            store,
            &item_name,
            schema,
            vocabs,
            &[Side::Item],
            &config.embedding,
            &mut rng,
        )?;
        let mlp = |layers: &[usize]| MlpConfig {
            hidden: layers.to_vec(),
            activation: Activation::Relu,
            last_activation: Activation::Identity,
        };
        let user_mlp = Mlp::new(
            store,
            &user_name,
            user_fields.out_dim(),
            &mlp(&config.user_layers),
            &mut rng,
        );
        let item_mlp = Mlp::new(
            store,
            &item_name,
            item_fields.out_dim(),
            &mlp(&config.item_layers),
            &mut rng,
        );
        Ok(TwoTower {
            user_fields,
            item_fields,
            user_mlp,
            item_mlp,
            similarity: config.similarity,
            dim: config.output_dim(),
        })
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The user tower's input layer (user and context fields).
    pub fn user_fields(&self) -> &FieldEmbeddings {
        &self.user_fields
    }

    /// The item tower's input layer (item fields).
    pub fn item_fields(&self) -> &FieldEmbeddings {
        &self.item_fields
    }

    /// The user tower's MLP (after [`TwoTower::user_fields`]).
    pub fn user_mlp(&self) -> &Mlp {
        &self.user_mlp
    }

    /// How a user vector and an item vector make a score.
    pub fn similarity(&self) -> Similarity {
        self.similarity
    }

    /// User vectors of `n_rows` rows given column by column (one entry per schema column;
    /// other sides ignored).
    ///
    /// # Shapes
    /// -> `(n_rows, dim)`. Under [`Similarity::Cosine`] each row has norm `1 / temperature`.
    ///
    /// # Panics
    /// When the fields do not pass [`FieldEmbeddings::check_fields`].
    pub fn user_tower_fields(&self, g: &Graph<'_>, fields: &[FieldData], n_rows: usize) -> Var {
        self.user_tower_packed(g, fields, n_rows, None)
    }

    /// [`TwoTower::user_tower_fields`], with the MLP run by `packed` when given (a copy of
    /// [`TwoTower::user_mlp`] packed for inference, see [`crate::inference`]): its output
    /// enters the graph as a value without gradient, everything else is the same code.
    pub(crate) fn user_tower_packed(
        &self,
        g: &Graph<'_>,
        fields: &[FieldData],
        n_rows: usize,
        packed: Option<&Bf16Mlp>,
    ) -> Var {
        let h = self.user_fields.forward_fields(g, fields, n_rows);
        let u = match packed {
            None => self.user_mlp.forward(g, h),
            Some(mlp) => g.input(g.with_value(h, |h| mlp.forward(h))),
        };
        match self.similarity {
            Similarity::Dot => u,
            Similarity::Cosine { temperature } => {
                g.scale(l2_normalize_rows(g, u), 1.0 / temperature)
            }
        }
    }

    /// Item vectors of `n_rows` rows given column by column.
    ///
    /// # Shapes
    /// -> `(n_rows, dim)`. Under [`Similarity::Cosine`] each row has norm 1.
    ///
    /// # Panics
    /// When the fields do not pass [`FieldEmbeddings::check_fields`].
    pub fn item_tower_fields(&self, g: &Graph<'_>, fields: &[FieldData], n_rows: usize) -> Var {
        let h = self.item_fields.forward_fields(g, fields, n_rows);
        let v = self.item_mlp.forward(g, h);
        match self.similarity {
            Similarity::Dot => v,
            Similarity::Cosine { .. } => l2_normalize_rows(g, v),
        }
    }

    /// [`TwoTower::user_tower_fields`] of a batch: `(n, dim)`.
    pub fn user_tower(&self, g: &Graph<'_>, batch: &Batch) -> Var {
        self.user_tower_fields(g, &batch.fields, batch.n_rows)
    }

    /// [`TwoTower::item_tower_fields`] of a batch: `(n, dim)`.
    pub fn item_tower(&self, g: &Graph<'_>, batch: &Batch) -> Var {
        self.item_tower_fields(g, &batch.fields, batch.n_rows)
    }

    /// The score (logit) of each row's user-item pair, `s = <u, v>`.
    ///
    /// # Shapes
    /// A batch of `n` rows -> `(n, 1)`.
    pub fn score(&self, g: &Graph<'_>, batch: &Batch) -> Var {
        let u = self.user_tower(g, batch);
        let v = self.item_tower(g, batch);
        g.row_dot(u, v)
    }

    /// Checks that a dataset's fields fit both towers; the error names the column and row.
    pub fn check_dataset(&self, data: &Dataset) -> Result<()> {
        self.user_fields.check_dataset(data)?;
        self.item_fields.check_dataset(data)?;
        Ok(())
    }
}

/// `x / sqrt(|x|^2 + eps)` per row, one op with its own gradient
/// `dx = (dy - y (y . dy)) / sqrt(|x|^2 + eps)`.
fn l2_normalize_rows(g: &Graph<'_>, x: Var) -> Var {
    const EPS: f32 = 1e-12;
    let (y, norms) = g.with_value(x, |xv| {
        let norms: Vec<f32> = xv
            .rows()
            .into_iter()
            .map(|r| (r.dot(&r) + EPS).sqrt())
            .collect();
        let mut y = xv.to_owned();
        for (mut row, n) in y.rows_mut().into_iter().zip(&norms) {
            row.mapv_inplace(|v| v / n);
        }
        (y, norms)
    });
    g.custom(
        &[x],
        y,
        Box::new(move |_inputs, y, dy| {
            let mut dx = dy.to_owned();
            Zip::from(dx.rows_mut())
                .and(y.rows())
                .and(&ndarray::ArrayView1::from(&norms[..]))
                .for_each(|mut d, yr, &n| {
                    let proj = yr.dot(&d);
                    d.scaled_add(-proj, &yr);
                    d.mapv_inplace(|v| v / n);
                });
            vec![Some(dx)]
        }),
    )
}

/// Runs `f` on batches of `rows` of `data` in parallel (BLAS single-threaded meanwhile) on
/// graphs over `store`, and stacks the `(n, cols)` results in row order.
pub(crate) fn batched(
    store: &ParamStore,
    batch_size: usize,
    data: &Dataset,
    rows: &[u32],
    cols: usize,
    f: impl Fn(&Graph<'_>, &Batch) -> Var + Sync,
) -> Result<Array2<f32>> {
    if let Some(&r) = rows.iter().find(|&&r| r as usize >= data.n_rows) {
        return Err(StudentError::Data(format!(
            "row {r} is out of range for a dataset of {} rows",
            data.n_rows
        )));
    }
    let chunks: Vec<&[u32]> = rows.chunks(batch_size.max(1)).collect();
    if chunks.len() == 1 {
        // One batch: its rows in shards, one per thread.
        let batch = data.batch(chunks[0]);
        return Ok(forward_rows(store, batch.n_rows, |g, r| {
            f(g, &batch.part(r))
        }));
    }
    // Batches in parallel with one BLAS thread each beat one batch at a time with
    // multi-threaded GEMMs at these sizes: the gathers are single-threaded per batch too.
    let parts: Vec<Array2<f32>> = dmtl_tensor::threads::with_blas_threads(1, || {
        chunks
            .par_iter()
            .map(|chunk| {
                let batch = data.batch(chunk);
                let g = Graph::new(store);
                let out = f(&g, &batch);
                g.value(out)
            })
            .collect()
    });
    if parts.is_empty() {
        return Ok(Array2::zeros((0, cols)));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(Axis(0), &views).expect("every part has `cols` columns"))
}

/// The score of every row of `data` under `towers` registered in `store`.
pub(crate) fn score_rows(
    store: &ParamStore,
    towers: &TwoTower,
    batch_size: usize,
    data: &Dataset,
) -> Result<Vec<f32>> {
    towers.check_dataset(data)?;
    let rows: Vec<u32> = (0..data.n_rows as u32).collect();
    let s = batched(store, batch_size, data, &rows, 1, |g, b| towers.score(g, b))?;
    Ok(s.into_raw_vec_and_offset().0)
}

/// The two-tower student with its own parameters.
///
/// ```
/// use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
/// use dmtl_student::objective::ClickBce;
/// use dmtl_student::{ObjectiveConfig, Student, StudentConfig, TrainOptions};
/// let fields = tiny_fields();
/// let (schema, vocabs) = schema_and_vocabs(&fields, 4);
/// let train = random_dataset(&fields, 300, 1);
/// let cfg = StudentConfig {
///     user_layers: vec![16, 8],
///     item_layers: vec![16, 8],
///     objective: ObjectiveConfig::of(ClickBce {}),
///     train: TrainOptions { epochs: 2, batch_size: 64, ..Default::default() },
///     ..Default::default()
/// };
/// let mut student = Student::new(cfg, &schema, &vocabs).unwrap();
/// let history = student.train(&train, None, None, |_| {}).unwrap();
/// assert!(!history.epochs.is_empty());
/// let rows: Vec<u32> = (0..train.n_rows as u32).collect();
/// let u = student.user_vectors(&train, &rows).unwrap();
/// let v = student.item_vectors(&train, &rows).unwrap();
/// let s = student.score_dataset(&train).unwrap();
/// assert!((u.row(0).dot(&v.row(0)) - s[0]).abs() < 1e-4);
/// ```
#[derive(Debug, Clone)]
pub struct Student {
    config: StudentConfig,
    store: ParamStore,
    towers: TwoTower,
}

impl Student {
    /// Builds a student with fresh parameters (seeded by `config.seed`): a user tower over the
    /// user and context columns of `schema`, an item tower over its item columns.
    ///
    /// Fails when the configuration is invalid or a column lacks its vocabulary.
    pub fn new(config: StudentConfig, schema: &Schema, vocabs: &Vocabularies) -> Result<Student> {
        let mut store = ParamStore::new();
        let towers = TwoTower::new(&mut store, PREFIX, &config, schema, vocabs)?;
        Ok(Student {
            config,
            store,
            towers,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &StudentConfig {
        &self.config
    }

    /// Replaces the training options (the architecture stays).
    pub fn set_train_options(&mut self, train: crate::config::TrainOptions) {
        self.config.train = train;
    }

    /// Its parameters.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Mutable access to its parameters (custom training loops).
    pub fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// Its towers (parameter handles into [`Student::store`]).
    pub fn towers(&self) -> &TwoTower {
        &self.towers
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.towers.dim
    }

    /// User vectors of a batch, on a graph over [`Student::store`].
    ///
    /// # Shapes
    /// A batch of `n` rows -> `(n, dim)`.
    ///
    /// # Panics
    /// When the batch does not fit the schema and vocabularies.
    pub fn user_tower(&self, g: &Graph<'_>, batch: &Batch) -> Var {
        self.towers.user_tower(g, batch)
    }

    /// Item vectors of a batch, on a graph over [`Student::store`].
    ///
    /// # Shapes
    /// A batch of `n` rows -> `(n, dim)`.
    ///
    /// # Panics
    /// When the batch does not fit the schema and vocabularies.
    pub fn item_tower(&self, g: &Graph<'_>, batch: &Batch) -> Var {
        self.towers.item_tower(g, batch)
    }

    /// The score `s = <u, v>` of each row, on a graph over [`Student::store`].
    ///
    /// # Shapes
    /// A batch of `n` rows -> `(n, 1)`; `p = sigmoid(s)`.
    pub fn score(&self, g: &Graph<'_>, batch: &Batch) -> Var {
        self.towers.score(g, batch)
    }

    /// The user vectors of the given rows of `data`, in that order, batch by batch in
    /// parallel.
    ///
    /// # Shapes
    /// -> `(rows.len(), dim)`.
    ///
    /// Fails when `data` does not fit the schema and vocabularies or a row is out of range.
    pub fn user_vectors(&self, data: &Dataset, rows: &[u32]) -> Result<Array2<f32>> {
        self.towers.user_fields.check_dataset(data)?;
        let bs = self.config.train.batch_size;
        batched(&self.store, bs, data, rows, self.dim(), |g, b| {
            self.user_tower(g, b)
        })
    }

    /// The user vectors of one batch, its rows split into shards that run in parallel (one
    /// per thread): online inference.
    ///
    /// # Shapes
    /// -> `(batch.n_rows, dim)`.
    ///
    /// Fails when the batch does not fit the schema and vocabularies.
    pub fn user_vectors_batch(&self, batch: &Batch) -> Result<Array2<f32>> {
        self.user_vectors_batch_packed(batch, None)
    }

    /// [`Student::user_vectors_batch`] with the user MLP run by `packed` when given (see
    /// [`TwoTower::user_tower_packed`]).
    pub(crate) fn user_vectors_batch_packed(
        &self,
        batch: &Batch,
        packed: Option<&Bf16Mlp>,
    ) -> Result<Array2<f32>> {
        self.towers
            .user_fields
            .check_fields(&batch.fields, batch.n_rows)?;
        Ok(forward_rows(&self.store, batch.n_rows, |g, r| {
            let b = &*batch.part(r);
            self.towers
                .user_tower_packed(g, &b.fields, b.n_rows, packed)
        }))
    }

    /// The item vectors of the given rows of `data`, in that order, batch by batch in
    /// parallel.
    ///
    /// # Shapes
    /// -> `(rows.len(), dim)`.
    ///
    /// Fails when `data` does not fit the schema and vocabularies or a row is out of range.
    pub fn item_vectors(&self, data: &Dataset, rows: &[u32]) -> Result<Array2<f32>> {
        self.towers.item_fields.check_dataset(data)?;
        let bs = self.config.train.batch_size;
        batched(&self.store, bs, data, rows, self.dim(), |g, b| {
            self.item_tower(g, b)
        })
    }

    /// The score (logit) of every row of `data`, in row order.
    ///
    /// # Shapes
    /// -> `data.n_rows` entries.
    pub fn score_dataset(&self, data: &Dataset) -> Result<Vec<f32>> {
        score_rows(
            &self.store,
            &self.towers,
            self.config.train.batch_size,
            data,
        )
    }

    /// `p = sigmoid(s)` of every row of `data`, in row order.
    pub fn predict(&self, data: &Dataset) -> Result<Vec<f32>> {
        Ok(self
            .score_dataset(data)?
            .into_iter()
            .map(dmtl_loss::stable::sigmoid)
            .collect())
    }

    /// Writes `student.safetensors` (every parameter by name) and `student.toml` (the
    /// configuration) into `dir`, creating it if needed; each file is written atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        Ok(checkpoint::save(dir, FILES, &self.store, &self.config)?)
    }

    /// Rebuilds the student saved in `dir` by [`Student::save`] for the same schema and
    /// vocabularies. Fails naming the file when `student.toml` is missing or invalid, and
    /// naming the tensor when `student.safetensors` is missing, truncated or holds another
    /// model's parameters.
    pub fn load(dir: &Path, schema: &Schema, vocabs: &Vocabularies) -> Result<Student> {
        let build = |config| Student::new(config, schema, vocabs);
        checkpoint::load(dir, FILES, build, |s: &mut Student| &mut s.store)
    }

    pub(crate) fn parts_mut(&mut self) -> (&StudentConfig, &mut ParamStore, &TwoTower) {
        (&self.config, &mut self.store, &self.towers)
    }
}

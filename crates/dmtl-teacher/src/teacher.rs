//! The teacher: field embeddings, a multi-task structure, and the ESMM heads.
//!
//! Xiao Ma, Liqin Zhao, Guan Huang, Zhi Wang, Zelin Hu, Xiaoqiang Zhu, Kun Gai, "Entire Space
//! Multi-Task Model: An Effective Approach for Estimating Post-Click Conversion Rate",
//! SIGIR 2018.
//!
//! `pCTR = sigmoid(ctr_logit)`, `pCVR = sigmoid(cvr_logit) = P(long read | click)` and
//! `pCTCVR = pCTR * pCVR`, the product taken of probabilities (never of logits). The loss
//! `BCE(click, pCTR) + w * BCE(click & long read, pCTCVR)` runs over every impression, so pCVR
//! learns without ever being fitted on the clicked rows alone.

use std::path::Path;
use std::sync::Arc;

use dmtl_data::{Batch, Dataset, Schema, Side, Vocabularies};
use dmtl_loss::stable::sigmoid;
use dmtl_tensor::parallel::forward_rows_in;
use dmtl_tensor::{Graph, ParamStore, Var};
use dmtl_train::checkpoint;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::body::Body;
use crate::config::TeacherConfig;
use crate::error::Result;
use crate::features::FieldEmbeddings;
use crate::task::Task;

/// File name of a checkpoint's parameters inside its directory.
pub const WEIGHTS_FILE: &str = "teacher.safetensors";
/// File name of a checkpoint's configuration inside its directory.
pub const CONFIG_FILE: &str = "teacher.toml";
/// Prefix of every parameter name.
pub const PREFIX: &str = "teacher";
const FILES: checkpoint::Files = checkpoint::Files {
    weights: WEIGHTS_FILE,
    config: CONFIG_FILE,
};

/// The teacher's outputs for a batch, named by task.
///
/// # Shapes
/// For a batch of `n` rows: `ctr_logit` and `cvr_logit` are `(n, 1)`; each gate `(n, n_experts)`.
#[derive(Debug, Clone)]
pub struct TeacherOutput {
    /// Logit of pCTR.
    pub ctr_logit: Var,
    /// Logit of pCVR = P(long read | click).
    pub cvr_logit: Var,
    /// Gate weights per task in [`Task::ALL`] order (MMoE); empty for a shared bottom.
    pub gates: Vec<Var>,
}

/// Per-impression probabilities, in row order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeacherScores {
    /// `P(click)`.
    pub p_ctr: Vec<f32>,
    /// `P(long read | click)`.
    pub p_cvr: Vec<f32>,
    /// `P(click and long read) = p_ctr * p_cvr`: the student's soft label.
    pub p_ctcvr: Vec<f32>,
}

impl TeacherScores {
    /// The scores from the two logits: `p_ctcvr[i] = p_ctr[i] * p_cvr[i]` exactly (in f32).
    ///
    /// # Panics
    /// When the slices differ in length.
    pub fn from_logits(ctr_logit: &[f32], cvr_logit: &[f32]) -> TeacherScores {
        assert_eq!(
            ctr_logit.len(),
            cvr_logit.len(),
            "one cvr logit per ctr logit"
        );
        let p_ctr: Vec<f32> = ctr_logit.iter().map(|&x| sigmoid(x)).collect();
        let p_cvr: Vec<f32> = cvr_logit.iter().map(|&x| sigmoid(x)).collect();
        let p_ctcvr = p_ctr.iter().zip(&p_cvr).map(|(a, b)| a * b).collect();
        TeacherScores {
            p_ctr,
            p_cvr,
            p_ctcvr,
        }
    }

    /// Number of impressions.
    pub fn len(&self) -> usize {
        self.p_ctr.len()
    }

    /// True when there is no impression.
    pub fn is_empty(&self) -> bool {
        self.p_ctr.is_empty()
    }

    fn extend(&mut self, other: TeacherScores) {
        self.p_ctr.extend(other.p_ctr);
        self.p_cvr.extend(other.p_cvr);
        self.p_ctcvr.extend(other.p_ctcvr);
    }
}

/// The multi-task teacher (a registered body: MMoE, shared bottom or PLE; with ESMM heads) and
/// its parameters.
///
/// ```
/// use dmtl_data::{Dataset, FieldData, Kind, Schema, Vocabularies, Vocabulary};
/// use dmtl_teacher::{BodyConfig, MmoeConfig, Teacher, TeacherConfig, TrainConfig};
///
/// let schema = Schema::from_toml_str(r#"
///     [labels]
///     click = "click"
///     duration = "duration"
///     [ids]
///     user = "user_id"
///     item = "item_id"
///     [[columns]]
///     name = "user_id"
///     side = "user"
///     kind = "categorical"
///     [[columns]]
///     name = "item_id"
///     side = "item"
///     kind = "categorical"
/// "#, "schema.toml").unwrap();
/// // Tables of 11 rows: ids 1..=10 and the out-of-vocabulary row 0.
/// let vocabs = Vocabularies::from_vec(vec![
///     Vocabulary::hashed("user_id", Kind::Categorical, 10),
///     Vocabulary::hashed("item_id", Kind::Categorical, 10),
/// ]);
/// // Users 1 to 7 click; a click on an even item is a long read.
/// let n = 400;
/// let users: Vec<u32> = (0..n).map(|r| 1 + r % 10).collect();
/// let items: Vec<u32> = (0..n).map(|r| 1 + (r / 10) % 10).collect();
/// let click: Vec<f32> = users.iter().map(|&u| if u <= 7 { 1.0 } else { 0.0 }).collect();
/// let long_read: Vec<f32> = (0..n as usize).map(|r| if items[r] % 2 == 0 { click[r] } else { 0.0 }).collect();
/// let data = Dataset {
///     fields: vec![FieldData::Ids(users), FieldData::Ids(items)],
///     duration: long_read.iter().map(|&z| 60.0 * z).collect(),
///     click, long_read,
///     user_group: vec![], user_ids: vec![], item_group: vec![], item_ids: vec![],
///     n_rows: n as usize,
/// };
///
/// let body = MmoeConfig { n_experts: 2, expert_hidden: vec![8], tower_hidden: vec![4] };
/// let cfg = TeacherConfig { body: BodyConfig::of_named("mmoe", &body), ..Default::default() };
/// let mut teacher = Teacher::new(cfg, &schema, &vocabs).unwrap();
/// let opts = TrainConfig { epochs: 30, batch_size: 64, lr: 1e-2, ..Default::default() };
/// let history = teacher.train(&data, Some(&data), &opts, |_| {}).unwrap();
/// let best = &history.epochs[history.best_epoch.unwrap()];
/// assert!(best.valid.as_ref().unwrap().long_read_auc.unwrap() > 0.9);
///
/// let scores = teacher.predict(&data).unwrap();
/// assert_eq!(scores.len(), data.n_rows);
/// assert_eq!(scores.p_ctcvr[0], scores.p_ctr[0] * scores.p_cvr[0]);
/// ```
#[derive(Debug, Clone)]
pub struct Teacher {
    config: TeacherConfig,
    store: ParamStore,
    embeddings: FieldEmbeddings,
    body: Arc<dyn Body>,
}

impl Teacher {
    /// Builds a teacher with fresh parameters (seeded by `config.seed`) over every feature
    /// column of `schema` (user, context and item sides), with one embedding table per
    /// vocabulary of `vocabs`.
    ///
    /// Fails when the configuration is invalid or a column lacks its vocabulary.
    pub fn new(config: TeacherConfig, schema: &Schema, vocabs: &Vocabularies) -> Result<Teacher> {
        config.validate("<config>")?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut store = ParamStore::new();
        let embeddings = FieldEmbeddings::new(
            &mut store,
            PREFIX,
            schema,
            vocabs,
            &[Side::User, Side::Context, Side::Item],
            &config.embedding,
            &mut rng,
        )?;
        let d = embeddings.out_dim();
        let body = config
            .body
            .get()
            .build(&mut store, PREFIX, d, &mut rng)
            .into();
        Ok(Teacher {
            config,
            store,
            embeddings,
            body,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &TeacherConfig {
        &self.config
    }

    /// Its parameters.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Mutable access to its parameters (custom training loops).
    pub fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// Its input layer.
    pub fn embeddings(&self) -> &FieldEmbeddings {
        &self.embeddings
    }

    /// The forward pass on a graph over [`Teacher::store`].
    ///
    /// # Shapes
    /// A batch of `n` rows -> logits `(n, 1)` per task, gates `(n, n_experts)` per task.
    ///
    /// # Panics
    /// When the batch does not fit the schema and vocabularies (see
    /// [`FieldEmbeddings::check_fields`]; [`Teacher::predict`] and [`Teacher::train`] check
    /// and return an error instead).
    pub fn forward(&self, g: &Graph<'_>, batch: &Batch) -> TeacherOutput {
        let h = self.embeddings.forward(g, batch);
        let out = self.body.forward(g, h);
        TeacherOutput {
            ctr_logit: out.logits[Task::Ctr.index()],
            cvr_logit: out.logits[Task::Cvr.index()],
            gates: out.gates,
        }
    }

    /// The probabilities of one batch (checked first).
    pub fn predict_batch(&self, batch: &Batch) -> Result<TeacherScores> {
        self.embeddings.check_fields(&batch.fields, batch.n_rows)?;
        Ok(self.score_batch(batch))
    }

    fn score_batch(&self, batch: &Batch) -> TeacherScores {
        // Outside Rayon's pool the batch runs in row shards, one per thread; inside (one batch
        // of many scored in parallel) in one piece.
        let shards = if rayon::current_thread_index().is_none() {
            dmtl_tensor::threads::shards_for(batch.n_rows)
        } else {
            1
        };
        let logits = forward_rows_in(&self.store, batch.n_rows, shards, |g, rows| {
            let b = &*batch.part(rows);
            let out = self.forward(g, b);
            g.concat_cols(&[out.ctr_logit, out.cvr_logit])
        });
        let ctr: Vec<f32> = logits.column(0).to_vec();
        let cvr: Vec<f32> = logits.column(1).to_vec();
        TeacherScores::from_logits(&ctr, &cvr)
    }

    /// Scores every row of `data`, in row order, batch by batch (`config.train.batch_size`
    /// rows each).
    ///
    /// Batches run in parallel on Rayon's pool with BLAS limited to one thread for the
    /// duration: at batch 1,024 this beats running the batches one after another with
    /// multi-threaded GEMMs, since the gathers and element-wise work are single-threaded per
    /// batch too. Fails when `data` does not fit the schema and vocabularies.
    pub fn predict(&self, data: &Dataset) -> Result<TeacherScores> {
        self.embeddings.check_dataset(data)?;
        let bs = self.config.train.batch_size;
        let n_batches = data.n_rows.div_ceil(bs);
        let batch_of = |b: usize| {
            let rows: Vec<u32> = (b * bs..((b + 1) * bs).min(data.n_rows))
                .map(|r| r as u32)
                .collect();
            data.batch(&rows)
        };
        // Too few batches to go round the threads: one after another, each in row shards.
        let parts: Vec<TeacherScores> = if n_batches < rayon::current_num_threads() {
            (0..n_batches)
                .map(|b| self.score_batch(&batch_of(b)))
                .collect()
        } else {
            dmtl_tensor::threads::with_blas_threads(1, || {
                (0..n_batches)
                    .into_par_iter()
                    .map(|b| self.score_batch(&batch_of(b)))
                    .collect()
            })
        };
        let mut scores = TeacherScores::default();
        for p in parts {
            scores.extend(p);
        }
        Ok(scores)
    }

    /// The gate weights of every task for a batch (gated bodies: MMoE, PLE's last layer), in
    /// [`Task::ALL`] order; `None` for a body without gates (a shared bottom).
    ///
    /// # Shapes
    /// A batch of `n` rows -> one `(n, n_experts)` matrix per task, rows summing to 1.
    pub fn gate_weights(&self, batch: &Batch) -> Result<Option<Vec<Array2<f32>>>> {
        self.embeddings.check_fields(&batch.fields, batch.n_rows)?;
        let g = Graph::new(&self.store);
        let out = self.forward(&g, batch);
        if out.gates.is_empty() {
            return Ok(None);
        }
        Ok(Some(out.gates.iter().map(|&v| g.value(v)).collect()))
    }

    /// Writes `teacher.safetensors` (every parameter by name) and `teacher.toml` (the
    /// configuration) into `dir`, creating it if needed; each file is written atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        Ok(checkpoint::save(dir, FILES, &self.store, &self.config)?)
    }

    /// Rebuilds the teacher saved in `dir` by [`Teacher::save`] for the same schema and
    /// vocabularies. Fails with an error naming the file when `teacher.toml` is missing or
    /// invalid, and naming the tensor when `teacher.safetensors` is missing, truncated or holds
    /// another model's parameters (or tables of other vocabulary sizes).
    pub fn load(dir: &Path, schema: &Schema, vocabs: &Vocabularies) -> Result<Teacher> {
        let build = |config| Teacher::new(config, schema, vocabs);
        checkpoint::load(dir, FILES, build, |t: &mut Teacher| &mut t.store)
    }
}

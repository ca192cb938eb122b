//! Checks of a run's data and sizes made after the data is read and before any model is built
//! or any file is written: the items file lists every item once, every label a stage learns
//! from has positives in the training set, and the models fit in the machine's memory.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use dmtl_data::{Dataset, Format, Kind, RawLog, Schema, Side, Vocabularies};

use crate::columns::categorical;
use crate::config::{ModelName, RunConfig, TeacherStage};

/// Fails when an item id appears twice in the items file `path` (`data.items`, read into
/// `items` with `skipped` malformed rows skipped): the corpus holds each item once, and the
/// second row would be dropped unseen. Names the id and both data rows, with their lines when
/// they are known (a CSV file read without skipping a row).
pub fn check_unique_items(
    items: &RawLog,
    schema: &Schema,
    path: &Path,
    skipped: usize,
) -> Result<()> {
    let ids = categorical(items, &schema.ids.item)?;
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for r in 0..ids.len() {
        let Some(&f) = first.get(&ids[r]) else {
            first.insert(&ids[r], r);
            continue;
        };
        let lines = match (Format::from_path(path), skipped) {
            (Some(Format::Csv), 0) => format!(" (lines {} and {})", f + 2, r + 2),
            _ => String::new(),
        };
        bail!(
            "`data.items`: {}: item id `{}` is on data rows {} and {}{lines}; the items file \
             lists every item once",
            path.display(),
            &ids[r],
            f + 1,
            r + 1
        );
    }
    Ok(())
}

/// The training rows and their positives per label, counted in memory or while streaming.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelCounts {
    /// Training rows.
    pub rows: usize,
    /// Rows with a click.
    pub clicks: usize,
    /// Rows with a long read.
    pub long_reads: usize,
}

impl LabelCounts {
    /// The counts of an encoded dataset.
    pub fn of(data: &Dataset) -> LabelCounts {
        let positives = |v: &[f32]| v.iter().filter(|&&x| x > 0.5).count();
        LabelCounts {
            rows: data.n_rows,
            clicks: positives(&data.click),
            long_reads: positives(&data.long_read),
        }
    }

    /// The share of clicks (0 without rows).
    pub fn click_rate(&self) -> f64 {
        self.clicks as f64 / self.rows.max(1) as f64
    }

    /// The share of long reads (0 without rows).
    pub fn long_read_rate(&self) -> f64 {
        self.long_reads as f64 / self.rows.max(1) as f64
    }
}

/// Fails when a label that a stage of `cfg` learns from has no positive among the training
/// rows counted in `train` (every click 0, or no long read, say under a `long_read_threshold`
/// above every duration): the stage would train on one class and report a meaningless table.
/// The error names the data `source`, the label, its count, the stage, and the threshold's key
/// (of `schema`, or the run configuration) for long reads.
pub fn check_labels(
    cfg: &RunConfig,
    train: &LabelCounts,
    schema: &Schema,
    source: &str,
) -> Result<()> {
    let (clicks, long_reads) = (train.clicks, train.long_reads);
    let mut needs: Vec<(&str, &str)> = Vec::new();
    if cfg.stages.teacher == TeacherStage::Train {
        needs.extend([("click", "the teacher"), ("long read", "the teacher")]);
    }
    for m in &cfg.stages.models {
        let label = match m {
            ModelName::B1 | ModelName::B3Mse | ModelName::B3Wlr => "click",
            _ => "long read",
        };
        needs.push((label, m.as_str()));
    }
    for (label, stage) in needs {
        let count = if label == "click" { clicks } else { long_reads };
        if count > 0 {
            continue;
        }
        let how = if label == "click" {
            "click = 1".to_string()
        } else {
            let key = match cfg.data.as_ref().and_then(|d| d.long_read_threshold) {
                Some(_) => "data.long_read_threshold in the run config",
                None => "long_read_threshold in the schema",
            };
            let t = schema.long_read_threshold;
            let t = if t.abs() >= 1e6 {
                format!("{t:e}")
            } else {
                t.to_string()
            };
            format!("click = 1 and duration > {t} s, {key}")
        };
        bail!(
            "{}: the training set has no {label} ({how}): 0 of {} rows; {stage} needs \
             positives of the label `{label}` to learn from",
            source,
            train.rows
        );
    }
    Ok(())
}

/// Bytes per parameter while training: the value, its gradient, Adam's two moments and the
/// best epoch's copy, f32 each.
const TRAIN_BYTES_PER_PARAM: f64 = 5.0 * 4.0;

/// A model's size before it is built: parameters, and what makes up most of them.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeEstimate {
    /// The model (`the teacher`, `the dmtl model`).
    pub model: String,
    /// Parameters.
    pub params: f64,
    /// The largest part, in words with the keys that set it.
    pub largest: String,
    /// Parameters of the largest part.
    pub largest_params: f64,
}

impl SizeEstimate {
    /// Bytes while training ([`TRAIN_BYTES_PER_PARAM`] per parameter).
    pub fn train_bytes(&self) -> f64 {
        self.params * TRAIN_BYTES_PER_PARAM
    }

    fn add(&mut self, params: f64, what: impl FnOnce() -> String) {
        self.params += params;
        if params > self.largest_params {
            self.largest_params = params;
            self.largest = what();
        }
    }
}

/// Parameters of an MLP of `layers` (weights and biases) on `input` features; the width of its
/// output.
fn mlp(input: usize, layers: &[usize]) -> (f64, usize) {
    let mut width = input;
    let mut params = 0.0;
    for &w in layers {
        params += (width as f64 + 1.0) * w as f64;
        width = w;
    }
    (params, width)
}

/// Adds the field embeddings of `sides` to `est`; returns their output width.
fn embeddings(
    est: &mut SizeEstimate,
    schema: &Schema,
    vocabs: &Vocabularies,
    sides: &[Side],
    dim_override: Option<(usize, &str)>,
) -> usize {
    let mut width = 0;
    for (i, c) in schema.columns.iter().enumerate() {
        if !sides.contains(&c.side) {
            continue;
        }
        if c.kind == Kind::Dense {
            width += 1;
            continue;
        }
        let rows = vocabs.table_size(&c.name).unwrap_or(1);
        let (dim, dim_key) = match dim_override {
            Some((d, key)) => (d, key.to_string()),
            None if c.embedding_dim.is_some() => (
                schema.embedding_dim(i),
                format!("columns[{i}].embedding_dim"),
            ),
            None => (schema.embedding_dim(i), "defaults.embedding_dim".into()),
        };
        width += dim;
        est.add(rows as f64 * dim as f64, || {
            let rows_key = match c.hashing() {
                Some(_) => format!(" (`columns[{i}].hash_buckets` of the schema)"),
                None => String::new(),
            };
            format!(
                "the embedding of column `{}`: {rows} rows{rows_key} x {dim} (`{dim_key}`)",
                c.name
            )
        });
    }
    width
}

/// The size of the teacher of `cfg` on `schema` and `vocabs`, from the configuration alone.
pub fn teacher_size(cfg: &RunConfig, schema: &Schema, vocabs: &Vocabularies) -> SizeEstimate {
    let t = &cfg.teacher;
    let mut est = SizeEstimate {
        model: "the teacher".into(),
        params: 0.0,
        largest: String::new(),
        largest_params: 0.0,
    };
    let sides = [Side::User, Side::Context, Side::Item];
    let dim = t.embedding.dim.map(|d| (d, "teacher.embedding.dim"));
    let input = embeddings(&mut est, schema, vocabs, &sides, dim);
    let body = dmtl_teacher::body::param_count(&t.body, input);
    est.add(body as f64, || {
        format!(
            "the body `{}` on {input} inputs (`teacher.structure` and its keys)",
            t.body.name()
        )
    });
    est
}

/// The size of the two-tower model `model` of `cfg` on `schema` and `vocabs`.
pub fn student_size(
    cfg: &RunConfig,
    model: ModelName,
    schema: &Schema,
    vocabs: &Vocabularies,
) -> SizeEstimate {
    let s = &cfg.student;
    let mut est = SizeEstimate {
        model: format!("the {model} model"),
        params: 0.0,
        largest: String::new(),
        largest_params: 0.0,
    };
    let dim = s.embedding.dim.map(|d| (d, "student.embedding.dim"));
    for (sides, layers, key) in [
        (
            &[Side::User, Side::Context][..],
            &s.user_layers,
            "student.user_layers",
        ),
        (&[Side::Item][..], &s.item_layers, "student.item_layers"),
    ] {
        let input = embeddings(&mut est, schema, vocabs, sides, dim);
        est.add(mlp(input, layers).0, || {
            format!("the tower {layers:?} on {input} inputs (`{key}`)")
        });
    }
    est
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`), when known.
pub fn machine_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// `bytes` in words (`1.5 GB`).
fn human(bytes: f64) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Fails when a model of `cfg` would need more memory to train than `limit` bytes (default: the
/// machine's, [`machine_memory`]), before anything is allocated: the error names the model,
/// the estimate, the largest part with the key that sets it, and the limit. Models are trained
/// one after another, so each is compared with the limit on its own.
pub fn check_memory(
    cfg: &RunConfig,
    schema: &Schema,
    vocabs: &Vocabularies,
    limit: Option<f64>,
) -> Result<()> {
    let Some(limit) = limit.or_else(machine_memory) else {
        return Ok(());
    };
    let mut models = Vec::new();
    if cfg.stages.teacher != TeacherStage::Skip {
        models.push(teacher_size(cfg, schema, vocabs));
    }
    for &m in &cfg.stages.models {
        models.push(student_size(cfg, m, schema, vocabs));
    }
    for est in models {
        if est.train_bytes() > limit {
            bail!(
                "{} would need about {} to train ({:.3e} parameters, with their gradients, \
                 Adam's moments and the best epoch's copy), more than the {} of memory this \
                 machine has; the largest part is {}: lower it",
                est.model,
                human(est.train_bytes()),
                est.params,
                human(limit),
                est.largest
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_in_words() {
        assert_eq!(human(512.0), "512 bytes");
        assert_eq!(human(1.5e9), "1.5 GB");
        assert_eq!(human(2.0e15), "2.0 PB");
    }

    #[test]
    fn an_mlp_counts_weights_and_biases() {
        assert_eq!(mlp(10, &[4, 1]), (11.0 * 4.0 + 5.0, 1));
        assert_eq!(mlp(10, &[]), (0.0, 10));
    }
}

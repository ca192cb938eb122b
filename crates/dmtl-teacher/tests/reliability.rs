//! Reliability of the teacher: same seed gives the same bytes, divergence is an error rather
//! than NaN weights, and bad checkpoints are errors naming the file and the tensor.

mod common;

use std::path::Path;

use common::synthetic;
use dmtl_data::FieldData;
use dmtl_teacher::{Teacher, TeacherConfig, TeacherError, TrainConfig, TrainError};
use dmtl_tensor::ParamStore;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn small(epochs: usize, lr: f32) -> TeacherConfig {
    TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 2,
            expert_hidden: vec![16, 8],
            tower_hidden: vec![8],
        }
        .into(),
        seed: 9,
        train: TrainConfig {
            lr,
            batch_size: 128,
            epochs,
            patience: 0,
            ..TrainConfig::default()
        },
        ..TeacherConfig::default()
    }
}

fn all_finite(store: &ParamStore) -> bool {
    store
        .iter()
        .all(|(_, p)| p.value.iter().all(|x| x.is_finite()))
}

#[test]
fn same_seed_same_metrics_and_byte_identical_checkpoint() {
    let (schema, vocabs, train, valid) = synthetic(3_000, 600);
    let cfg = small(2, 5e-3);
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        let h = t.train(&train, Some(&valid), &cfg.train, |_| {}).unwrap();
        let out = dir.path().join(name);
        t.save(&out).unwrap();
        let bytes = std::fs::read(out.join("teacher.safetensors")).unwrap();
        let toml = std::fs::read(out.join("teacher.toml")).unwrap();
        (h, bytes, toml)
    };
    let (h1, b1, c1) = run("a");
    let (h2, b2, c2) = run("b");
    assert_eq!(h1.epochs.len(), h2.epochs.len());
    for (a, b) in h1.epochs.iter().zip(&h2.epochs) {
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        assert_eq!(a.valid, b.valid, "epoch {}", a.epoch);
    }
    assert_eq!(h1.best_epoch, h2.best_epoch);
    assert!(b1 == b2, "teacher.safetensors differs between two runs");
    assert_eq!(c1, c2);
    // Another seed really changes the bytes, so the comparison above can fail.
    let mut other = cfg.clone();
    other.seed = 10;
    let mut t = Teacher::new(other, &schema, &vocabs).unwrap();
    t.train(&train, None, &cfg.train, |_| {}).unwrap();
    assert!(t.store().to_safetensors_bytes() != b1);
}

/// Trains `cfg` from scratch; returns the result and whether every weight is still finite.
fn train_with_lr(lr: f32) -> (Result<dmtl_teacher::TrainHistory, TeacherError>, Teacher) {
    let (schema, vocabs, train, _) = synthetic(2_000, 100);
    let cfg = small(2, lr);
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let r = t.train(&train, None, &cfg.train, |_| {});
    (r, t)
}

#[test]
fn an_overflowing_learning_rate_stops_with_an_error_naming_epoch_and_batch() {
    // A good checkpoint from an earlier run, in the directory the failed run would write to.
    let dir = tempfile::tempdir().unwrap();
    let (schema, vocabs, _, _) = synthetic(2_000, 100);
    Teacher::new(small(1, 1e-3), &schema, &vocabs)
        .unwrap()
        .save(dir.path())
        .unwrap();
    let before = std::fs::read(dir.path().join("teacher.safetensors")).unwrap();
    // Adam's first step moves every weight by about `lr`: 3e38 overflows the next forward pass.
    let (r, t) = train_with_lr(3e38);
    // The caller saves only on success, as the runner does.
    if r.is_ok() {
        t.save(dir.path()).unwrap();
    }
    assert_eq!(
        std::fs::read(dir.path().join("teacher.safetensors")).unwrap(),
        before
    );
    // Saving leaves exactly the two files: no temporary file behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["teacher.safetensors", "teacher.toml"]);
    let err = r.unwrap_err();
    // Adam's first update (about lr / (1 - beta1) = inf) is refused before it is applied.
    match &err {
        TeacherError::Train(TrainError::NonFiniteUpdate {
            epoch,
            batch,
            parameter,
        }) => {
            assert_eq!((*epoch, *batch), (0, 0), "{err}");
            assert!(parameter.starts_with("teacher."), "{err}");
        }
        other => panic!("expected a divergence error, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("epoch 0, batch 0") && msg.contains("`teacher."),
        "{msg}"
    );
}

#[test]
fn an_overflowing_learning_rate_leaves_no_nan_weights() {
    let (r, t) = train_with_lr(3e38);
    assert!(r.is_err());
    let nan = t
        .store()
        .iter()
        .filter(|(_, p)| p.value.iter().any(|x| x.is_nan()))
        .map(|(_, p)| p.name.clone())
        .collect::<Vec<_>>();
    assert!(nan.is_empty(), "NaN in {nan:?}");
}

#[test]
fn an_absurd_learning_rate_never_writes_nan_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (r, t) = train_with_lr(1e30);
    // The step whose gradient overflows is refused, so the model in memory stays finite.
    let err = r.unwrap_err().to_string();
    assert!(err.contains("is not finite"), "{err}");
    let bad = t
        .store()
        .iter()
        .filter(|(_, p)| p.value.iter().any(|x| !x.is_finite()))
        .map(|(_, p)| p.name.clone())
        .collect::<Vec<_>>();
    assert!(bad.is_empty(), "non-finite weights in {bad:?}");
    t.save(dir.path()).unwrap();
}

#[test]
fn an_absurd_learning_rate_is_an_error() {
    let (r, _) = train_with_lr(1e30);
    let err = r.unwrap_err().to_string();
    // The error names the step and the first parameter whose gradient overflowed.
    assert!(
        err.contains("epoch 0, batch") && err.contains("teacher."),
        "{err}"
    );
}

#[test]
fn nan_in_the_data_is_refused_naming_column_and_row() {
    let (schema, vocabs, mut train, _) = synthetic(1_000, 100);
    let cfg = small(1, 5e-3);
    let dense = train
        .fields
        .iter()
        .position(|f| matches!(f, FieldData::Dense(_)))
        .unwrap();
    if let FieldData::Dense(v) = &mut train.fields[dense] {
        v[42] = f32::NAN;
    }
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let err = t
        .train(&train, None, &cfg.train, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("freshness") && err.contains("row 42"), "{err}");
    assert!(all_finite(t.store()));
}

#[test]
fn nan_in_a_label_never_leaves_nan_weights() {
    let (schema, vocabs, mut train, _) = synthetic(1_000, 100);
    let cfg = small(1, 5e-3);
    train.click[7] = f32::NAN;
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let result = t.train(&train, None, &cfg.train, |_| {});
    let err = result
        .expect_err("a NaN label trained without error")
        .to_string();
    assert!(
        err.contains("training set") && err.contains("row 7") && err.contains("`click`"),
        "{err}"
    );
    assert!(all_finite(t.store()), "NaN weights after a NaN label");
}

#[test]
fn every_kind_of_bad_label_names_the_set_the_row_and_the_column() {
    let (schema, vocabs, train, valid) = synthetic(1_000, 200);
    let cfg = small(1, 5e-3);
    let cases: [(&str, fn(&mut dmtl_data::Dataset), &str); 4] = [
        ("click", |d| d.click[3] = 0.5, "row 3, column `click`"),
        (
            "duration",
            |d| d.duration[11] = -1.0,
            "row 11, column `duration`",
        ),
        (
            "duration",
            |d| d.duration[12] = f32::NAN,
            "row 12, column `duration`",
        ),
        (
            "long_read",
            |d| d.long_read[5] = 2.0,
            "row 5, column `long_read`",
        ),
    ];
    for (what, spoil, expected) in cases {
        for in_valid in [false, true] {
            let (mut tr, mut va) = (train.clone(), valid.clone());
            spoil(if in_valid { &mut va } else { &mut tr });
            let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
            let before = t.store().to_safetensors_bytes();
            let err = t
                .train(&tr, Some(&va), &cfg.train, |_| {})
                .unwrap_err()
                .to_string();
            let set = if in_valid {
                "validation set"
            } else {
                "training set"
            };
            assert!(err.contains(set) && err.contains(expected), "{what}: {err}");
            // Refused before the first step: nothing changed.
            assert!(t.store().to_safetensors_bytes() == before);
        }
    }
}

/// The training set with every dense value of batch 3 of each epoch set to 3e38: that
/// batch's loss overflows, the others are fine.
struct Poisoned<'a>(&'a dmtl_data::Dataset);

impl dmtl_data::BatchSource for Poisoned<'_> {
    fn n_rows(&self) -> usize {
        self.0.n_rows
    }

    fn epoch_batches(
        &self,
        batch_size: usize,
        shuffle: Option<(u64, u64)>,
        skip: usize,
    ) -> dmtl_data::error::Result<
        Box<dyn Iterator<Item = dmtl_data::error::Result<dmtl_data::Batch>> + '_>,
    > {
        let inner = self.0.epoch_batches(batch_size, shuffle, skip)?;
        Ok(Box::new(inner.enumerate().map(move |(k, b)| {
            let mut b = b?;
            if k + skip == 3 {
                for f in &mut b.fields {
                    if let FieldData::Dense(v) = f {
                        v.iter_mut().for_each(|x| *x = 3e38);
                    }
                }
            }
            Ok(b)
        })))
    }
}

#[test]
fn on_non_finite_skip_drops_the_bad_batch_counts_it_and_stops_only_when_all_are_bad() {
    let (schema, vocabs, clean, _) = synthetic(1_000, 100);
    let train = Poisoned(&clean);
    let mut cfg = small(2, 5e-3);
    // Stop (the default): an error naming the step.
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let err = t
        .train_from(&train, None, &cfg.train, None, |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("epoch 0, batch 3"), "{err}");
    assert!(all_finite(t.store()));
    // Skip: the batch holding row 42 is skipped in each epoch, the rest train.
    cfg.train.on_non_finite = dmtl_teacher::config::OnNonFinite::Skip;
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let mut batches = 0;
    let h = t
        .train_from(&train, None, &cfg.train, None, |e| {
            if let dmtl_teacher::TrainEvent::Batch { .. } = e {
                batches += 1;
            }
        })
        .unwrap();
    assert_eq!(
        batches,
        2 * 8,
        "every batch is reported, the skipped one too"
    );
    for e in &h.epochs {
        assert_eq!(e.skipped_batches, 1, "epoch {}", e.epoch);
        assert!(e.train_loss.is_finite());
    }
    assert!(all_finite(t.store()));
    // Every batch bad: an error even when skipping.
    cfg.train.lr = 3e38;
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let err = t.train(&clean, None, &cfg.train, |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            TeacherError::Train(TrainError::AllSkipped { epoch: 0, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not finite"), "{err}");
    assert!(all_finite(t.store()));
}

/// Every parameter's `(before - after) / lr`: the gradient an SGD step applied.
fn applied_gradient_norm(before: &ParamStore, after: &ParamStore, lr: f32) -> f64 {
    before
        .iter()
        .zip(after.iter())
        .map(|((_, a), (_, b))| {
            a.value
                .iter()
                .zip(b.value.iter())
                .map(|(x, y)| (((x - y) / lr) as f64).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt()
}

#[test]
fn clipping_bounds_the_applied_gradient_norm() {
    let (schema, vocabs, train, _) = synthetic(1_000, 100);
    let cfg = small(1, 1e-3);
    let batch = train.batches(256, Some((1, 0)), false).next().unwrap();
    let lr = 1e-2f32;
    let step = |clip: Option<f64>| {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        let before = t.store().clone();
        let mut sgd = dmtl_tensor::optim::Sgd::new(lr);
        t.train_step(&mut sgd, &batch, clip);
        applied_gradient_norm(&before, t.store(), lr)
    };
    let raw = step(None);
    let c = raw / 4.0;
    assert!(
        raw > c * 1.5,
        "the unclipped gradient norm {raw} must exceed the limit"
    );
    let clipped = step(Some(c));
    // f32 rounding of `w - lr g` perturbs the recovered norm slightly.
    assert!(
        clipped <= c * 1.01 && clipped >= c * 0.99,
        "clipped norm {clipped}, limit {c}"
    );
    // A limit above the norm leaves the step as it was.
    assert!((step(Some(raw * 2.0)) - raw).abs() <= raw * 1e-3);
}

#[test]
fn clipping_keeps_a_diverging_sgd_learning_rate_finite() {
    let (schema, vocabs, train, _) = synthetic(1_000, 100);
    let cfg = small(1, 1e-3);
    let run = |clip: Option<f64>| {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        let mut sgd = dmtl_tensor::optim::Sgd::new(LR_SGD);
        let mut last = 0.0f32;
        for epoch in 0..3 {
            for batch in train.batches(128, Some((1, epoch)), false) {
                let l = t.train_step(&mut sgd, &batch, clip);
                if l.non_finite_grad.is_some() || l.non_finite_update.is_some() {
                    return None;
                }
                last = l.total;
                if !last.is_finite() {
                    return None;
                }
            }
        }
        Some((last, all_finite(t.store())))
    };
    assert_eq!(run(None), None, "lr {LR_SGD} must diverge without clipping");
    let (loss, finite) = run(Some(1.0)).expect("diverged with clipping");
    assert!(loss.is_finite() && finite, "loss {loss}");
}

const LR_SGD: f32 = 1e4;

fn saved(dir: &Path, cfg: &TeacherConfig) -> (dmtl_data::Schema, dmtl_data::Vocabularies) {
    let (schema, vocabs, _, _) = synthetic(500, 10);
    Teacher::new(cfg.clone(), &schema, &vocabs)
        .unwrap()
        .save(dir)
        .unwrap();
    (schema, vocabs)
}

#[test]
fn truncated_checkpoints_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("t");
    let (schema, vocabs) = saved(&ckpt, &small(1, 1e-3));
    let weights = ckpt.join("teacher.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    // Every cut: inside the length prefix, the header, and the data.
    for cut in [0, 3, 8, 20, bytes.len() / 3, bytes.len() - 1] {
        std::fs::write(&weights, &bytes[..cut]).unwrap();
        let err = Teacher::load(&ckpt, &schema, &vocabs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("teacher.safetensors"), "cut {cut}: {err}");
    }
}

#[test]
fn a_checkpoint_with_other_widths_names_the_tensor_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let cfg = small(1, 1e-3);
    let (schema, vocabs) = saved(&a, &cfg);
    let mut wide = cfg.clone();
    wide.body = dmtl_teacher::MmoeConfig {
        n_experts: 2,
        expert_hidden: vec![24, 8],
        tower_hidden: vec![8],
    }
    .into();
    saved(&b, &wide);
    // The narrow config beside the wide weights: what a copied file would do.
    std::fs::copy(b.join("teacher.safetensors"), a.join("teacher.safetensors")).unwrap();
    let err = Teacher::load(&a, &schema, &vocabs).unwrap_err().to_string();
    assert!(
        err.contains("teacher.safetensors") && err.contains("shape") && err.contains("[24"),
        "{err}"
    );
    assert!(
        err.contains("expert"),
        "the error does not name the tensor: {err}"
    );
}

/// A small fixed store, as the fuzz target `safetensors_load` uses.
fn fixed_store() -> ParamStore {
    let mut s = ParamStore::new();
    s.add(
        "a.weight",
        Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32),
        dmtl_tensor::ParamKind::Dense,
    );
    s.add(
        "emb",
        Array2::from_elem((4, 2), 0.5),
        dmtl_tensor::ParamKind::Embedding,
    );
    s
}

#[test]
fn random_and_mutated_bytes_never_panic_the_loader_and_leave_the_store_intact() {
    let origin = Path::new("fuzz.safetensors");
    let good = fixed_store().to_safetensors_bytes();
    let reference = fixed_store();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut accepted = 0;
    for case in 0..20_000 {
        let bytes: Vec<u8> = match case % 4 {
            0 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
            1 => {
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                b
            }
            2 => good[..rng.gen_range(0..good.len())].to_vec(),
            _ => {
                // A plausible header with random numbers in it.
                let header = format!(
                    r#"{{"a.weight":{{"dtype":"F32","shape":[{},{}],"data_offsets":[{},{}]}}}}"#,
                    rng.gen_range(0..5u64),
                    rng.gen::<u32>() % 5,
                    rng.gen_range(0..40u64),
                    rng.gen_range(0..40u64)
                );
                let mut b = (header.len() as u64).to_le_bytes().to_vec();
                b.extend_from_slice(header.as_bytes());
                b.extend((0..rng.gen_range(0..40)).map(|_| rng.gen::<u8>()));
                b
            }
        };
        let mut store = fixed_store();
        match store.load_bytes(&bytes, origin) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(e.to_string().contains("fuzz.safetensors"), "{e}");
                // A failed load changes nothing.
                for ((_, p), (_, q)) in store.iter().zip(reference.iter()) {
                    assert_eq!(p.value, q.value, "case {case}");
                }
            }
        }
    }
    // Untouched good bytes load; a few mutations land in the data and are still valid.
    let mut store = fixed_store();
    store.load_bytes(&good, origin).unwrap();
    assert!(accepted < 20_000);
}

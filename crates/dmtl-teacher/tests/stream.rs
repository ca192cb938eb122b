//! Training from a log streamed chunk by chunk: the same parameters, bit for bit, as training
//! in memory on the same batches, with never more than the buffer's rows held at once.

mod common;

use std::collections::HashSet;

use common::{synthetic_log, SCHEMA};
use dmtl_data::{
    read_log, Batch, BatchSource, Dataset, ReadOptions, Schema, StreamSource, Vocabularies,
};
use dmtl_teacher::{Teacher, TeacherConfig, TrainConfig};

/// The in-memory dataset served in a recorded batch order (one list of batches per epoch).
struct Replay<'a> {
    data: &'a Dataset,
    epochs: Vec<Vec<Vec<u32>>>,
}

impl BatchSource for Replay<'_> {
    fn n_rows(&self) -> usize {
        self.data.n_rows
    }

    fn epoch_batches(
        &self,
        _batch_size: usize,
        shuffle: Option<(u64, u64)>,
        skip: usize,
    ) -> dmtl_data::error::Result<Box<dyn Iterator<Item = dmtl_data::error::Result<Batch>> + '_>>
    {
        let epoch = shuffle.expect("trainers shuffle").1 as usize;
        Ok(Box::new(
            self.epochs[epoch][skip..]
                .iter()
                .map(|rows| Ok(self.data.batch(rows))),
        ))
    }

    fn in_memory(&self) -> Option<&Dataset> {
        Some(self.data)
    }
}

#[test]
fn a_streamed_log_trains_bit_for_bit_like_memory_within_the_buffer_bound() {
    dmtl_tensor::threads::init(Some(2));
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::from_toml_str(SCHEMA, "synthetic schema").unwrap();
    let raw = synthetic_log(5_000, 21);
    let path = dir.path().join("log.csv");
    dmtl_data::write_csv(&raw, &schema, &path).unwrap();
    let vocabs = Vocabularies::build(&schema, &raw).unwrap();
    let opts = ReadOptions::default().with_chunk_rows(128);
    let buffer = 640;
    let stream = StreamSource::open(&path, &schema, &vocabs, &opts, buffer).unwrap();
    assert_eq!(stream.n_rows(), 5_000);

    let cfg = TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 2,
            expert_hidden: vec![16, 8],
            tower_hidden: vec![8],
        }
        .into(),
        seed: 9,
        train: TrainConfig {
            lr: 5e-3,
            batch_size: 100,
            epochs: 2,
            patience: 0,
            ..TrainConfig::default()
        },
        ..TeacherConfig::default()
    };
    // The stream's batch order: every row exactly once per epoch, shuffled, epoch by epoch
    // different, batches of 100 but the last.
    let mut epochs = Vec::new();
    for e in 0..2u64 {
        let batches: Vec<Vec<u32>> = stream
            .epoch_batches(100, Some((cfg.train.seed, e)), 0)
            .unwrap()
            .map(|b| b.unwrap().rows)
            .collect();
        let all: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(all.len(), 5_000);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 5_000);
        assert!(
            all.windows(2).filter(|w| w[1] != w[0] + 1).count() > 4_000,
            "not shuffled"
        );
        assert!(batches[..batches.len() - 1].iter().all(|b| b.len() == 100));
        epochs.push(batches);
    }
    assert_ne!(epochs[0], epochs[1]);
    // Skipping batches (a resumed run) gives the rest of the same order.
    let rest: Vec<Vec<u32>> = stream
        .epoch_batches(100, Some((cfg.train.seed, 1)), 7)
        .unwrap()
        .map(|b| b.unwrap().rows)
        .collect();
    assert_eq!(rest, epochs[1][7..]);

    let mut streamed = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let h1 = streamed
        .train_from(&stream, None, &cfg.train, None, |_| {})
        .unwrap();
    let whole =
        Dataset::encode(&schema, &read_log(&path, &schema, &opts).unwrap(), &vocabs).unwrap();
    let replay = Replay {
        data: &whole,
        epochs,
    };
    let mut in_memory = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let h2 = in_memory
        .train_from(&replay, None, &cfg.train, None, |_| {})
        .unwrap();
    assert!(
        streamed.store().to_safetensors_bytes() == in_memory.store().to_safetensors_bytes(),
        "streamed and in-memory training differ"
    );
    for (a, b) in h1.epochs.iter().zip(&h2.epochs) {
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
    }
    // The comparison can fail: the in-memory order of Dataset::batches gives other weights.
    let mut shuffled = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    shuffled.train(&whole, None, &cfg.train, |_| {}).unwrap();
    assert!(shuffled.store().to_safetensors_bytes() != in_memory.store().to_safetensors_bytes());
    // Never more than the buffer held at once, and the buffer was really used.
    let held = stream.max_rows_held();
    assert!(held <= buffer && held > 128, "held {held} rows");
}

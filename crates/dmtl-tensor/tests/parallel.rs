//! Data-parallel gradients: splitting a batch into row shards gives the gradient of the whole
//! batch's mean loss (up to float summation order), for dense and sparse (embedding) parameters.

use std::ops::Range;

use dmtl_tensor::parallel::{
    data_parallel_by, data_parallel_in, data_parallel_weighted, shard_ranges, shares_of, Sharding,
};
use dmtl_tensor::{Activation, Grad, Grads, Graph, ParamId, ParamKind, ParamStore, Var};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Model {
    store: ParamStore,
    table: ParamId,
    w1: ParamId,
    b1: ParamId,
    w2: ParamId,
}

fn model() -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut store = ParamStore::new();
    let mut rand =
        |r: usize, c: usize| Array2::from_shape_simple_fn((r, c), || rng.gen_range(-0.5f32..0.5));
    let table = store.add("emb", rand(50, 8), ParamKind::Embedding);
    let w1 = store.add("w1", rand(16, 8), ParamKind::Dense);
    let b1 = store.add("b1", rand(1, 16), ParamKind::Dense);
    let w2 = store.add("w2", rand(1, 16), ParamKind::Dense);
    Model {
        store,
        table,
        w1,
        b1,
        w2,
    }
}

/// Mean over `rows` of `(relu(e[id] w1^T + b1) w2^T - y)^2`, and that mean as a reported value.
fn shard_loss<'a>(
    m: &'a Model,
    ids: &'a [u32],
    y: &'a [f32],
) -> impl Fn(&Graph<'_>, Range<usize>) -> (Var, Vec<f32>) + Sync + 'a {
    move |g, rows| {
        let e = g.embedding(m.table, &ids[rows.clone()]);
        let (w1, b1, w2) = (g.param(m.w1), g.param(m.b1), g.param(m.w2));
        let h = g.linear(e, w1, Some(b1), Activation::Relu);
        let out = g.linear(h, w2, None, Activation::Identity);
        let target = Array2::from_shape_vec((rows.len(), 1), y[rows].to_vec()).unwrap();
        let diff = g.sub(out, g.input(target));
        let loss = g.mean_all(g.square(diff));
        (loss, vec![g.scalar(loss)])
    }
}

fn dense(grads: &Grads, id: ParamId, rows: usize) -> Array2<f32> {
    match grads.get(id).expect("a gradient") {
        Grad::Dense(d) => d.clone(),
        Grad::Sparse(s) => s.to_dense(rows),
    }
}

#[test]
fn shard_ranges_cover_every_row_once_in_order() {
    for (n, k) in [(10, 3), (1024, 2), (5, 8), (0, 2), (7, 1)] {
        let r = shard_ranges(n, k);
        assert!(!r.is_empty());
        assert_eq!(r[0].start, 0);
        assert_eq!(r.last().unwrap().end, n);
        for w in r.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        let (lo, hi) = (
            r.iter().map(|x| x.len()).min().unwrap(),
            r.iter().map(|x| x.len()).max().unwrap(),
        );
        assert!(hi - lo <= 1, "{n} rows in {k}: sizes {lo}..{hi}");
    }
}

#[test]
fn sharded_gradient_equals_the_whole_batch_gradient() {
    let m = model();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 101; // uneven shards
                 // Repeated ids so shards share embedding rows and sparse gradients must be summed.
    let ids: Vec<u32> = (0..n).map(|_| rng.gen_range(0..20)).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let whole = data_parallel_in(&m.store, n, 1, shard_loss(&m, &ids, &y));
    // The one-shard path is exactly the plain tape.
    let g = Graph::new(&m.store);
    let (loss, _) = shard_loss(&m, &ids, &y)(&g, 0..n);
    let plain = g.backward(loss);
    assert_eq!(whole.values[0], g.scalar(loss));
    for id in [m.table, m.w1, m.b1, m.w2] {
        assert_eq!(dense(&whole.grads, id, 50), dense(&plain, id, 50));
    }
    for k in [2, 3, 7] {
        let sharded = data_parallel_in(&m.store, n, k, shard_loss(&m, &ids, &y));
        assert!((sharded.values[0] - whole.values[0]).abs() <= 1e-5 * whole.values[0].abs());
        for id in [m.table, m.w1, m.b1, m.w2] {
            let (a, b) = (dense(&sharded.grads, id, 50), dense(&whole.grads, id, 50));
            let scale = b.iter().fold(0.0f32, |s, x| s.max(x.abs())).max(1e-6);
            let err = (&a - &b).iter().fold(0.0f32, |s, x| s.max(x.abs()));
            assert!(
                err <= 1e-5 * scale,
                "{k} shards, {}: max error {err} of {scale}",
                m.store.get(id).name
            );
        }
        // Only the rows the batch used carry a gradient, as without sharding.
        let Some(Grad::Sparse(s)) = sharded.grads.get(m.table) else {
            panic!("the embedding gradient stays sparse")
        };
        let mut used: Vec<u32> = ids.clone();
        used.sort_unstable();
        used.dedup();
        assert_eq!(s.rows, used);
    }
}

#[test]
fn a_non_finite_shard_loss_yields_no_gradient() {
    let m = model();
    let n = 64;
    let ids: Vec<u32> = (0..n as u32).map(|i| i % 50).collect();
    let mut y = vec![0.5f32; n];
    y[40] = f32::NAN; // in the second of two shards
    let out = data_parallel_in(&m.store, n, 2, shard_loss(&m, &ids, &y));
    assert!(out.values[0].is_nan());
    assert_eq!(out.grads.iter().count(), 0);
}

#[test]
fn sharded_inference_stacks_the_rows_in_order() {
    let m = model();
    let n = 300;
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 50).collect();
    let forward = |g: &Graph<'_>, rows: Range<usize>| {
        let e = g.embedding(m.table, &ids[rows]);
        let h = g.linear(e, g.param(m.w1), Some(g.param(m.b1)), Activation::Relu);
        g.linear(h, g.param(m.w2), None, Activation::Identity)
    };
    let whole = dmtl_tensor::parallel::forward_rows_in(&m.store, n, 1, forward);
    assert_eq!(whole.dim(), (n, 1));
    for k in [2, 3, 8] {
        let sharded = dmtl_tensor::parallel::forward_rows_in(&m.store, n, k, forward);
        assert_eq!(sharded.dim(), whole.dim());
        for (a, b) in sharded.iter().zip(whole.iter()) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{k} shards: {a} vs {b}"
            );
        }
    }
}

#[test]
fn blocks_computed_apart_with_their_shares_sum_to_the_sharded_gradient_bit_for_bit() {
    // What the ranks of a data-parallel job do: each computes one block of the batch on its
    // own, seeded with the block's share of the batch's (here weighted) mean, and the blocks'
    // gradients are summed. The result is one process's sharded gradient, to the bit.
    let m = model();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 203; // blocks of 102 and 101 rows
    let ids: Vec<u32> = (0..n).map(|_| rng.gen_range(0..20)).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let w: Vec<f64> = (0..n).map(|_| rng.gen_range(0.1..3.0)).collect();
    let weight = |r: Range<usize>| w[r].iter().sum::<f64>();
    let f = shard_loss(&m, &ids, &y);
    let sharded = data_parallel_weighted(&m.store, n, 2, weight, &f);

    let blocks = shard_ranges(n, 2);
    let rows: Vec<usize> = blocks.iter().map(|r| r.len()).collect();
    let weights: Vec<f64> = blocks.iter().map(|r| weight(r.clone())).collect();
    let shares = shares_of(&weights, &rows);
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert_ne!(shares[0], 0.5, "the shares must not be a power of two");
    let mut summed: Option<Grads> = None;
    for (block, &share) in blocks.iter().zip(&shares) {
        let start = block.start;
        let part = data_parallel_by(
            &m.store,
            block.len(),
            Sharding::new(1).scaled(share),
            weight,
            |g, r| f(g, start + r.start..start + r.end),
        );
        match summed.as_mut() {
            None => summed = Some(part.grads),
            Some(s) => s.merge(part.grads),
        }
    }
    let summed = summed.unwrap();
    for id in [m.table, m.w1, m.b1, m.w2] {
        assert_eq!(
            dense(&summed, id, 50),
            dense(&sharded.grads, id, 50),
            "{}",
            m.store.get(id).name
        );
    }
    // Scaling the unscaled block gradients afterwards is the same only up to rounding: the
    // scale must seed the backward pass.
    let unscaled = data_parallel_by(&m.store, blocks[0].len(), Sharding::new(1), weight, &f);
    let scaled = data_parallel_by(
        &m.store,
        blocks[0].len(),
        Sharding::new(1).scaled(shares[0]),
        weight,
        &f,
    );
    let a = dense(&unscaled.grads, m.w1, 50) * shares[0] as f32;
    let b = dense(&scaled.grads, m.w1, 50);
    let scale = b.iter().fold(0.0f32, |s, x| s.max(x.abs()));
    let err = (&a - &b).iter().fold(0.0f32, |s, x| s.max(x.abs()));
    assert!(err <= 1e-6 * scale, "{err} of {scale}");
}

#[test]
fn shares_of_weighs_by_weight_and_falls_back_to_rows() {
    assert_eq!(shares_of(&[3.0, 1.0], &[10, 10]), vec![0.75, 0.25]);
    assert_eq!(shares_of(&[7.0], &[4]), vec![1.0]);
    assert_eq!(shares_of(&[0.0], &[4]), vec![1.0]);
    // No weight anywhere, or a weight that is not finite: by rows.
    assert_eq!(shares_of(&[0.0, 0.0], &[30, 10]), vec![0.75, 0.25]);
    assert_eq!(shares_of(&[f64::NAN, 1.0], &[1, 3]), vec![0.25, 0.75]);
    assert_eq!(shares_of(&[0.0, 0.0], &[0, 0]), vec![0.0, 0.0]);
}

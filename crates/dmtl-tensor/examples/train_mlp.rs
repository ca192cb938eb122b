//! Trains a small MLP with embeddings on a learnable synthetic problem and prints the loss falling.
//!
//! The target of each row is `sigmoid(<u_a, v_b> + x)` for hidden vectors of two categorical
//! ids `a`, `b` and a dense feature `x`; the model sees only the ids and `x`.
//!
//! Run: `cargo run --release -p dmtl-tensor --example train_mlp`

use dmtl_tensor::nn::{Mlp, MlpConfig};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::{Activation, Graph, Init, ParamStore};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    dmtl_tensor::threads::init(None);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n_a, n_b, n) = (50usize, 80usize, 20_000usize);
    let hidden_a = Array2::from_shape_simple_fn((n_a, 4), || rng.gen_range(-1.0f32..1.0));
    let hidden_b = Array2::from_shape_simple_fn((n_b, 4), || rng.gen_range(-1.0f32..1.0));
    let a: Vec<u32> = (0..n).map(|_| rng.gen_range(0..n_a as u32)).collect();
    let b: Vec<u32> = (0..n).map(|_| rng.gen_range(0..n_b as u32)).collect();
    let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let y: Vec<f32> = (0..n)
        .map(|i| {
            let s = hidden_a
                .row(a[i] as usize)
                .dot(&hidden_b.row(b[i] as usize))
                * 2.0
                + x[i];
            1.0 / (1.0 + (-s).exp())
        })
        .collect();

    let mut store = ParamStore::new();
    let emb_a = store.embedding("emb.a", n_a, 8, Init::Normal(0.1), &mut rng);
    let emb_b = store.embedding("emb.b", n_b, 8, Init::Normal(0.1), &mut rng);
    let cfg = MlpConfig {
        hidden: vec![32, 16, 1],
        activation: Activation::Relu,
        last_activation: Activation::Sigmoid,
    };
    let mlp = Mlp::new(&mut store, "mlp", 17, &cfg, &mut rng);
    let mut opt = Adam::new(3e-3);
    let batch = 256;
    for epoch in 0..8 {
        let mut total = 0.0;
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let grads = {
                let g = Graph::new(&store);
                let ea = g.embedding(emb_a, &a[start..end]);
                let eb = g.embedding(emb_b, &b[start..end]);
                let xv = g.input(
                    Array2::from_shape_vec((end - start, 1), x[start..end].to_vec()).unwrap(),
                );
                let p = mlp.forward(&g, g.concat_cols(&[ea, eb, xv]));
                let t = g.input(
                    Array2::from_shape_vec((end - start, 1), y[start..end].to_vec()).unwrap(),
                );
                let loss = g.mean_all(g.square(g.sub(p, t)));
                total += g.scalar(loss) as f64 * (end - start) as f64;
                g.backward(loss)
            };
            opt.step(&mut store, &grads);
        }
        println!("epoch {epoch}: mean squared error {:.5}", total / n as f64);
    }
}

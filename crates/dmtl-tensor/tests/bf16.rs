//! The bf16 MLP against brute force in f64 on the same bf16-rounded inputs, against the f32
//! MLP within the bound of bf16 rounding, and its f32 fallback against the graph, bit for bit.
//! Each test runs the f32 fallback everywhere and the bf16 kernel where the CPU has it.

use dmtl_tensor::bf16::{self, round_bf16, to_bf16_precision, Backend, Bf16Mlp};
use dmtl_tensor::nn::{Mlp, MlpConfig};
use dmtl_tensor::{Activation, Graph, ParamStore};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const UB: f64 = 1.0 / 256.0; // bf16 unit roundoff, 2^-8
const U: f64 = 1.0 / 16_777_216.0; // f32 unit roundoff, 2^-24

fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

/// The backends this CPU runs: the f32 fallback everywhere, bf16 where the CPU has it.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::F32];
    if bf16::available() {
        v.push(Backend::Bf16);
    }
    v
}

/// The f32 fallback is the graph's arithmetic (same GEMM, bias and activation): bit for bit.
fn assert_fallback_exact(packed: &Bf16Mlp, store: &ParamStore, mlp: &Mlp, x: &Array2<f32>) {
    assert_eq!(packed.backend(), Backend::F32);
    let got = packed.forward(x.view());
    let want = f32_forward(store, mlp, x);
    assert_eq!(got.dim(), want.dim());
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "entry {i}: {a} vs {b}");
    }
}

const ACTS: [Activation; 4] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
];

/// An MLP with random weights and biases (biases are zero after `Mlp::new`).
fn model(
    in_dim: usize,
    hidden: &[usize],
    act: Activation,
    last: Activation,
    seed: u64,
) -> (ParamStore, Mlp) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store = ParamStore::new();
    let cfg = MlpConfig {
        hidden: hidden.to_vec(),
        activation: act,
        last_activation: last,
    };
    let mlp = Mlp::new(&mut store, "m", in_dim, &cfg, &mut rng);
    for l in &mlp.layers {
        store
            .value_mut(l.bias)
            .mapv_inplace(|_| rng.gen_range(-0.5f32..0.5));
    }
    (store, mlp)
}

fn input(m: usize, k: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((m, k), || rng.gen_range(-2.0f32..2.0))
}

fn act64(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
    }
}

fn f32_forward(store: &ParamStore, mlp: &Mlp, x: &Array2<f32>) -> Array2<f32> {
    let g = Graph::new(store);
    let y = mlp.forward(&g, g.input(x.clone()));
    g.take_value(y)
}

/// One layer: every output of the bf16 kernel within f32 accumulation error of the f64 sum of
/// the same bf16 products (plus the f32 bias), through the activation; the f32 fallback's
/// equal to the graph's.
#[test]
fn one_layer_matches_f64_brute_force_on_rounded_inputs() {
    let mut worst = 0f64;
    for &(m, k, n) in &[
        (1, 1, 1),
        (13, 7, 17),
        (25, 112, 33),
        (12, 31, 64),
        (100, 256, 128),
        (500, 2, 50),
        (3, 300, 5),
    ] {
        for ((ai, &act), backend) in ACTS
            .iter()
            .enumerate()
            .flat_map(|a| backends().into_iter().map(move |b| (a, b)))
        {
            let (store, mlp) = model(k, &[n], act, act, (m * 1000 + k * 10 + ai) as u64);
            let x = input(m, k, m as u64 + 7);
            let packed = Bf16Mlp::with_backend(&mlp, &store, backend).unwrap();
            if backend == Backend::F32 {
                assert_fallback_exact(&packed, &store, &mlp, &x);
                continue;
            }
            assert_eq!(packed.backend(), Backend::Bf16);
            let y = packed.forward(x.view());
            assert_eq!(y.dim(), (m, n));
            let l = &mlp.layers[0];
            let w = store.value(l.weight);
            let b = store.value(l.bias);
            // Lipschitz constant of the activation.
            let lip = if act == Activation::Sigmoid {
                0.25
            } else {
                1.0
            };
            for i in 0..m {
                for j in 0..n {
                    let (mut s, mut abs) = (0f64, 0f64);
                    for p in 0..k {
                        let t = to_bf16_precision(x[[i, p]]) as f64
                            * to_bf16_precision(w[[j, p]]) as f64;
                        s += t;
                        abs += t.abs();
                    }
                    let pre = s + b[[0, j]] as f64;
                    let want = act64(act, pre);
                    let bound = lip * gamma(k + 1) * (abs + b[[0, j]].abs() as f64)
                        + 4.0 * U * want.abs()
                        + 1e-30;
                    let got = y[[i, j]] as f64;
                    assert!(
                        (got - want).abs() <= bound,
                        "{act:?} m={m} k={k} n={n} ({i},{j}): {got} vs {want}, bound {bound}"
                    );
                    worst = worst.max((got - want).abs() / bound);
                }
            }
        }
    }
    println!("one layer vs f64 on rounded inputs: worst error {worst:.3} of the bound");
}

/// The whole MLP against the f32 one: per layer the error of the bf16 kernel grows by the f32
/// one through the weights and by bf16 rounding of inputs and weights,
/// `(2 u_b + u_b^2 + 2 gamma) sum |x||w|`, propagated per output; the f32 fallback's output
/// is the f32 one.
#[test]
fn mlp_stays_within_the_bf16_rounding_bound_of_f32() {
    let mut worst = 0f64;
    for &(m, k, ref hidden) in &[
        (1usize, 112usize, vec![256usize, 128, 64]),
        (0, 112, vec![256, 128, 64]),
        (37, 9, vec![33, 1]),
        (40, 31, vec![17]),
        (1000, 112, vec![256, 128, 64]),
        (25, 5, vec![7, 65, 3]),
    ] {
        for &(act, last) in &[
            (Activation::Relu, Activation::Identity),
            (Activation::Tanh, Activation::Sigmoid),
            (Activation::Sigmoid, Activation::Relu),
            (Activation::Identity, Activation::Tanh),
        ] {
            let (store, mlp) = model(k, hidden, act, last, (m + k) as u64);
            let x = input(m, k, 3);
            assert_fallback_exact(
                &Bf16Mlp::with_backend(&mlp, &store, Backend::F32).unwrap(),
                &store,
                &mlp,
                &x,
            );
            if !bf16::available() {
                continue;
            }
            let got = Bf16Mlp::with_backend(&mlp, &store, Backend::Bf16)
                .unwrap()
                .forward(x.view());
            let want = f32_forward(&store, &mlp, &x);
            assert_eq!(got.dim(), want.dim());
            let rel = 1.001 * (2.0 * UB + UB * UB);
            for i in 0..m {
                // Propagate (value, error bound) through the f32 model's layers.
                let mut h: Vec<f64> = x.row(i).iter().map(|&v| v as f64).collect();
                let mut e = vec![0f64; k];
                for (li, l) in mlp.layers.iter().enumerate() {
                    let w = store.value(l.weight);
                    let b = store.value(l.bias);
                    let a = mlp.activation_of(li);
                    let lip = if a == Activation::Sigmoid { 0.25 } else { 1.0 };
                    let g = 2.0 * gamma(l.in_dim + 2);
                    let mut h2 = vec![0f64; l.out_dim];
                    let mut e2 = vec![0f64; l.out_dim];
                    for j in 0..l.out_dim {
                        let (mut s, mut sa, mut se) =
                            (b[[0, j]] as f64, b[[0, j]].abs() as f64, 0f64);
                        for p in 0..l.in_dim {
                            let wv = w[[j, p]] as f64;
                            s += h[p] * wv;
                            sa += (h[p].abs() + e[p]) * wv.abs();
                            se += e[p] * wv.abs();
                        }
                        h2[j] = act64(a, s);
                        // The rounding of hidden activations to bf16 is the next layer's
                        // input rounding, counted in its `rel`.
                        let bound = lip * ((1.0 + rel) * se + (rel + g) * sa);
                        e2[j] = bound + 8.0 * U * h2[j].abs();
                    }
                    h = h2;
                    e = e2;
                }
                for j in 0..e.len() {
                    let d = (got[[i, j]] - want[[i, j]]).abs() as f64;
                    let bound = e[j] + 1e-6 * (1.0 + h[j].abs());
                    assert!(
                        d <= bound,
                        "{act:?}/{last:?} m={m} {hidden:?} ({i},{j}): {} vs {}, bound {bound}",
                        got[[i, j]],
                        want[[i, j]]
                    );
                    worst = worst.max(d / bound);
                }
            }
        }
    }
    println!("bf16 MLP vs f32: worst error {worst:.3} of the propagated bound");
}

/// The f32 fallback gives the graph's result bit for bit (same GEMM, bias and activation);
/// [`Bf16Mlp::new`] picks it exactly where the CPU lacks AVX-512 BF16.
#[test]
fn f32_fallback_matches_the_graph() {
    for &(m, k, ref hidden) in &[
        (1usize, 112usize, vec![256usize, 128, 64]),
        (0, 4, vec![3]),
        (77, 9, vec![33, 2]),
    ] {
        for &act in &ACTS {
            let (store, mlp) = model(k, hidden, act, act, 5);
            let x = input(m, k, 4);
            let packed = Bf16Mlp::with_backend(&mlp, &store, Backend::F32).unwrap();
            assert_fallback_exact(&packed, &store, &mlp, &x);
        }
    }
    // Choosing bf16 where the CPU cannot run it is an error, not a panic later.
    let (store, mlp) = model(3, &[2], Activation::Relu, Activation::Relu, 1);
    let forced = Bf16Mlp::with_backend(&mlp, &store, Backend::Bf16);
    assert_eq!(forced.is_ok(), bf16::available());
    let auto = Bf16Mlp::new(&mlp, &store).unwrap();
    let expected = if bf16::available() {
        Backend::Bf16
    } else {
        Backend::F32
    };
    assert_eq!(auto.backend(), expected);
    let x = input(30, 3, 2);
    match expected {
        Backend::F32 => assert_fallback_exact(&auto, &store, &mlp, &x),
        // The kernel's output, bit for bit: `new` builds the same model as `with_backend`.
        Backend::Bf16 => {
            let got = auto.forward(x.view());
            let want = forced.unwrap().forward(x.view());
            assert_eq!(got.mapv(f32::to_bits), want.mapv(f32::to_bits));
        }
    }
    // The choice on a CPU without AVX-512 BF16, whatever this one has, is tested beside the
    // constructors (`bf16::tests`).
}

/// A model without layers passes its input through; a wrong shape in the store is an error.
#[test]
fn degenerate_models_and_bad_shapes() {
    let (store, mlp) = model(3, &[], Activation::Relu, Activation::Relu, 1);
    let packed = Bf16Mlp::new(&mlp, &store).unwrap();
    let x = input(4, 3, 1);
    assert_eq!(packed.forward(x.view()), x);
    assert_eq!(packed.in_dim(), None);

    let (mut store, mlp) = model(3, &[2, 2], Activation::Relu, Activation::Relu, 1);
    *store.value_mut(mlp.layers[1].weight) = Array2::zeros((2, 5));
    let err = Bf16Mlp::with_backend(&mlp, &store, Backend::F32).unwrap_err();
    assert!(err.to_string().contains("m.layer.1.weight"), "{err}");
}

#[test]
fn rounding_is_to_nearest_even() {
    assert_eq!(round_bf16(1.0), 0x3f80);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
    assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
    assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
    assert_eq!(round_bf16(-1.0 - 2f32.powi(-8) - 2f32.powi(-20)), 0xbf81);
    assert_eq!(round_bf16(f32::INFINITY), 0x7f80);
    assert_eq!(round_bf16(f32::MAX), 0x7f80); // rounds past the largest bf16
    assert!(to_bf16_precision(f32::NAN).is_nan());
    assert!(to_bf16_precision(-f32::NAN).is_nan());
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..10_000 {
        let x: f32 = rng.gen_range(-1e6f32..1e6);
        let r = to_bf16_precision(x);
        assert!(((r - x) / x).abs() as f64 <= UB, "{x} -> {r}");
        // Nearest: neither neighbour of r is closer.
        let up = f32::from_bits(r.to_bits() + 0x10000);
        let down = f32::from_bits(r.to_bits() - 0x10000);
        assert!((r - x).abs() <= (up - x).abs() && (r - x).abs() <= (down - x).abs());
    }
}

//! Every op's gradient against central finite differences.
//!
//! Each check builds `loss = sum(out * R)` for a fixed random `R`, so every output entry
//! contributes with its own weight, then compares the analytic gradient of every parameter with
//! `(loss(p + h) - loss(p - h)) / 2h`, entry by entry.

use dmtl_tensor::{Activation, Graph, ParamId, ParamKind, ParamStore, Pooling, Unary, Var};
use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_mat(rng: &mut ChaCha8Rng, r: usize, c: usize, lo: f32, hi: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn((r, c), || rng.gen_range(lo..hi))
}

/// Values kept away from 0 so ReLU's kink is not crossed by the finite difference.
fn away_from_zero(rng: &mut ChaCha8Rng, r: usize, c: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((r, c), || {
        let m: f32 = rng.gen_range(0.2..1.5);
        if rng.gen_bool(0.5) {
            m
        } else {
            -m
        }
    })
}

fn loss_of(
    store: &ParamStore,
    ids: &[ParamId],
    weights: &Array2<f32>,
    f: &dyn Fn(&Graph, &[Var]) -> Var,
) -> (f64, dmtl_tensor::Grads) {
    let g = Graph::new(store);
    let vars: Vec<Var> = ids.iter().map(|&i| g.param(i)).collect();
    let out = f(&g, &vars);
    let w = g.input(weights.clone());
    let loss = g.sum_all(g.mul(out, w));
    let l = g.scalar(loss) as f64;
    (l, g.backward(loss))
}

/// Checks the gradient of every parameter in `ids` for the graph `f` builds.
fn check(name: &str, store: &mut ParamStore, ids: &[ParamId], f: &dyn Fn(&Graph, &[Var]) -> Var) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let out_shape = {
        let g = Graph::new(store);
        let vars: Vec<Var> = ids.iter().map(|&i| g.param(i)).collect();
        g.shape(f(&g, &vars))
    };
    let weights = rand_mat(&mut rng, out_shape.0, out_shape.1, -1.0, 1.0);
    let (_, grads) = loss_of(store, ids, &weights, f);
    let h = 1e-2f32;
    for &id in ids {
        let shape = store.value(id).dim();
        let analytic = match grads.get(id) {
            Some(dmtl_tensor::Grad::Dense(d)) => d.clone(),
            Some(dmtl_tensor::Grad::Sparse(s)) => s.to_dense(shape.0),
            None => Array2::zeros(shape),
        };
        for r in 0..shape.0 {
            for c in 0..shape.1 {
                let orig = store.value(id)[[r, c]];
                store.value_mut(id)[[r, c]] = orig + h;
                let (lp, _) = loss_of(store, ids, &weights, f);
                store.value_mut(id)[[r, c]] = orig - h;
                let (lm, _) = loss_of(store, ids, &weights, f);
                store.value_mut(id)[[r, c]] = orig;
                let numeric = (lp - lm) / (2.0 * h as f64);
                let a = analytic[[r, c]] as f64;
                let tol = 2e-2 * (1.0 + a.abs().max(numeric.abs()));
                assert!(
                    (a - numeric).abs() <= tol,
                    "{name}: parameter {} entry ({r}, {c}): analytic {a}, numeric {numeric}",
                    store.get(id).name
                );
            }
        }
    }
}

fn dense(store: &mut ParamStore, name: &str, v: Array2<f32>) -> ParamId {
    store.add(name, v, ParamKind::Dense)
}

#[test]
fn matmul_all_transposes() {
    // d(A B)/dA = dC B^T, d(A B)/dB = A^T dC; transposed operands follow by symmetry.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut s = ParamStore::new();
        let a_shape = if ta { (4, 3) } else { (3, 4) };
        let b_shape = if tb { (5, 4) } else { (4, 5) };
        let a = dense(
            &mut s,
            "a",
            rand_mat(&mut rng, a_shape.0, a_shape.1, -1.0, 1.0),
        );
        let b = dense(
            &mut s,
            "b",
            rand_mat(&mut rng, b_shape.0, b_shape.1, -1.0, 1.0),
        );
        check(&format!("matmul {ta} {tb}"), &mut s, &[a, b], &|g, v| {
            g.matmul_t(v[0], v[1], ta, tb)
        });
    }
}

#[test]
fn linear_every_activation_with_and_without_bias() {
    // y = act(x W^T + b): dW = dz^T x, dx = dz W, db = column sums of dz, dz = dy * act'.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for act in [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ] {
        for with_bias in [true, false] {
            let mut s = ParamStore::new();
            let x = dense(&mut s, "x", rand_mat(&mut rng, 5, 3, -1.0, 1.0));
            let w = dense(&mut s, "w", rand_mat(&mut rng, 4, 3, -1.0, 1.0));
            // A bias far from making pre-activations cross ReLU's kink.
            let b = dense(&mut s, "b", away_from_zero(&mut rng, 1, 4));
            let ids = if with_bias { vec![x, w, b] } else { vec![x, w] };
            check(
                &format!("linear {act:?} bias={with_bias}"),
                &mut s,
                &ids,
                &|g, v| g.linear(v[0], v[1], v.get(2).copied(), act),
            );
        }
    }
}

#[test]
fn add_sub_mul_with_broadcasts() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for b_shape in [(3, 4), (1, 4), (3, 1), (1, 1)] {
        let mut s = ParamStore::new();
        let a = dense(&mut s, "a", rand_mat(&mut rng, 3, 4, -1.0, 1.0));
        let b = dense(
            &mut s,
            "b",
            rand_mat(&mut rng, b_shape.0, b_shape.1, -1.0, 1.0),
        );
        check("add", &mut s, &[a, b], &|g, v| g.add(v[0], v[1]));
        check("sub", &mut s, &[a, b], &|g, v| g.sub(v[0], v[1]));
        check("mul", &mut s, &[a, b], &|g, v| g.mul(v[0], v[1]));
    }
}

#[test]
fn scale_and_add_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut s = ParamStore::new();
    let a = dense(&mut s, "a", rand_mat(&mut rng, 3, 2, -1.0, 1.0));
    check("scale", &mut s, &[a], &|g, v| g.scale(v[0], -2.5));
    check("add_scalar", &mut s, &[a], &|g, v| {
        g.square(g.add_scalar(v[0], 0.7))
    });
}

#[test]
fn every_unary() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for u in [
        Unary::Relu,
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::LogSigmoid,
        Unary::Softplus,
        Unary::Exp,
        Unary::Log,
        Unary::Neg,
        Unary::Square,
    ] {
        let mut s = ParamStore::new();
        let v = match u {
            Unary::Log => rand_mat(&mut rng, 3, 4, 0.5, 2.0),
            _ => away_from_zero(&mut rng, 3, 4).mapv(|x| 2.0 * x),
        };
        let a = dense(&mut s, "a", v);
        check(&format!("{u:?}"), &mut s, &[a], &|g, v| g.unary(v[0], u));
    }
}

#[test]
fn softmax_rows_and_reductions() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut s = ParamStore::new();
    let a = dense(&mut s, "a", rand_mat(&mut rng, 4, 5, -2.0, 2.0));
    check("softmax_rows", &mut s, &[a], &|g, v| g.softmax_rows(v[0]));
    check("sum_all", &mut s, &[a], &|g, v| g.sum_all(v[0]));
    check("mean_all", &mut s, &[a], &|g, v| g.mean_all(v[0]));
    check("sum_rows", &mut s, &[a], &|g, v| g.sum_rows(v[0]));
    check("mean_rows", &mut s, &[a], &|g, v| g.mean_rows(v[0]));
}

#[test]
fn concat_slice_split_row_dot() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut s = ParamStore::new();
    let a = dense(&mut s, "a", rand_mat(&mut rng, 3, 2, -1.0, 1.0));
    let b = dense(&mut s, "b", rand_mat(&mut rng, 3, 4, -1.0, 1.0));
    let c = dense(&mut s, "c", rand_mat(&mut rng, 3, 4, -1.0, 1.0));
    check("concat_cols", &mut s, &[a, b, c], &|g, v| {
        g.concat_cols(&[v[0], v[1], v[2]])
    });
    check("slice_cols", &mut s, &[b], &|g, v| g.slice_cols(v[0], 1, 2));
    check("split_cols", &mut s, &[b], &|g, v| {
        let parts = g.split_cols(v[0], &[1, 3]);
        g.mul(parts[0], g.sum_rows(parts[1]))
    });
    check("row_dot", &mut s, &[b, c], &|g, v| g.row_dot(v[0], v[1]));
}

#[test]
fn mix_experts_through_softmax_gate() {
    // out = sum_k softmax(G)[:, k] * E_k: d/dE_k = gate_k * dy, d/dgate_k = <dy, E_k> per row.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut s = ParamStore::new();
    let gate = dense(&mut s, "gate", rand_mat(&mut rng, 4, 3, -1.0, 1.0));
    let e: Vec<ParamId> = (0..3)
        .map(|k| {
            dense(
                &mut s,
                &format!("e{k}"),
                rand_mat(&mut rng, 4, 5, -1.0, 1.0),
            )
        })
        .collect();
    check("mix_experts", &mut s, &[gate, e[0], e[1], e[2]], &|g, v| {
        let w = g.softmax_rows(v[0]);
        g.mix_experts(w, &v[1..])
    });
}

#[test]
fn detach_stops_the_gradient() {
    let mut s = ParamStore::new();
    let a = dense(&mut s, "a", array![[1.0f32, 2.0]]);
    let g = Graph::new(&s);
    let av = g.param(a);
    // loss = sum(a * detach(a)): d/da = detach(a) only, i.e. [1, 2] rather than 2a = [2, 4].
    let loss = g.sum_all(g.mul(av, g.detach(av)));
    let grads = g.backward(loss);
    assert_eq!(grads.get(a).unwrap().values(), &array![[1.0f32, 2.0]]);
}

#[test]
fn embedding_single_ids_repeated_rows() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut s = ParamStore::new();
    let t = s.add(
        "table",
        rand_mat(&mut rng, 6, 3, -1.0, 1.0),
        ParamKind::Embedding,
    );
    let ids = [4u32, 0, 4, 2, 4];
    check("embedding", &mut s, &[t], &|g, _| g.embedding(t, &ids));
    // The gradient is sparse: only rows 0, 2 and 4.
    let g = Graph::new(&s);
    let loss = g.sum_all(g.embedding(t, &ids));
    match g.backward(loss).get(t).unwrap() {
        dmtl_tensor::Grad::Sparse(sp) => {
            assert_eq!(sp.rows, vec![0, 2, 4]);
            assert_eq!(sp.values.row(2).to_vec(), vec![3.0; 3]);
        }
        other => panic!("expected a sparse gradient, got {other:?}"),
    }
}

#[test]
fn embedding_bag_sum_and_mean_with_empty_bags() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let mut s = ParamStore::new();
    let t = s.add(
        "table",
        rand_mat(&mut rng, 7, 3, -1.0, 1.0),
        ParamKind::Embedding,
    );
    // Bags: [1, 3, 3], [], [6], [0, 1].
    let ids = [1u32, 3, 3, 6, 0, 1];
    let offsets = [0u32, 3, 3, 4, 6];
    for pooling in [Pooling::Sum, Pooling::Mean] {
        check(
            &format!("embedding_bag {pooling:?}"),
            &mut s,
            &[t],
            &|g, _| g.embedding_bag(t, &ids, &offsets, pooling),
        );
    }
    let g = Graph::new(&s);
    let v = g.value(g.embedding_bag(t, &ids, &offsets, Pooling::Mean));
    assert!(
        v.row(1).iter().all(|&x| x == 0.0),
        "an empty bag pools to zeros"
    );
    let tv = s.value(t);
    let expect = (&tv.row(1) + &tv.row(3) + tv.row(3)) / 3.0;
    for (a, b) in v.row(0).iter().zip(expect.iter()) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn custom_op() {
    // y = x^3 with the rule dy/dx = 3x^2 supplied by the caller.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut s = ParamStore::new();
    let a = dense(&mut s, "a", rand_mat(&mut rng, 2, 3, -1.0, 1.0));
    check("custom cube", &mut s, &[a], &|g, v| {
        let value = g.value(v[0]).mapv(|x| x * x * x);
        g.custom(
            &[v[0]],
            value,
            Box::new(|ins, _y, dy| vec![Some(&ins[0].mapv(|x| 3.0 * x * x) * &dy)]),
        )
    });
}

#[test]
fn mlp_end_to_end() {
    // Embedding -> concat -> two linear layers -> sigmoid, every parameter checked.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut s = ParamStore::new();
    let t = s.add(
        "emb",
        rand_mat(&mut rng, 5, 2, -1.0, 1.0),
        ParamKind::Embedding,
    );
    let w1 = dense(&mut s, "w1", rand_mat(&mut rng, 4, 3, -1.0, 1.0));
    let b1 = dense(&mut s, "b1", away_from_zero(&mut rng, 1, 4));
    let w2 = dense(&mut s, "w2", rand_mat(&mut rng, 1, 4, -1.0, 1.0));
    let b2 = dense(&mut s, "b2", rand_mat(&mut rng, 1, 1, -1.0, 1.0));
    let x = rand_mat(&mut rng, 3, 1, -1.0, 1.0);
    check("mlp", &mut s, &[t, w1, b1, w2, b2], &|g, v| {
        let e = g.embedding(t, &[1, 3, 1]);
        let h = g.concat_cols(&[e, g.input(x.clone())]);
        let h = g.linear(h, v[1], Some(v[2]), Activation::Relu);
        g.sigmoid(g.linear(h, v[3], Some(v[4]), Activation::Identity))
    });
}

#[test]
fn stable_at_extreme_logits() {
    let s = ParamStore::new();
    let g = Graph::new(&s);
    let x = g.input(array![[-100.0f32, 100.0, 0.0]]);
    let ls = g.value(g.log_sigmoid(x));
    let sp = g.value(g.softplus(x));
    let sg = g.value(g.sigmoid(x));
    assert!(ls
        .iter()
        .chain(sp.iter())
        .chain(sg.iter())
        .all(|v| v.is_finite()));
    assert!((ls[[0, 0]] + 100.0).abs() < 1e-4 && ls[[0, 1]].abs() < 1e-6);
    assert!((sp[[0, 1]] - 100.0).abs() < 1e-4 && sp[[0, 0]] < 1e-30);
    let sm = g.value(g.softmax_rows(g.input(array![[1000.0f32, 1000.0, -1000.0]])));
    assert!((sm[[0, 0]] - 0.5).abs() < 1e-6 && sm[[0, 2]] == 0.0);
}

#[test]
#[should_panic(expected = "matmul: shapes (2, 3) and (2, 3) do not align")]
fn shape_error_names_op_and_shapes() {
    let s = ParamStore::new();
    let g = Graph::new(&s);
    let a = g.input(Array2::zeros((2, 3)));
    g.matmul(a, a);
}

#[test]
#[should_panic(expected = "add: shapes (2, 3) and (3, 2) do not broadcast")]
fn no_silent_broadcast() {
    let s = ParamStore::new();
    let g = Graph::new(&s);
    let a = g.input(Array2::zeros((2, 3)));
    let b = g.input(Array2::zeros((3, 2)));
    g.add(a, b);
}

#[test]
#[should_panic(expected = "id 9 outside the table of 4 rows")]
fn embedding_id_out_of_range() {
    let mut s = ParamStore::new();
    let t = s.add("t", Array2::zeros((4, 2)), ParamKind::Embedding);
    let g = Graph::new(&s);
    g.embedding(t, &[1, 9]);
}

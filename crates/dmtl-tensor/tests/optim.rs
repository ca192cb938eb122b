//! Optimizers against hand-computed updates; the lazy update of embedding rows.

use approx::assert_abs_diff_eq;
use dmtl_tensor::optim::{Adagrad, Adam, Optimizer, Sgd};
use dmtl_tensor::{Grads, Graph, ParamKind, ParamStore};
use ndarray::{array, Array2};

/// Grads holding `g` as the dense gradient of parameter 0.
fn dense_grad(n: usize, g: Array2<f32>) -> Grads {
    let mut grads = Grads::new(n);
    grads.accumulate_dense(dmtl_tensor::ParamId(0), g);
    grads
}

#[test]
fn sgd_plain_and_momentum() {
    let mut s = ParamStore::new();
    let p = s.add("p", array![[1.0f32, -2.0]], ParamKind::Dense);
    let mut opt = Sgd::new(0.1);
    {
        let g = dense_grad(s.len(), array![[0.5, 1.0]]);
        opt.step(&mut s, &g);
    }
    // p - lr g = [1 - 0.05, -2 - 0.1]
    assert_abs_diff_eq!(s.value(p)[[0, 0]], 0.95, epsilon = 1e-7);
    assert_abs_diff_eq!(s.value(p)[[0, 1]], -2.1, epsilon = 1e-6);

    let mut s = ParamStore::new();
    let p = s.add("p", array![[1.0f32]], ParamKind::Dense);
    let mut opt = Sgd::new(0.1).with_momentum(0.9);
    {
        let g = dense_grad(s.len(), array![[1.0]]);
        opt.step(&mut s, &g);
    } // v = 1, p = 0.9
    {
        let g = dense_grad(s.len(), array![[1.0]]);
        opt.step(&mut s, &g);
    } // v = 1.9, p = 0.71
    assert_abs_diff_eq!(s.value(p)[[0, 0]], 0.71, epsilon = 1e-6);
}

#[test]
fn adam_matches_hand_computed_steps() {
    let mut s = ParamStore::new();
    let p = s.add("p", array![[0.5f32]], ParamKind::Dense);
    let (lr, b1, b2, eps) = (0.01f64, 0.9f64, 0.999f64, 1e-8f64);
    let mut opt = Adam::new(lr as f32);
    let (mut m, mut v, mut x) = (0.0f64, 0.0f64, 0.5f64);
    for (t, g) in [0.3f64, -0.2, 0.7].into_iter().enumerate() {
        {
            let g = dense_grad(s.len(), array![[g as f32]]);
            opt.step(&mut s, &g);
        }
        let t = t as i32 + 1;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let mhat = m / (1.0 - b1.powi(t));
        let vhat = v / (1.0 - b2.powi(t));
        x -= lr * mhat / (vhat.sqrt() + eps);
        assert_abs_diff_eq!(s.value(p)[[0, 0]] as f64, x, epsilon = 1e-6);
    }
    assert_eq!(opt.steps(), 3);
}

#[test]
fn adamw_decays_decoupled() {
    let mut s = ParamStore::new();
    let p = s.add("p", array![[2.0f32]], ParamKind::Dense);
    let mut opt = Adam::new(0.1);
    opt.weight_decay = 0.5;
    opt.decoupled = true;
    // A zero gradient leaves only the decay: p -= lr * wd * p = 2 - 0.1.
    {
        let g = dense_grad(s.len(), array![[0.0]]);
        opt.step(&mut s, &g);
    }
    assert_abs_diff_eq!(s.value(p)[[0, 0]], 1.9, epsilon = 1e-6);
}

#[test]
fn adagrad_matches_hand_computed_steps() {
    let mut s = ParamStore::new();
    let p = s.add("p", array![[1.0f32]], ParamKind::Dense);
    let mut opt = Adagrad::new(0.5);
    {
        let g = dense_grad(s.len(), array![[2.0]]);
        opt.step(&mut s, &g);
    } // s = 4, p = 1 - 0.5*2/2 = 0.5
    {
        let g = dense_grad(s.len(), array![[1.0]]);
        opt.step(&mut s, &g);
    } // s = 5, p = 0.5 - 0.5/sqrt(5)
    assert_abs_diff_eq!(s.value(p)[[0, 0]], 0.5 - 0.5 / 5f32.sqrt(), epsilon = 1e-6);
}

#[test]
fn sparse_adam_leaves_untouched_rows_exactly_unchanged() {
    let mut s = ParamStore::new();
    let table: Array2<f32> = Array2::from_shape_fn((6, 3), |(r, c)| (r * 3 + c) as f32 * 0.1);
    let t = s.add("table", table.clone(), ParamKind::Embedding);
    let mut opt = Adam::new(0.01);
    for ids in [[1u32, 3], [3, 3]] {
        let grads = {
            let g = Graph::new(&s);
            let e = g.embedding(t, &ids);
            let loss = g.sum_all(g.square(e));
            g.backward(loss)
        };
        opt.step(&mut s, &grads);
    }
    let after = s.value(t);
    for r in [0usize, 2, 4, 5] {
        assert_eq!(
            after.row(r),
            table.row(r),
            "row {r} was never looked up and must not move"
        );
    }
    for r in [1usize, 3] {
        assert_ne!(
            after.row(r),
            table.row(r),
            "row {r} was looked up and must move"
        );
    }
    // Their optimizer state stays zero too: the update is lazy, not a dense step with g = 0.
    let state = opt.state();
    let (_, moments) = state.iter().find(|(id, _)| *id == t).unwrap();
    let m = moments[0];
    assert!(m.row(0).iter().all(|&x| x == 0.0) && m.row(3).iter().any(|&x| x != 0.0));
}

#[test]
fn clip_global_norm_scales_every_gradient() {
    let mut s = ParamStore::new();
    s.add("a", array![[0.0f32, 0.0]], ParamKind::Dense);
    s.add("b", array![[0.0f32]], ParamKind::Dense);
    let mut grads = Grads::new(2);
    grads.accumulate_dense(dmtl_tensor::ParamId(0), array![[3.0, 0.0]]);
    grads.accumulate_dense(dmtl_tensor::ParamId(1), array![[4.0]]);
    let before = grads.clip_global_norm(1.0);
    assert_abs_diff_eq!(before, 5.0, epsilon = 1e-9);
    assert_abs_diff_eq!(grads.global_norm(), 1.0, epsilon = 1e-6);
    assert_abs_diff_eq!(
        grads.get(dmtl_tensor::ParamId(0)).unwrap().values()[[0, 0]],
        0.6,
        epsilon = 1e-6
    );
    // Below the limit nothing changes.
    assert_abs_diff_eq!(grads.clip_global_norm(10.0), 1.0, epsilon = 1e-6);
    assert_abs_diff_eq!(grads.global_norm(), 1.0, epsilon = 1e-6);
}

#[test]
fn non_finite_gradient_names_the_parameter() {
    let mut s = ParamStore::new();
    s.add(
        "teacher.gate.ctr.weight",
        array![[0.0f32]],
        ParamKind::Dense,
    );
    let grads = dense_grad(s.len(), array![[f32::NAN]]);
    let err = grads.check_finite(&s).unwrap_err().to_string();
    assert!(err.contains("teacher.gate.ctr.weight"), "{err}");
}

/// A dense parameter, a larger dense one (the parallel path) and an embedding table.
fn mixed_store() -> ParamStore {
    let mut s = ParamStore::new();
    s.add("w", array![[0.5f32, -1.0]], ParamKind::Dense);
    s.add(
        "big",
        Array2::from_shape_fn((256, 160), |(r, c)| ((r * 7 + c) % 13) as f32 * 0.01),
        ParamKind::Dense,
    );
    s.add(
        "table",
        Array2::from_shape_fn((8, 3), |(r, c)| (r * 3 + c) as f32 * 0.1),
        ParamKind::Embedding,
    );
    s
}

fn mixed_grads(n: usize, scale: f32) -> Grads {
    let mut grads = Grads::new(n);
    grads.accumulate_dense(dmtl_tensor::ParamId(0), array![[0.3, -0.2]] * scale);
    grads.accumulate_dense(
        dmtl_tensor::ParamId(1),
        Array2::from_shape_fn((256, 160), |(r, c)| ((r + c) % 5) as f32 * 0.1 - 0.2) * scale,
    );
    grads.accumulate_sparse(
        dmtl_tensor::ParamId(2),
        dmtl_tensor::SparseGrad {
            rows: vec![1, 5],
            values: array![[0.1, 0.2, 0.3], [-0.1, 0.0, 0.4]] * scale,
        },
    );
    grads
}

fn bits(s: &ParamStore) -> Vec<Vec<u32>> {
    s.iter()
        .map(|(_, p)| p.value.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn adam_try_step_equals_step_bit_for_bit_when_finite() {
    let (mut a, mut b) = (mixed_store(), mixed_store());
    let (mut oa, mut ob) = (Adam::new(1e-2), Adam::new(1e-2));
    for k in 0..3 {
        let g = mixed_grads(3, 1.0 + k as f32);
        oa.step(&mut a, &g);
        ob.try_step(&mut b, &g).unwrap();
    }
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(oa.steps(), ob.steps());
}

#[test]
fn adam_try_step_refuses_an_overflowing_update_and_changes_nothing() {
    let mut s = mixed_store();
    let mut opt = Adam::new(1e-3);
    opt.try_step(&mut s, &mixed_grads(3, 1.0)).unwrap();
    let (before, state_before) = (bits(&s), opt.state_to_safetensors(&s));
    // lr / (1 - beta1^t) overflows f32: every new value would be infinite or NaN.
    opt.lr = 3e38;
    let err = opt.try_step(&mut s, &mixed_grads(3, 1.0)).unwrap_err();
    assert_eq!(err.name, "w", "the first parameter in store order");
    assert!(err.to_string().contains("`w`"), "{err}");
    assert_eq!(bits(&s), before);
    assert_eq!(opt.state_to_safetensors(&s), state_before);
    assert_eq!(opt.steps(), 1);
    // The unchecked step really would have written non-finite values.
    opt.step(&mut s, &mixed_grads(3, 1.0));
    assert!(s
        .iter()
        .any(|(_, p)| p.value.iter().any(|x| !x.is_finite())));
}

/// The gradients of [`mixed_grads`] with the big layer's gradient stored column-major, as a
/// transposed product leaves a weight gradient.
fn mixed_grads_column_major(n: usize, scale: f32) -> Grads {
    let g = mixed_grads(n, scale);
    let mut out = Grads::new(n);
    for (id, grad) in g.iter() {
        match grad {
            dmtl_tensor::Grad::Dense(d) if id.0 == 1 => {
                let mut t = Array2::zeros(ndarray::ShapeBuilder::f(d.raw_dim()));
                t.assign(d);
                assert!(t.as_slice().is_none(), "column-major");
                out.accumulate_dense(id, t);
            }
            dmtl_tensor::Grad::Dense(d) => out.accumulate_dense(id, d.clone()),
            dmtl_tensor::Grad::Sparse(s) => out.accumulate_sparse(id, s.clone()),
        }
    }
    out
}

#[test]
fn adam_try_step_after_a_refused_step_still_equals_step_bit_for_bit() {
    // The refused step leaves half-written new values in the optimizer's buffers; the steps
    // after it must not see them, and a column-major gradient takes the checked path.
    let (mut a, mut b) = (mixed_store(), mixed_store());
    let (mut oa, mut ob) = (Adam::new(1e-2), Adam::new(1e-2));
    oa.step(&mut a, &mixed_grads(3, 1.0));
    ob.try_step(&mut b, &mixed_grads(3, 1.0)).unwrap();
    let mut poison = mixed_grads(3, 1.0);
    let mut huge = Array2::from_elem((256, 160), 0.1f32);
    huge[[200, 100]] = 1e30; // in the second half of the big layer: its own chunk
    poison = {
        let mut p = Grads::new(3);
        for (id, g) in poison.iter() {
            match g {
                dmtl_tensor::Grad::Dense(_) if id.0 == 1 => p.accumulate_dense(id, huge.clone()),
                dmtl_tensor::Grad::Dense(d) => p.accumulate_dense(id, d.clone()),
                dmtl_tensor::Grad::Sparse(s) => p.accumulate_sparse(id, s.clone()),
            }
        }
        p
    };
    let state_before = ob.state_to_safetensors(&b);
    let err = ob.try_step(&mut b, &poison).unwrap_err();
    assert_eq!(err.name, "big", "only the big layer overflows");
    assert_eq!(bits(&a), bits(&b), "nothing changed");
    assert_eq!(ob.state_to_safetensors(&b), state_before);
    for k in 1..4 {
        let g = if k % 2 == 0 {
            mixed_grads_column_major(3, 1.0 + k as f32)
        } else {
            mixed_grads(3, 1.0 + k as f32)
        };
        oa.step(&mut a, &g);
        ob.try_step(&mut b, &g).unwrap();
        assert_eq!(bits(&a), bits(&b), "step {k}");
        assert_eq!(
            oa.state_to_safetensors(&a),
            ob.state_to_safetensors(&b),
            "step {k}"
        );
    }
    assert_eq!(oa.steps(), ob.steps());
}

#[test]
fn adam_try_step_checks_only_the_touched_embedding_rows() {
    // A huge value in a row the batch does not touch must not block the update.
    let mut s = mixed_store();
    s.value_mut(dmtl_tensor::ParamId(2))[[0, 0]] = f32::MAX;
    let mut opt = Adam::new(1e-3);
    opt.try_step(&mut s, &mixed_grads(3, 1.0)).unwrap();
    // A gradient of 1e30 squares to infinity in the second moment: refused, naming the table.
    let mut g = Grads::new(s.len());
    g.accumulate_sparse(
        dmtl_tensor::ParamId(2),
        dmtl_tensor::SparseGrad {
            rows: vec![3],
            values: array![[1e30, 0.0, 0.0]],
        },
    );
    assert_eq!(opt.try_step(&mut s, &g).unwrap_err().name, "table");
}

#[test]
fn sgd_try_step_rolls_back_parameters_and_momentum() {
    let mut s = mixed_store();
    let mut opt = Sgd::new(0.1).with_momentum(0.9);
    opt.try_step(&mut s, &mixed_grads(3, 1.0)).unwrap();
    let before = bits(&s);
    let velocity = state_of(&opt);
    assert!(!velocity.is_empty());
    opt.lr = 3e38;
    let err = opt.try_step(&mut s, &mixed_grads(3, 100.0)).unwrap_err();
    assert!(["w", "big", "table"].contains(&err.name.as_str()));
    assert_eq!(bits(&s), before);
    assert_eq!(state_of(&opt), velocity);
}

/// Every state tensor of `opt`, copied, in parameter and slot order.
fn state_of(opt: &impl Optimizer) -> Vec<Array2<f32>> {
    let state = opt.state();
    state
        .into_iter()
        .flat_map(|(_, ts)| ts.into_iter().cloned())
        .collect()
}

const STATE_FILE: &str = "optimizer.safetensors";

/// Three steps, the state saved and loaded into a fresh optimizer, three more steps: the
/// parameters and the state equal an uninterrupted run's bit for bit, and differ from a fresh
/// optimizer's that did not load the state (so the state is what carries the run on).
fn resumes_bit_for_bit<O: Optimizer>(make: impl Fn() -> O) {
    let mut s = mixed_store();
    let mut opt = make();
    for k in 0..3 {
        opt.step(&mut s, &mixed_grads(3, 1.0 + k as f32));
    }
    let bytes = opt.state_to_safetensors(&s);
    let (mut resumed_params, mut unloaded_params) = (s.clone(), s.clone());
    let mut resumed = make();
    resumed
        .load_state_safetensors(&bytes, &s, std::path::Path::new(STATE_FILE))
        .unwrap();
    assert_eq!(resumed.steps(), 3, "the step count travels with the state");
    let mut unloaded = make();
    for k in 3..6 {
        let g = mixed_grads(3, 0.5 - 0.4 * k as f32);
        opt.step(&mut s, &g);
        resumed.step(&mut resumed_params, &g);
        unloaded.step(&mut unloaded_params, &g);
    }
    assert_eq!(
        bits(&resumed_params),
        bits(&s),
        "a resumed run continues bit for bit"
    );
    assert_eq!(state_of(&resumed), state_of(&opt));
    assert_eq!(resumed.steps(), opt.steps());
    assert_ne!(
        bits(&unloaded_params),
        bits(&s),
        "without the state the run differs"
    );
}

#[test]
fn sgd_state_round_trips_through_safetensors() {
    resumes_bit_for_bit(|| {
        let mut o = Sgd::new(0.05).with_momentum(0.9);
        o.weight_decay = 0.01;
        o
    });
}

#[test]
fn adam_state_round_trips_through_safetensors() {
    resumes_bit_for_bit(|| {
        let mut o = Adam::new(1e-2);
        o.weight_decay = 0.01;
        o
    });
}

#[test]
fn adagrad_state_round_trips_through_safetensors() {
    resumes_bit_for_bit(|| {
        let mut o = Adagrad::new(0.1);
        o.initial_accumulator = 0.1;
        o
    });
}

/// An Adam state written before the step count was stored (`m.` and `v.` tensors, no
/// metadata) still loads; the step count is left for the caller to set.
#[test]
fn an_adam_state_without_a_step_count_still_loads() {
    let s = mixed_store();
    let mut opt = Adam::new(1e-2);
    opt.step(&mut s.clone(), &mixed_grads(3, 1.0));
    let mut old = ParamStore::new();
    for (id, moments) in opt.state() {
        let name = &s.get(id).name;
        old.add(&format!("m.{name}"), moments[0].clone(), ParamKind::Dense);
        old.add(&format!("v.{name}"), moments[1].clone(), ParamKind::Dense);
    }
    let mut fresh = Adam::new(1e-2);
    fresh.set_steps(7);
    fresh
        .load_state_safetensors(
            &old.to_safetensors_bytes(),
            &s,
            std::path::Path::new(STATE_FILE),
        )
        .unwrap();
    assert_eq!(state_of(&fresh), state_of(&opt));
    assert_eq!(fresh.steps(), 7);
}

/// Loading a state that does not fit names the file and the tensor, and changes nothing.
#[test]
fn a_state_that_does_not_fit_is_refused_naming_the_tensor() {
    let mut s = mixed_store();
    let mut adam = Adam::new(1e-2);
    adam.step(&mut s, &mixed_grads(3, 1.0));
    let adam_bytes = adam.state_to_safetensors(&s);
    let load = |opt: &mut dyn Optimizer, bytes: &[u8], store: &ParamStore| {
        let r = opt.load_state_safetensors(bytes, store, std::path::Path::new(STATE_FILE));
        r.unwrap_err().to_string()
    };
    // Another model's state.
    let mut other = ParamStore::new();
    other.add("w", array![[0.0f32, 0.0]], ParamKind::Dense);
    let err = load(&mut Adam::new(1e-2), &adam_bytes, &other);
    assert!(err.contains(STATE_FILE) && err.contains("m.big"), "{err}");
    // Another optimizer's state: SGD has no `m` slot.
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    let err = load(&mut sgd, &adam_bytes, &s);
    assert!(
        err.contains("`m.big`") && err.contains("`velocity.<parameter>`"),
        "{err}"
    );
    assert!(
        sgd.state().is_empty() && sgd.steps() == 0,
        "nothing changed"
    );
    // Half of Adam's moments.
    let mut half = ParamStore::new();
    half.add(
        "m.w",
        s.value(dmtl_tensor::ParamId(0)).to_owned(),
        ParamKind::Dense,
    );
    let err = load(&mut Adam::new(1e-2), &half.to_safetensors_bytes(), &s);
    assert!(err.contains("`v.w` is missing"), "{err}");
}

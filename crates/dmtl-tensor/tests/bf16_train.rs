//! Mixed-precision training (`Precision::Bf16`): the bf16 GEMM against f64 sums of the same
//! bf16-rounded operands (f32 accumulation error only), every product of `MatMul` and `Linear`
//! (forward, `dX`, `dW`, `db`) within the bound of bf16 rounding propagated from the f32
//! results, a bound that is attained on adversarial inputs and that catches a wrong kernel,
//! and the f32 fallback equal to f32 bit for bit. The bf16 parts are skipped, with a printed
//! line, on CPUs without AVX-512 BF16.

use dmtl_tensor::bf16::{self, to_bf16_precision};
use dmtl_tensor::bf16_gemm::{kernels, matmul, matmul_with};
use dmtl_tensor::parallel::{data_parallel, data_parallel_by, Sharding};
use dmtl_tensor::{Activation, Graph, ParamKind, ParamStore, Precision};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const UB: f64 = 1.0 / 256.0; // bf16 unit roundoff, 2^-8
const U: f64 = 1.0 / 16_777_216.0; // f32 unit roundoff, 2^-24
/// Per product, what the hardware's flush of bf16 subnormals to zero may lose.
const FLUSH: f64 = 1.2e-38;

fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

/// Relative bound of a bf16 product of inner size `k` against the f32 one, per unit of
/// `sum |a| |b|`: operand rounding `2 u_b + u_b^2`, the bf16 kernel's f32 sums
/// `gamma_(k+1) (1 + u_b)^2` and the f32 GEMM's `gamma_k`.
fn rel_bf16_vs_f32(k: usize) -> f64 {
    2.0 * UB + UB * UB + gamma(k + 1) * (1.0 + UB).powi(2) + gamma(k)
}

/// Whether the CPU runs bf16; prints why a test's bf16 part is skipped when not.
fn bf16_here(test: &str) -> bool {
    let ok = bf16::available();
    if !ok {
        println!("{test}: skipping the bf16 part: this CPU lacks AVX-512 BF16");
    }
    ok
}

fn random(shape: (usize, usize), lo: f32, hi: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn(shape, || rng.gen_range(lo..hi))
}

fn to64(a: ArrayView2<'_, f32>) -> Array2<f64> {
    a.mapv(f64::from)
}

fn abs64(a: ArrayView2<'_, f32>) -> Array2<f64> {
    a.mapv(|v| f64::from(v).abs())
}

/// `a b` in f64 with the operands first rounded as `ra` / `rb` say.
fn product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, ra: bool, rb: bool) -> Array2<f64> {
    let r = |round: bool| move |v: f32| f64::from(if round { to_bf16_precision(v) } else { v });
    a.mapv(r(ra)).dot(&b.mapv(r(rb)))
}

/// The largest `|got - want| / bound` (0 where both are 0); panics naming `what` and the
/// entry when an entry is out of its bound.
fn check(
    what: &str,
    got: ArrayView2<'_, f32>,
    want: ArrayView2<'_, f64>,
    bound: &Array2<f64>,
) -> f64 {
    assert_eq!(got.dim(), want.dim(), "{what}: shapes");
    let mut worst = 0f64;
    for ((idx, &g), (&w, &b)) in got.indexed_iter().zip(want.iter().zip(bound)) {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= b,
            "{what}: entry {idx:?}: {g} against {w}, error {err:e} above the bound {b:e}"
        );
        if err > 0.0 {
            worst = worst.max(err / b);
        }
    }
    worst
}

/// Whether every entry is within its bound (for showing that a wrong result is caught).
fn within(got: ArrayView2<'_, f64>, want: ArrayView2<'_, f64>, bound: &Array2<f64>) -> bool {
    got.iter()
        .zip(want.iter().zip(bound))
        .all(|(&g, (&w, &b))| (g - w).abs() <= b)
}

/// The tight check of the kernel: against the f64 sum of the same bf16-rounded operands only
/// f32 accumulation may differ, `gamma_(k+1) sum |a~| |b~|`.
fn tight_bound(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
    let k = a.ncols();
    let abs_r = |x: ArrayView2<'_, f32>| x.mapv(|v| f64::from(to_bf16_precision(v)).abs());
    abs_r(a).dot(&abs_r(b)) * gamma(k + 1) + FLUSH * k as f64
}

/// The loose check against f32: `rel_bf16_vs_f32(k) sum |a| |b|`.
fn f32_bound(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f64> {
    let k = a.ncols();
    abs64(a).dot(&abs64(b)) * rel_bf16_vs_f32(k) + FLUSH * k as f64
}

/// Each kernel on odd shapes and every layout (plain, transposed views): within f32
/// accumulation error of the same bf16 products summed in f64, and within the bf16 bound of
/// the f32 product; rounding only one operand, or dropping the last inner pair, is caught.
#[test]
fn bf16_gemm_is_the_rounded_product_accumulated_in_f32() {
    if !bf16_here("bf16_gemm_is_the_rounded_product_accumulated_in_f32") {
        return;
    }
    for kernel in kernels() {
        gemm_on(kernel);
    }
}

fn gemm_on(kernel: dmtl_tensor::bf16_gemm::Kernel) {
    let (mut worst_tight, mut worst_f32) = (0f64, 0f64);
    let (mut caught_one_operand, mut caught_dropped_pair) = (0, 0);
    let shapes = [
        (1, 1, 1),
        (13, 37, 33),
        (50, 64, 96),
        (12, 2, 32),
        (7, 301, 5),
        (130, 512, 70),
    ];
    for (si, &(m, k, n)) in shapes.iter().enumerate() {
        let a0 = random((m, k), -2.0, 2.0, 10 + si as u64);
        let b0 = random((k, n), -1.0, 1.0, 20 + si as u64);
        let (at, bt) = (a0.t().to_owned(), b0.t().to_owned());
        for (layout, a, b) in [
            ("A B", a0.view(), b0.view()),
            ("A^T' B", at.t(), b0.view()),
            ("A B^T'", a0.view(), bt.t()),
            ("A^T' B^T'", at.t(), bt.t()),
        ] {
            let c = matmul_with(kernel, a, b);
            let exact_rounded = product(a, b, true, true);
            let tb = tight_bound(a, b);
            worst_tight = worst_tight.max(check(
                &format!("{layout} ({m}, {k}, {n}) vs rounded operands"),
                c.view(),
                exact_rounded.view(),
                &tb,
            ));
            let f32c = a.dot(&b);
            worst_f32 = worst_f32.max(check(
                &format!("{layout} ({m}, {k}, {n}) vs f32"),
                c.view(),
                to64(f32c.view()).view(),
                &f32_bound(a, b),
            ));
            if k > 16 {
                assert!(
                    c != f32c,
                    "{layout} ({m}, {k}, {n}): equal to f32, not rounded"
                );
                // A kernel rounding only A: outside the tight check.
                let one = product(a, b, true, false);
                caught_one_operand += usize::from(!within(one.view(), exact_rounded.view(), &tb));
                // A kernel losing the last pair of the inner dimension: outside the bf16 bound.
                let cut = product(
                    a.slice(ndarray::s![.., ..k - 2]),
                    b.slice(ndarray::s![..k - 2, ..]),
                    true,
                    true,
                );
                caught_dropped_pair += usize::from(!within(
                    cut.view(),
                    to64(f32c.view()).view(),
                    &f32_bound(a, b),
                ));
            }
        }
    }
    assert_eq!(
        matmul(Array2::zeros((3, 0)).view(), Array2::zeros((0, 4)).view()),
        Array2::<f32>::zeros((3, 4))
    );
    // Every layout of the four shapes with k > 16 catches both wrong kernels.
    assert_eq!(caught_one_operand, 16);
    assert_eq!(caught_dropped_pair, 16);
    println!("bf16 GEMM ({kernel:?}): worst error {worst_tight:.3} of the f32-accumulation bound, {worst_f32:.3} of the bf16 bound");
}

/// On inputs whose rounding errors all have one sign (every entry `1 + 2^-8 - 2^-16`, which
/// rounds to 1) the error reaches 99 % of the bound: the bound cannot be tightened, and a
/// kernel erring more fails it.
#[test]
fn the_bf16_bound_is_attained_on_adversarial_inputs() {
    if !bf16_here("the_bf16_bound_is_attained_on_adversarial_inputs") {
        return;
    }
    let v = 1.0 + 2f32.powi(-8) - 2f32.powi(-16);
    assert_eq!(to_bf16_precision(v), 1.0);
    let (m, k, n) = (24, 256, 64);
    let a = Array2::from_elem((m, k), v);
    let b = Array2::from_elem((k, n), v);
    for kernel in kernels() {
        let c = matmul_with(kernel, a.view(), b.view());
        let f32c = a.dot(&b);
        let bound = f32_bound(a.view(), b.view());
        let worst = check("adversarial", c.view(), to64(f32c.view()).view(), &bound);
        assert!(
            worst > 0.98,
            "{kernel:?}: the error reached only {worst:.3} of the bound"
        );
        println!("adversarial inputs ({kernel:?}): the error is {worst:.4} of the bound");
    }
}

/// The four products of the tape's `MatMul`, every transpose flag, under `Bf16`: the value
/// and both gradients (of `sum(C * R)`, so `dC = R` in both precisions) within f32
/// accumulation error of the same products of rounded operands in f64, and within the bf16
/// bound of the f32 tape.
#[test]
fn matmul_forward_and_gradients_in_bf16() {
    if !bf16_here("matmul_forward_and_gradients_in_bf16") {
        return;
    }
    let (m, k, n) = (37, 70, 45);
    let mut worst = 0f64;
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a_shape = if ta { (k, m) } else { (m, k) };
        let b_shape = if tb { (n, k) } else { (k, n) };
        let mut store = ParamStore::new();
        let a = store.add("a", random(a_shape, -1.5, 1.5, 1), ParamKind::Dense);
        let b = store.add("b", random(b_shape, -1.0, 1.0, 2), ParamKind::Dense);
        let r = random((m, n), -1.0, 1.0, 3);
        let run = |p: Precision| {
            let g = Graph::with_precision(&store, p);
            let c = g.matmul_t(g.param(a), g.param(b), ta, tb);
            let loss = g.sum_all(g.mul(c, g.input(r.clone())));
            let grads = g.backward(loss);
            let ga = grads.get(a).unwrap().values().clone();
            let gb = grads.get(b).unwrap().values().clone();
            (g.value(c), ga, gb)
        };
        let (c16, ga16, gb16) = run(Precision::Bf16);
        let (c32, ga32, gb32) = run(Precision::F32);
        let (av, bv) = (store.value(a), store.value(b));
        let opa = if ta { av.t() } else { av };
        let opb = if tb { bv.t() } else { bv };
        let name = |s: &str| format!("matmul (ta {ta}, tb {tb}): {s}");
        // The products each backward rule multiplies, and the gradients' orientation.
        let orient = |x: Array2<f64>, t: bool| if t { x.reversed_axes() } else { x };
        let cases: [(
            String,
            &Array2<f32>,
            &Array2<f32>,
            ArrayView2<'_, f32>,
            ArrayView2<'_, f32>,
            bool,
        ); 3] = [
            (name("C"), &c16, &c32, opa, opb, false),
            (name("dA"), &ga16, &ga32, r.view(), opb.t(), ta),
            (name("dB"), &gb16, &gb32, opa.t(), r.view(), tb),
        ];
        for (what, got, want32, x, y, t) in cases {
            let tight = orient(tight_bound(x, y), t);
            let rounded = orient(product(x, y, true, true), t);
            check(
                &format!("{what} vs rounded"),
                got.view(),
                rounded.view(),
                &tight,
            );
            let loose = orient(f32_bound(x, y), t);
            worst = worst.max(check(&what, got.view(), to64(want32.view()).view(), &loose));
            assert!(got != want32, "{what}: equal to f32, not rounded");
        }
    }
    println!("matmul in bf16: worst error {worst:.3} of the bound");
}

/// How far `dZ = R act'(y)` of the bf16 tape may be from the f32 tape's, per entry, given
/// both tapes' outputs `y16` and `y32` (the forward pass is checked against its own bound
/// first): the derivatives' difference in closed form, plus the f32 evaluation of each.
fn dz_bound(act: Activation, y16: f64, y32: f64, r: f64) -> f64 {
    let eval = 4.0 * U * r.abs();
    match act {
        Activation::Identity => 0.0,
        // The derivative differs only where the sign of the output does, then by all of R.
        Activation::Relu => {
            if (y16 > 0.0) != (y32 > 0.0) {
                r.abs()
            } else {
                0.0
            }
        }
        // y (1 - y): a (1 - a) - b (1 - b) = (a - b)(1 - a - b).
        Activation::Sigmoid => r.abs() * (y16 - y32).abs() * (1.0 - y16 - y32).abs() + eval,
        // 1 - y^2: (1 - a^2) - (1 - b^2) = (b - a)(a + b).
        Activation::Tanh => r.abs() * (y16 - y32).abs() * (y16 + y32).abs() + eval,
    }
}

fn act64(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
    }
}

fn dact64(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => f64::from(u8::from(z > 0.0)),
        Activation::Sigmoid => act64(act, z) * (1.0 - act64(act, z)),
        Activation::Tanh => 1.0 - z.tanh().powi(2),
    }
}

/// `Linear` with every activation under `Bf16`, against the f32 tape: the output, `dX`,
/// `dW` and `db` of `sum(Y * R)` within the bf16 bound propagated entry by entry: the
/// forward product's `rel(k) sum |x||w|` on the pre-activation, through the activation's
/// Lipschitz constant to `Y`; the difference of `dZ = R act'(Y)` from the two outputs (for
/// ReLU all of `R` where their signs differ), then through the backward products `dZ W` and
/// `dZ^T X` with their own rounding. `dW` from all rows but the last is caught.
#[test]
fn linear_forward_and_gradients_within_the_propagated_bound() {
    if !bf16_here("linear_forward_and_gradients_within_the_propagated_bound") {
        return;
    }
    let (batch, k_in, out) = (150, 83, 40);
    for (ai, act) in [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 100 * ai as u64;
        let mut store = ParamStore::new();
        let x = store.add(
            "x",
            random((batch, k_in), -1.0, 1.0, seed + 1),
            ParamKind::Dense,
        );
        let w = store.add(
            "w",
            random((out, k_in), -0.3, 0.3, seed + 2),
            ParamKind::Dense,
        );
        let b = store.add("b", random((1, out), -0.5, 0.5, seed + 3), ParamKind::Dense);
        let r = random((batch, out), -1.0, 1.0, seed + 4);
        let run = |p: Precision| {
            let g = Graph::with_precision(&store, p);
            let y = g.linear(g.param(x), g.param(w), Some(g.param(b)), act);
            let loss = g.sum_all(g.mul(y, g.input(r.clone())));
            let grads = g.backward(loss);
            let get = |id| grads.get(id).unwrap().values().clone();
            (g.value(y), get(x), get(w), get(b))
        };
        let (y16, dx16, dw16, db16) = run(Precision::Bf16);
        let (y32, dx32, dw32, db32) = run(Precision::F32);
        let (xv, wv, bv) = (store.value(x), store.value(w), store.value(b));
        let (ax, aw) = (abs64(xv), abs64(wv));

        // Forward: z = x w^T + b; both tapes add the bias in f32 (one rounding each).
        let z = to64(xv).dot(&to64(wv).t()) + &to64(bv);
        let z_bound = ax.dot(&aw.t()) * rel_bf16_vs_f32(k_in) * 1.0
            + z.mapv(|v| 4.0 * U * v.abs())
            + FLUSH * k_in as f64;
        let lip = if act == Activation::Sigmoid {
            0.25
        } else {
            1.0
        };
        let y_bound = z_bound.mapv(|e| lip * e + 1e-6);
        let name = format!("linear {act:?}");
        let mut worst = vec![];
        worst.push(check(
            &format!("{name}: Y"),
            y16.view(),
            to64(y32.view()).view(),
            &y_bound,
        ));

        // dZ = R act'(y): its distance between the tapes, and its size.
        let mut ddz = Array2::<f64>::zeros((batch, out));
        let mut adz = Array2::<f64>::zeros((batch, out));
        for ((i, j), d) in ddz.indexed_iter_mut() {
            let (zz, rr) = (z[[i, j]], f64::from(r[[i, j]]));
            let (a, b) = (f64::from(y16[[i, j]]), f64::from(y32[[i, j]]));
            *d = dz_bound(act, a, b, rr);
            adz[[i, j]] = (rr * dact64(act, zz)).abs() + *d;
        }
        // dX = dZ W (inner size out), dW = dZ^T X (inner size batch), db = column sums.
        let dx_bound = ddz.dot(&aw) + adz.dot(&aw) * rel_bf16_vs_f32(out) + FLUSH * out as f64;
        let dw_bound =
            ddz.t().dot(&ax) + adz.t().dot(&ax) * rel_bf16_vs_f32(batch) + FLUSH * batch as f64;
        let db_bound = ddz.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0))
            + adz.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)) * (2.0 * gamma(batch));
        worst.push(check(
            &format!("{name}: dX"),
            dx16.view(),
            to64(dx32.view()).view(),
            &dx_bound,
        ));
        worst.push(check(
            &format!("{name}: dW"),
            dw16.view(),
            to64(dw32.view()).view(),
            &dw_bound,
        ));
        worst.push(check(
            &format!("{name}: db"),
            db16.view(),
            to64(db32.view()).view(),
            &db_bound,
        ));
        for (what, got, want) in [
            ("Y", &y16, &y32),
            ("dX", &dx16, &dx32),
            ("dW", &dw16, &dw32),
        ] {
            assert!(got != want, "{name}: {what} equal to f32, not rounded");
        }
        // A wrong backward (dW from all rows but the last) is outside the bound.
        let dz32 = Array2::from_shape_fn((batch, out), |(i, j)| {
            f64::from(r[[i, j]]) * dact64(act, z[[i, j]])
        });
        let cut = dz32
            .slice(ndarray::s![..batch - 1, ..])
            .t()
            .dot(&to64(xv.slice(ndarray::s![..batch - 1, ..])));
        assert!(
            !within(cut.view(), to64(dw32.view()).view(), &dw_bound),
            "{name}: dW without the last row passes the bound"
        );
        println!("{name}: worst error of Y, dX, dW, db: {worst:.3?} of the bound");
    }
}

/// The fallback: `Bf16` on a CPU without AVX-512 BF16 is `F32`, and a tape built with it
/// (through `data_parallel_by`, as training builds it) gives the f32 tape's loss and
/// gradients bit for bit; on this CPU `Bf16` runs bf16 exactly when it can.
#[test]
fn the_f32_fallback_is_f32_bit_for_bit() {
    assert_eq!(Precision::Bf16.for_cpu(false), Precision::F32);
    assert_eq!(Precision::F32.for_cpu(true), Precision::F32);
    assert_eq!(Precision::Bf16.for_cpu(true), Precision::Bf16);
    assert_eq!(
        Precision::Bf16.fallback_notice("teacher").is_some(),
        !bf16::available()
    );
    assert_eq!(Precision::F32.fallback_notice("teacher"), None);
    let store_and_run = |p: Option<Precision>| {
        let mut store = ParamStore::new();
        let x = random((300, 20), -1.0, 1.0, 1);
        let w1 = store.add("w1", random((16, 20), -0.5, 0.5, 2), ParamKind::Dense);
        let b1 = store.add("b1", random((1, 16), -0.5, 0.5, 3), ParamKind::Dense);
        let w2 = store.add("w2", random((16, 3), -0.5, 0.5, 4), ParamKind::Dense);
        let shard = |g: &Graph<'_>, rows: std::ops::Range<usize>| {
            let xs = g.input(x.slice(ndarray::s![rows, ..]).to_owned());
            let h = g.linear(xs, g.param(w1), Some(g.param(b1)), Activation::Tanh);
            let y = g.matmul(h, g.param(w2));
            let loss = g.mean_all(g.square(y));
            (loss, vec![g.scalar(loss)])
        };
        let s = match p {
            None => data_parallel(&store, 300, shard),
            Some(p) => data_parallel_by(
                &store,
                300,
                Sharding::for_rows(300).in_precision(p),
                |r| r.len() as f64,
                shard,
            ),
        };
        let bits: Vec<u32> = [w1, b1, w2]
            .iter()
            .flat_map(|&id| {
                s.grads
                    .get(id)
                    .unwrap()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            })
            .chain(s.values.iter().map(|v| v.to_bits()))
            .collect();
        bits
    };
    let f32_bits = store_and_run(None);
    assert_eq!(store_and_run(Some(Precision::F32)), f32_bits);
    assert_eq!(
        store_and_run(Some(Precision::Bf16.for_cpu(false))),
        f32_bits
    );
    let store = ParamStore::new();
    assert_eq!(Graph::new(&store).precision(), Precision::F32);
    assert_eq!(
        Graph::with_precision(&store, Precision::Bf16).precision(),
        Precision::Bf16.on_this_cpu()
    );
    if bf16_here("the_f32_fallback_is_f32_bit_for_bit") {
        assert_ne!(store_and_run(Some(Precision::Bf16)), f32_bits);
    }
}

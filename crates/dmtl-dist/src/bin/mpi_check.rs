//! Checks the MPI collective and the gradient exchange in a real MPI job (built with the `mpi`
//! feature; `tests/mpi.rs` launches it):
//!
//! ```text
//! mpirun -np N mpi_check                  # every check; prints "all checks passed" per rank
//! mpirun -np N mpi_check --fail-rank R    # rank R fails after the checks: the job ends non-zero
//! mpirun -np N mpi_check --crash-rank R   # rank R dies of SIGABRT without a word to MPI
//! ```
//!
//! Every rank computes what each collective must return from every rank's inputs, which it
//! can make itself (they come from the rank number), and compares.

use dmtl_dist::{
    check_same_params, sum_over_ranks, unwrap_or_abort, Collective, DistError, Gathered, Layout,
    Shares,
};
use dmtl_tensor::{Grad, Grads, Init, ParamKind, ParamStore, SparseGrad};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// A collective failed.
    #[error(transparent)]
    Dist(#[from] DistError),
    /// A collective returned something else than computed locally.
    #[error("{what}: got {got}, expected {expected}")]
    Mismatch {
        what: &'static str,
        got: String,
        expected: String,
    },
    /// `--fail-rank` asked this rank to fail.
    #[error("failing on purpose (--fail-rank {0})")]
    Injected(usize),
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &'static str,
    got: T,
    expected: T,
) -> Result<(), CheckError> {
    if got == expected {
        return Ok(());
    }
    Err(CheckError::Mismatch {
        what,
        got: format!("{got:?}"),
        expected: format!("{expected:?}"),
    })
}

/// The model every rank holds: two dense parameters and two embedding tables.
fn model() -> ParamStore {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut s = ParamStore::new();
    s.weight("dense.weight", 8, 5, Init::XavierUniform, &mut rng);
    s.bias("dense.bias", 5);
    s.embedding("emb.user", 300, 4, Init::Normal(0.1), &mut rng);
    s.embedding("emb.item", 120, 8, Init::Normal(0.1), &mut rng);
    s
}

/// Rank `rank`'s gradients: rows that overlap other ranks' rows, `dense.bias` only on even
/// ranks.
fn rank_grads(store: &ParamStore, rank: usize) -> Grads {
    let mut rng = ChaCha8Rng::seed_from_u64(100 + rank as u64);
    let mut g = Grads::new(store.len());
    for (id, p) in store.iter() {
        let (rows, cols) = p.value.dim();
        if p.kind == ParamKind::Dense {
            if p.name != "dense.bias" || rank.is_multiple_of(2) {
                g.accumulate_dense(id, Array2::from_shape_fn((rows, cols), |_| rng.gen()));
            }
            continue;
        }
        let picked: Vec<u32> = (0..40).map(|_| rng.gen_range(0..rows as u32 / 2)).collect();
        let v = Array2::from_shape_fn((picked.len(), cols), |_| rng.gen_range(-1.0..1.0));
        g.accumulate_sparse(id, SparseGrad::coalesce(&picked, v.view()));
    }
    g
}

/// The sum every rank must get, computed here from every rank's gradients: dense buffers
/// summed in rank order, sparse rows merged from the gathered parts.
fn expected_sum(layout: &Layout, ranks: &[Grads], rank: usize) -> Result<Grads, DistError> {
    let mut buf = vec![0.0f32; layout.reduced_len(0)];
    let (mut rows, mut values) = (Vec::new(), Vec::new());
    for g in ranks {
        for (a, b) in buf.iter_mut().zip(layout.flatten_dense(g, 1.0, &[])) {
            *a += b;
        }
        let (r, v) = layout.pack_sparse(g, 1.0);
        rows.push(r);
        values.push(v);
    }
    let mut out = Grads::new(ranks[0].iter().count());
    layout.unflatten_dense(&buf, &mut out);
    let (rows, values) = (Gathered::from_parts(rows), Gathered::from_parts(values));
    layout.merge_sparse(rank, &rows, &values, &mut out)?;
    Ok(out)
}

/// A store holding each gradient as a parameter, to compare gradients across ranks by hash.
fn as_store(grads: &Grads) -> ParamStore {
    let mut s = ParamStore::new();
    for (id, g) in grads.iter() {
        let rows: Vec<f32> = match g {
            Grad::Sparse(sg) => sg.rows.iter().map(|&r| r as f32).collect(),
            Grad::Dense(_) => Vec::new(),
        };
        s.add(
            &format!("{}.rows", id.0),
            Array2::from_shape_vec((1, rows.len()), rows).unwrap(),
            ParamKind::Dense,
        );
        s.add(
            &format!("{}.values", id.0),
            g.values().clone(),
            ParamKind::Dense,
        );
    }
    s
}

fn check_exchange(c: &dyn Collective) -> Result<(), CheckError> {
    let (rank, n) = (c.rank(), c.size());
    let store = model();
    let layout = Layout::new(&store);
    let all: Vec<Grads> = (0..n).map(|r| rank_grads(&store, r)).collect();
    let got = sum_over_ranks(c, &layout, &all[rank], 1.0, &[1.0])?;
    expect_eq("the extras' sum", got.extras, vec![n as f32])?;
    let want = expected_sum(&layout, &all, rank)?;
    for (id, p) in store.iter() {
        let (g, w) = (got.grads.get(id), want.get(id));
        match (g, w) {
            (Some(Grad::Sparse(g)), Some(Grad::Sparse(w))) => {
                // Merged from the same gathered bits: equal to the bit.
                expect_eq("merged embedding rows", &g.rows, &w.rows)?;
                let bits = |a: &Array2<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                expect_eq("merged embedding values", bits(&g.values), bits(&w.values))?;
            }
            (Some(Grad::Dense(g)), Some(Grad::Dense(w))) => {
                // MPI may sum in another order than rank order.
                let err = (g - w).iter().fold(0.0f32, |m, d| m.max(d.abs()));
                if err > 1e-5 {
                    return Err(CheckError::Mismatch {
                        what: "all-reduced dense gradient",
                        got: format!("{}: max difference {err}", p.name),
                        expected: "below 1e-5".into(),
                    });
                }
            }
            (None, None) => {}
            (g, w) => {
                let kind = |g: Option<&Grad>| match g {
                    None => "none",
                    Some(Grad::Dense(_)) => "dense",
                    Some(Grad::Sparse(_)) => "sparse",
                };
                return Err(CheckError::Mismatch {
                    what: "gradient kind",
                    got: format!("{}: {}", p.name, kind(g)),
                    expected: kind(w).into(),
                });
            }
        }
    }
    // Bit-identical on every rank.
    check_same_params(c, &as_store(&got.grads))?;
    Ok(())
}

fn check_collectives(c: &dyn Collective) -> Result<(), CheckError> {
    let (rank, n) = (c.rank(), c.size());
    let vector = |r: usize| -> Vec<f32> { (0..5).map(|k| (r * 10 + k) as f32 * 0.25).collect() };
    let mut buf = vector(rank);
    c.all_reduce_sum(&mut buf)?;
    let mut want = vec![0.0f32; 5];
    for r in 0..n {
        want.iter_mut().zip(vector(r)).for_each(|(a, b)| *a += b);
    }
    expect_eq("all-reduce sum", buf, want)?;

    let ids = |r: usize| -> Vec<u32> { (0..=r as u32).map(|k| r as u32 * 100 + k).collect() };
    let floats = |r: usize| -> Vec<f32> { (0..2 * r).map(|k| (r + k) as f32 / 3.0).collect() };
    let (got, want) = (c.all_gather_u32(&ids(rank))?, (0..n).map(ids).collect());
    expect_eq("all-gather u32", got, Gathered::from_parts(want))?;
    let (got, want) = (
        c.all_gather_f32(&floats(rank))?,
        (0..n).map(floats).collect(),
    );
    expect_eq("all-gather f32", got, Gathered::from_parts(want))?;

    let message = b"parameters of rank 0".to_vec();
    let mut bytes = if rank == 0 {
        message.clone()
    } else {
        vec![7; rank]
    };
    c.broadcast_bytes(&mut bytes)?;
    expect_eq("broadcast", bytes, message)?;

    let shares = Shares::gather(c, (rank + 1) as f64)?;
    let total = (n * (n + 1) / 2) as f64;
    expect_eq(
        "the rank's share",
        shares.weight(rank),
        ((rank + 1) as f64 / total) as f32,
    )?;

    let store = model();
    check_same_params(c, &store)?;
    let mut mine = store.clone();
    if rank == n - 1 {
        let id = mine.id("emb.item").unwrap();
        mine.value_mut(id)[[0, 0]] += 1.0;
    }
    match check_same_params(c, &mine) {
        Err(DistError::ParamsDiffer { first, .. }) if n > 1 => {
            expect_eq("first rank with other parameters", first, n - 1)?
        }
        Ok(_) if n == 1 => {}
        other => expect_eq(
            "the parameter check",
            format!("{other:?}"),
            "an error".into(),
        )?,
    }
    Ok(())
}

enum Mode {
    Check,
    Fail(usize),
    Crash(usize),
}

fn mode() -> Mode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rank = |s: Option<&String>| s.and_then(|s| s.parse().ok());
    match args.first().map(String::as_str) {
        None => Mode::Check,
        Some("--fail-rank") if rank(args.get(1)).is_some() => {
            Mode::Fail(rank(args.get(1)).unwrap())
        }
        Some("--crash-rank") if rank(args.get(1)).is_some() => {
            Mode::Crash(rank(args.get(1)).unwrap())
        }
        _ => {
            eprintln!("usage: mpi_check [--fail-rank R | --crash-rank R]");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mode = mode();
    // `world()` gives MPI's collective under mpirun with several ranks.
    let c = match dmtl_dist::world() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let c = &*c;
    let mut result = check_collectives(c).and_then(|()| check_exchange(c));
    match mode {
        Mode::Fail(r) if r == c.rank() && result.is_ok() => result = Err(CheckError::Injected(r)),
        Mode::Crash(r) if r == c.rank() => std::process::abort(),
        _ => {}
    }
    unwrap_or_abort(c, result);
    // The others wait here for a failed rank, until the launcher ends the job.
    unwrap_or_abort(c, c.barrier());
    println!(
        "mpi_check: rank {} of {}: all checks passed",
        c.rank(),
        c.size()
    );
}

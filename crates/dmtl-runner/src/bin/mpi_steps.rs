//! Data-parallel teacher steps over the ranks of an MPI job, at the reference shapes of
//! BENCHMARKS.md (13 fields x 16, MMoE with 4 experts [256, 128], towers [64]), global batches
//! of 1,024 rows split over the ranks (512 each on 2):
//!
//! - `mpi_steps --check [--steps 50]`: each rank computes the gradients of its part, the ranks
//!   sum them ([`dmtl_train::parallel::sum_step`]) and apply the sum; beside it every rank
//!   trains a second teacher alone on the whole global batches, the same sample order. Prints
//!   the largest relative difference between the two over the parameter tensors
//!   (`||a - b|| / ||b||`), and fails when it is 1e-4 or more, or when the ranks' parameters
//!   differ. The one process splits each global batch into the same row blocks as the ranks
//!   (its shards, as one process with that many threads does), so that the two differ only in
//!   the order the blocks' gradients are summed; `--reference-shards 1` computes it unsplit.
//! - `mpi_steps --check-shares [--rows 10000]`: the epoch loop over shares
//!   ([`dmtl_train::parallel::Split::Shares`]): each rank trains on its own round-robin share of
//!   the rows; prints the steps, the loss and the parameters' hash (the same on every rank).
//! - `mpi_steps --bench [--steps 200]`: impressions per second of the data-parallel step and the
//!   share of it spent exchanging gradients (one JSON line from rank 0). Started without
//!   `mpirun`, it times the step of one process on the whole batch.
//!
//! `mpirun --allow-run-as-root --oversubscribe -np 2 -x DMTL_THREADS=1 target/release/mpi_steps --check`

#[path = "../../../dmtl-teacher/benches/reference/mod.rs"]
mod reference;

use std::rc::Rc;
use std::time::Instant;

use dmtl_dist::{abort_with, check_same_params, unwrap_or_abort, Collective, Layout};
use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::optim::Adam;
use dmtl_tensor::parallel::shares_of;
use dmtl_tensor::ParamStore;
use dmtl_train::epochs::apply_step;
use dmtl_train::parallel::{
    block_ranges, local_range, sum_step, Computed, DataParallel, LocalPart, Split,
};
use reference::{random_dataset, reference_schema};

/// Rows of a global batch.
const B: usize = 1024;
/// Untimed steps before the timed ones in `--bench`.
const WARMUP: usize = 10;

/// A rank's part of a step whose gradients carry their share already (rows-weighted loss).
fn prescaled(rows: usize) -> LocalPart {
    LocalPart {
        rows,
        weight: rows as f64,
        prescaled: true,
    }
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).and_then(|v| v.parse().ok())
}

/// The gradients of `teacher` on this rank's block of `batch`, scaled by the block's share of
/// the batch, as the epoch loop hands them over.
fn local_gradients(
    teacher: &Teacher,
    batch: &dmtl_data::Batch,
    rank: usize,
    size: usize,
) -> (Computed, usize) {
    let blocks = block_ranges(batch.n_rows, size);
    let rows: Vec<usize> = blocks.iter().map(|r| r.len()).collect();
    let weights: Vec<f64> = rows.iter().map(|&r| r as f64).collect();
    let scale = shares_of(&weights, &rows).get(rank).copied().unwrap_or(0.0);
    let part = batch.part(local_range(batch.n_rows, rank, size));
    let precision = teacher.config().train.precision;
    let (grads, loss) = teacher.gradients_in(&part, precision, scale);
    let computed = Computed {
        loss: loss.total,
        parts: vec![loss.ctr, loss.ctcvr],
        grads,
    };
    (computed, part.n_rows)
}

/// How far two stores of the same model are apart, tensor by tensor: the largest
/// `||a - b|| / ||b||` (Euclidean norms over the tensor) and the largest `max |a - b| / max |b|`,
/// each with the tensor where it is.
fn relative_differences(a: &ParamStore, b: &ParamStore) -> ((f64, String), (f64, String)) {
    let mut norm = (0.0f64, String::new());
    let mut elem = (0.0f64, String::new());
    for ((_, pa), (_, pb)) in a.iter().zip(b.iter()) {
        let (mut d2, mut b2, mut dmax, mut bmax) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in pa.value.iter().zip(pb.value.iter()) {
            let d = (f64::from(x) - f64::from(y)).abs();
            d2 += d * d;
            b2 += f64::from(y) * f64::from(y);
            dmax = dmax.max(d);
            bmax = bmax.max(f64::from(y).abs());
        }
        let n = d2.sqrt() / b2.sqrt().max(1e-30);
        let e = dmax / bmax.max(1e-30);
        if n > norm.0 {
            norm = (n, pa.name.clone());
        }
        if e > elem.0 {
            elem = (e, pa.name.clone());
        }
    }
    (norm, elem)
}

fn check(world: &dyn Collective, steps: usize, reference_shards: Option<usize>) {
    let (rank, size) = (world.rank(), world.size());
    // By default the one-process step splits the global batch into the row blocks the ranks
    // hold (as one process with as many threads does), so that only the order in which the
    // blocks' gradients are summed differs.
    let own_shards = dmtl_tensor::threads::shards_for(local_range(B, rank, size).len());
    let reference_shards = reference_shards.unwrap_or(size * own_shards);
    let (schema, vocabs) = reference_schema();
    let data = random_dataset(steps * B, 1);
    let mut split = unwrap_or_abort(
        world,
        Teacher::new(TeacherConfig::default(), &schema, &vocabs),
    );
    let mut whole = split.clone();
    let layout = Layout::new(split.store());
    let (mut adam_split, mut adam_whole) = (Adam::new(1e-3), Adam::new(1e-3));
    for batch in data.batches(B, None, true) {
        let (local, rows) = local_gradients(&split, &batch, rank, size);
        let (summed, _, _) =
            unwrap_or_abort(world, sum_step(world, &layout, local, prescaled(rows)));
        let mut grads = summed.grads;
        if apply_step(
            split.store_mut(),
            &mut adam_split,
            summed.loss,
            &mut grads,
            None,
        )
        .is_err()
        {
            abort_with(world, &"a data-parallel step was not finite");
        }
        dmtl_tensor::threads::set_shards(Some(reference_shards));
        let one = whole.train_step(&mut adam_whole, &batch, None);
        dmtl_tensor::threads::set_shards(None);
        if one.non_finite().is_some() {
            abort_with(world, &"a single-process step was not finite");
        }
    }
    unwrap_or_abort(world, check_same_params(world, split.store()));
    let ((rel, name), (elem, elem_name)) = relative_differences(split.store(), whole.store());
    println!(
        "mpi_steps: rank {rank} of {size}: {steps} steps of {B} rows: largest relative \
         difference to one process {rel:.3e} (in {name}); largest entry difference over the \
         tensor's largest entry {elem:.3e} (in {elem_name})"
    );
    if !(rel < 1e-4) {
        abort_with(
            world,
            &format!("relative difference {rel:.3e} (in {name}) is not below 1e-4"),
        );
    }
}

/// The epoch loop over shares ([`Split::Shares`]): every rank trains the teacher on its own
/// round-robin share of `rows` random rows (of different sizes when the ranks do not divide
/// `rows`), one epoch of global batches of 1,024. The loop checks after the epoch that every
/// rank holds the same parameters; this prints the steps taken and the loss, which must be
/// the same on every rank.
fn check_shares(world: Rc<dyn Collective>, rows: usize) {
    let (rank, size) = (world.rank(), world.size());
    let (schema, vocabs) = reference_schema();
    let data = random_dataset(rows, 2).shard(rank, size);
    let mut teacher = unwrap_or_abort(
        &*world,
        Teacher::new(TeacherConfig::default(), &schema, &vocabs),
    );
    let opts = dmtl_train::TrainOptions {
        epochs: 1,
        batch_size: B,
        ..Default::default()
    };
    let _installed = dmtl_train::parallel::install(world.clone(), Split::Shares);
    let mut steps = 0;
    let hist = unwrap_or_abort(
        &*world,
        teacher.train_from(&data, None, &opts, None, |e| {
            if let dmtl_train::TrainEvent::Batch { .. } = e {
                steps += 1;
            }
        }),
    );
    let hash = unwrap_or_abort(&*world, check_same_params(&*world, teacher.store()));
    println!(
        "mpi_steps: rank {rank} of {size}: shares of {rows} rows ({} here): {steps} steps, \
         train loss {:.6}, parameters {hash:016x}",
        data.n_rows, hist.epochs[0].train_loss
    );
}

fn bench(world: Rc<dyn Collective>, steps: usize) {
    let (rank, size) = (world.rank(), world.size());
    let (schema, vocabs) = reference_schema();
    let data = random_dataset(64 * B, 1);
    let batches: Vec<_> = data.batches(B, None, true).collect();
    drop(data);
    let mut teacher = unwrap_or_abort(
        &*world,
        Teacher::new(TeacherConfig::default(), &schema, &vocabs),
    );
    let mut adam = Adam::new(1e-3);
    let mut dp = DataParallel::new(world.clone(), Split::Slices, teacher.store());
    let mut comm_at_start = 0.0;
    let mut t0 = Instant::now();
    for i in 0..WARMUP + steps {
        if i == WARMUP {
            unwrap_or_abort(&*world, world.barrier());
            comm_at_start = dp.comm_time().as_secs_f64();
            t0 = Instant::now();
        }
        let batch = &batches[i % batches.len()];
        if size == 1 {
            teacher.train_step(&mut adam, batch, None);
            continue;
        }
        let (local, rows) = local_gradients(&teacher, batch, rank, size);
        let (summed, _) = unwrap_or_abort(&*world, dp.sum_step(local, rows, rows as f64, true));
        let mut grads = summed.grads;
        if apply_step(
            teacher.store_mut(),
            &mut adam,
            summed.loss,
            &mut grads,
            None,
        )
        .is_err()
        {
            abort_with(&*world, &"a step was not finite");
        }
    }
    unwrap_or_abort(&*world, world.barrier());
    let secs = t0.elapsed().as_secs_f64();
    let comm = dp.comm_time().as_secs_f64() - comm_at_start;
    let (n, sent) = dp.sent();
    let per = |x: usize| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    if rank == 0 {
        println!(
            "{{\"ranks\": {size}, \"threads_per_rank\": {}, \"steps\": {steps}, \"global_batch\": {B}, \
             \"imp_per_s\": {:.0}, \"ms_per_step\": {:.3}, \"comm_share\": {:.4}, \
             \"reduced_bytes_per_step\": {:.0}, \"gathered_bytes_per_step\": {:.0}, \
             \"sparse_rows_per_step\": {:.1}}}",
            rayon::current_num_threads(),
            (steps * B) as f64 / secs,
            1e3 * secs / steps as f64,
            comm / secs,
            per(sent.reduced_bytes()),
            per(sent.gathered_bytes),
            per(sent.sparse_rows),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    dmtl_tensor::threads::init(None);
    let world: Rc<dyn Collective> = match dmtl_dist::world() {
        Ok(w) => Rc::from(w),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    if args.iter().any(|a| a == "--bench") {
        bench(world, arg(&args, "--steps").unwrap_or(200));
    } else if args.iter().any(|a| a == "--check-shares") {
        check_shares(world, arg(&args, "--rows").unwrap_or(10_000));
    } else if args.iter().any(|a| a == "--check") {
        check(
            &*world,
            arg(&args, "--steps").unwrap_or(50),
            arg(&args, "--reference-shards"),
        );
    } else {
        eprintln!(
            "usage: mpi_steps --check [--steps N] [--reference-shards S] | --check-shares \
             [--rows N] | --bench [--steps N]"
        );
        std::process::exit(2);
    }
}

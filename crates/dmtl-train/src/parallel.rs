//! Data-parallel training over the ranks of a job (`dmtl_dist`): every rank holds all
//! parameters and its own share of the training log, each global batch is split over the ranks,
//! and every step the ranks sum their gradients (one all-reduce of the dense ones, sparse
//! embedding rows all-gathered; [`dmtl_dist::sum_over_ranks`]) so that every rank applies the
//! same update and the parameters stay identical everywhere.
//!
//! The job's collective is installed once for the calling thread with [`install`] (the runner
//! does it when `mpirun` started it; MPI itself is one per process). While it is installed and
//! holds more than one rank, [`crate::epochs::run`] trains data-parallel:
//!
//! - each global batch of `batch_size` rows is split over the ranks (512 rows each of 1,024 on
//!   2 ranks): with [`Split::Slices`] every rank holds the whole training set and takes its
//!   block of each global batch, in the order one process trains on; with [`Split::Shares`]
//!   every rank holds its own share and takes batches of its part of `batch_size`
//!   ([`local_batch_size`]), and an epoch has as many steps as the rank with the most batches
//!   (a rank out of rows contributes nothing to the last steps);
//! - each rank's gradient (of the mean loss over its own rows) is weighted by its share of the
//!   step's rows, so the sum over ranks is the gradient of the global batch's mean loss, as one
//!   process at the global batch would compute it, up to summation order ([`sum_step`]);
//! - the loss and its parts travel in the same all-reduce, so the non-finite checks, the epoch's
//!   losses and the progress events are the same on every rank;
//! - rank 0 alone validates and writes the training state; its validation report is broadcast
//!   and early stopping decided from it on every rank alike;
//! - after every epoch the ranks check that their parameters hash alike
//!   ([`dmtl_dist::check_same_params`]).
//!
//! Without an installed collective, or with one of one rank, nothing of this runs and training
//! is bit for bit what it is in one process.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use dmtl_dist::{sum_over_ranks, Collective, DistError, ExchangeStats, Layout};
use dmtl_tensor::parallel::{shard_ranges, shares_of};
use dmtl_tensor::threads::MIN_SHARD_ROWS;
use dmtl_tensor::{Grads, ParamStore};

thread_local! {
    static WORLD: RefCell<Option<(Rc<dyn Collective>, Split)>> = const { RefCell::new(None) };
}

/// What the training source of each rank holds, and so how a global batch is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every rank's source is the whole training set, the same on every rank: the epoch's
    /// global batches come in the order one process would train on them, and each rank takes
    /// its block of rows of each ([`local_range`]). Two ranks then train exactly what one
    /// process with as many row shards trains (up to the order of sums; the same bits when each
    /// rank computes its block in one piece).
    Slices,
    /// Every rank's source is its own share of the training set (e.g. read with
    /// `ReadOptions::with_shard`): each rank takes batches of its share of the global batch size
    /// ([`local_batch_size`]) in its own shuffled order. Memory and reading scale with the ranks;
    /// the sample order differs from one process's.
    Shares,
}

/// Keeps a collective installed for the calling thread; the previous one (usually none) comes
/// back when it is dropped.
#[must_use = "the collective is uninstalled when the guard is dropped"]
pub struct WorldGuard {
    previous: Option<(Rc<dyn Collective>, Split)>,
}

impl Drop for WorldGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        WORLD.with(|w| *w.borrow_mut() = previous);
    }
}

/// Installs `coll` as the job's collective for the calling thread until the guard is dropped:
/// [`crate::epochs::run`] on this thread then trains data-parallel over its ranks, on training
/// sources that hold what `split` says.
pub fn install(coll: Rc<dyn Collective>, split: Split) -> WorldGuard {
    let previous = WORLD.with(|w| w.borrow_mut().replace((coll, split)));
    WorldGuard { previous }
}

/// The installed collective, when it holds more than one rank.
pub fn current() -> Option<Rc<dyn Collective>> {
    current_split().map(|(c, _)| c)
}

/// The installed collective, when it holds more than one rank, and how its ranks split the
/// training set.
pub fn current_split() -> Option<(Rc<dyn Collective>, Split)> {
    WORLD
        .with(|w| w.borrow().clone())
        .filter(|(c, _)| c.size() > 1)
}

/// This rank's part of a global batch of `batch_size` rows over `size` ranks: the rank's range
/// of [`shard_ranges`]`(batch_size, size)` (at least one row).
pub fn local_batch_size(batch_size: usize, rank: usize, size: usize) -> usize {
    shard_ranges(batch_size, size)
        .get(rank)
        .map_or(1, |r| r.len().max(1))
}

/// This rank's rows of a global batch of `n_rows` rows over `size` ranks: its block of
/// [`shard_ranges`]`(n_rows, blocks)`, with as many blocks as one process of `size` threads
/// splits the batch into (`size`, but none under [`MIN_SHARD_ROWS`] rows: a short last batch
/// goes to fewer ranks, the others get none), so that ranks of one thread each compute what
/// that process computes.
pub fn local_range(n_rows: usize, rank: usize, size: usize) -> Range<usize> {
    block_ranges(n_rows, size)
        .get(rank)
        .cloned()
        .unwrap_or(0..0)
}

/// The blocks a global batch of `n_rows` rows is split into over `size` ranks, by rank: as many
/// as one process of `size` threads splits it into, none under [`MIN_SHARD_ROWS`] rows (so
/// possibly fewer blocks than ranks). See [`local_range`].
pub fn block_ranges(n_rows: usize, size: usize) -> Vec<Range<usize>> {
    let blocks = size.min(n_rows / MIN_SHARD_ROWS).max(1);
    shard_ranges(n_rows, blocks)
}

/// One batch's loss, loss parts and gradients on one rank (or, after [`sum_step`], over the
/// global batch).
#[derive(Debug, Clone)]
pub struct Computed {
    /// The mean total loss over the batch's rows.
    pub loss: f32,
    /// The mean loss parts (see `Trainee::parts`).
    pub parts: Vec<f32>,
    /// The gradients of `loss`.
    pub grads: Grads,
}

impl Computed {
    /// What a rank without rows in a step contributes: no gradient, zero losses.
    pub fn empty(parts: usize) -> Computed {
        Computed {
            loss: 0.0,
            parts: vec![0.0; parts],
            grads: Grads::new(0),
        }
    }
}

/// The training loop's side of a data-parallel job: the collective, where each gradient goes in
/// the exchanged buffers, and the time spent communicating.
pub struct DataParallel {
    coll: Rc<dyn Collective>,
    split: Split,
    layout: Layout,
    comm: Duration,
    steps: u64,
    sent: ExchangeStats,
}

impl DataParallel {
    /// For the parameters of `store` (the same on every rank), on sources split as `split`.
    pub fn new(coll: Rc<dyn Collective>, split: Split, store: &ParamStore) -> DataParallel {
        DataParallel {
            coll,
            split,
            layout: Layout::new(store),
            comm: Duration::ZERO,
            steps: 0,
            sent: ExchangeStats::default(),
        }
    }

    /// The collective.
    pub fn coll(&self) -> &dyn Collective {
        &*self.coll
    }

    /// How the ranks split the training set.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The largest `local` over the ranks (one all-gather).
    ///
    /// # Errors
    /// What the collective returns.
    pub fn max_over_ranks(&self, local: usize) -> Result<usize, DistError> {
        let v = local as u64;
        let g = self.coll.all_gather_u32(&[v as u32, (v >> 32) as u32])?;
        Ok(g.parts()
            .map(|p| (u64::from(p[0]) | (u64::from(p[1]) << 32)) as usize)
            .max()
            .unwrap_or(0))
    }

    /// The sum over ranks of one step: every rank's `local` computed on its `rows` rows, whose
    /// loss is a mean with denominator `weight` (its rows, or the sum of their weights), each
    /// rank counting with its share of the step's total weight ([`shares_of`]). With
    /// `prescaled`, `local.grads` are already those of the rank's share of the loss (the rank
    /// knew its share before its backward pass, as with [`Split::Slices`]); otherwise they are
    /// scaled here. Returns the global batch's loss, parts and gradients (the same bits on
    /// every rank) and its rows.
    ///
    /// # Errors
    /// What the collective returns, and [`DistError::Layout`] when another rank's gradients do
    /// not fit this model.
    pub fn sum_step(
        &mut self,
        local: Computed,
        rows: usize,
        weight: f64,
        prescaled: bool,
    ) -> Result<(Computed, usize), DistError> {
        let start = Instant::now();
        let part = LocalPart {
            rows,
            weight,
            prescaled,
        };
        let out = sum_step(&*self.coll, &self.layout, local, part);
        self.comm += start.elapsed();
        let (summed, rows, stats) = out?;
        self.steps += 1;
        self.sent.reduced_floats += stats.reduced_floats;
        self.sent.sparse_rows += stats.sparse_rows;
        self.sent.gathered_bytes += stats.gathered_bytes;
        Ok((summed, rows))
    }

    /// Time spent in [`DataParallel::sum_step`] so far (waiting for the other ranks included).
    pub fn comm_time(&self) -> Duration {
        self.comm
    }

    /// Steps exchanged so far and what this rank sent over them.
    pub fn sent(&self) -> (u64, ExchangeStats) {
        (self.steps, self.sent)
    }
}

/// What one rank brings to a step besides its gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalPart {
    /// The rank's rows in the step (0 for a rank out of rows).
    pub rows: usize,
    /// The denominator of the rank's mean loss: its rows, or the sum of their weights for a
    /// weighted mean (0 for a rank out of rows).
    pub weight: f64,
    /// Whether the rank's gradients are already those of its share of the global loss.
    pub prescaled: bool,
}

/// The sum over the ranks of `coll` of one step, as [`DataParallel::sum_step`] computes it:
/// `local` (this rank's mean loss, parts and gradients over `part.rows` rows), its share
/// `shares_of(weights, rows)[rank]` of the global mean. One all-gather of every rank's rows,
/// weight, loss and parts (their bits), so the global loss and parts are summed in f64 in rank
/// order as one process sums its shards'; then [`sum_over_ranks`] of the gradients. Returns
/// the global step, its rows and what this rank sent.
///
/// # Errors
/// What the collective returns; [`DistError::Layout`] when another rank's gradients do not fit
/// `layout`.
pub fn sum_step<C: Collective + ?Sized>(
    coll: &C,
    layout: &Layout,
    local: Computed,
    part: LocalPart,
) -> Result<(Computed, usize, ExchangeStats), DistError> {
    let words = |x: u64| [x as u32, (x >> 32) as u32];
    let mut mine = Vec::with_capacity(5 + local.parts.len());
    mine.extend(words(part.rows as u64));
    mine.extend(words(part.weight.to_bits()));
    mine.push(local.loss.to_bits());
    mine.extend(local.parts.iter().map(|p| p.to_bits()));
    let all = coll.all_gather_u32(&mine)?;
    let word = |p: &[u32], i: usize| u64::from(p[i]) | (u64::from(p[i + 1]) << 32);
    let mut rows = Vec::with_capacity(coll.size());
    let mut weights = Vec::with_capacity(coll.size());
    for (from, p) in all.parts().enumerate() {
        if p.len() != mine.len() {
            return Err(DistError::Layout {
                rank: coll.rank(),
                from,
                reason: format!("{} step values, this rank has {}", p.len(), mine.len()),
            });
        }
        rows.push(word(p, 0) as usize);
        weights.push(f64::from_bits(word(p, 2)));
    }
    // A rank out of rows counts for nothing, whatever it sent as its weight.
    for (w, &r) in weights.iter_mut().zip(&rows) {
        if r == 0 {
            *w = 0.0;
        }
    }
    let shares = shares_of(&weights, &rows);
    // The global loss and parts: the shares' weighted sum in f64, in rank order.
    let mut values = vec![0.0f64; 1 + local.parts.len()];
    for (p, &share) in all.parts().zip(&shares) {
        for (acc, &bits) in values.iter_mut().zip(&p[4..]) {
            *acc += share * f64::from(f32::from_bits(bits));
        }
    }
    let scale = match (part.rows, part.prescaled) {
        (0, _) => 0.0,
        (_, true) => 1.0,
        (_, false) => shares[coll.rank()] as f32,
    };
    let summed = sum_over_ranks(coll, layout, &local.grads, scale, &[])?;
    let computed = Computed {
        loss: values[0] as f32,
        parts: values[1..].iter().map(|&v| v as f32).collect(),
        grads: summed.grads,
    };
    Ok((computed, rows.iter().sum(), summed.stats))
}

//! Micro-batching: requests arriving together share one run of the user tower and one search.
//!
//! One worker thread owns the computation. It takes the first job waiting, then every job
//! queued behind it, waiting up to the batching window for more while the batch is below its
//! row budget; the rows of all these jobs (of one model: jobs admitted before and after a
//! reload are never mixed) go through the user tower as one dataset, the retrieval rows
//! through one exact search for the largest `k` asked (the exact top-`k` is the first `k` of
//! the exact top-`k'` for `k' >= k`, ties broken by item row), and each job gets its rows back.
//! Under load the queue grows while a batch runs, so batches grow with load; an idle server
//! answers a lone request after at most the window.
//!
//! The computation uses the Rayon and BLAS pools of the process ([`dmtl_tensor::threads`]).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dmtl_data::{Dataset, RawLog};
use dmtl_student::retrieval::PAD_INDEX;
use dmtl_student::{Precision, StudentError};
use ndarray::{Array2, Axis};
use tokio::sync::oneshot;

use crate::model::ServedModel;

/// What to do with a job's user vectors.
#[derive(Debug)]
pub enum Task {
    /// Top-`k` of the corpus for every row, skipping the listed item rows of each.
    Retrieve {
        /// Items per row.
        k: Vec<usize>,
        /// Per row, item rows to skip.
        exclude: Vec<Vec<u32>>,
    },
    /// Scores of the listed item rows, per row.
    Score {
        /// Per row, the item rows to score.
        items: Vec<Vec<u32>>,
    },
}

/// The result of a job, one entry per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Per row, the item rows and their scores, best first.
    Retrieved(Vec<(Vec<u32>, Vec<f32>)>),
    /// Per row, the score of each item asked for.
    Scored(Vec<Vec<f32>>),
}

/// One request's work: its rows (user and context columns), the model it was admitted with,
/// and where to send the result.
#[derive(Debug)]
pub struct Job {
    /// The model to use (the one served when the request arrived).
    pub model: Arc<ServedModel>,
    /// The raw user rows.
    pub rows: RawLog,
    /// What to compute.
    pub task: Task,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<Output, Arc<StudentError>>>,
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// How long to wait for more jobs after the first one of a batch.
    pub window: Duration,
    /// Rows in a batch beyond which no more jobs are waited for (a job is never split).
    pub max_rows: usize,
    /// Jobs that may wait in the queue.
    pub queue: usize,
}

/// The sending side of the worker's queue; the worker stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: the server is overloaded.
    #[error("the batching queue is full")]
    Full,
    /// The worker has stopped (it never stops while a [`Batcher`] lives, so it panicked).
    #[error("the batching worker has stopped")]
    Gone,
}

impl Batcher {
    /// Starts the worker thread.
    pub fn start(opts: BatchOptions) -> Batcher {
        let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
        std::thread::Builder::new()
            .name("dmtl-serve-batch".into())
            .spawn(move || worker(rx, opts))
            .expect("a thread can be started");
        Batcher { tx }
    }

    /// Queues `job` without waiting.
    ///
    /// # Errors
    /// [`SubmitError`] when the queue is full or the worker has stopped.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => SubmitError::Full,
            mpsc::TrySendError::Disconnected(_) => SubmitError::Gone,
        })
    }
}

fn worker(rx: Receiver<Job>, opts: BatchOptions) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + opts.window;
        let mut rows = first.rows.n_rows;
        let mut jobs = vec![first];
        while rows < opts.max_rows {
            let next = match rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(j) => j,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            rows += next.rows.n_rows;
            jobs.push(next);
        }
        metrics::histogram!(crate::metrics::BATCH_ROWS).record(rows as f64);
        // One model per group, in arrival order.
        while !jobs.is_empty() {
            let model = jobs[0].model.clone();
            let (group, rest): (Vec<Job>, Vec<Job>) = jobs
                .into_iter()
                .partition(|j| Arc::ptr_eq(&j.model, &model));
            jobs = rest;
            run_group(&model, group);
        }
    }
}

/// Runs the jobs of one model as one batch and answers each.
fn run_group(model: &ServedModel, jobs: Vec<Job>) {
    let mut raw: Option<RawLog> = None;
    for j in &jobs {
        match &mut raw {
            None => raw = Some(j.rows.clone()),
            Some(r) => {
                if let Err(e) = r.append(j.rows.clone()) {
                    return answer_all(jobs, Err(Arc::new(e.into())));
                }
            }
        }
    }
    let Some(raw) = raw else { return };
    match compute(model, &raw, &jobs) {
        Ok(outs) => {
            for (j, o) in jobs.into_iter().zip(outs) {
                let _ = j.reply.send(Ok(o));
            }
        }
        Err(e) => answer_all(jobs, Err(Arc::new(e))),
    }
}

fn answer_all(jobs: Vec<Job>, r: Result<Output, Arc<StudentError>>) {
    for j in jobs {
        let _ = j.reply.send(r.clone());
    }
}

/// The user vectors of `rows` as `dmtl retrieve` computes them.
pub fn user_vectors(model: &ServedModel, raw: &RawLog) -> Result<Array2<f32>, StudentError> {
    let data = Dataset::encode(&model.schema, raw, &model.vocabs)?;
    let all: Vec<u32> = (0..data.n_rows as u32).collect();
    match model.precision {
        Precision::F32 => model.student.user_vectors(&data, &all),
        Precision::Bf16 => model
            .student
            .user_encoder(Precision::Bf16)?
            .user_vectors_batch(&data.batch(&all)),
    }
}

fn compute(model: &ServedModel, raw: &RawLog, jobs: &[Job]) -> Result<Vec<Output>, StudentError> {
    let u = user_vectors(model, raw)?;
    // Rows of each job in `u`, and the retrieval rows with their exclusions.
    let mut start = 0;
    let mut spans = Vec::with_capacity(jobs.len());
    let (mut q_rows, mut excl, mut kmax) = (Vec::new(), Vec::new(), 0);
    for j in jobs {
        let n = j.rows.n_rows;
        spans.push(start..start + n);
        if let Task::Retrieve { k, exclude } = &j.task {
            kmax = k.iter().fold(kmax, |a, &b| a.max(b));
            q_rows.extend(start..start + n);
            excl.extend(exclude.iter().cloned());
        }
        start += n;
    }
    let mut lists = Vec::new();
    if !q_rows.is_empty() {
        let q = u.select(Axis(0), &q_rows);
        let ex = excl
            .iter()
            .any(|e| !e.is_empty())
            .then_some(excl.as_slice());
        let top = model.index.search(q.view(), kmax, ex)?;
        lists = top
            .indices
            .outer_iter()
            .zip(top.scores.outer_iter())
            .map(|(ri, rs)| {
                let keep: Vec<usize> = (0..ri.len()).filter(|&j| ri[j] != PAD_INDEX).collect();
                (
                    keep.iter().map(|&j| ri[j]).collect::<Vec<u32>>(),
                    keep.iter().map(|&j| rs[j]).collect::<Vec<f32>>(),
                )
            })
            .collect::<Vec<_>>();
    }
    let items = model.index.items();
    let mut next_list = lists.into_iter();
    let mut outs = Vec::with_capacity(jobs.len());
    for (j, span) in jobs.iter().zip(spans) {
        outs.push(match &j.task {
            Task::Retrieve { k, .. } => Output::Retrieved(
                k.iter()
                    .map(|&k| {
                        let (mut ids, mut sc) = next_list.next().unwrap_or_default();
                        ids.truncate(k);
                        sc.truncate(k);
                        (ids, sc)
                    })
                    .collect(),
            ),
            Task::Score { items: asked } => Output::Scored(
                span.zip(asked)
                    .map(|(r, its)| {
                        its.iter()
                            .map(|&i| u.row(r).dot(&items.row(i as usize)))
                            .collect()
                    })
                    .collect(),
            ),
        });
    }
    Ok(outs)
}

//! Test support: a job of several ranks as threads of one process, and random gradients.

#![allow(dead_code)]

use std::sync::{Barrier, Mutex};

use dmtl_dist::{Collective, DistError, Gathered};
use dmtl_tensor::{Grads, Init, ParamId, ParamStore, SparseGrad};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The shared state of a job of `n` thread ranks.
pub struct Hub {
    n: usize,
    barrier: Barrier,
    f32s: Mutex<Vec<Vec<f32>>>,
    u32s: Mutex<Vec<Vec<u32>>>,
    bytes: Mutex<Vec<u8>>,
}

/// One thread rank of a [`Hub`].
pub struct ThreadRank<'h> {
    hub: &'h Hub,
    rank: usize,
}

impl Hub {
    /// A job of `n` ranks.
    pub fn new(n: usize) -> Hub {
        Hub {
            n,
            barrier: Barrier::new(n),
            f32s: Mutex::new(vec![Vec::new(); n]),
            u32s: Mutex::new(vec![Vec::new(); n]),
            bytes: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f(rank)` on `n` threads at once; the results by rank.
    pub fn run<T: Send, F>(n: usize, f: F) -> Vec<T>
    where
        F: Fn(&ThreadRank<'_>) -> T + Sync,
    {
        let hub = Hub::new(n);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|rank| {
                    let (hub, f) = (&hub, &f);
                    s.spawn(move || f(&ThreadRank { hub, rank }))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }
}

impl ThreadRank<'_> {
    fn gather<T: Clone>(&self, slots: &Mutex<Vec<Vec<T>>>, local: &[T]) -> Gathered<T> {
        slots.lock().unwrap()[self.rank] = local.to_vec();
        self.hub.barrier.wait();
        let parts = slots.lock().unwrap().clone();
        self.hub.barrier.wait();
        Gathered::from_parts(parts)
    }
}

impl Collective for ThreadRank<'_> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.hub.n
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<(), DistError> {
        let g = self.gather(&self.hub.f32s, buf);
        buf.fill(0.0);
        for part in g.parts() {
            buf.iter_mut().zip(part).for_each(|(a, &b)| *a += b);
        }
        Ok(())
    }

    fn all_gather_u32(&self, local: &[u32]) -> Result<Gathered<u32>, DistError> {
        Ok(self.gather(&self.hub.u32s, local))
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Gathered<f32>, DistError> {
        Ok(self.gather(&self.hub.f32s, local))
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<(), DistError> {
        if self.rank == 0 {
            *self.hub.bytes.lock().unwrap() = bytes.clone();
        }
        self.hub.barrier.wait();
        *bytes = self.hub.bytes.lock().unwrap().clone();
        self.hub.barrier.wait();
        Ok(())
    }

    fn barrier(&self) -> Result<(), DistError> {
        self.hub.barrier.wait();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        panic!("rank {} aborted with code {code}", self.rank)
    }
}

/// A store of two dense parameters and two embedding tables.
pub fn store() -> ParamStore {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut s = ParamStore::new();
    s.weight("a.weight", 3, 4, Init::XavierUniform, &mut rng);
    s.embedding("emb.user", 40, 3, Init::Normal(0.1), &mut rng);
    s.bias("a.bias", 4);
    s.embedding("emb.item", 25, 2, Init::Normal(0.1), &mut rng);
    s
}

/// Random gradients for `store()` from `seed`: every parameter may be missing, embedding
/// tables get random rows (a dense gradient for `emb.item` when `dense_table`).
pub fn grads(store: &ParamStore, seed: u64, dense_table: bool) -> Grads {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = Grads::new(store.len());
    for (id, p) in store.iter() {
        if rng.gen_bool(0.2) {
            continue;
        }
        let (rows, cols) = p.value.dim();
        let mut random = |r: usize| Array2::from_shape_fn((r, cols), |_| rng.gen_range(-1.0..1.0));
        if p.kind == dmtl_tensor::ParamKind::Dense || (dense_table && p.name == "emb.item") {
            g.accumulate_dense(id, random(rows));
        } else {
            let n = 1 + (seed as usize + id.0) % 9;
            let picked: Vec<u32> = (0..n)
                .map(|k| ((k * 7 + seed as usize) % rows) as u32)
                .collect();
            let v = random(n);
            g.accumulate_sparse(id, SparseGrad::coalesce(&picked, v.view()));
        }
    }
    g
}

/// The gradient of `id` as a dense matrix (zeros when missing).
pub fn dense_of(store: &ParamStore, g: &Grads, id: ParamId) -> Array2<f64> {
    let rows = store.get(id).value.nrows();
    match g.get(id) {
        None => Array2::zeros(store.get(id).value.dim()),
        Some(dmtl_tensor::Grad::Dense(d)) => d.mapv(f64::from),
        Some(dmtl_tensor::Grad::Sparse(s)) => s.to_dense(rows).mapv(f64::from),
    }
}

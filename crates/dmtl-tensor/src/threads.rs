//! The one place that decides how many threads BLAS and Rayon use.
//!
//! Both OpenBLAS and Rayon keep their own pool of worker threads. Run unchecked, a Rayon task
//! that calls a multi-threaded GEMM spawns `cores x cores` busy threads and everything slows
//! down. The policy of this crate: dense products run from the calling thread with BLAS using
//! all configured threads, element-wise work and gathers run on Rayon's pool of the same size,
//! and code that calls BLAS from inside Rayon tasks (blocked retrieval, say) wraps itself in
//! [`with_blas_threads`]`(1, ..)` so each task's GEMM stays on its own core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static CONFIGURED: OnceLock<usize> = OnceLock::new();
static BLAS_THREADS: AtomicUsize = AtomicUsize::new(0);

#[cfg(feature = "blas")]
extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn openblas_get_num_threads() -> std::os::raw::c_int;
}

/// Number of threads to use when nothing was configured: `DMTL_THREADS` if set, else the
/// number of cores the process may run on.
pub fn default_threads() -> usize {
    std::env::var("DMTL_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Configures Rayon's global pool and BLAS to use `n` threads each (`None`: [`default_threads`]).
///
/// Call it once, early, before any Rayon work. Later calls keep the first setting for Rayon
/// (its global pool cannot be rebuilt) but still set BLAS. Returns the thread count in force.
pub fn init(n: Option<usize>) -> usize {
    let n = n.filter(|&n| n > 0).unwrap_or_else(default_threads);
    let chosen = *CONFIGURED.get_or_init(|| {
        // Fails only when the global pool was already built (by an earlier Rayon call);
        // the pool then keeps its size, which we report.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
        rayon::current_num_threads()
    });
    set_blas_threads(n);
    keep_large_buffers_mapped();
    chosen
}

/// Stops glibc from returning every large buffer to the kernel.
///
/// By default glibc serves allocations above 128 KiB with a fresh `mmap` and unmaps them on
/// free, so every 1024 x 256 activation of every training step pays for page faults and zeroing
/// by the kernel. Raising the thresholds lets freed buffers be reused from the heap instead.
fn keep_large_buffers_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Sets how many threads one BLAS call may use (a no-op without the `blas` feature, where the
/// pure-Rust back-end follows Rayon).
pub fn set_blas_threads(n: usize) {
    let n = n.max(1);
    BLAS_THREADS.store(n, Ordering::SeqCst);
    #[cfg(feature = "blas")]
    // SAFETY: a plain setter exported by libopenblas; any positive count is valid.
    unsafe {
        openblas_set_num_threads(n as std::os::raw::c_int)
    };
}

/// How many threads one BLAS call uses now.
pub fn blas_threads() -> usize {
    #[cfg(feature = "blas")]
    {
        // SAFETY: a plain getter exported by libopenblas.
        (unsafe { openblas_get_num_threads() }).max(1) as usize
    }
    #[cfg(not(feature = "blas"))]
    {
        BLAS_THREADS.load(Ordering::SeqCst).max(1)
    }
}

/// Open [`with_blas_threads`] scopes, and the BLAS thread count to restore when the last ends.
static SCOPES: std::sync::Mutex<(usize, usize)> = std::sync::Mutex::new((0, 0));

/// Runs `f` with BLAS limited to `n` threads, restoring the count in force before once no such
/// scope is open any more (also when `f` panics).
///
/// Use it around code that issues GEMMs from several Rayon tasks at once. The BLAS thread count
/// is one setting for the whole process, so scopes opened at the same time from several threads
/// share it: the count of the scope opened last holds until the last one ends, and only then is
/// the count from before the first restored (a scope saving and restoring on its own would, when
/// two overlap, leave the process at the scope's count for good).
pub fn with_blas_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            let mut s = SCOPES.lock().unwrap_or_else(|e| e.into_inner());
            s.0 -= 1;
            if s.0 == 0 {
                set_blas_threads(s.1);
            }
        }
    }
    {
        let mut s = SCOPES.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 == 0 {
            s.1 = blas_threads();
        }
        s.0 += 1;
        set_blas_threads(n);
    }
    let _scope = Scope;
    f()
}

/// Fewest rows worth a shard of their own: below this, splitting costs more than it saves.
pub const MIN_SHARD_ROWS: usize = 128;

static SHARDS: AtomicUsize = AtomicUsize::new(0);

/// Fixes the number of data-parallel shards a training batch is split into
/// (see [`crate::parallel`]); `None` or 0 returns to the default of [`shards_for`].
pub fn set_shards(n: Option<usize>) {
    SHARDS.store(n.unwrap_or(0), Ordering::SeqCst);
}

/// How many shards a batch of `n_rows` rows is split into for one training step: the value of
/// [`set_shards`] or else of `DMTL_SHARDS` when set, else one per Rayon thread; never so many
/// that a shard has fewer than [`MIN_SHARD_ROWS`] rows, and at least one.
///
/// Depends only on the configuration, the thread count and `n_rows`, so training stays
/// reproducible for a given seed and thread count.
pub fn shards_for(n_rows: usize) -> usize {
    static FROM_ENV: OnceLock<usize> = OnceLock::new();
    let fixed = match SHARDS.load(Ordering::SeqCst) {
        0 => *FROM_ENV.get_or_init(|| {
            std::env::var("DMTL_SHARDS")
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(0)
        }),
        n => n,
    };
    let wanted = if fixed > 0 {
        fixed
    } else {
        rayon::current_num_threads()
    };
    wanted.min(n_rows / MIN_SHARD_ROWS).max(1)
}

/// Runs `f` on every `(index, row)` of `out`, spread over Rayon's pool when `parallel`.
pub(crate) fn for_each_row(
    out: &mut ndarray::Array2<f32>,
    parallel: bool,
    f: impl Fn((usize, ndarray::ArrayViewMut1<'_, f32>)) + Sync + Send,
) {
    if parallel {
        {
            use rayon::prelude::*;
            out.axis_iter_mut(ndarray::Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(f);
        }
    } else {
        out.axis_iter_mut(ndarray::Axis(0)).enumerate().for_each(f);
    }
}

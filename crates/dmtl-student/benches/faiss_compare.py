"""Faiss IndexFlatIP on the shapes of benches/retrieval.rs, for a side-by-side figure.

Exact top-100 by inner product of 1,024 standard normal query vectors of 64 floats against
200,000 and 1,000,000 item vectors, Faiss in its fast set-up (distance_compute_blas_threshold =
20, so a 1,024-query batch goes through BLAS). Prints one JSON line per corpus size: queries per
second (wall clock, median/max of the runs) and queries per CPU-second of this process, which
stays meaningful when other processes share the machine.

Usage: python3 faiss_compare.py [--threads 2] [--runs 5] [--nb 200000 1000000]
"""
import argparse
import json
import statistics
import time

import faiss
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--nb", type=int, nargs="*", default=[200_000, 1_000_000])
a = ap.parse_args()

faiss.omp_set_num_threads(a.threads)
faiss.cvar.distance_compute_blas_threshold = 20
D, NQ, K = 64, 1024, 100
rng = np.random.default_rng(0)
Q = rng.standard_normal((NQ, D), dtype=np.float32)
for nb in a.nb:
    X = rng.standard_normal((nb, D), dtype=np.float32)
    index = faiss.IndexFlatIP(D)
    index.add(X)
    index.search(Q, K)  # warm-up
    walls, cpus = [], []
    for _ in range(a.runs):
        c0, w0 = time.process_time(), time.perf_counter()
        index.search(Q, K)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    print(json.dumps(dict(
        items=nb, dim=D, queries=NQ, k=K, threads=a.threads, faiss=faiss.__version__,
        qps_median=round(NQ / statistics.median(walls)), qps_max=round(NQ / min(walls)),
        qps_per_cpu_s_median=round(NQ / statistics.median(cpus)),
    )), flush=True)
    del index, X

#!/usr/bin/env python3
"""Times pandas.read_csv on the CSV written by `cargo bench -p dmtl-data --bench ingest`.

Usage: python3 pandas_read_csv.py [path]   (default: $TMPDIR/dmtl-ingest-bench/ingest-200000.csv)
Reports rows per second, the median of 5 reads (as criterion reports medians) and the best,
for the default C parser and, if available, pyarrow's (multi-threaded).

What each side holds afterwards: pandas a DataFrame of 13 string columns (with pandas >= 3 and
pyarrow installed, Arrow-backed `str` columns: one byte buffer and offsets per column; before,
one Python string object per cell) plus int8 clicks and float32 durations, with the two tag
columns unsplit; dmtl a `RawLog` whose string columns are `StrColumn`s (one byte buffer and end
offsets per column, as Arrow), the tag columns split into tokens, f32 labels, every value
checked. Both read every column, and both
times include freeing the previous result (pandas frees it when `df` is reassigned).
"""
import os
import sys
import tempfile
import time

import pandas as pd

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    tempfile.gettempdir(), "dmtl-ingest-bench", "ingest-200000.csv")
# Ids are strings, as in the Rust reader; labels are numbers.
dtypes = {c: str for c in ["user_id", "age", "gender", "city", "user_tags", "hour", "network",
                           "item_id", "category", "sub_category", "author", "item_tags",
                           "length_bucket"]}
dtypes.update({"click": "int8", "duration": "float32"})


def timed(engine):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, engine=engine)
        times.append(time.perf_counter() - t)
    times.sort()
    return len(df), times[len(times) // 2], times[0]


head = pd.read_csv(path, nrows=1, dtype=dtypes, keep_default_na=False)
print(f"pandas {pd.__version__}, file {path}, string columns as {type(head['user_id'].array).__name__}")
for engine in ["c", "pyarrow"]:
    try:
        rows, t, t_best = timed(engine)
    except (ImportError, ValueError) as e:
        print(f"engine={engine}: unavailable ({e})")
        continue
    # `cargo xtask bench` reads the figure after the last `=`: the median.
    print(f"engine={engine}: {rows} rows, best {t_best * 1e3:.1f} ms ({rows / t_best:,.0f} rows/s), "
          f"median {t * 1e3:.1f} ms = {rows / t:,.0f} rows/s")
# Splitting the multi-hot columns, which the Rust reader does while reading:
df = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
t = time.perf_counter()
for c in ["user_tags", "item_tags"]:
    df[c].str.split("|")
print(f"plus splitting the two multi-hot columns: {(time.perf_counter() - t) * 1e3:.1f} ms")

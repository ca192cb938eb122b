#!/usr/bin/env python3
"""Times pandas.read_csv on the CSV written by `cargo bench -p dmtl-data --bench ingest`.

Usage: python3 pandas_read_csv.py [path]   (default: $TMPDIR/dmtl-ingest-bench/ingest-200000.csv)
Reports rows per second, best of 5, for the default C parser and, if available, pyarrow's.
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


def best(engine):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, engine=engine)
        times.append(time.perf_counter() - t)
    return len(df), min(times)


print(f"pandas {pd.__version__}, file {path}")
for engine in ["c", "pyarrow"]:
    try:
        rows, t = best(engine)
    except (ImportError, ValueError) as e:
        print(f"engine={engine}: unavailable ({e})")
        continue
    print(f"engine={engine}: {rows} rows in {t * 1e3:.1f} ms = {rows / t:,.0f} rows/s")
# Splitting the multi-hot columns, which the Rust reader does while reading:
df = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
t = time.perf_counter()
for c in ["user_tags", "item_tags"]:
    df[c].str.split("|")
print(f"plus splitting the two multi-hot columns: {(time.perf_counter() - t) * 1e3:.1f} ms")

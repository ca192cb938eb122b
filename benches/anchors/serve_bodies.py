"""Request bodies for the load figures of docs/serving.md: one JSON body per line, built from the
user table of a run folder (users.parquet: user and context columns), for `dmtl serve` and its
Python twin alike.

  python serve_bodies.py RUN --k 100 --batch 1  > single.jsonl
  python serve_bodies.py RUN --k 100 --batch 32 > batch32.jsonl

Needs: pip install pyarrow.
"""
import argparse, json, os, tomllib

import pyarrow.parquet as pq

p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("--k", type=int, default=100)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--bodies", type=int, default=2000)
a = p.parse_args()
with open(os.path.join(a.run, "schema.toml"), "rb") as f:
    schema = tomllib.load(f)
uid = schema["ids"]["user"]
cols = [c for c in schema["columns"] if c["side"] in ("user", "context")]
t = pq.read_table(os.path.join(a.run, "users.parquet")).to_pydict()
n = len(t[uid])


def request(r):
    feats, ctx = {}, {}
    for c in cols:
        if c["name"] == uid:
            continue
        v = t[c["name"]][r]
        if c["kind"] == "multi_hot" and isinstance(v, str):
            v = [x for x in v.split(c.get("separator", "|")) if x]
        (ctx if c["side"] == "context" else feats)[c["name"]] = v
    return {"user_id": t[uid][r], "features": feats, "context": ctx, "k": a.k}


for b in range(a.bodies):
    rows = [(b * a.batch + j) * 7919 % n for j in range(a.batch)]
    reqs = [request(r) for r in rows]
    print(json.dumps(reqs[0] if a.batch == 1 else reqs, separators=(",", ":")))

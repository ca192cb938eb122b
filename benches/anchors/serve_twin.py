"""The Python twin of `dmtl serve`, for the load comparison of docs/serving.md: what most teams
would write instead. FastAPI + uvicorn; the student's user tower in PyTorch with the run's own
weights (models/<model>/student.safetensors); Faiss IndexFlatIP over the item vectors that
`dmtl export` writes for the same run (item_vectors.npy, item_ids.npy).

The request and response bodies are those of `dmtl serve`'s POST /retrieve (one request object
or an array of them), so the same load-generator script drives both:
  {"user_id": "u1", "features": {"age": "3", ..., "user_tags": ["t1", "t2"]},
   "context": {"hour": "5", "network": "wifi"}, "k": 100, "exclude": ["i9"]}

  dmtl export --run RUN --out EXPORT
  DMTL_RUN=RUN DMTL_EXPORT=EXPORT OMP_NUM_THREADS=1 \
    uvicorn serve_twin:app --host 127.0.0.1 --port 8090 --workers 2 --no-access-log

Needs torch, faiss, fastapi, uvicorn and numpy (pip install torch faiss-cpu fastapi uvicorn; or on
Debian 12: apt-get install python3-torch python3-faiss python3-fastapi python3-uvicorn, which is
what docs/serving.md measured with, PyPI's torch wheels needing the CUDA libraries).
Categorical and multi-hot columns with token vocabularies, dense columns, dot or cosine
similarity; hashed vocabularies are not handled (the reference workload has none).
"""
import json
import os
import tomllib
from typing import Any, Dict, List, Optional, Union

import faiss
import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel


def load_file(path):
    """The tensors of a safetensors file (8-byte header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=types[t["dtype"]]).reshape(t["shape"]).copy()
    return out

torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
faiss.omp_set_num_threads(int(os.environ.get("FAISS_THREADS", "1")))

RUN = os.environ["DMTL_RUN"]
EXPORT = os.environ["DMTL_EXPORT"]
MODEL = os.environ.get("DMTL_MODEL", "dmtl")


class UserTower(torch.nn.Module):
    """Field embeddings (multi-hot mean-pooled, zeros for an empty bag) concatenated in schema
    order, then Linear-ReLU ... Linear, as dmtl-student's user tower."""

    def __init__(self, run: str, model: str):
        super().__init__()
        with open(os.path.join(run, "schema.toml"), "rb") as f:
            self.schema = tomllib.load(f)
        with open(os.path.join(run, "vocab.json")) as f:
            vocab = {c["name"]: c for c in json.load(f)["columns"]}
        mdir = os.path.join(run, "models", model)
        with open(os.path.join(mdir, "student.toml"), "rb") as f:
            self.config = tomllib.load(f)
        w = load_file(os.path.join(mdir, "student.safetensors"))
        self.user_id = self.schema["ids"]["user"]
        self.columns = [c for c in self.schema["columns"] if c["side"] in ("user", "context")]
        self.index = {}
        self.tables = torch.nn.ParameterDict()
        for c in self.columns:
            if c["kind"] == "dense":
                continue
            toks = vocab[c["name"]].get("tokens")
            if toks is None:
                raise SystemExit(f"column {c['name']}: hashed vocabularies are not handled")
            self.index[c["name"]] = {t: i + 1 for i, t in enumerate(toks)}  # 0: out of vocabulary
            self.tables[c["name"]] = torch.nn.Parameter(
                torch.from_numpy(w[f"student.user_tower.embedding.{c['name']}"]), requires_grad=False)
        self.layers = torch.nn.ModuleList()
        i = 0
        while f"student.user_tower.layer.{i}.weight" in w:
            wt = torch.from_numpy(w[f"student.user_tower.layer.{i}.weight"])
            lin = torch.nn.Linear(wt.shape[1], wt.shape[0])
            lin.weight.data = wt
            lin.bias.data = torch.from_numpy(w[f"student.user_tower.layer.{i}.bias"])
            self.layers.append(lin)
            i += 1
        sim = self.config.get("similarity", {"type": "dot"})
        self.cosine_t = sim.get("temperature") if sim.get("type") == "cosine" else None

    def encode(self, reqs: List["RetrieveRequest"]) -> torch.Tensor:
        parts = []
        for c in self.columns:
            name, kind = c["name"], c["kind"]
            if kind == "dense":
                parts.append(torch.tensor([[float(r.features.get(name) if c["side"] == "user"
                                                  else r.context.get(name))] for r in reqs]))
                continue
            table, idx = self.tables[name], self.index[name]
            values = [r.user_id if name == self.user_id else
                      (r.features if c["side"] == "user" else r.context)[name] for r in reqs]
            if kind == "categorical":
                ids = torch.tensor([idx.get(str(v), 0) for v in values])
                parts.append(table[ids])
            else:
                sep = c.get("separator", "|")
                rows = []
                for v in values:
                    toks = [t for t in (v.split(sep) if isinstance(v, str) else v) if t]
                    ids = torch.tensor([idx.get(t, 0) for t in toks], dtype=torch.long)
                    rows.append(table[ids].mean(0) if len(toks) else torch.zeros(table.shape[1]))
                parts.append(torch.stack(rows))
        h = torch.cat(parts, dim=1)
        for j, lin in enumerate(self.layers):
            h = lin(h)
            if j + 1 < len(self.layers):
                h = torch.relu(h)
        if self.cosine_t is not None:
            h = torch.nn.functional.normalize(h, dim=1) / self.cosine_t
        return h


class RetrieveRequest(BaseModel):
    user_id: str
    features: Dict[str, Any] = {}
    context: Dict[str, Any] = {}
    k: int
    exclude: List[str] = []
    model: Optional[str] = None


tower = UserTower(RUN, MODEL)
items = np.ascontiguousarray(np.load(os.path.join(EXPORT, "item_vectors.npy")), dtype=np.float32)
item_ids = [str(x) for x in np.load(os.path.join(EXPORT, "item_ids.npy"))]
row_of = {x: i for i, x in enumerate(item_ids)}
index = faiss.IndexFlatIP(items.shape[1])
index.add(items)
app = FastAPI()


def answer(reqs: List[RetrieveRequest]) -> List[dict]:
    with torch.inference_mode():
        u = tower.encode(reqs).numpy()
    kmax = max(r.k + len(r.exclude) for r in reqs)
    scores, rows = index.search(np.ascontiguousarray(u, dtype=np.float32), kmax)
    out = []
    for r, s, ix in zip(reqs, scores, rows):
        ex = {row_of[x] for x in r.exclude if x in row_of}
        keep = [(i, v) for i, v in zip(ix, s) if i >= 0 and i not in ex][: r.k]
        out.append({"user_id": r.user_id,
                    "known_user": r.user_id in tower.index[tower.user_id],
                    "items": [{"id": item_ids[i], "score": float(v)} for i, v in keep],
                    "model": MODEL, "version": 1})
    return out


@app.post("/retrieve")
def retrieve(body: Union[List[RetrieveRequest], RetrieveRequest]):
    if isinstance(body, list):
        return answer(body)
    return answer([body])[0]


@app.get("/health")
def health():
    return {"status": "ok", "items": len(item_ids)}

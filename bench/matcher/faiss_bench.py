#!/usr/bin/python3
"""FAISS side of bench/matcher: IndexFlatIP (float exact; also writes the ground truth
gt.i32 the Go side scores recall against), IndexHNSWFlat and IndexIVFFlat on the same
base.f32/queries.f32, with the same thread count. Run with Debian's /usr/bin/python3
(python3-faiss, python3-numpy). Writes faiss.json."""
import json
import os
import sys
import time

import numpy as np
import faiss

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vigil-bench-matcher"
GT_ONLY = len(sys.argv) > 2 and sys.argv[2] == "gt-only"
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
K, BATCH = 10, 32
faiss.omp_set_num_threads(THREADS)


def read_f32(path):
    hdr = np.fromfile(path, dtype=np.int32, count=2)
    return np.fromfile(path, dtype=np.float32, offset=8).reshape(int(hdr[0]), int(hdr[1]))


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


xb = read_f32(os.path.join(DIR, "base.f32"))
xq = read_f32(os.path.join(DIR, "queries.f32"))
nb, d = xb.shape
nq = xq.shape[0]
out = {"faiss_version": faiss.__version__, "numpy_version": np.__version__, "threads": THREADS,
       "omp_max_threads": faiss.omp_get_max_threads(), "results": [], "memory": {}, "build_seconds": {},
       "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}
try:
    from threadpoolctl import threadpool_info
    out["threadpool_info"] = threadpool_info()
except Exception as e:  # not installed: say so
    out["threadpool_info"] = "threadpoolctl unavailable: %s" % e
gt = None


def recall(I):
    hits = 0
    for i in range(nq):
        hits += len(set(I[i].tolist()) & set(gt[i].tolist()))
    return hits / (K * nq)


def recall1(I):
    return sum(1 for i in range(nq) if I[i][0] == gt[i][0]) / nq


def measure(index, name, param, batch):
    lat = []
    Is = []
    t0 = time.perf_counter()
    for lo in range(0, nq, batch):
        s = time.perf_counter()
        _, I = index.search(xq[lo:lo + batch], K)
        lat.append(time.perf_counter() - s)
        Is.append(I)
    total = time.perf_counter() - t0
    I = np.vstack(Is)
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    r = {"name": name, "param": param, "batch": batch, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
         "qps": nq / total, "recall_at_10": recall(I) if gt is not None else 1.0,
         "recall_at_1": recall1(I) if gt is not None else 1.0}
    print("%-22s %-12s batch %-3d p50 %8.3f ms  p99 %8.3f ms  QPS %8.1f  recall@10 %.4f" %
          (name, param, batch, r["p50_ms"], r["p99_ms"], r["qps"], r["recall_at_10"]), flush=True)
    out["results"].append(r)
    return I


print("FAISS %s, numpy %s, %d threads, nb=%d d=%d nq=%d" % (faiss.__version__, np.__version__, THREADS, nb, d, nq), flush=True)

# Exact, float32: the ground truth.
m0 = rss()
t = time.perf_counter()
flat = faiss.IndexFlatIP(d)
flat.add(xb)
out["build_seconds"]["IndexFlatIP"] = time.perf_counter() - t
out["memory"]["IndexFlatIP"] = rss() - m0
_, gt = flat.search(xq, K)
g = np.asarray(gt, dtype=np.int32)
with open(os.path.join(DIR, "gt.i32"), "wb") as f:
    np.array([nq, K], dtype=np.int32).tofile(f)
    g.tofile(f)
if GT_ONLY:
    sys.exit(0)
measure(flat, "warmup", "", BATCH)
out["results"].clear()
for b in (1, BATCH):
    measure(flat, "faiss IndexFlatIP", "", b)
del flat

# IVF, float32 lists.
nlist = int(os.environ.get("BENCH_NLIST", "1000"))
m0 = rss()
t = time.perf_counter()
quant = faiss.IndexFlatIP(d)
ivf = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
rng = np.random.default_rng(1)
ivf.train(xb[rng.choice(nb, size=min(nb, 64 * nlist), replace=False)])
ivf.add(xb)
out["build_seconds"]["IndexIVFFlat"] = time.perf_counter() - t
out["memory"]["IndexIVFFlat"] = rss() - m0
for nprobe in (8, 16, 32, 48, 64, 128, 256, 384):
    ivf.nprobe = nprobe
    for b in (1, BATCH):
        measure(ivf, "faiss IndexIVFFlat", "nprobe=%d" % nprobe, b)
del ivf, quant

# HNSW, float32.
M = int(os.environ.get("BENCH_HNSW_M", "32"))
# The graph takes long to build on 2 cores, so it is kept beside the data and reused
# by later runs on the same data (its build time is then the one recorded first).
hnsw_path = os.path.join(DIR, "hnsw_M%d.faiss" % M)
m0 = rss()
t = time.perf_counter()
if os.path.exists(hnsw_path):
    hnsw = faiss.read_index(hnsw_path)
    with open(hnsw_path + ".build_seconds") as f:
        out["build_seconds"]["IndexHNSWFlat"] = float(f.read())
else:
    hnsw = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(xb)
    out["build_seconds"]["IndexHNSWFlat"] = time.perf_counter() - t
    faiss.write_index(hnsw, hnsw_path)
    with open(hnsw_path + ".build_seconds", "w") as f:
        f.write(str(out["build_seconds"]["IndexHNSWFlat"]))
out["memory"]["IndexHNSWFlat"] = rss() - m0
print("HNSW M=%d built in %.1fs" % (M, out["build_seconds"]["IndexHNSWFlat"]), flush=True)
for ef in (16, 32, 64, 128, 256):
    hnsw.hnsw.efSearch = ef
    for b in (1, BATCH):
        measure(hnsw, "faiss IndexHNSWFlat", "efSearch=%d" % ef, b)

out["raw_bytes"] = int(xb.nbytes)
with open(os.path.join(DIR, "faiss.json"), "w") as f:
    json.dump(out, f, indent=2)

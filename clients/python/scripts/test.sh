#!/usr/bin/env bash
# The Python client's checks: stubs up to date with proto/, mypy --strict, a wheel and an sdist
# that twine accepts, a clean install into a fresh venv, and pytest against the real
# ferry-server binary (FERRY_SERVER_BIN, default: the workspace's debug build).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"

PYTHON=${PYTHON:-python3}
tools=${FERRY_PYTHON_VENV:-$HOME/.cache/ferry-python-tools}
if ! "$tools/bin/python" -c 'import grpc_tools, mypy, pytest, build, twine' >/dev/null 2>&1 \
   || ! cmp -s "$here/requirements-dev.txt" "$tools/requirements-dev.txt"; then
  echo "installing the Python client's tools into $tools"
  rm -rf "$tools"
  "$PYTHON" -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"
  cp "$here/requirements-dev.txt" "$tools/requirements-dev.txt"
fi

cd "$here"
"$tools/bin/python" scripts/generate.py --check
"$tools/bin/mypy" src/ferry_client tests examples

dist=$(mktemp -d)
fresh=$(mktemp -d)
trap 'rm -rf "$dist" "$fresh"' EXIT
"$tools/bin/python" -m build --quiet --outdir "$dist" . >/dev/null
"$tools/bin/twine" check --strict "$dist"/*
# What a feature team does: pip install into a fresh venv (deps from the index), then import.
"$PYTHON" -m venv "$fresh"
"$fresh/bin/pip" install --quiet --disable-pip-version-check "$dist"/*.whl pytest==9.2.0
"$fresh/bin/python" -c 'import ferry_client; print("installed ferry-client", ferry_client.__version__)'

export FERRY_SERVER_BIN=${FERRY_SERVER_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/ferry-server}
# Run the tests against the installed wheel, not the source tree.
cd tests/.. && "$fresh/bin/python" -m pytest -q -p no:cacheprovider --import-mode=importlib tests

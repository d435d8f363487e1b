#!/usr/bin/env bash
# The project's test command: formatting, lints, policy and deployment checks, every Rust test
# in the workspace, then the Python and TypeScript clients' checks and tests.
# Integration tests start their own servers (Ferry on 127.0.0.1:0, moto for S3,
# fake-gcs-server, PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
scripts/check-version.sh
# buf lint, and buf breaking against the newest release tag.
scripts/check-proto.sh
# The server's modules import only along the layers ARCHITECTURE.md draws.
python3 scripts/check-layers.py
cargo clippy --workspace --all-targets --locked -- -D warnings
# The allow/deny cases in policies/tests must hold for the shipped policies.
cargo run --quiet --locked --bin ferry-server -- check-policies --policy-dir policies
# Kubernetes manifests, Terraform and the Dockerfile: render, schema-validate, checkov.
deploy/validate.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
# The clients against the ferry-server binary the step above built.
export FERRY_SERVER_BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/ferry-server
clients/python/scripts/test.sh 2>&1 | tee -a "$log"
clients/typescript/scripts/test.sh 2>&1 | tee -a "$log"
# One closing line for everything (cargo prints one per test binary, pytest one of its own).
awk '/^test result:/ || /^[0-9]+ (passed|failed)/ || /^=+ .*(passed|failed).* =+$/ {
       for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^# pass [0-9]+$/ { p += $3 }
     /^# fail [0-9]+$/ { f += $3 }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"

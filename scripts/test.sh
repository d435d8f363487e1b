#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test in the workspace.
# Integration tests start their own servers (Ferry on 127.0.0.1:0, moto for S3).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

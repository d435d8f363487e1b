#!/usr/bin/env bash
# The TypeScript client's checks: locked install from npm, generated code current with proto/,
# tsc --strict, and node's test runner against the real ferry-server binary (FERRY_SERVER_BIN,
# default: the workspace's debug build).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
export PATH="$here/node_modules/.bin:$PATH"

# npm ci would refuse this lockfile: it holds only the platforms this registry mirror serves.
# Versions are exact in package.json, so npm install resolves the same tree.
npm install --no-audit --no-fund --loglevel=error
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
buf generate ../../proto --template buf.gen.yaml --output "$fresh"
buf generate proto --template buf.gen.yaml --output "$fresh"
if ! diff -r "$fresh/src/gen" src/gen >/dev/null; then
  echo "clients/typescript/src/gen is stale: run npm run generate" >&2
  exit 1
fi
echo "clients/typescript/src/gen matches proto/"
tsc --noEmit
node --import tsx --test test/*.test.ts

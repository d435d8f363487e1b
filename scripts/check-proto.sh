#!/usr/bin/env bash
# The API contract: `buf lint` on proto/, and `buf breaking` against the newest release tag
# (v*), so ferry.v1 never breaks its released clients. buf comes from npm (@bufbuild/buf).
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
tools=${FERRY_BUF_DIR:-$HOME/.cache/ferry-buf}
buf="$tools/node_modules/.bin/buf"
if [ "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]; then
  echo "installing @bufbuild/buf@$BUF_VERSION into $tools"
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" "@bufbuild/buf@$BUF_VERSION"
fi

(cd proto && "$buf" lint)
echo "buf lint: ferry.v1 passes"

release=$(git tag --list 'v*' --sort=-version:refname | head -1)
if [ -n "$release" ]; then
  (cd proto && "$buf" breaking --against "../.git#tag=$release,subdir=proto")
  echo "buf breaking: no breaking change since $release"
else
  # No release yet, so nothing is promised; the check starts with the first v* tag.
  echo "buf breaking: no release tag (v*) yet, nothing to compare against"
fi

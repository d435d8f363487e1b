#!/usr/bin/env bash
# One version for the server, the CLI and every crate: [workspace.package] version in
# Cargo.toml. Fails when a member declares its own, or when CHANGELOG.md has no section for the
# workspace version or [Unreleased].
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "no [workspace.package] version in Cargo.toml" >&2; exit 1; }
status=0
for manifest in proto/Cargo.toml server/Cargo.toml clients/cli/Cargo.toml tools/*/Cargo.toml; do
  if ! grep -q '^version.workspace = true' "$manifest"; then
    echo "$manifest: set version.workspace = true (the one version is $version)" >&2
    status=1
  fi
done
python_version=$(sed -n 's/^version = "\(.*\)"/\1/p' clients/python/pyproject.toml)
python_module=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' clients/python/src/ferry_client/__init__.py)
typescript_version=$(sed -n 's/^  "version": "\(.*\)",/\1/p' clients/typescript/package.json)
for other in "clients/python/pyproject.toml:$python_version" "ferry_client.__version__:$python_module" \
             "clients/typescript/package.json:$typescript_version"; do
  if [ "${other##*:}" != "$version" ]; then
    echo "${other%:*} is ${other##*:}, the workspace is $version" >&2
    status=1
  fi
done
if ! grep -Eq "^## \[($version|Unreleased)\]" CHANGELOG.md; then
  echo "CHANGELOG.md: no section for $version or [Unreleased]" >&2
  status=1
fi
[ $status -eq 0 ] && echo "version $version: one version across the workspace"
exit $status

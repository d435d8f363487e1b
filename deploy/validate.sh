#!/usr/bin/env bash
# Validates deploy/ with what runs without a cloud account or a cluster:
#   1. the policies ConfigMap matches policies/ (deploy/tools/sync_policies.py --check);
#   2. every Kustomize overlay renders, and the result validates against the Kubernetes 1.32
#      schemas (kubernetes-validate --strict);
#   3. checkov on the Terraform, the Dockerfile, the rendered manifests and the GitHub workflows,
#      with no failed check: each skipped check carries its reason next to the resource.
# That deploy/kubernetes/base/ferry.toml loads with the server's config schema is a Rust test
# (config::tests). Terraform itself (plan, validate) needs the terraform binary and providers,
# which this machine cannot download; checkov parses the HCL instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${FERRY_DEPLOY_VENV:-$HOME/.cache/ferry-deploy-venv}
PYTHON=${PYTHON:-python3}
if ! "$VENV/bin/checkov" --version >/dev/null 2>&1 || ! "$VENV/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  echo "installing checkov==3.3.30 and kubernetes-validate==1.37.0 into $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check checkov==3.3.30 kubernetes-validate==1.37.0
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "installing kubectl (Debian's kubernetes-client) for kubectl kustomize"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq kubernetes-client >/dev/null
fi

"$PYTHON" deploy/tools/sync_policies.py --check

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for overlay in dev prod; do
  kubectl kustomize "deploy/kubernetes/overlays/$overlay" 2>/dev/null >"$rendered/$overlay.yaml"
  "$VENV/bin/kubernetes-validate" --strict --quiet -k 1.32.0 "$rendered/$overlay.yaml"
  echo "deploy/kubernetes/overlays/$overlay: $(grep -c '^kind:' "$rendered/$overlay.yaml") resources render and validate"
done

checkov() {
  # --skip-download: no network to the vendor's API here; the checks ship in the package.
  "$VENV/bin/checkov" --quiet --compact --skip-download "$@"
}
checkov --framework terraform -d deploy/terraform
checkov --framework dockerfile -f deploy/Dockerfile
checkov --framework kubernetes -d "$rendered"
# The release and CI workflows publish artifacts: least-privilege tokens, no injection.
checkov --framework github_actions -d .github/workflows
echo "deploy/: kustomize, kubernetes-validate and checkov passed"

#!/usr/bin/env bash
# Validates the shipping files with the tools that read them: the compose
# file with docker-compose (installed by tests/deps.sh), the Helm chart with
# helm (not in Debian: skipped when absent), the systemd units with
# systemd-analyze (skipped when absent). That every `atoll ... --flag` in
# them exists is checked by `go test ./cmd/atoll -run TestDeploy`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v docker-compose >/dev/null 2>&1 || { echo "deploy-check: docker-compose is missing (tests/deps.sh installs it)" >&2; exit 1; }
docker-compose -f docker-compose.yml config -q
echo "deploy-check: docker-compose.yml is valid ($(docker-compose version --short 2>/dev/null || echo docker-compose))"

if command -v helm >/dev/null 2>&1; then
  for values in deploy/helm/atoll/ci/*-values.yaml; do
    helm lint --quiet deploy/helm/atoll -f "$values" >/dev/null
    helm template atoll deploy/helm/atoll -f "$values" >/dev/null
  done
  echo "deploy-check: the Helm chart lints and renders with each of deploy/helm/atoll/ci/*-values.yaml"
else
  echo "deploy-check: helm is not on PATH: chart not rendered (its atoll flags are still checked by go test)"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify wants each ExecStart binary to exist: check copies that run
  # /bin/true instead. It reports unknown keys on standard error but exits 0.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for unit in deploy/systemd/*.service; do
    sed 's#/usr/local/bin/atoll#/bin/true#' "$unit" >"$tmp/$(basename "$unit")"
  done
  out=$(cd "$tmp" && systemd-analyze verify --man=no ./*.service 2>&1) || { echo "$out" >&2; exit 1; }
  if grep -q 'atoll-' <<<"$out"; then
    echo "deploy-check: systemd-analyze verify found problems in deploy/systemd:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "deploy-check: the systemd units verify"
else
  echo "deploy-check: systemd-analyze is not on PATH: units not verified"
fi

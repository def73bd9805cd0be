#!/usr/bin/env bash
# Installs, on a fresh Debian machine, what the test suite needs and the
# machine may lack: PostgreSQL's server binaries (the tests start private
# servers from them) and the unprivileged `postgres` account they run under
# when the tests run as root. Go modules come through the Go module proxy
# when `go test` builds.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

packages=()
have_postgres || packages+=(postgresql)
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  packages+=(postgresql-common) # creates the postgres account
fi

if [ ${#packages[@]} -gt 0 ]; then
  echo "tests/deps.sh: installing ${packages[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # The tests start their own servers: do not let the package create and
  # start a cluster of its own.
  $sudo mkdir -p /etc/postgresql-common
  echo 'create_main_cluster = false' | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

have_postgres || { echo "tests/deps.sh: PostgreSQL server binaries are still missing" >&2; exit 1; }
command -v go >/dev/null 2>&1 || { echo "tests/deps.sh: Go is not on PATH (expected at /usr/local/go/bin)" >&2; exit 1; }

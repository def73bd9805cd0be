#!/usr/bin/env bash
# Installs, on a fresh Debian machine, what the test suite needs and the
# machine may lack: PostgreSQL's server binaries (the tests start private
# servers from them), the unprivileged `postgres` account they run under
# when the tests run as root, docker-compose (tests/deploy-check.sh
# validates docker-compose.yml with it; no Docker engine needed),
# Chromium with a font for the console's browser tests, iproute2 for
# the partition test's network namespaces, and runc for the oci driver. Go modules come
# through the Go module proxy when `go test` builds.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "tests/deps.sh: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

if ! have_postgres; then
  echo "tests/deps.sh: installing postgresql"
  # The tests start their own servers: the package must not create and
  # start a cluster of its own. Leave an existing configuration alone.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    as_root mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  apt_install postgresql
fi
have_postgres || { echo "tests/deps.sh: PostgreSQL server binaries are still missing" >&2; exit 1; }

# initdb refuses root: as root, the tests run PostgreSQL as `postgres`.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "tests/deps.sh: creating the postgres account"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "tests/deps.sh: installing docker-compose"
  apt_install docker-compose
fi
command -v docker-compose >/dev/null 2>&1 || { echo "tests/deps.sh: docker-compose is still missing" >&2; exit 1; }

# The console's browser tests drive Debian's headless Chromium.
have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}
if ! have_chromium || ! compgen -G '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf' >/dev/null; then
  echo "tests/deps.sh: installing chromium"
  apt_install chromium fonts-dejavu-core
fi
have_chromium || { echo "tests/deps.sh: chromium is still missing" >&2; exit 1; }

# The partition test cuts a member off over a veth pair between network
# namespaces (`ip netns`, `ip link`).
if ! command -v ip >/dev/null 2>&1; then
  echo "tests/deps.sh: installing iproute2"
  apt_install iproute2
fi
command -v ip >/dev/null 2>&1 || { echo "tests/deps.sh: ip (iproute2) is still missing" >&2; exit 1; }

# The oci driver's tests run containers with runc (Debian's package; crun
# refuses this kernel's hybrid cgroup layout).
have_runc() {
  command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ]
}
if ! have_runc; then
  echo "tests/deps.sh: installing runc"
  apt_install runc
fi
have_runc || { echo "tests/deps.sh: runc is still missing" >&2; exit 1; }

command -v go >/dev/null 2>&1 || { echo "tests/deps.sh: Go is not on PATH (expected at /usr/local/go/bin)" >&2; exit 1; }

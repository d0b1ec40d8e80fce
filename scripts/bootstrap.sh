#!/usr/bin/env bash
# Installs what Urok needs on a Debian machine: Debian packages (when missing,
# via apt-get as root), a virtualenv in .venv and the project in it.
# Usage: scripts/bootstrap.sh [serve|test]
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-serve}"

need_pkgs=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
python_ok() {
  have_cmd python3 && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
python_ok || need_pkgs+=(python3 python3-venv python3-pip)
# The recorder writes names on video tiles: a font with Cyrillic.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
if [ "$mode" = test ]; then
  have_cmd chromium || need_pkgs+=(chromium)
  have_cmd redis-server || need_pkgs+=(redis-server)
  { have_cmd ip && have_cmd tc; } || need_pkgs+=(iproute2)
  # Emulated home links in the tests (bench/links.py): random loss, counters.
  have_cmd nft || need_pkgs+=(nftables)
  have_cmd unshare || need_pkgs+=(util-linux)
  # The reverse proxy of docs/deploy/nginx.conf, run by tests/browser/test_deploy_nginx.py
  # (the package's system service is not needed: the test starts its own nginx).
  [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
  # systemd-analyze verify checks docs/deploy/urok.service (tests/test_deploy_files.py).
  have_cmd systemd-analyze || need_pkgs+=(systemd)
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have_cmd apt-get; then
    echo "urok: installing Debian packages: ${need_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "urok: please install these Debian packages first: ${need_pkgs[*]}" >&2
    echo "      sudo apt-get install ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

extras=""
[ "$mode" = test ] && extras="[test]"
stamp=".venv/.installed${extras}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Reinstall only when the project definition changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extras}"
  touch "$stamp"
fi

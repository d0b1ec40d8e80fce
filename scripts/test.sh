#!/usr/bin/env bash
# Runs the whole Urok test suite (installs what it needs first): lint, type
# check, then pytest inside a network namespace of its own with only loopback
# up, so browsers and WebRTC peers can only ever talk over 127.0.0.1.
# Extra arguments go to pytest (then one plain run; without, the suite runs in two
# halves side by side: scripts/pytest_halves.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/mypy sfu recording breakout rooms signalling bench examples
export PYTHONDONTWRITEBYTECODE=1
pytest=(scripts/pytest_halves.sh "$@")
if [ "$(id -u)" = 0 ]; then
  exec unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn -- sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}"
else
  echo "urok: cannot create a network namespace (run as root for the browser tests)" >&2
  exit 1
fi

#!/usr/bin/env bash
# Runs the whole Urok test suite (installs what it needs first): lint, type
# check, then pytest inside a network namespace of its own with only loopback
# up, so browsers and WebRTC peers can only ever talk over 127.0.0.1.
# Extra arguments go to pytest. One serial pytest run: on a 2-core machine the two
# halves side by side (UROK_TEST_HALVES=1: scripts/pytest_halves.sh) are faster but
# starve timing-bound tests (docs/testing.md "How long the suite takes").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/mypy sfu recording breakout rooms signalling bench examples
export PYTHONDONTWRITEBYTECODE=1
if [ "${UROK_TEST_HALVES:-0}" = 1 ]; then
  pytest=(scripts/pytest_halves.sh "$@")
else
  pytest=(.venv/bin/python -m pytest -p no:cacheprovider --durations=30 "$@")
fi
if [ "$(id -u)" = 0 ]; then
  exec unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn -- sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}"
else
  echo "urok: cannot create a network namespace (run as root for the browser tests)" >&2
  exit 1
fi

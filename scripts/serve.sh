#!/usr/bin/env bash
# Runs the Urok server with its embedded defaults and the demo journal at
# http://127.0.0.1:8080/ (installs what it needs first). Extra arguments go
# to `urok serve` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh serve
exec .venv/bin/urok serve "$@"

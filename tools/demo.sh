#!/usr/bin/env bash
# The demo in one command (creates .venv first if it is missing):
#   bash tools/demo.sh [--fresh] [--out work_dirs/demo]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" tools/demo.py "$@"

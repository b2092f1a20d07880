#!/usr/bin/env bash
# Run the test suite (creates .venv first if it is missing). Extra arguments go to pytest:
#   bash tools/run_tests.sh                 # everything, ~15-18 min on 2 cores
#   bash tools/run_tests.sh -m "not slow"   # unit tests only, ~1 min
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -q -ra "$@"

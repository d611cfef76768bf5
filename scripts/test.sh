#!/usr/bin/env bash
# The whole check: lint, types, testdata up to date, and the test suite against a real registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check inspector tests scripts bench
echo "== mypy" && mypy
echo "== testdata" && python -m tests.harness.make_testdata --check
echo "== pytest" && python -m pytest -q "$@"

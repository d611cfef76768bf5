#!/usr/bin/env bash
# Start a throwaway local registry, push the sample caches from testdata/, show them and explain one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m scripts.demo "$@"

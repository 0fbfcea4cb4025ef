#!/usr/bin/env bash
# Issue #7's bounded load test: 50 Staff users for 60 s against gunicorn (DEBUG off) and a
# throwaway PostgreSQL holding seed_demo's 100,000 persons, loopback only. Prints JSON;
# exits non-zero on any failed request, a p95 of 500 ms or more, or a lost edit.
#
#   bench/load_test.sh                      # the test as the issue states it
#   bench/load_test.sh --gunicorn sync:3:1 --gunicorn gthread:2:4   # compare server settings
#   bench/load_test.sh --help               # every option (users, duration, think time, ports, ...)
#
# Everything it starts (PostgreSQL cluster under /tmp, gunicorn, locust) it stops itself.
# The first run seeds with seed_demo (slow); later runs restore its pg_dump, cached under
# /tmp/relocation-bench-cache and keyed by the migrations and the demo code.
# See docs/load-and-faults.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "No .venv: run 'make install-dev' first." >&2
  exit 2
fi
if ! .venv/bin/python -c "import locust" 2>/dev/null; then
  echo "locust is not installed in .venv: run 'make load-test', which installs" >&2
  echo "requirements-bench.txt (a tool for this load test only, not a dependency of the app)." >&2
  exit 2
fi
exec .venv/bin/python bench/load/run_load.py "$@"

#!/usr/bin/env bash
# The README's test command: creates the environment if needed, then runs every test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# Two workers match CI's two cores; extra arguments go to pytest.
exec python -m pytest -n "${PYTEST_WORKERS:-2}" --durations=15 "$@"

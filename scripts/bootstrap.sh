# Sourced by scripts/run and scripts/test: create .venv and install Vigil into it.
# The dependencies come from requirements-dev.lock (every transitive one pinned, hashes
# checked; ./scripts/lock regenerates it from pyproject.toml), then Vigil itself, editable,
# with --no-deps: nothing is resolved here, so every machine runs the same versions.
# Idempotent: reinstalls only when pyproject.toml or the lock changed since the last install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))'; then
  echo "Vigil needs Python 3.11–3.13; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=..." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.vigil-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-dev.lock -nt "$stamp" ]
then
  echo "==> installing dependencies into .venv (requirements-dev.lock)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r requirements-dev.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

#!/usr/bin/env bash
# Runs every test: the Rust workspace (store stories on SQLite, and on PostgreSQL when
# REKEY_TEST_POSTGRES_URL is set) and the outside-client tests in tests/external (Python
# venv created here). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust tests. nextest when installed, cargo test otherwise.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# Outside clients (authlib, requests-oauthlib, PyJWT) against the real binary.
cargo build --locked -p rekey-cli
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/external/requirements.txt
REKEY_BIN="$PWD/target/debug/rekey" .venv/bin/python -m pytest -q -p no:cacheprovider tests/external

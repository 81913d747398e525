#!/usr/bin/env bash
# Runs every test: the Rust workspace (store stories on SQLite, and on PostgreSQL when
# REKEY_TEST_POSTGRES_URL is set), end-to-end SQS tests against a moto server started here,
# and the outside-client tests in tests/external. Creates its Python venv (.venv) itself.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Outside clients (authlib, requests-oauthlib, PyJWT, boto3) and the SQS-compatible server.
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/external/requirements.txt

# axe-core for the console's accessibility checks (the browser is Debian's Chromium).
npm ci --prefix tests/external --no-audit --no-fund --loglevel=error

# promtool (checks deploy/prometheus): Debian's prometheus package, unpacked under target/tools
# without installing its server.
if ! command -v promtool >/dev/null && [ ! -x target/tools/usr/bin/promtool ]; then
  mkdir -p target/tools
  (cd target/tools && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; } && dpkg-deb -x prometheus_*.deb . && rm prometheus_*.deb)
fi

# AWS settings for everything started below: fake credentials for moto, and never the
# instance metadata service (it is not on loopback).
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

moto_port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$moto_port/" && break
  sleep 0.1
done
export REKEY_TEST_SQS_ENDPOINT="http://127.0.0.1:$moto_port"
export REKEY_TEST_PYTHON="$PWD/.venv/bin/python"

# Rust tests. nextest when installed, cargo test otherwise.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# The real binary, driven by outside clients.
cargo build --locked -p rekey-cli
REKEY_BIN="$PWD/target/debug/rekey" .venv/bin/python -m pytest -q -p no:cacheprovider tests/external

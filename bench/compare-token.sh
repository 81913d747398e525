#!/usr/bin/env bash
# Paired rounds: the token endpoint of two builds (say, a git worktree of an earlier
# commit and the working tree), on one seeded SQLite database (copied for each run), server on
# core 0, wrk on core 1. ROUNDS and DURATION (s) set the rounds; BENCH_RUST_LOG the log level
# (default warn; info adds the access log). BEFORE_ENV and AFTER_ENV add settings to one side
# (e.g. AFTER_ENV=REKEY_METRICS_LISTEN=127.0.0.1:0 with the same binary on both sides).
# BEFORE_KIND and AFTER_KIND=baseline run that side's `rekey-bench-baseline` (the lean
# reference) instead of `rekey serve`; CONC sets wrk's connections (16).
set -euo pipefail
cd "$(dirname "$0")/.."
# Usage: bench/compare-token.sh BEFORE_BIN_DIR AFTER_BIN_DIR (each with rekey, rekey-bench-seed)
BEFORE=${1:?before bin dir} AFTER=${2:?after bin dir}
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mkdir -p "$WORK/seed"
creds=$("$AFTER/rekey-bench-seed" "sqlite://$WORK/seed/rekey.db?mode=rwc" "$WORK/seed" 1000)
ID=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
SECRET=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')
AUTH=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)
run() { # bin label env kind(rekey|baseline)
  rm -rf "$WORK/d"; cp -r "$WORK/seed" "$WORK/d"
  local p; p=$(port)
  if [ "$4" = baseline ]; then
    taskset -c 0 "$1/rekey-bench-baseline" "127.0.0.1:$p" "$ID" "$SECRET" > "$WORK/$2.log" 2>&1 &
  else
    env $3 REKEY_DATA_DIR="$WORK/d" REKEY_LISTEN="127.0.0.1:$p" REKEY_ROLE=api REKEY_SHUTDOWN_DRAIN_SECONDS=0 REKEY_AUTH_FAILURES_PER_ADDRESS=1000000 RUST_LOG="${BENCH_RUST_LOG:-warn}" \
      taskset -c 0 "$1/rekey" serve > "$WORK/$2.log" 2>&1 &
  fi
  local pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
  BENCH_AUTH="$AUTH" taskset -c 1 wrk -t2 -c${CONC:-16} -d1s -s bench/token.lua "http://127.0.0.1:$p/oauth2/token" > /dev/null
  local b; b=$(cpu_ticks $pid)
  local out; out=$(BENCH_AUTH="$AUTH" taskset -c 1 wrk -t2 -c${CONC:-16} -d${DURATION}s -s bench/token.lua "http://127.0.0.1:$p/oauth2/token")
  local a; a=$(cpu_ticks $pid)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$out" | awk -v name="$2" -v cpu=$((a - b)) -v hz="$(getconf CLK_TCK)" '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%s rps=%.0f p99=%.2fms cpu/req=%.1fus errors=%d\n", name, (v["requests"]-v["errors"])/(v["duration_us"]/1e6), v["p99_us"]/1000, (cpu/hz)*1e6/v["requests"], v["errors"] }'
}
for r in $(seq 1 "$ROUNDS"); do
  run "$BEFORE" "before" "${BEFORE_ENV:-}" "${BEFORE_KIND:-rekey}"
  run "$AFTER" "after" "${AFTER_ENV:-}" "${AFTER_KIND:-rekey}"
done

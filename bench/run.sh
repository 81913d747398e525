#!/usr/bin/env bash
# The benchmark harness (see BENCHMARKS.md). One command:
#   bench/run.sh            full run (10 s per measurement)
#   bench/run.sh --quick    a seconds-long smoke run of the main scenario
# Builds release binaries, installs wrk (Debian) if missing, then measures on 127.0.0.1 only:
# the bare baseline token server and Rekey's /oauth2/token on SQLite (1k and 1M apps) and on
# PostgreSQL (when REKEY_BENCH_POSTGRES_URL is set), server pinned to core 0 and wrk to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=false
[ "${1:-}" = "--quick" ] && QUICK=true
DURATION=${BENCH_DURATION:-10}
$QUICK && DURATION=2
BIG_APPS=${BENCH_BIG_APPS:-1000000}

if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release --locked -p rekey-cli -p rekey-bench >&2
BIN="$PWD/target/release"
WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # url
  for _ in $(seq 1 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "server at $1 did not start" >&2; return 1
}

start_rekey() { # data dir, database url ("" for SQLite in the data dir)
  local p; p=$(port)
  REKEY_DATA_DIR="$1" REKEY_DATABASE_URL="$2" REKEY_LISTEN="127.0.0.1:$p" REKEY_ROLE=api \
    REKEY_AUTH_FAILURES_PER_ADDRESS=1000000 RUST_LOG=warn \
    taskset -c 0 "$BIN/rekey" serve > "$1.log" 2>&1 &
  SERVER_PID=$!
  URL="http://127.0.0.1:$p"
  wait_ready "$URL/readyz"
}

start_baseline() { # client id, secret
  local p; p=$(port)
  taskset -c 0 "$BIN/rekey-bench-baseline" "127.0.0.1:$p" "$1" "$2" > "$WORK/baseline.log" 2>&1 &
  SERVER_PID=$!
  URL="http://127.0.0.1:$p"
  for _ in $(seq 1 300); do curl -s -o /dev/null "$URL/" && break; sleep 0.1; done
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME CONCURRENCY AUTH_MODE(basic|form) ID SECRET -> one result line
measure() {
  local name=$1 conc=$2 mode=$3 id=$4 secret=$5 auth="" form=""
  if [ "$mode" = basic ]; then auth=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
  else form="grant_type=client_credentials&client_id=$id&client_secret=$secret"; fi
  # Warm up, then measure.
  BENCH_AUTH="$auth" BENCH_FORM="$form" taskset -c 1 wrk -t2 -c"$conc" -d1s -s bench/token.lua "$URL/oauth2/token" >/dev/null
  local before after hz; before=$(cpu_ticks "$SERVER_PID"); hz=$(getconf CLK_TCK)
  local out; out=$(BENCH_AUTH="$auth" BENCH_FORM="$form" taskset -c 1 wrk -t2 -c"$conc" -d"${DURATION}s" -s bench/token.lua "$URL/oauth2/token")
  after=$(cpu_ticks "$SERVER_PID")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  echo "$out" | awk -v name="$name" -v conc="$conc" -v mode="$mode" -v cpu=$((after - before)) -v hz="$hz" -v rss="$rss" '
    /^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      rps = v["requests"] / (v["duration_us"] / 1e6)
      printf "%-28s c=%s %s rps=%.0f p50=%.2fms p99=%.2fms p99.9=%.2fms cpu/req=%.1fus rss=%.0fMB errors=%d\n",
        name, conc, mode, rps, v["p50_us"]/1000, v["p99_us"]/1000, v["p999_us"]/1000,
        (cpu / hz) * 1e6 / v["requests"], rss / 1024, v["errors"]
    }'
}

ratio() { # label, rekey line, baseline line
  awk -v label="$1" -v a="$2" -v b="$3" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    for (i in x) if (x[i] ~ /^rps=/) { sub("rps=", "", x[i]); ra = x[i] }
    for (i in y) if (y[i] ~ /^rps=/) { sub("rps=", "", y[i]); rb = y[i] }
    for (i in x) if (x[i] ~ /^p99=/) { t = x[i]; sub("p99=", "", t); sub("ms", "", t); pa = t }
    for (i in y) if (y[i] ~ /^p99=/) { t = y[i]; sub("p99=", "", t); sub("ms", "", t); pb = t }
    printf "RATIO %-40s throughput %.2f of baseline, p99 %.2fx baseline\n", label, ra / rb, pa / pb }'
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); duration ${DURATION}s per run"

# Rekey on SQLite with 1k apps.
mkdir -p "$WORK/small"
CREDS=$("$BIN/rekey-bench-seed" "sqlite://$WORK/small/rekey.db?mode=rwc" "$WORK/small" 1000)
ID=$(echo "$CREDS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
SECRET=$(echo "$CREDS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')

CONCS="16 64"
$QUICK && CONCS="16"

start_baseline "$ID" "$SECRET"
declare -A BASE
for c in $CONCS; do
  BASE[$c]=$(measure baseline "$c" basic "$ID" "$SECRET"); echo "${BASE[$c]}"
done
stop_server

start_rekey "$WORK/small" ""
declare -A SMALL
for c in $CONCS; do
  SMALL[$c]=$(measure "rekey sqlite 1k apps" "$c" basic "$ID" "$SECRET"); echo "${SMALL[$c]}"
  ratio "sqlite 1k apps c=$c basic" "${SMALL[$c]}" "${BASE[$c]}"
done
if ! $QUICK; then
  FORM=$(measure "rekey sqlite 1k apps" 64 form "$ID" "$SECRET"); echo "$FORM"
  ratio "sqlite 1k apps c=64 form" "$FORM" "${BASE[64]}"
fi
stop_server
$QUICK && exit 0

# Rekey on SQLite with many apps.
mkdir -p "$WORK/big"
SEED_START=$(date +%s)
CREDS=$("$BIN/rekey-bench-seed" "sqlite://$WORK/big/rekey.db?mode=rwc" "$WORK/big" "$BIG_APPS")
echo "# seeded $BIG_APPS apps in $(( $(date +%s) - SEED_START )) s"
ID2=$(echo "$CREDS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
SECRET2=$(echo "$CREDS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')
START_MS=$(date +%s%3N)
start_rekey "$WORK/big" ""
echo "# start-up with $BIG_APPS apps: $(( $(date +%s%3N) - START_MS )) ms to ready, RSS $(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$SERVER_PID/status)"
BIG=$(measure "rekey sqlite ${BIG_APPS} apps" 64 basic "$ID2" "$SECRET2"); echo "$BIG"
ratio "sqlite ${BIG_APPS} apps c=64 vs 1k apps" "$BIG" "${SMALL[64]}"
stop_server

# Rekey on PostgreSQL.
if [ -n "${REKEY_BENCH_POSTGRES_URL:-}" ]; then
  mkdir -p "$WORK/pg"
  SCHEMA="rekey_bench_$(date +%s)"
  psql "$REKEY_BENCH_POSTGRES_URL" -qc "CREATE SCHEMA $SCHEMA" >/dev/null
  PGURL="$REKEY_BENCH_POSTGRES_URL?options[search_path]=$SCHEMA"
  CREDS=$("$BIN/rekey-bench-seed" "$PGURL" "$WORK/pg" 1000)
  ID3=$(echo "$CREDS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
  SECRET3=$(echo "$CREDS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')
  start_rekey "$WORK/pg" "$PGURL"
  PG=$(measure "rekey postgres 1k apps" 64 basic "$ID3" "$SECRET3"); echo "$PG"
  ratio "postgres 1k apps c=64 basic" "$PG" "${BASE[64]}"
  stop_server
  psql "$REKEY_BENCH_POSTGRES_URL" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null
fi

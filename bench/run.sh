#!/usr/bin/env bash
# The benchmark harness (see BENCHMARKS.md). One command:
#   bench/run.sh            full run (10 s per measurement)
#   bench/run.sh --quick    a short run: main token scenario, small rotation scenarios
#   bench/run.sh --smoke    as --quick on debug binaries, seconds long (CI keeps it from rotting)
# Builds binaries, installs wrk (Debian) if missing, then measures on 127.0.0.1 only: the lean
# reference token server (rekey-bench-baseline) and Rekey's /oauth2/token on SQLite (1k and 1M
# apps, with and without the client cache) and on PostgreSQL (when REKEY_BENCH_POSTGRES_URL is
# set), server pinned to core 0 and wrk to core 1; the cold path (100,000 clients in random
# order, cache entries that live 1 s); sustained rotation with delivery to the spool
# (rekey-bench-delivery, both stores); NOTIFY at commit against a notification sent after
# it (pgbench) and one to three nodes on one PostgreSQL database; console pages with 10,000
# apps (bench/console.py); a rotation-policy pass over 100,000 apps (rekey-bench-policy);
# then rotation throughput, rotation-to-delivery latency (moto SQS and a webhook) and the
# kill -9 fault run (bench/rotation.py).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

QUICK=false
PROFILE=release
case "${1:-}" in
  --quick) QUICK=true ;;
  --smoke) QUICK=true; PROFILE=debug ;;
esac
DURATION=${BENCH_DURATION:-10}
REPS=${BENCH_REPS:-3}
$QUICK && DURATION=2 && REPS=1
[ "$PROFILE" = debug ] && DURATION=1
BIG_APPS=${BENCH_BIG_APPS:-1000000}

# Tools: wrk comes from Debian (installed here when missing, which needs root); the rest is
# expected on the machine.
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "wrk is missing: apt-get install wrk (as root)" >&2; exit 1; fi
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
for tool in curl taskset python3 awk; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "python3 venv is missing (apt-get install python3-venv)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "# warning: fewer than 2 cores; server and load generator share one" >&2
if [ -n "${REKEY_BENCH_POSTGRES_URL:-}" ] && ! command -v psql >/dev/null; then
  echo "psql is missing (needed with REKEY_BENCH_POSTGRES_URL)" >&2; exit 1
fi
if [ "$PROFILE" = release ]; then
  cargo build --release --locked -p rekey-cli -p rekey-bench >&2
else
  cargo build --locked -p rekey-cli -p rekey-bench >&2
fi
BIN="$PWD/target/$PROFILE"
WORK=$(mktemp -d)
SERVER_PID=
# Servers start inside $(...) subshells, so their pids go to a file that cleanup reads; the
# PostgreSQL schemas made for the run are listed in another.
cleanup() {
  [ -f "$WORK/pids" ] && xargs -r kill 2>/dev/null < "$WORK/pids" || true
  if [ -f "$WORK/schemas" ]; then
    while read -r s; do
      psql "$REKEY_BENCH_POSTGRES_URL" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
    done < "$WORK/schemas"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A run with errors still prints its line, then fails the harness at the end.
failed() { echo "FAILED: $*" >&2; touch "$WORK/failed"; }
finish() { [ -e "$WORK/failed" ] && exit 1; exit 0; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # url
  for _ in $(seq 1 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "server at $1 did not start" >&2; return 1
}

# start_rekey DATA_DIR DATABASE_URL ("" for SQLite in the data dir) CACHE_CAPACITY LOG_LEVEL
# ROLE (default api) and EXTRA_ENV (more settings, "K=V K=V") change the node.
start_rekey() {
  local p; p=$(port)
  # shellcheck disable=SC2086 # EXTRA_ENV is a list of settings
  env ${EXTRA_ENV:-} REKEY_DATA_DIR="$1" REKEY_DATABASE_URL="$2" REKEY_LISTEN="127.0.0.1:$p" REKEY_ROLE="${ROLE:-api}" \
    REKEY_PUBLIC_URL="http://127.0.0.1:$p" \
    REKEY_SHUTDOWN_DRAIN_SECONDS=0 \
    REKEY_CLIENT_CACHE_CAPACITY="${3:-100000}" \
    REKEY_AUTH_FAILURES_PER_ADDRESS=1000000 RUST_LOG="${4:-warn}" \
    taskset -c 0 "$BIN/rekey" serve > "$1.log" 2>&1 &
  SERVER_PID=$!
  echo "$SERVER_PID" >> "$WORK/pids"
  URL="http://127.0.0.1:$p"
  wait_ready "$URL/readyz"
}

start_baseline() { # client id, secret
  local p; p=$(port)
  taskset -c 0 "$BIN/rekey-bench-baseline" "127.0.0.1:$p" "$1" "$2" > "$WORK/baseline.log" 2>&1 &
  SERVER_PID=$!
  echo "$SERVER_PID" >> "$WORK/pids"
  URL="http://127.0.0.1:$p"
  for _ in $(seq 1 300); do curl -s -o /dev/null "$URL/" && return 0; sleep 0.1; done
  echo "the baseline server did not start" >&2; return 1
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The machine's CPU ticks in all and stolen by the hypervisor ("total steal"): a VM whose
# host is busy loses time it cannot see as its own load, so long runs report the share.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat; }
steal_share() { # ticks before ("total steal"), after
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    t = y[1] - x[1]; share = 0; if (t > 0) share = 100 * (y[2] - x[2]) / t; printf "%.0f%%", share }'
}

# measure NAME CONCURRENCY AUTH_MODE(basic|form) ID SECRET -> one result line
# TOKEN_SCRIPT (default bench/token.lua, one client) picks the wrk script.
measure() {
  local name=$1 conc=$2 mode=$3 id=$4 secret=$5 auth="" form=""
  if [ "$mode" = basic ]; then auth=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
  else form="grant_type=client_credentials&client_id=$id&client_secret=$secret"; fi
  # Warm up, then measure.
  local script=${TOKEN_SCRIPT:-bench/token.lua}
  BENCH_AUTH="$auth" BENCH_FORM="$form" taskset -c 1 wrk -t2 -c"$conc" -d1s -s "$script" "$URL/oauth2/token" >/dev/null
  local before after hz; before=$(cpu_ticks "$SERVER_PID"); hz=$(getconf CLK_TCK)
  local out; out=$(BENCH_AUTH="$auth" BENCH_FORM="$form" taskset -c 1 wrk -t2 -c"$conc" -d"${DURATION}s" -s "$script" "$URL/oauth2/token")
  after=$(cpu_ticks "$SERVER_PID")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  echo "$out" | awk -v name="$name" -v conc="$conc" -v mode="$mode" -v cpu=$((after - before)) -v hz="$hz" -v rss="$rss" '
    /^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      rps = (v["requests"] - v["errors"]) / (v["duration_us"] / 1e6)
      printf "%-30s c=%s %s rps=%.0f p50=%.2fms p99=%.2fms p99.9=%.2fms cpu/req=%.1fus rss=%.0fMB errors=%d\n",
        name, conc, mode, rps, v["p50_us"]/1000, v["p99_us"]/1000, v["p999_us"]/1000,
        (cpu / hz) * 1e6 / v["requests"], rss / 1024, v["errors"]
    }'
}

# The value of KEY in a result line, without its unit.
field() { echo "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { sub("ms|us|MB", "", $2); print $2 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
quotient() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }

# This machine is noisy: each comparison is REPS rounds of "A, then B" back to back, and the
# RATIO line gives the median of the per-round ratios (and the median throughputs).
# compare LABEL CONC MODE ID SECRET A_KIND A_DIR A_DB A_CACHE B_KIND B_DIR B_DB B_CACHE
#   KIND is "baseline" or "rekey"; B is the one the ratio is of (B / A).
compare() {
  local label=$1 conc=$2 mode=$3 id=$4 secret=$5 tr="" pr="" ar="" br="" a b
  for _ in $(seq 1 "$REPS"); do
    a=$(run_one "$6" "$7" "$8" "$9" "$conc" "$mode" "$id" "$secret")
    b=$(run_one "${10}" "${11}" "${12}" "${13}" "$conc" "$mode" "$id" "$secret")
    echo "$a"; echo "$b"
    ar+="$(field rps "$a")"$'\n'; br+="$(field rps "$b")"$'\n'
    tr+="$(quotient "$(field rps "$b")" "$(field rps "$a")")"$'\n'
    pr+="$(quotient "$(field p99 "$b")" "$(field p99 "$a")")"$'\n'
  done
  printf "RATIO %-46s throughput %.2f, p99 %.2fx (medians of %s rounds: %.0f vs %.0f tokens/s)\n" \
    "$label" "$(printf %s "$tr" | median)" "$(printf %s "$pr" | median)" "$REPS" \
    "$(printf %s "$br" | median)" "$(printf %s "$ar" | median)"
}

run_one() { # KIND DIR DB CACHE CONC MODE ID SECRET -> one result line
  local line
  if [ "$1" = baseline ]; then
    start_baseline "$7" "$8"
    line=$(measure baseline "$5" "$6" "$7" "$8")
  else
    start_rekey "$2" "$3" "$4"
    local name="rekey $(basename "$2")"
    [ "$4" = 0 ] && name="$name no-cache"
    line=$(measure "$name" "$5" "$6" "$7" "$8")
  fi
  stop_server
  [ "$(field errors "$line")" = 0 ] || failed "requests failed: $line"
  echo "$line"
}


echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); ${DURATION}s per run, ${REPS} rounds per comparison"

seed() { # database url, data dir, apps, [credentials file] -> sets ID, SECRET and API_TOKEN
  local creds; creds=$("$BIN/rekey-bench-seed" "$@")
  ID=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
  SECRET=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')
  API_TOKEN=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiToken"])')
}

# A fresh PostgreSQL schema for one scenario (dropped at exit) -> sets PGURL.
pg_schema() {
  local schema; schema="rekey_bench_$(date +%s%N)"
  psql "$REKEY_BENCH_POSTGRES_URL" -qc "CREATE SCHEMA $schema" >/dev/null
  echo "$schema" >> "$WORK/schemas"
  local sep='?'; case "$REKEY_BENCH_POSTGRES_URL" in *\?*) sep='&' ;; esac
  PGURL="$REKEY_BENCH_POSTGRES_URL${sep}options[search_path]=$schema"
}

# The cold path (issue 16): APPS clients in random order (bench/token-many.lua) with client-cache
# entries that live 1 s, so that nearly every request misses the cache, against one cached client
# on the same database. The COLD line is the median ratio of CPU per token (cold / cached).
cold_path() { # store label, data dir, database url ("" for SQLite), apps
  local label=$1 dir=$2 db=$3 apps=$4 cr="" a b
  mkdir -p "$dir"
  seed "${db:-sqlite://$dir/rekey.db?mode=rwc}" "$dir" "$apps" "$dir/credentials.txt"
  for _ in $(seq 1 "$REPS"); do
    start_rekey "$dir" "$db" 100000
    a=$(measure "rekey $label cached" 64 basic "$ID" "$SECRET")
    stop_server
    EXTRA_ENV=REKEY_CLIENT_CACHE_MAX_AGE_SECONDS=1 start_rekey "$dir" "$db" 1000000
    b=$(TOKEN_SCRIPT=bench/token-many.lua BENCH_CREDENTIALS="$dir/credentials.txt" \
      measure "rekey $label cold ($apps clients)" 64 basic - -)
    stop_server
    echo "$a"; echo "$b"
    for line in "$a" "$b"; do [ "$(field errors "$line")" = 0 ] || failed "requests failed: $line"; done
    cr+="$(quotient "$(field cpu/req "$b")" "$(field cpu/req "$a")")"$'\n'
  done
  printf "COLD %-10s %s clients, cache entries live 1 s: CPU per token %.2fx the cached path (median of %s rounds)\n" \
    "$label" "$apps" "$(printf %s "$cr" | median)" "$REPS"
}

# One org with RATE * SECONDS apps, each with a destination (a file, or the webhook URL given),
# seeded with the server key of DATA_DIR, for run_delivery (sets DELIVERY_ORG and DELIVERY_TOKEN).
seed_delivery() { # database url, data dir (its server key), rate, seconds, [webhook url]
  local seeded; seeded=$("$BIN/rekey-bench-delivery" seed "$1" "$2" $(($3 * $4)) "${5:-file}")
  DELIVERY_ORG=$(echo "$seeded" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orgId"])')
  DELIVERY_TOKEN=$(echo "$seeded" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiToken"])')
}
# Rotations at RATE/s for SECONDS s through the node at URL, whose spool is DIR/spool (or to
# a webhook receiver in the client listening on the address given), every notification
# checked (rekey-bench-delivery on core 1) -> its RESULT line; fails with it.
run_delivery() { # url, data dir, rate, seconds, [webhook listen address]
  taskset -c 1 "$BIN/rekey-bench-delivery" run "$1" "$DELIVERY_ORG" "$DELIVERY_TOKEN" "$2" "$3" "$4" "${5:-$2/spool}"
}

# Sustained rotation with delivery (issue 16): RATE rotations/s for SECONDS s, each on an app of
# its own with a file destination (KIND file) or a Standard Webhooks destination whose receiver
# runs in the client (KIND webhook), against one node (API and dispatcher) on core 0, the
# client (rekey-bench-delivery, which checks every notification's secret) on core 1.
delivery_sustained() { # store label, data dir, database url ("" for SQLite), rate, seconds, [kind]
  local label=$1 dir=$2 db=$3 rate=$4 seconds=$5 kind=${6:-file} line hook="" listen=""
  mkdir -p "$dir"
  if [ "$kind" = webhook ]; then listen="127.0.0.1:$(port)"; hook="http://$listen/"; fi
  seed_delivery "${db:-sqlite://$dir/rekey.db?mode=rwc}" "$dir" "$rate" "$seconds" $hook
  # A webhook on loopback is an internal, plain-HTTP destination: allowed for this run only.
  EXTRA_ENV=${hook:+"REKEY_ALLOW_INSECURE_DESTINATIONS=true REKEY_ALLOWED_DESTINATION_NETWORKS=[\"127.0.0.0/8\"]"} \
    ROLE=all start_rekey "$dir" "$db" 100000
  # The server's share of its core over the run (sending and draining) says whether the
  # rate is CPU-bound.
  local before after start_ms ok=true machine; before=$(cpu_ticks "$SERVER_PID"); start_ms=$(date +%s%3N)
  machine=$(machine_ticks)
  line=$(run_delivery "$URL" "$dir" "$rate" "$seconds" $listen) || ok=false
  after=$(cpu_ticks "$SERVER_PID")
  local share; share=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v ms=$(($(date +%s%3N) - start_ms)) \
    'BEGIN { printf "%.0f%%", 100 * (t / hz) / (ms / 1000) }')
  echo "DELIVERY $label $line server_cpu=$share steal=$(steal_share "$machine" "$(machine_ticks)")"
  $ok || failed "delivery $label"
  stop_server
}

# NOTIFY at commit (issue 16): PostgreSQL takes one database-wide lock from a notifying
# transaction's commit until it ends, so such commits queue one behind another. Rekey sends
# its client-change NOTIFY inside every write that changes an app or its secrets. pgbench on
# core 1, 16 clients, a rotation-shaped write (an UPDATE and an INSERT) without a pg_notify,
# with one inside the transaction (Rekey's way) and with one sent just after the commit in a
# transaction of its own (the alternative), a listener connected; paired rounds. The NOTIFY
# line gives the ceiling on notifying commits/s that all of a cluster's writes share.
notify_at_commit() {
  local pgbench; pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
  [ -x "$pgbench" ] || { echo "# pgbench not found: NOTIFY at commit not measured" >&2; return 0; }
  local schema; schema="rekey_bench_notify_$(date +%s%N)"; echo "$schema" >> "$WORK/schemas"
  psql "$REKEY_BENCH_POSTGRES_URL" -q >/dev/null <<SQL
CREATE SCHEMA $schema;
CREATE TABLE $schema.apps (id int PRIMARY KEY, v bigint NOT NULL);
INSERT INTO $schema.apps SELECT i, 0 FROM generate_series(1, 100000) i;
CREATE TABLE $schema.log (id bigserial PRIMARY KEY, app int NOT NULL, at timestamptz NOT NULL);
SQL
  local write='\set id random(1, 100000)
BEGIN;
UPDATE '"$schema"'.apps SET v = v + 1 WHERE id = :id;
INSERT INTO '"$schema"'.log (app, at) VALUES (:id, now());'
  printf '%s\nEND;\n' "$write" > "$WORK/plain.sql"
  printf "%s\nSELECT pg_notify('rekey_bench_notify', :id::text);\nEND;\n" "$write" > "$WORK/notify.sql"
  # The notification sent just after the commit instead, in a transaction of its own.
  printf "%s\nEND;\nSELECT pg_notify('rekey_bench_notify', :id::text);\n" "$write" > "$WORK/after.sql"
  # A listener, as every Rekey node on PostgreSQL is (it never reads: the queue only grows).
  psql "$REKEY_BENCH_POSTGRES_URL" -q -c "LISTEN rekey_bench_notify" -c "SELECT pg_sleep($((REPS * DURATION * 2 + 30)))" >/dev/null 2>&1 &
  echo $! >> "$WORK/pids"
  local pr="" nr="" ar="" p n a
  tps() { taskset -c 1 "$pgbench" -n -c16 -j2 -T"$DURATION" -f "$1" "$REKEY_BENCH_POSTGRES_URL" 2>&1 | awk '/^tps/ {print $3}'; }
  for _ in $(seq 1 "$REPS"); do
    p=$(tps "$WORK/plain.sql"); n=$(tps "$WORK/notify.sql"); a=$(tps "$WORK/after.sql")
    echo "pgbench c=16 rotation-shaped write: plain tps=$p, pg_notify inside tps=$n, pg_notify after commit tps=$a"
    pr+="$p"$'\n'; nr+="$(quotient "$n" "$p")"$'\n'; ar+="$(quotient "$a" "$p")"$'\n'
  done
  printf "NOTIFY c=16 %.0f commits/s without pg_notify; with it inside the transaction %.2f of that, sent after the commit %.2f (medians of %s rounds)\n" \
    "$(printf %s "$pr" | median)" "$(printf %s "$nr" | median)" "$(printf %s "$ar" | median)" "$REPS"
}

# Scaling out (issue 16): NODES nodes on one PostgreSQL database (the first also dispatches),
# each with a data directory of its own and the same server key. Tokens are spread evenly
# (one wrk per node, 64 connections in all); then rotations with delivery go through the
# first node while the others listen for client changes. This machine has 2 cores: the nodes
# share core 0 and the load generators core 1, so the total cannot grow with the nodes here.
# What it shows is what a node costs the others (CPU per token, the rotation rate with more
# listeners); tokens per CPU-second predict a cluster with a core per node.
scale_out() { # nodes, rotations/s, seconds of rotation
  local nodes=$1 rate=$2 seconds=$3 dir="$WORK/scale-$1" i urls=() pids=() wrks=()
  pg_schema
  seed "$PGURL" "$dir/node1" 1000
  for i in $(seq 1 "$nodes"); do
    mkdir -p "$dir/node$i"
    [ "$i" = 1 ] || cp "$dir/node1/server.key" "$dir/node$i/"
    local role=api; [ "$i" = 1 ] && role=all
    ROLE=$role start_rekey "$dir/node$i" "$PGURL" 100000
    urls+=("$URL"); pids+=("$SERVER_PID")
  done
  local auth conc=$((64 / nodes)) before=0 after=0 p u machine
  auth=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)
  for u in "${urls[@]}"; do
    BENCH_AUTH="$auth" BENCH_FORM="" taskset -c 1 wrk -t1 -c"$conc" -d1s -s bench/token.lua "$u/oauth2/token" >/dev/null
  done
  for p in "${pids[@]}"; do before=$((before + $(cpu_ticks "$p"))); done
  machine=$(machine_ticks)
  for i in "${!urls[@]}"; do
    BENCH_AUTH="$auth" BENCH_FORM="" taskset -c 1 wrk -t1 -c"$conc" -d"${DURATION}s" -s bench/token.lua \
      "${urls[$i]}/oauth2/token" > "$dir/wrk-$i.out" &
    wrks+=("$!")
  done
  wait "${wrks[@]}"
  for p in "${pids[@]}"; do after=$((after + $(cpu_ticks "$p"))); done
  cat "$dir"/wrk-*.out | awk -v nodes="$nodes" -v cpu=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v steal="$(steal_share "$machine" "$(machine_ticks)")" '
    /^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      rps = (v["requests"] - v["errors"]) / (v["duration_us"] / 1e6)
      total += rps; requests += v["requests"]; errors += v["errors"]
      per = per sprintf(" %.0f", rps); if (v["p99_us"] > p99) p99 = v["p99_us"]
    }
    END {
      printf "SCALE %s node(s), one core between them: %.0f tokens/s in total (per node:%s), worst p99 %.2fms, CPU/token %.1fus (%.0f tokens per CPU-second), steal=%s, errors=%d\n",
        nodes, total, per, p99 / 1000, (cpu / hz) * 1e6 / requests, requests / (cpu / hz), steal, errors
      if (errors > 0) exit 1
    }' || failed "scale-out tokens with $nodes nodes"
  local line
  seed_delivery "$PGURL" "$dir/node1" "$rate" "$seconds"
  if line=$(run_delivery "${urls[0]}" "$dir/node1" "$rate" "$seconds"); then
    echo "SCALE $nodes node(s) rotations through node 1: $line"
  else
    echo "SCALE $nodes node(s) rotations through node 1: $line"; failed "scale-out rotations with $nodes nodes"
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

# Rekey on SQLite with 1k apps ("sqlite-1k"), against the baseline.
SMALL="$WORK/sqlite-1k"; mkdir -p "$SMALL"
seed "sqlite://$SMALL/rekey.db?mode=rwc" "$SMALL" 1000
CONCS="16 64"
$QUICK && CONCS="16"
for c in $CONCS; do
  compare "sqlite 1k apps c=$c basic" "$c" basic "$ID" "$SECRET" \
    baseline - - - rekey "$SMALL" "" 100000
done

rotation_scenarios() { # throughput apps, latency rotations, fault rotations, fault apps, most seconds between kills, outage seconds
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/external/requirements.txt
  local py=(env REKEY_BIN="$BIN/rekey" .venv/bin/python bench/rotation.py)
  "${py[@]}" throughput --apps "$1" --duration "$DURATION"
  "${py[@]}" latency --rotations "$2"
  "${py[@]}" faults --rotations "$3" --apps "$4" --kill-after "$5"
  "${py[@]}" outage --seconds "$6"
}
# Console pages in an org with 10,000 apps: server time from the access log (bench/console.py).
console_pages() { # apps, requests per page
  local dir="$WORK/console"; mkdir -p "$dir"
  seed "sqlite://$dir/rekey.db?mode=rwc" "$dir" "$1"
  start_rekey "$dir" "" 100000 info
  python3 bench/console.py "$URL" "$dir.log" "$API_TOKEN" "$ID" "$2" || failed "console pages"
  stop_server
}
if [ "$PROFILE" = debug ]; then console_pages 10000 5
elif $QUICK; then console_pages 10000 20
else console_pages 10000 100; fi

# Rotation policies (issue 14): one sweeper pass over many apps with policies on SQLite.
# Steady state (100 due, 100 ready to retire, 1,000 waiting) and a burst (5,000 of each).
policy_pass() { # apps, due
  "$BIN/rekey-bench-policy" "$WORK/policy-$1-$2" "$1" "$2" 3 || failed "policy pass $1 $2"
  rm -rf "$WORK/policy-$1-$2"
}
if [ "$PROFILE" = debug ]; then policy_pass 2000 10
elif $QUICK; then policy_pass 100000 100
else policy_pass 100000 100; policy_pass 100000 5000; fi

# Delivery that keeps up with rotation, on SQLite and (with REKEY_BENCH_POSTGRES_URL) PostgreSQL.
if [ "$PROFILE" = debug ]; then RATE=20 SECONDS_=2; COLD_APPS=2000
elif $QUICK; then RATE=500 SECONDS_=10; COLD_APPS=100000
else RATE=500 SECONDS_=60; COLD_APPS=100000; fi
delivery_sustained sqlite "$WORK/delivery-sqlite" "" "$RATE" "$SECONDS_"
delivery_sustained sqlite "$WORK/delivery-sqlite-webhook" "" "$RATE" "$SECONDS_" webhook
if [ -n "${REKEY_BENCH_POSTGRES_URL:-}" ]; then
  pg_schema
  delivery_sustained postgres "$WORK/delivery-pg" "$PGURL" "$RATE" "$SECONDS_"
  pg_schema
  delivery_sustained postgres "$WORK/delivery-pg-webhook" "$PGURL" "$RATE" "$SECONDS_" webhook
  notify_at_commit
  # One, two and three nodes: the same rotation rate for 10 s (2 s in the smoke run).
  for n in 1 2 3; do scale_out "$n" "$RATE" "$([ "$PROFILE" = debug ] && echo 2 || echo 10)"; done
fi
cold_path sqlite "$WORK/sqlite-cold" "" "$COLD_APPS"

if $QUICK; then
  # Enough apps for 2 s at well over 1,000 rotations/s: each app rotates once.
  rotation_scenarios 4000 10 150 10 0.4 3
  finish
fi

compare "sqlite 1k apps c=64 form" 64 form "$ID" "$SECRET" baseline - - - rekey "$SMALL" "" 100000
# Without the client cache every request reads the database: the miss path.
compare "sqlite 1k apps c=64 basic, no client cache" 64 basic "$ID" "$SECRET" \
  baseline - - - rekey "$SMALL" "" 0
SMALL_ID=$ID SMALL_SECRET=$SECRET

# Rekey on SQLite with many apps ("sqlite-big"), against itself with 1k apps. Both databases
# hold the same credentials only by seeding them separately, so each round measures the app
# seeded into each database: the 1k side runs with the 1k database's app.
BIG="$WORK/sqlite-big"; mkdir -p "$BIG"
SEED_START=$(date +%s)
seed "sqlite://$BIG/rekey.db?mode=rwc" "$BIG" "$BIG_APPS"
echo "# seeded $BIG_APPS apps in $(( $(date +%s) - SEED_START )) s"
START_MS=$(date +%s%3N)
start_rekey "$BIG" "" 100000
echo "# start-up with $BIG_APPS apps: $(( $(date +%s%3N) - START_MS )) ms to ready, RSS $(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$SERVER_PID/status)"
stop_server
for cache in 100000 0; do
  tr=""
  for _ in $(seq 1 "$REPS"); do
    a=$(run_one rekey "$SMALL" "" "$cache" 64 basic "$SMALL_ID" "$SMALL_SECRET")
    b=$(run_one rekey "$BIG" "" "$cache" 64 basic "$ID" "$SECRET")
    echo "$a"; echo "$b"
    tr+="$(quotient "$(field rps "$b")" "$(field rps "$a")")"$'\n'
  done
  label="sqlite ${BIG_APPS} apps vs 1k apps c=64"
  [ "$cache" = 0 ] && label="$label, no client cache"
  printf "RATIO %-46s throughput %.2f of 1k apps (median of %s rounds)\n" "$label" "$(printf %s "$tr" | median)" "$REPS"
done

# Rekey on PostgreSQL ("pg"), against the baseline.
if [ -n "${REKEY_BENCH_POSTGRES_URL:-}" ]; then
  PG="$WORK/pg"; mkdir -p "$PG"
  pg_schema
  seed "$PGURL" "$PG" 1000
  for c in 16 64; do
    compare "postgres 1k apps c=$c basic" "$c" basic "$ID" "$SECRET" baseline - - - rekey "$PG" "$PGURL" 100000
  done
  compare "postgres 1k apps c=64 basic, no client cache" 64 basic "$ID" "$SECRET" \
    baseline - - - rekey "$PG" "$PGURL" 0
  pg_schema
  cold_path postgres "$WORK/pg-cold" "$PGURL" 100000
fi

rotation_scenarios "${BENCH_ROTATION_APPS:-12000}" 200 1000 100 0.5 120
finish

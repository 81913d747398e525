#!/usr/bin/env bash
# Builds the binary to ship: stripped, with its symbols (line tables) kept in a separate file
# that debuggers find through the binary's .gnu_debuglink. Writes to dist/:
#   rekey          the stripped binary (what you install or put in an image)
#   rekey.debug    its symbols (keep it with the release to read stack traces and cores)
#   SHA256SUMS
# Usage: scripts/release.sh [--profile release|dev] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev] [--out DIR]" >&2; exit 2 ;;
  esac
done

cargo build --locked --profile "$profile" -p rekey-cli
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
built="target/$dir/rekey"

mkdir -p "$out"
objcopy --only-keep-debug "$built" "$out/rekey.debug"
chmod 0644 "$out/rekey.debug"
# The link names the symbols file and carries its checksum; run it from dist/ so the name
# stays relative.
objcopy --strip-all "$built" "$out/rekey"
(cd "$out" && objcopy --add-gnu-debuglink=rekey.debug rekey)
(cd "$out" && sha256sum rekey rekey.debug > SHA256SUMS)
ls -l "$built" "$out/rekey" "$out/rekey.debug" | awk '{print $5, $9}'

#!/usr/bin/env bash
# Render + MIME messages/s on one core and heap allocations per message
# (bench/bench_render.c), without DKIM and with Ed25519 and RSA-2048
# signing, beside `openssl speed` for the same algorithms in the same run.
# Usage: bench/bench_render.sh [BUILD] [SECONDS]   (make bench-render)
set -euo pipefail
build=${1:-build}
secs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c17 -D_GNU_SOURCE -O2 -g -I"$root/engine" -I"$root" \
    "$root/bench/bench_render.c" "$root/$build/libringmail.a" \
    -Wl,--wrap=malloc,--wrap=realloc,--wrap=calloc -lcrypto -lm \
    -o "$tmp/bench_render"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$tmp/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$tmp/ed.pem" 2>/dev/null
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "== ringmail (one core, $secs s per row)"
rc=0
"$tmp/bench_render" "$tmp/rsa.pem" "$tmp/ed.pem" "$secs" || rc=$?
echo "== openssl speed -seconds $secs rsa2048 ed25519 (same machine, one core)"
openssl speed -seconds "$secs" rsa2048 ed25519 2>/dev/null |
    grep -E '^(version|rsa 2048)|sign/s|Ed25519'
exit $rc

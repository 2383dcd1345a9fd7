#!/usr/bin/env bash
# DKIM signing rate beside `openssl speed` for the same algorithms, one
# core each, in one run. Usage: bench/bench_dkim.sh [BUILD] [SECONDS]
set -euo pipefail
build=${1:-build}
secs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -Iengine -I. -I"$root/engine" -I"$root" "$root/bench/bench_dkim.c" \
    "$root/$build/libringmail.a" -lcrypto -o "$tmp/bench_dkim"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$tmp/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$tmp/ed.pem" 2>/dev/null
echo "== ringmail (one core, $secs s per row)"
"$tmp/bench_dkim" "$tmp/rsa.pem" "$tmp/ed.pem" "$secs"
echo "== openssl speed -seconds $secs rsa2048 ed25519 (same machine, one core)"
openssl speed -seconds "$secs" rsa2048 ed25519 2>/dev/null |
    grep -E '^(version|rsa 2048)|sign/s|Ed25519'

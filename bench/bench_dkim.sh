#!/usr/bin/env bash
# DKIM signing cost beside `openssl speed` for the same algorithms, one
# core each, in one run (bench/bench_dkim.c says what each row measures).
# `openssl speed` is run ROUNDS times and its best run kept, as the
# ringmail rows keep their best round: the machine may be shared.
# Usage: bench/bench_dkim.sh [BUILD] [SECONDS] [ROUNDS]
set -euo pipefail
build=${1:-build}
secs=${2:-3}
rounds=${3:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c17 -D_GNU_SOURCE -O2 -I"$root/engine" -I"$root" \
    "$root/bench/bench_dkim.c" "$root/$build/libringmail.a" -lcrypto \
    -o "$tmp/bench_dkim"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$tmp/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$tmp/ed.pem" 2>/dev/null
# The text body of bench_dkim's message (it prints its size).
body=$("$tmp/bench_dkim" "$tmp/rsa.pem" "$tmp/ed.pem" 0.01 1 |
    sed -n 's/.* + \([0-9]*\) of body.*/\1/p')
# One second per run: the best of several short runs, like the rows.
per=$(awk -v s="$secs" -v r="$rounds" 'BEGIN { v = int(s / r + 0.5);
    print v < 1 ? 1 : v }')
max() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > a ? b : a) }'; }
rsa=0 ed=0 sha=0
for ((i = 0; i < rounds; i++)); do
	out=$(openssl speed -mr -seconds "$per" rsa2048 ed25519 2>/dev/null)
	r=$(printf '%s\n' "$out" | awk -F: '/^\+F2:.*:2048:/ { print $4 }')
	e=$(printf '%s\n' "$out" | awk -F: '/^\+F6:.*:Ed25519:/ { print $5 }')
	s=$(openssl speed -mr -seconds "$per" -evp sha256 -bytes "$body" \
	    2>/dev/null | awk -F: '/^\+F:/ { print $4 }')
	rsa=$(max "$rsa" "$r")
	ed=$(max "$ed" "$e")
	sha=$(max "$sha" "$s")
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')
echo "== machine: $(nproc) cores, $cpu; $(openssl version); commit $commit"
echo "== openssl speed, best of $rounds runs of $per s: rsa2048 $rsa sign/s," \
    "ed25519 $ed sign/s, -evp sha256 -bytes $body $sha bytes/s"
echo "== ringmail ($secs s per row)"
"$tmp/bench_dkim" "$tmp/rsa.pem" "$tmp/ed.pem" "$secs" "$rounds" \
    "$rsa" "$ed" "$sha"

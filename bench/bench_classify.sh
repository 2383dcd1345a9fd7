#!/usr/bin/env bash
# Classifier throughput per core (issue 6): replies/s through
# classify_reply() over a mix of real provider replies, and DSNs/s through
# dsn_parse() over the tests/data/dsn corpus (bench/bench_classify.c).
# Times are process CPU time, so the numbers are per core even on a busy
# machine. Usage: bench/bench_classify.sh [BUILD] [ITERATIONS]
# (make bench with BENCH_ONLY=classify)
set -euo pipefail
build=${1:-build}
iters=${2:-3000000}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c17 -D_GNU_SOURCE -O2 -g -I"$root/engine" -I"$root" \
    "$root/bench/bench_classify.c" "$root/$build/libringmail.a" \
    -lpthread -lm -o "$tmp/bench_classify"
shopt -s nullglob
dsns=("$root"/tests/data/dsn/*.eml)
if ((${#dsns[@]} == 0)); then
	echo "bench_classify: no DSN corpus in tests/data/dsn" >&2
	exit 1
fi
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
"$tmp/bench_classify" "$iters" "${dsns[@]}" | tee "$tmp/out"
replies=$(sed -n 's/.* = \([0-9]*\) replies\/s.*/\1/p' "$tmp/out")
dsnps=$(sed -n 's/.* = \([0-9]*\) DSNs\/s.*/\1/p' "$tmp/out")
if [[ -z $replies || -z $dsnps ]]; then
	echo "bench_classify: missing a number" >&2
	exit 1
fi
echo
echo "| classifier, one core (CPU time) | per second |"
echo "|---|---|"
echo "| SMTP replies (classify_reply, ${iters} over 12 provider replies) | $replies |"
echo "| DSNs (dsn_parse, ${#dsns[@]} files of tests/data/dsn) | $dsnps |"

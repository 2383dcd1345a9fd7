#!/usr/bin/env bash
# Runs the unit suite (Criterion) and the integration suite (Python, real
# redis-server and SMTP receivers), then prints one closing line for both:
# "N passed, N failed". Exit status is non-zero when anything failed.
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests (Criterion) =="
"$build/test_all" -j2 2>&1 | tee "$log"
urc=${PIPESTATUS[0]}
syn=$(grep -E 'Synthesis: Tested: [0-9]+' "$log" | tail -n 1)
u_pass=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$syn")
u_fail=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$syn")
u_crash=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$syn")
[[ -n "$syn" ]] || { u_pass=0; u_fail=1; u_crash=0; }

echo "== integration tests =="
/usr/bin/python3 tests/integration/run.py --build "$build" 2>&1 | tee "$log"
irc=${PIPESTATUS[0]}
line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
i_pass=$(sed -E 's/^integration: ([0-9]+) passed.*/\1/' <<<"$line")
i_fail=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
[[ -n "$line" ]] || { i_pass=0; i_fail=1; }

pass=$((u_pass + i_pass))
fail=$((u_fail + u_crash + i_fail))
[[ $urc -ne 0 && $fail -eq 0 ]] && fail=1
[[ $irc -ne 0 && $fail -eq 0 ]] && fail=1
echo
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

#!/usr/bin/env bash
# `make run`: the example campaign end to end on this machine.
# Starts a private redis-server and a local capture receiver (aiosmtpd,
# storing each message as a file) on free loopback ports, submits
# campaigns/examples/welcome, runs a worker until the campaign is done,
# prints the report and stops what it started.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/$build/ringmail"
run="$root/run"
rm -rf "$run"
mkdir -p "$run/redis" "$run/mail"

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(port)
sport=$(port)

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

redis-server --port "$rport" --bind 127.0.0.1 --dir "$run/redis" --save "" \
	--appendonly no --logfile "$run/redis/redis.log" &
pids+=($!)
/usr/bin/python3 tests/integration/sink.py --port "$sport" --outdir "$run/mail" \
	>"$run/sink.out" 2>"$run/sink.log" &
pids+=($!)
for _ in $(seq 100); do
	redis-cli -p "$rport" ping >/dev/null 2>&1 && grep -q READY "$run/sink.out" && break
	sleep 0.1
done

cat >"$run/config.yaml" <<CONF
# Written by make run: a private Redis and a capture receiver.
redis:
  host: 127.0.0.1
  port: $rport
retry:
  delay: 2s
  max_attempts: 3
routes:
  alpha.test: 127.0.0.1:$sport
  beta.test: 127.0.0.1:$sport
  gamma.test: 127.0.0.1:$sport
  delta.test: 127.0.0.1:$sport
  epsilon.test: 127.0.0.1:$sport
CONF

echo "== ringmail submit campaigns/examples/welcome"
id=$("$bin" submit --config "$run/config.yaml" \
	campaigns/examples/welcome/campaign.yaml \
	campaigns/examples/welcome/recipients.csv)
echo "campaign id: $id"
echo "== ringmail worker --until-done"
t0=$(date +%s.%N)
"$bin" worker --config "$run/config.yaml" --until-done 2>"$run/worker.log"
t1=$(date +%s.%N)
echo "== ringmail status $id"
"$bin" status --config "$run/config.yaml" "$id"
sent=$(redis-cli -p "$rport" hget "rm:{$id}:stats" sent)
n=$(ls "$run/mail" | grep -c '\.eml$' || true)
/usr/bin/python3 - "$t0" "$t1" "${sent:-0}" "$n" "$run" <<'PY'
import sys
t0, t1, sent, n, run = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
dt = t1 - t0
print()
print("report: %d delivered (%d messages captured by the receiver) in %.2f s, %.0f msg/s" % (sent, n, dt, sent / dt if dt else 0))
print("messages: %s/mail/*.eml (envelope in the matching .json)" % run)
print("worker log: %s/worker.log" % run)
PY

#!/usr/bin/python3
"""Concurrent SMTP sessions from ONE worker process, and what they cost in
memory (issue 3, Numbers): run by hand, as root (smtp-sink needs -u).

    /usr/bin/python3 bench/bench_conns.py [--conns 5000] [--tls] [--sinks 20]

A campaign of --conns recipients over 200 domains, routed (static routes)
round robin to --sinks loopback receivers that hold every session at DATA
(smtp-sink -w HOLD for plain; tests/integration/evil_smtp.py --mode
starttls --hold HOLD for STARTTLS, since smtp-sink has no TLS), so every
session stays open. connection_limit = conns / sinks, so the target is
reachable whether destinations are keyed per domain or per site.

The worker starts idle first (its baseline RSS), then the campaign is
submitted; /proc/PID/status VmRSS and the socket fds in /proc/PID/fd are
sampled every 0.5 s until the sockets reach --conns (and, with --tls,
the receivers completed that many handshakes), then 5 s more, or until
--bound seconds pass. Printed: peak sessions, RSS baseline and peak, (peak - baseline) /
sessions, against the targets (<= 64 KiB plain, <= 128 KiB TLS). With --tls
the receivers' count of completed handshakes is printed too: a number is
only a TLS number if the sessions really ran TLS.
Everything binds to 127.0.0.1; every wait is bounded."""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from services import BIN, PY, Redis, free_port, wait_port  # noqa: E402
from transport_util import make_ca, make_cert  # noqa: E402

CAMP = """name: bench conns
from: "Bench <bench@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}, a short message to keep the session cheap."
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sockets(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def tls_done(wd, nsinks):
    """Completed handshakes, summed over the evil_smtp receivers."""
    n = 0
    for i in range(nsinks):
        try:
            with open(os.path.join(wd, "s%d" % i, "stats.json")) as f:
                n += json.load(f)["tls_ok"]
        except (OSError, ValueError, KeyError):
            pass
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sinks", type=int, default=20)
    ap.add_argument("--domains", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hold", type=int, default=120,
                    help="seconds each receiver holds a session at DATA")
    ap.add_argument("--bound", type=int, default=150,
                    help="give up the ramp after this many seconds")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.conns * 2 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.conns + 200:
        sys.exit("RLIMIT_NOFILE hard limit %d is too low for %d sessions"
                 % (hard, args.conns))

    wd = tempfile.mkdtemp(prefix="ringmail-bench-conns-")
    os.chmod(wd, 0o755)
    procs = []
    redis = None
    worker = None
    try:
        redis = Redis(wd)
        per_sink = -(-args.conns // args.sinks)
        ports = []
        if args.tls:
            ca = make_ca(wd)
            cert = make_cert(wd, "mx", ca)
        for i in range(args.sinks):
            port = free_port()
            log = open(os.path.join(wd, "sink%d.log" % i), "w")
            if args.tls:
                cmd = [PY, os.path.join(ROOT, "tests", "integration", "evil_smtp.py"),
                       "--port", str(port), "--outdir", os.path.join(wd, "s%d" % i),
                       "--mode", "starttls", "--tls-cert", cert[1], "--tls-key", cert[0],
                       "--hold", str(args.hold), "--backlog", "4096",
                       "--lifetime", str(args.bound + args.hold + 60)]
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
                p.stdout.readline()
            else:
                cmd = ["smtp-sink", "-u", "nobody", "-m", str(per_sink + 50),
                       "-w", str(args.hold), "-t", str(args.hold + 60),
                       "127.0.0.1:%d" % port, "4096"]
                p = subprocess.Popen(cmd, stdout=log, stderr=log)
            procs.append(p)
            wait_port(port, 20)
            ports.append(port)

        cfg = os.path.join(wd, "config.yaml")
        doms = ["d%03d.bench.test" % i for i in range(args.domains)]
        with open(cfg, "w") as f:
            f.write("redis: {host: 127.0.0.1, port: %d}\n" % redis.port)
            f.write("worker:\n  threads: %d\n  max_queued: %d\n  fetch_batch: 1000\n"
                    % (args.threads, args.conns * 2))
            f.write("smtp:\n  ehlo_name: bench.ringmail.test\n"
                    "  connection_limit: %d\n  tls: %s\n"
                    "  timeouts: {data: %ds, data_dot: %ds, idle: 5s}\n"
                    % (per_sink, "required" if args.tls else "none",
                       args.hold + 120, args.hold + 120))
            f.write("retry: {delay: 1h, max_attempts: 2}\nlog: {level: warn}\nroutes:\n")
            for i, d in enumerate(doms):
                f.write("  %s: 127.0.0.1:%d\n" % (d, ports[i % len(ports)]))
        camp = os.path.join(wd, "c.yaml")
        with open(camp, "w") as f:
            f.write(CAMP)
        csv = os.path.join(wd, "r.csv")
        with open(csv, "w") as f:
            f.write("email,name\n")
            for i in range(args.conns):
                f.write("u%05d@%s,N%d\n" % (i, doms[i % len(doms)], i))

        wlog = open(os.path.join(wd, "worker.log"), "w")
        worker = subprocess.Popen([BIN, "worker", "--config", cfg], stdout=wlog,
                                  stderr=wlog)
        time.sleep(2.0)
        base_socks = sockets(worker.pid)
        base_rss = rss_kib(worker.pid)
        t0 = time.time()
        r = subprocess.run([BIN, "submit", "--config", cfg, "--batch", "1000", camp, csv],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            sys.exit("submit failed: " + r.stderr)
        points = []
        peak = (0, base_rss)
        end = time.time() + args.bound
        settled_at = None
        while time.time() < end and worker.poll() is None:
            s = sockets(worker.pid) - base_socks
            rss = rss_kib(worker.pid)
            points.append((s, rss))
            if s > peak[0] or (s == peak[0] and rss > peak[1]):
                peak = (s, rss)
            # All sessions open, and (TLS) every handshake done: then a
            # few more seconds for the messages to be rendered and sent up
            # to DATA, taking the highest RSS seen.
            if s >= args.conns and (not args.tls or tls_done(wd, args.sinks) >= args.conns):
                if settled_at is None:
                    settled_at = time.time()
                elif time.time() - settled_at >= 5.0:
                    break
            time.sleep(0.5)
        ramp = time.time() - t0
        per = (peak[1] - base_rss) / peak[0] if peak[0] else float("nan")
        target = 128 if args.tls else 64
        tls_ok = tls_done(wd, args.sinks) if args.tls else None
        print("bench_conns: mode=%s sessions_peak=%d/%d ramp_s=%.1f threads=%d"
              % ("tls" if args.tls else "plain", peak[0], args.conns, ramp,
                 args.threads))
        print("  rss_baseline_kib=%d rss_peak_kib=%d" % (base_rss, peak[1]))
        print("  per_session_kib=%.1f target_kib=%d -> %s"
              % (per, target,
                 "MET" if peak[0] >= args.conns and per <= target else
                 ("NOT MET" if peak[0] >= args.conns else
                  "INCOMPLETE (only %d sessions)" % peak[0])))
        if tls_ok is not None:
            print("  receivers: completed TLS handshakes=%d" % tls_ok)
        if worker.poll() is not None:
            print("  worker exited early with %s" % worker.returncode)
    finally:
        if worker and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            worker.send_signal(signal.SIGTERM)     # second signal: exit now
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if redis:
            redis.stop()
        if args.keep:
            print("  workdir kept: %s" % wd)
        else:
            shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""settle (issue 6): the adaptive controller against a receiver that
throttles like a big provider, beside a fixed-rate configuration set to
the receiver's limit, in the same run.

Receiver: tests/integration/throttle_sink.py (aiosmtpd) on loopback; once
more than --limit messages arrived in the last second it answers
"421 4.7.0 ... rate limited" at MAIL FROM to --fraction of the further
ones and closes the connection (--close, as providers do).

Runs (same campaign of --messages recipients of one domain, same
connection limit, retry delay 1 s, a fresh Redis database each):
  adaptive  shaping.defaults: max_message_rate unlimited (--adaptive-max),
            adaptive: true. The controller has to find the limit itself.
  fixed     shaping.defaults: max_message_rate = the receiver's limit,
            adaptive: false (what one configures knowing the limit).
  fixed90   the same at 90 % of the limit (a tuned static configuration;
            --no-fixed90 skips it).

Measured from ringmail's own events (`ringmail events`: every delivered
and deferred outcome with its record time, ms), bucketed per second from
the first outcome:
  attempts/s, delivered/s, deferred/s (the timeline is printed)
  settle time: the start of the first second t such that every rolling
    5 s window starting at or after t (while mail is still flowing at
    >= 20 % of the limit, so the final trickle of retries is not judged)
    has deferred/attempts < 5 %. "never" if no such t.
  deferral ratio after settling: deferred / attempts over [t, end].
  throughput: recipients / (last delivery - first outcome).
The sink's own counters (accepted, throttled) are shown as a cross-check.

Bounded: --messages recipients, each worker run under --timeout s;
everything binds 127.0.0.1 on free ports and is stopped at the end.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import services  # noqa: E402
from services import Redis, ThrottleSink, Workdir  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(ROOT, "build", "ringmail"))
ap.add_argument("--limit", type=float, default=200, help="receiver limit, msg/s")
ap.add_argument("--fraction", type=float, default=1.0,
                help="share of messages over the limit answered 421")
ap.add_argument("--messages", type=int, default=6000)
ap.add_argument("--conns", type=int, default=10, help="connection_limit")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--adaptive-max", default="unlimited",
                help="max_message_rate of the adaptive run")
ap.add_argument("--timeout", type=int, default=120, help="per worker run, s")
ap.add_argument("--only", choices=("adaptive", "fixed", "fixed90"), default=None)
ap.add_argument("--no-fixed90", action="store_true",
                help="skip the third run, fixed at 90 %% of the limit")
args = ap.parse_args()
services.BIN = args.bin

WINDOW = 5          # s, rolling window for the settle criterion
TARGET = 0.05       # deferral ratio after settling
DOMAIN = "throttle.test"
CAMP = """name: settle
from: "Settle <settle@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}, a short message for the shaping benchmark."
"""


def run_one(wd, label, shaping):
    redis = Redis(os.path.join(wd.path, label))
    sink = ThrottleSink(wd.path, rate=args.limit, fraction=args.fraction, at="mail",
                        close=True, name="throttle-" + label)
    try:
        cfg = wd.file("config-%s.yaml" % label, """redis: {host: 127.0.0.1, port: %d}
worker: {threads: %d, fetch_batch: 64}
smtp: {connection_limit: %d, max_deliveries_per_connection: 100000}
retry: {delay: 1s, max_delay: 2s, max_attempts: 1000}
log: {level: info}
routes:
  %s: 127.0.0.1:%d
shaping:
  defaults: {%s}
""" % (redis.port, args.threads, args.conns, DOMAIN, sink.port, shaping))
        camp = wd.file("c.yaml", CAMP)
        with open(os.path.join(wd.path, "r.csv"), "w") as f:
            f.write("email,name\n")
            for i in range(args.messages):
                f.write("u%06d@%s,N%d\n" % (i, DOMAIN, i))
        r = services.ringmail("submit", "--config", cfg, camp,
                              os.path.join(wd.path, "r.csv"))
        cid = r.stdout.strip().split("\n")[0]
        t0 = time.time()
        c0 = os.times()
        logf = os.path.join(wd.path, "worker-%s.log" % label)
        with open(logf, "w") as lf:
            w = subprocess.Popen([args.bin, "worker", "--config", cfg, "--until-done"],
                                 stdout=subprocess.DEVNULL, stderr=lf)
            timed_out = False
            try:
                w.wait(args.timeout)
            except subprocess.TimeoutExpired:
                # Bounded: stop it and report what it managed.
                timed_out = True
                w.terminate()
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
        c1 = os.times()
        wall = time.time() - t0
        with open(logf) as lf:
            p = subprocess.CompletedProcess(w.args, w.returncode, "", lf.read())
        if p.returncode != 0 and not timed_out:
            raise RuntimeError("worker failed (%d):\n%s" % (p.returncode, p.stderr[-3000:]))
        sent = int(redis.hget("rm:{%s}:stats" % cid, "sent") or 0)
        ev = services.ringmail("events", "--config", cfg, "--campaign", cid, timeout=60).stdout
        deliv, defer = [], []
        for line in ev.splitlines():
            e = json.loads(line)
            if e.get("type") == "delivered":
                deliv.append(int(e["ts"]))
            elif e.get("type") == "deferred":
                defer.append(int(e["ts"]))
        time.sleep(0.3)  # the sink writes its stats every 0.2 s
        st = sink.stats()
        cuts = [l for l in p.stderr.splitlines() if "reason=throttle" in l]
        raises = [l for l in p.stderr.splitlines() if "reason=raise" in l]
        last_rates = [l.split("rate=")[1].split()[0] for l in p.stderr.splitlines()
                      if " shape dest=" in l and "rate=" in l][-3:]
        res = analyse(deliv, defer)
        res.update(label=label, sent=sent, timed_out=timed_out, wall=wall,
                   cpu=(c1.children_user + c1.children_system) -
                   (c0.children_user + c0.children_system),
                   sink=st, ncuts=len(cuts), nraises=len(raises), last_rates=last_rates)
        return res
    finally:
        sink.stop()
        redis.stop()


def analyse(deliv, defer):
    t0 = min(deliv[:1] + defer[:1])
    t_end = max(deliv[-1:] + defer[-1:])
    nsec = (t_end - t0) // 1000 + 1
    d = [0] * nsec
    f = [0] * nsec
    for t in deliv:
        d[(t - t0) // 1000] += 1
    for t in defer:
        f[(t - t0) // 1000] += 1
    # Seconds in which mail was still flowing (not the retry trickle).
    flowing = [i for i in range(nsec) if d[i] + f[i] >= 0.2 * args.limit]
    last_flow = flowing[-1] if flowing else nsec - 1
    def bad(u):
        a = sum(d[u:u + WINDOW]) + sum(f[u:u + WINDOW])
        x = sum(f[u:u + WINDOW])
        return a > 0 and x / a >= TARGET
    # Settled at t: no bad window from t on, and at least one full
    # window of flowing mail after t (settling only as the mail runs out
    # does not count).
    settle = None
    for t in range(max(0, last_flow - WINDOW + 2)):
        if all(not bad(u) for u in range(t, last_flow - WINDOW + 2)):
            settle = t
            break
    res = {"timeline": list(zip(d, f)), "delivered": len(deliv), "deferred": len(defer),
           "active_s": max(0.001, (max(deliv) - t0) / 1000.0), "settle": settle}
    if settle is not None:
        a = sum(d[settle:]) + sum(f[settle:])
        res["after_ratio"] = sum(f[settle:]) / a if a else 0.0
        res["after_rate"] = sum(d[settle:last_flow + 1]) / max(1, last_flow + 1 - settle)
    res["rate"] = len(deliv) / res["active_s"]
    res["ratio_all"] = len(defer) / max(1, len(deliv) + len(defer))
    return res


def timeline(res):
    out = []
    tl = res["timeline"]
    for i in range(0, len(tl), 10):
        chunk = tl[i:i + 10]
        out.append("  %3d s: %s" % (i, " ".join("%d/%d" % c for c in chunk)))
    return "\n".join(out)


def main():
    wd = Workdir("bench-settle")
    runs = []
    try:
        lim = ("%g/s" % args.limit)
        if args.only in (None, "adaptive"):
            runs.append(run_one(wd, "adaptive", "max_message_rate: %s, adaptive: true" %
                                args.adaptive_max))
        if args.only in (None, "fixed"):
            runs.append(run_one(wd, "fixed", "max_message_rate: %s, adaptive: false" % lim))
        if args.only == "fixed90" or (args.only is None and not args.no_fixed90):
            runs.append(run_one(wd, "fixed90", "max_message_rate: %g/s, adaptive: false" %
                                (0.9 * args.limit)))
    finally:
        wd.cleanup()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print("== settle: %d recipients to one receiver limited to %g msg/s (421 to %g of the "
          "excess at MAIL FROM, then close), connection_limit %d, %d worker thread(s), "
          "retry delay 1 s; commit %s, %d cores" % (
              args.messages, args.limit, args.fraction, args.conns, args.threads, commit,
              os.cpu_count()))
    for r in runs:
        print("-- %s: timeline delivered/deferred per second from the first outcome" % r["label"])
        print(timeline(r))
        print("   sink: accepted %d, throttled %d, max concurrent %d; controller cuts %d, "
              "raises %d, last rates %s" % (r["sink"]["accepted"], r["sink"]["throttled"],
                                            r["sink"]["max_concurrent"], r["ncuts"],
                                            r["nraises"], " ".join(r["last_rates"])))
    print()
    print("| %g msg/s receiver | %s |" % (args.limit, " | ".join(r["label"] for r in runs)))
    print("|---|%s" % ("---|" * len(runs)))
    print("| config | %s |" % " | ".join(
        "adaptive, max %s" % args.adaptive_max if r["label"] == "adaptive" else
        "fixed %g/s, not adaptive" % (args.limit * (0.9 if r["label"] == "fixed90" else 1))
        for r in runs))
    print("| delivered | %s |" % " | ".join("%d of %d" % (r["sent"], args.messages) for r in runs))
    print("| settle time (rolling %d s deferral ratio < %d %% from then on) | %s |" % (
        WINDOW, TARGET * 100, " | ".join("%s" % ("%d s" % r["settle"] if r["settle"] is not None
                                                 else "never") for r in runs)))
    print("| deferral ratio after settling | %s |" % " | ".join(
        "%.2f %%" % (100 * r["after_ratio"]) if "after_ratio" in r else "-" for r in runs))
    print("| delivered/s after settling | %s |" % " | ".join(
        "%.1f" % r["after_rate"] if "after_rate" in r else "-" for r in runs))
    print("| deferral ratio, whole run | %s |" % " | ".join(
        "%.2f %% (%d deferrals)" % (100 * r["ratio_all"], r["deferred"]) for r in runs))
    print("| throughput (first outcome → last delivery) | %s |" % " | ".join(
        "%.1f msg/s in %.1f s" % (r["rate"], r["active_s"]) for r in runs))
    print("| CPU s per 1,000 messages (ringmail worker) | %s |" % " | ".join(
        "%.3f" % (r["cpu"] * 1000 / max(1, r["sent"])) for r in runs))
    by = {r["label"]: r for r in runs}
    if "adaptive" in by:
        for k in ("fixed", "fixed90"):
            if k in by:
                print()
                print("adaptive / %s throughput: %.2f" % (k, by["adaptive"]["rate"] / by[k]["rate"]))
    ok = all(r["sent"] == args.messages for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

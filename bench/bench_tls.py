#!/usr/bin/python3
"""tls (issue 3): delivery throughput with STARTTLS for ~10 KB messages,
ringmail beside a TLS-capable reference sender in the same run.

Postfix smtp-source cannot do TLS, so the reference is a private Postfix
instance (the same private-instance setup as tests/integration/
test_interop.py, its Postfix class) used as the sender: --messages 10 KB
messages are injected into its queue with smtp-source while
defer_transports holds them, then released (postqueue -f) and relayed
with smtp_tls_security_level=may, smtp_tls_connection_reuse=yes (its
tlsproxy keeps TLS connections open across messages) and a client TLS
session cache; timed from the release until its queue is empty.

Receiver, the same for every run (--receiver): by default
bench/tls_sink.c, a discard receiver in the spirit of smtp-sink that
offers STARTTLS (a certificate from a CA made now; OpenSSL's default
server session cache and TLS 1.3 tickets, so clients can resume) and
costs well under 0.1 ms of CPU per message, so it is not what limits
either sender; or (--receiver postfix) a private Postfix smtpd with
STARTTLS handing every transaction to smtp-sink through
smtpd_proxy_filter (~1 ms of CPU per message on this machine: then the
receiver is the bottleneck of a 2-core box).

Runs, same message count and size, same receiver, same concurrency
(--conns connections: ringmail connection_limit, which holds fleet-wide
across its threads; Postfix
smtp_destination_concurrency_limit with initial concurrency = limit):
  ringmail plain     smtp.tls: none
  ringmail STARTTLS  smtp.tls: opportunistic
  Postfix plain      smtp_tls_security_level = none
  Postfix STARTTLS   smtp_tls_security_level = may
Reported: messages/s (first to last delivery for ringmail, from its
events, the median of --repeat interleaved runs of each; release to
empty queue for Postfix), CPU seconds per 1,000
messages of the sender (ringmail: the worker process; Postfix: every
process of the sending instance, master and children, from /proc) and of
Redis for ringmail, and TLS handshakes / resumed sessions as the
receiver logged them (smtpd_tls_loglevel 1) and as ringmail logged them
(log level debug: one line per handshake, resumed=0/1).

Bounded: --messages per run, every wait has a timeout; everything binds
127.0.0.1 on free ports and both Postfix instances, smtp-sink and Redis
are stopped at the end.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import services  # noqa: E402
from services import Redis, Workdir, free_port, stop_proc, wait_port  # noqa: E402
from test_interop import Postfix  # noqa: E402
from transport_util import make_ca, make_cert  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(ROOT, "build", "ringmail"))
ap.add_argument("--messages", type=int, default=10000)
ap.add_argument("--conns", type=int, default=20)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--timeout", type=int, default=120, help="per run, s")
ap.add_argument("--repeat", type=int, default=3, help="ringmail runs of each kind")
ap.add_argument("--no-postfix-plain", action="store_true")
ap.add_argument("--postfix-no-reuse", action="store_true",
                help="also run Postfix STARTTLS with smtp_tls_connection_reuse = no")
ap.add_argument("--receiver", choices=("sink", "postfix"), default="sink",
                help="sink: bench/tls_sink.c; postfix: Postfix smtpd + smtp-sink")
args = ap.parse_args()
services.BIN = args.bin

DOMAIN = "tls.bench.test"
HZ = os.sysconf("SC_CLK_TCK")


def rcpts(n):
    return ["u%05d@%s" % (i, DOMAIN) for i in range(n)]


def pconf(pf, *kv):
    subprocess.run(["postconf", "-c", pf.conf, "-e"] + list(kv), check=True,
                   capture_output=True, timeout=30)


def preload(pf):
    subprocess.run(["postfix", "-c", pf.conf, "reload"], check=True,
                   capture_output=True, timeout=30)
    time.sleep(1.0)


def tree_cpu(master_pid):
    """CPU seconds of a Postfix instance: master, its live descendants and
    the children it already reaped (cutime/cstime)."""
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        stats[int(d)] = (int(rest[1]), [int(x) for x in rest[11:15]])
    pids, todo = set(), [master_pid]
    while todo:
        p = todo.pop()
        pids.add(p)
        todo += [c for c, (pp, _) in stats.items() if pp == p and c not in pids]
    tot = 0
    for p in pids:
        if p in stats:
            ut, st, cut, cst = stats[p][1]
            tot += ut + st + cut + cst
    return tot / HZ


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / HZ


def queue_count(pf):
    n = 0
    for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
        for _, _, files in os.walk(os.path.join(pf.root, "q", sub)):
            n += len(files)
    return n


def tls_log_counts(pf, since):
    """(handshakes, resumed) from a Postfix log, lines after offset since."""
    with open(pf.log, errors="replace") as f:
        f.seek(since)
        text = f.read()
    est = len(re.findall(r"TLS connection established", text))
    reused = len(re.findall(r"TLS connection (?:reused|established).*reused|"
                            r"Reusing old session|session reused", text, re.I))
    return est, reused


def log_size(pf):
    try:
        return os.path.getsize(pf.log)
    except OSError:
        return 0


class Receiver(Postfix):
    """Postfix smtpd with STARTTLS, every transaction proxied to smtp-sink."""

    def __init__(self, root, sink_port, cert, recipients):
        self.MASTER = Postfix.MASTER.replace(
            "127.0.0.1:%(port)d inet n - n - - smtpd",
            "127.0.0.1:%%(port)d inet n - n - - smtpd -o smtpd_proxy_filter=127.0.0.1:%d"
            % sink_port)
        super().__init__(root, [DOMAIN], recipients, cert=cert)
        pconf(self, "smtpd_tls_loglevel = 1",
              "smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache",
              "smtpd_client_connection_count_limit = 0",
              "smtpd_client_connection_rate_limit = 0",
              "smtpd_client_message_rate_limit = 0")
        preload(self)


class PostfixRx:
    """--receiver postfix: Receiver + its smtp-sink, measured together."""

    name = "Postfix %s smtpd with STARTTLS (may) proxying every transaction to smtp-sink"

    def __init__(self, wd, cert, n):
        sink_port = free_port()
        self.sink = subprocess.Popen(["smtp-sink", "-u", "nobody",
                                      "127.0.0.1:%d" % sink_port, "1024"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(sink_port)
        self.pf = Receiver(os.path.join(wd.path, "rx"), sink_port, cert, rcpts(n))
        self.port = self.pf.port
        self.name = self.name % subprocess.run(
            ["postconf", "-dh", "mail_version"], capture_output=True, text=True).stdout.strip()

    def mark(self):
        return (log_size(self.pf), tree_cpu(self.pf.master_pid) + proc_cpu(self.sink.pid))

    def since(self, m):
        est, _ = tls_log_counts(self.pf, m[0])
        cpu = tree_cpu(self.pf.master_pid) + proc_cpu(self.sink.pid) - m[1]
        return {"handshakes": est, "rx_resumed": None, "rx_cpu": cpu}

    def stop(self):
        self.pf.stop()
        if self.sink.poll() is None:
            self.sink.terminate()
            self.sink.wait(10)


class SinkRx:
    """--receiver sink: bench/tls_sink.c (built now with cc)."""

    name = ("bench/tls_sink.c (discard receiver, STARTTLS, OpenSSL default server session "
            "cache and TLS 1.3 tickets, thread per connection)")

    def __init__(self, wd, cert, n):
        exe = os.path.join(wd.path, "tls_sink")
        subprocess.run(["cc", "-std=c17", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
                        os.path.join(HERE, "tls_sink.c"), "-lssl", "-lcrypto", "-lpthread",
                        "-o", exe], check=True, timeout=120)
        self.port = free_port()
        self.stats = os.path.join(wd.path, "tls_sink.json")
        self.proc = subprocess.Popen([exe, str(self.port), cert[1], cert[0], self.stats],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if not self.proc.stdout.readline().startswith("READY"):
            raise RuntimeError("tls_sink did not start")
        wait_port(self.port)

    def _st(self):
        import json
        time.sleep(0.3)     # rewritten every 200 ms
        with open(self.stats) as f:
            return json.load(f)

    def mark(self):
        return (self._st(), proc_cpu(self.proc.pid))

    def since(self, m):
        st = self._st()
        return {"handshakes": st["handshakes"] - m[0]["handshakes"],
                "rx_resumed": st["resumed"] - m[0]["resumed"],
                "rx_msgs": st["messages"] - m[0]["messages"],
                "rx_cpu": proc_cpu(self.proc.pid) - m[1]}

    def stop(self):
        stop_proc(self.proc)


class Sender(Postfix):
    """Postfix as the sending side: relays everything to the receiver."""

    def __init__(self, root, rx_port):
        super().__init__(root, ["sender.local"], ["nobody@sender.local"])
        subprocess.run(["postconf", "-c", self.conf, "-Me",
                        "tlsproxy/unix=tlsproxy unix - - n - 0 tlsproxy"],
                       check=True, capture_output=True, timeout=30)
        pconf(self, "default_transport = smtp",
              "relay_transport = smtp",
              "relayhost = [127.0.0.1]:%d" % rx_port,
              "defer_transports = smtp",
              "smtp_destination_concurrency_limit = %d" % args.conns,
              "initial_destination_concurrency = %d" % args.conns,
              "default_destination_concurrency_limit = %d" % args.conns,
              "smtp_tls_loglevel = 1",
              "smtp_tls_connection_reuse = yes",
              "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache",
              "smtpd_client_connection_count_limit = 0",
              "smtpd_client_connection_rate_limit = 0",
              "smtpd_client_message_rate_limit = 0",
              "message_size_limit = 0",
              "qmgr_message_active_limit = %d" % max(20000, args.messages + 100))
        preload(self)

    size = 10240    # body bytes; set to ringmail's rendered size

    def run(self, tls, n, rx, reuse=True):
        pconf(self, "defer_transports = smtp",
              "smtp_tls_security_level = %s" % ("may" if tls else "none"),
              "smtp_tls_connection_reuse = %s" % ("yes" if reuse else "no"))
        preload(self)
        # Inject n 10 KB messages into the queue (held by defer_transports).
        per = max(1, n // 4)
        ps = []
        left = n
        for k in range(4):
            m = per if k < 3 else left
            left -= m
            ps.append(subprocess.Popen(
                ["smtp-source", "-s", "5", "-m", str(m), "-l", str(self.size),
                 "-f", "bench@sender.test", "-t", "u%05d@%s" % (k, DOMAIN),
                 "127.0.0.1:%d" % self.port],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ps:
            p.wait(args.timeout)
        end = time.time() + args.timeout
        while time.time() < end:
            # Queued once everything sits in deferred/ (held).
            d = sum(len(f) for _, _, f in os.walk(os.path.join(self.root, "q", "deferred")))
            if d >= n:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("postfix: %d of %d messages queued" % (d, n))
        pconf(self, "defer_transports =")
        preload(self)
        m = rx.mark()
        tx_log0 = log_size(self)
        c_tx0 = tree_cpu(self.master_pid)
        t0 = time.time()
        subprocess.run(["postqueue", "-c", self.conf, "-f"], check=True,
                       capture_output=True, timeout=30)
        while time.time() - t0 < args.timeout:
            if queue_count(self) == 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("postfix: queue not empty after %d s" % args.timeout)
        wall = time.time() - t0
        c_tx1 = tree_cpu(self.master_pid)
        time.sleep(0.5)
        with open(self.log, errors="replace") as f:
            f.seek(tx_log0)
            txlog = f.read()
        sent = len(re.findall(r"status=sent", txlog))
        tx_est = len(re.findall(r"TLS connection established", txlog))
        tx_reused = len(re.findall(r"TLS connection reused", txlog))
        r = {"rate": n / wall, "wall": wall, "cpu": c_tx1 - c_tx0, "sent": sent,
             "client_tls_new": tx_est, "client_tls_reused_conn": tx_reused}
        r.update(rx.since(m))
        return r


def ringmail_run(wd, redis, rx, tls, csv, camp):
    redis.cli("FLUSHALL")
    per = args.conns     # connection_limit is fleet-wide (all threads)
    cfg = wd.file("rm-%s.yaml" % ("tls" if tls else "plain"), """redis: {host: 127.0.0.1, port: %d}
worker: {threads: %d, fetch_batch: 64}
smtp:
  connection_limit: %d
  max_deliveries_per_connection: 100000
  tls: %s
retry: {delay: 1s, max_attempts: 3}
log: {level: debug}
routes:
  %s: 127.0.0.1:%d
""" % (redis.port, args.threads, per, "opportunistic" if tls else "none", DOMAIN, rx.port))
    r = services.ringmail("submit", "--config", cfg, camp, csv, timeout=120)
    cid = r.stdout.strip().split("\n")[0]
    m = rx.mark()
    c_redis0 = proc_cpu(redis.proc.pid)
    logp = os.path.join(wd.path, "worker-%s.log" % ("tls" if tls else "plain"))
    t0 = time.time()
    ru0 = os.times()
    with open(logp, "w") as lf:
        w = subprocess.Popen([args.bin, "worker", "--config", cfg, "--until-done"],
                             stdout=subprocess.DEVNULL, stderr=lf)
        try:
            w.wait(args.timeout)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
            raise RuntimeError("ringmail worker timed out")
    wall = time.time() - t0
    ru1 = os.times()    # the worker is our reaped child: its CPU alone
    c_redis1 = proc_cpu(redis.proc.pid)
    with open(logp) as f:
        log = f.read()
    sent = int(redis.hget("rm:{%s}:stats" % cid, "sent") or 0)
    first = redis.raw("XRANGE", "rm:events", "-", "+", "COUNT", "1").split("\n")[0]
    last = redis.raw("XREVRANGE", "rm:events", "+", "-", "COUNT", "1").split("\n")[0]
    active = max(0.001, (int(last.split("-")[0]) - int(first.split("-")[0])) / 1000.0)
    hs = re.findall(r"resumed=(\d)", log)
    tlsev = redis.raw("XREVRANGE", "rm:events", "+", "-", "COUNT", "1")
    r = {"rate": args.messages / active, "rate_wall": args.messages / wall, "wall": wall,
         "sent": sent, "rm_handshakes": len(hs),
         "rm_resumed": sum(1 for x in hs if x == "1"),
         "redis_cpu": c_redis1 - c_redis0, "tls_event": "TLSv1" in tlsev,
         "cid": cid, "cpu": (ru1.children_user + ru1.children_system) -
         (ru0.children_user + ru0.children_system)}
    r.update(rx.since(m))
    return r


def body(n, seed):
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
             "eiusmod tempor incididunt ut labore et dolore magna aliqua ").split()
    out, line, i = [], [], seed
    while sum(len(x) + 1 for x in out) < n:
        line.append(words[i % len(words)])
        i += 7
        if len(" ".join(line)) > 70:
            out.append(" ".join(line))
            line = []
    return "\n".join(out)


def main():
    wd = Workdir("bench-tls")
    os.chmod(wd.path, 0o755)
    rxs = []
    pfs = []
    redis = None
    res = {}
    try:
        ca = make_ca(wd.path)
        cert = make_cert(wd.path, "mx", ca)
        rx = (SinkRx if args.receiver == "sink" else PostfixRx)(wd, cert, args.messages)
        rxs.append(rx)
        tx = Sender(os.path.join(wd.path, "tx"), rx.port)
        pfs.append(tx)
        redis = Redis(wd.path)
        n = args.messages
        camp = wd.file("c.yaml", "")
        with open(camp, "w") as f:
            f.write('name: tlsbench\nfrom: "Bench <bench@sender.test>"\n'
                    'subject: "Hello {{first_name}}"\n')
            txt = "Hi {{first_name}},\n" + body(4800, 1) + "\nCode {{code}}.\n"
            html = ("<html><body><p>Hi {{first_name}}</p><p>" +
                    body(4800, 3).replace("\n", "</p>\n<p>") + "</p></body></html>\n")
            f.write("text: |\n" + "".join("  " + l + "\n" for l in txt.split("\n")))
            f.write("html: |\n" + "".join("  " + l + "\n" for l in html.split("\n")))
        csv = wd.file("r.csv", "email,first_name,code\n" + "".join(
            "%s,F%d,C%08d\n" % (r, i, i) for i, r in enumerate(rcpts(n))))
        # Message size as sent: render one.
        rr = services.ringmail("render", "--config", os.devnull, camp, csv,
                               check=False, timeout=60)
        res["rm_size"] = len(rr.stdout.encode()) if rr.returncode == 0 else None
        # The reference sends a body as long as ringmail's whole message
        # (its own few headers come on top): never smaller.
        tx.size = res["rm_size"] or 10240
        # ringmail runs take seconds: --repeat of each, interleaved, and
        # the median (by messages/s) reported, so one noisy second on a
        # shared machine does not decide plain vs STARTTLS.
        reps = {"rm_plain": [], "rm_tls": []}
        for _ in range(args.repeat):
            for label, tls in (("rm_plain", False), ("rm_tls", True)):
                reps[label].append(ringmail_run(wd, redis, rx, tls, csv, camp))
        for label, rs in reps.items():
            rs.sort(key=lambda r: r["rate"])
            med = dict(rs[len(rs) // 2])
            med["range"] = (rs[0]["rate"], rs[-1]["rate"])
            med["sent"] = min(r["sent"] for r in rs)
            res[label] = med
        runs = [("pf_tls", True, True)]
        if not args.no_postfix_plain:
            runs.insert(0, ("pf_plain", False, True))
        if args.postfix_no_reuse:
            runs.append(("pf_tls_noreuse", True, False))
        for label, tls, reuse in runs:
            res[label] = tx.run(tls, n, rx, reuse)
        res["rx_name"] = rx.name
    finally:
        for pf in reversed(pfs):
            pf.stop()
        if redis is not None:
            redis.stop()
        for rx in rxs:
            rx.stop()
        wd.cleanup()
    report(res)
    ok = all(res[k]["sent"] == args.messages for k in ("rm_plain", "rm_tls"))
    return 0 if ok else 1


def report(res):
    n = args.messages
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    cpu = "?"
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    print("== tls: %d messages of ~10 KB (ringmail renders %s bytes; the reference injects bodies of as many bytes with smtp-source -l), "
          "%d connections, one receiver for all runs: %s; reference sender: Postfix %s; "
          "%s, %d cores; commit %s; %s" % (
              n, res.get("rm_size") or "?", args.conns, res["rx_name"],
              subprocess.run(["postconf", "-dh", "mail_version"], capture_output=True,
                             text=True).stdout.strip(), cpu, os.cpu_count(), commit,
              datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")))
    cols = [("ringmail plain", res["rm_plain"]), ("ringmail STARTTLS", res["rm_tls"])]
    if "pf_plain" in res:
        cols.append(("Postfix plain (ref)", res["pf_plain"]))
    cols.append(("Postfix STARTTLS (ref)", res["pf_tls"]))
    if "pf_tls_noreuse" in res:
        cols.append(("Postfix STARTTLS, no TLS connection reuse", res["pf_tls_noreuse"]))
    print()
    print("| | %s |" % " | ".join(c[0] for c in cols))
    print("|---|%s" % ("---|" * len(cols)))
    print("| delivered | %s |" % " | ".join("%d" % c[1]["sent"] for c in cols))
    print("| messages/s | %s |" % " | ".join(
        ("%.0f (median of %d: %.0f–%.0f; %.0f incl. start/stop)" % (
            c[1]["rate"], args.repeat, c[1]["range"][0], c[1]["range"][1], c[1]["rate_wall"])
         if "rate_wall" in c[1] else "%.0f (release → empty queue)" % c[1]["rate"])
        for c in cols))
    print("| sender CPU s per 1,000 messages | %s |" % " | ".join(
        ("%.3f (+ Redis %.3f)" % (c[1]["cpu"] * 1000 / n, c[1]["redis_cpu"] * 1000 / n)
         if "redis_cpu" in c[1] else "%.3f (whole instance)" % (c[1]["cpu"] * 1000 / n))
        for c in cols))
    print("| receiver CPU s per 1,000 messages | %s |" % " | ".join(
        "%.3f" % (c[1]["rx_cpu"] * 1000 / n) for c in cols))
    print("| TLS handshakes at the receiver (resumed) | %s |" % " | ".join(
        "%d (%s)" % (c[1]["handshakes"], "?" if c[1]["rx_resumed"] is None else
                     "%d" % c[1]["rx_resumed"]) for c in cols))
    print("| TLS sessions resumed (sender's view) | %s |" % " | ".join(
        ("%d of %d handshakes" % (c[1]["rm_resumed"], c[1]["rm_handshakes"])
         if "rm_resumed" in c[1] else
         "%d new TLS sessions, %d reused connections" % (c[1]["client_tls_new"],
                                                         c[1]["client_tls_reused_conn"]))
        for c in cols))
    t, p = res["rm_tls"], res["pf_tls"]
    print()
    print("STARTTLS: ringmail / Postfix = %.1f (msg/s, first to last delivery), %.1f counting "
          "ringmail's start and exit; ringmail STARTTLS / plain = %.2f; CPU per message "
          "ringmail / Postfix = %.3f" % (
              t["rate"] / p["rate"], t["rate_wall"] / p["rate"], t["rate"] / res["rm_plain"]["rate"],
              t["cpu"] / p["cpu"]))


if __name__ == "__main__":
    sys.exit(main())

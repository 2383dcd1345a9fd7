#!/usr/bin/python3
"""ringmail benchmarks, always beside a reference in the same run.

delivery: N recipients (default 100,000), ~10 KB messages, 20 domains, to
  Postfix smtp-sink receivers on loopback. ringmail (submit + worker) is
  measured against Postfix smtp-source sending the same number of 10 KB
  messages over the same number of connections to the same sinks.
  Reported: messages/s, CPU seconds per 1,000 messages, peak RSS, ratios.
submit: 1,000,000 recipients through `ringmail submit` (time, Redis memory
  per queued recipient).

Every load is bounded (message count and a timeout); everything binds to
127.0.0.1 on free ports and is stopped at the end.
"""
import argparse
import datetime
import os
import platform
import resource
import shutil
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(ROOT, "build", "ringmail"))
ap.add_argument("--messages", type=int, default=100000)
ap.add_argument("--submit", type=int, default=1000000)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--conns", type=int, default=40, help="total SMTP connections")
ap.add_argument("--no-record", action="store_true")
ap.add_argument("--scale", type=int, default=30000, help="recipients per scaling run (0 = skip)")
args = ap.parse_args()

NDOM = 20
DOMAINS = ["d%02d.bench.test" % i for i in range(NDOM)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not listening" % port)


def children_usage():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss


def measure(cmd, timeout, **kw):
    c0, _ = children_usage()
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise RuntimeError("timed out: %s" % " ".join(cmd))
    wall = time.time() - t0
    c1, _ = children_usage()
    return wall, c1 - c0, p.returncode, out.decode(errors="replace")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def rcli(port, *a):
    return subprocess.run(["redis-cli", "-p", str(port), "--raw"] + list(a),
                          capture_output=True, text=True).stdout.strip()


def redis_stat(port, name):
    for l in rcli(port, "INFO", "stats").split("\n"):
        if l.startswith(name + ":"):
            return int(l.split(":")[1])
    return 0


def used_memory(port):
    for l in rcli(port, "INFO", "memory").split("\n"):
        if l.startswith("used_memory:"):
            return int(l.split(":")[1])
    return 0


def body(n, seed):
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
             "eiusmod tempor incididunt ut labore et dolore magna aliqua ").split()
    out, line = [], []
    i = seed
    while sum(len(x) + 1 for x in out) < n:
        line.append(words[i % len(words)])
        i += 7
        if len(" ".join(line)) > 70:
            out.append(" ".join(line))
            line = []
    return "\n".join(out)


def main():
    work = tempfile.mkdtemp(prefix="ringmail-bench-")
    procs = Procs()
    res = {}
    try:
        # Sinks: two smtp-sink processes (one per core), 10 domains each.
        sinks = [free_port(), free_port()]
        for p in sinks:
            procs.start(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % p, "1024"])
        for p in sinks:
            wait_port(p)
        rport = free_port()
        os.makedirs(os.path.join(work, "redis"))
        procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", os.path.join(work, "redis")])
        wait_port(rport)
        n = args.messages
        # Routes to one sink share its destination, whose connection_limit
        # holds fleet-wide (every thread of every worker): conns in total.
        per_dest = max(1, args.conns // len(sinks))
        cfg = os.path.join(work, "config.yaml")
        with open(cfg, "w") as f:
            f.write("redis:\n  port: %d\nworker:\n  threads: %d\n  fetch_batch: 64\n"
                    "smtp:\n  connection_limit: %d\n  max_deliveries_per_connection: 100000\n"
                    "log:\n  level: info\nroutes:\n" % (rport, args.threads, per_dest))
            for i, d in enumerate(DOMAINS):
                f.write("  %s: 127.0.0.1:%d\n" % (d, sinks[i % 2]))
        camp = os.path.join(work, "campaign.yaml")
        with open(camp, "w") as f:
            f.write('name: bench\nfrom: "Bench <bench@sender.test>"\n'
                    'subject: "Hello {{first_name}}, your {{city}} offer"\n')
            txt = ("Hi {{first_name}} {{last_name}},\n" + body(4800, 1) +
                   "\nCode {{code}} for {{city}}, {{country}}.\n{{v1}} {{v2}} {{v3}} {{v4}}\n")
            html = ("<html><body><p>Hi {{first_name}} {{last_name}}</p><p>" +
                    body(4800, 3).replace("\n", "</p>\n<p>") +
                    "</p><p>{{code}} {{city}}</p></body></html>\n")
            f.write("text: |\n" + "".join("  " + l + "\n" for l in txt.split("\n")))
            f.write("html: |\n" + "".join("  " + l + "\n" for l in html.split("\n")))
        csv = os.path.join(work, "r.csv")
        with open(csv, "w") as f:
            f.write("email,first_name,last_name,city,country,code,v1,v2,v3,v4\n")
            for i in range(n):
                f.write("u%07d@%s,First%d,Last%d,City%d,Country,C%08d,a,b,c,d\n" %
                        (i, DOMAINS[i % NDOM], i, i, i % 100, i))
        # --- ringmail ---
        wall_s, cpu_s, rc, out = measure([args.bin, "submit", "--config", cfg, camp, csv], 600)
        assert rc == 0, out
        cid = out.strip().split("\n")[0]
        res["submit_100k_s"] = wall_s
        wall, cpu, rc, out = measure([args.bin, "worker", "--config", cfg, "--until-done"], 900)
        # Commands the worker sent (top level, pipelined), from its own
        # counters; Redis' total_commands_processed also counts the
        # commands run inside the record scripts.
        import re as _re
        res["redis_cmds_per_msg"] = sum(int(x) for x in _re.findall(r"redis_cmds=(\d+)", out)) / n
        assert rc == 0, out
        sent = int(rcli(rport, "HGET", "rm:{%s}:stats" % cid, "sent") or 0)
        assert sent == n, "ringmail delivered %d of %d:\n%s" % (sent, n, out[-2000:])
        first = rcli(rport, "XRANGE", "rm:events", "-", "+", "COUNT", "1").split("\n")
        last = rcli(rport, "XREVRANGE", "rm:events", "+", "-", "COUNT", "1").split("\n")
        t_first = int(first[0].split("-")[0])
        t_last = int(last[0].split("-")[0])
        active = max(0.001, (t_last - t_first) / 1000.0)
        _, rss = children_usage()
        res.update(rm_wall=wall, rm_cpu=cpu, rm_rate=n / active, rm_rate_wall=n / wall,
                   rm_rss_mb=rss / 1024.0)
        # --- reference: smtp-source, same count/size/connections ---
        conns = per_dest * len(sinks)
        c0, _ = children_usage()
        t0 = time.time()
        refs = []
        for i, p in enumerate(sinks):
            refs.append(subprocess.Popen(
                ["smtp-source", "-d", "-s", str(conns // 2), "-m", str(n // 2), "-l", "10240",
                 "-f", "bench@sender.test", "-t", "rcpt@%s" % DOMAINS[i],
                 "127.0.0.1:%d" % p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in refs:
            p.wait(900)
        ref_wall = time.time() - t0
        c1, _ = children_usage()
        res.update(ref_wall=ref_wall, ref_cpu=c1 - c0, ref_rate=n / ref_wall)
        # --- scaling (1 vs 2 threads) and PIPELINING off, same campaign ---
        def one_run(th, cfgfile):
            rcli(rport, "FLUSHALL")
            sub = min(n, args.scale)
            with open(csv + ".s", "w") as f:
                f.write("email,first_name,last_name,city,country,code,v1,v2,v3,v4\n")
                for i in range(sub):
                    f.write("u%07d@%s,F%d,L%d,C%d,X,C%08d,a,b,c,d\n" %
                            (i, DOMAINS[i % NDOM], i, i, i % 100, i))
            _, _, rc, out = measure([args.bin, "submit", "--config", cfgfile, camp, csv + ".s"], 600)
            assert rc == 0, out
            _, _, rc, out = measure([args.bin, "worker", "--config", cfgfile, "--until-done",
                                     "--threads", str(th)], 900)
            assert rc == 0, out
            f0 = rcli(rport, "XRANGE", "rm:events", "-", "+", "COUNT", "1").split("\n")
            f1 = rcli(rport, "XREVRANGE", "rm:events", "+", "-", "COUNT", "1").split("\n")
            act = max(0.001, (int(f1[0].split("-")[0]) - int(f0[0].split("-")[0])) / 1000.0)
            return sub / act
        if args.scale:
            for th in (1, 2):
                res["scale_%d" % th] = one_run(th, cfg)
            nopipe = cfg + ".nopipe"
            with open(cfg) as f, open(nopipe, "w") as g:
                g.write(f.read().replace("smtp:\n", "smtp:\n  pipelining: false\n", 1))
            res["nopipe"] = one_run(args.threads, nopipe)
            res["pipe"] = res["scale_%d" % args.threads]
        # --- submit 1M: time and Redis memory per recipient ---
        if args.submit:
            rcli(rport, "FLUSHALL")
            mem0 = used_memory(rport)
            with open(csv, "w") as f:
                f.write("email,first_name,city\n")
                for i in range(args.submit):
                    f.write("u%07d@%s,First%d,City%d\n" % (i, DOMAINS[i % NDOM], i, i % 100))
            camp2 = os.path.join(work, "c2.yaml")
            with open(camp2, "w") as f:
                f.write('name: s\nfrom: "B <b@sender.test>"\nsubject: "Hi {{first_name}}"\n'
                        'text: "Hello {{first_name}} in {{city}}"\n')
            wall_s, _, rc, out = measure([args.bin, "submit", "--config", cfg, camp2, csv], 600)
            assert rc == 0, out
            mem1 = used_memory(rport)
            res.update(submit_1m_s=wall_s, submit_n=args.submit,
                       redis_bytes_per_rcpt=(mem1 - mem0) / args.submit)
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)
    return res, conns


def report(res, conns):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = "?"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = args.messages
    lines = [
        "## %s — commit %s%s" % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
                                  commit, " (dirty)" if dirty else ""),
        "",
        "Machine: %s, %d cores, kernel %s. Delivery: %d recipients, ~10 KB messages, "
        "%d domains, %d connections, 2 Postfix smtp-sink receivers on loopback; "
        "ringmail worker --threads %d." % (cpu, os.cpu_count(), platform.release(), n,
                                          NDOM, conns, args.threads),
        "",
        "| | ringmail | smtp-source (reference) | ratio |",
        "|---|---|---|---|",
        "| messages/s | %.0f (first→last delivery; %.0f incl. start/stop) | %.0f | %.2f |" % (
            res["rm_rate"], res["rm_rate_wall"], res["ref_rate"], res["rm_rate"] / res["ref_rate"]),
        "| CPU s per 1,000 messages | %.3f | %.3f | %.2f |" % (
            res["rm_cpu"] * 1000 / n, res["ref_cpu"] * 1000 / n,
            res["rm_cpu"] / max(res["ref_cpu"], 1e-9)),
        "| peak RSS | %.1f MiB | | |" % res["rm_rss_mb"],
        "",
        "Redis commands sent by the worker per delivered message: %.3f, all pipelined "
        "(fetches, suppression checks and record scripts are batched per job / per loop "
        "turn), so round trips per message are fewer still." %
        res["redis_cmds_per_msg"],
        "",
    ]
    if "nopipe" in res:
        lines.append("PIPELINING: on %.0f msg/s, off %.0f msg/s (x%.2f), same sinks and campaign "
                     "(%d recipients; smtp-sink offers PIPELINING)." % (
                         res["pipe"], res["nopipe"], res["pipe"] / res["nopipe"],
                         min(n, args.scale)))
        lines.append("")
    if "scale_1" in res:
        lines.append("Scaling (same campaign, %d recipients): 1 worker thread %.0f msg/s, "
                     "2 threads %.0f msg/s (×%.2f; this machine has 2 cores shared with "
                     "Redis and the sinks)." % (min(n, args.scale), res["scale_1"], res["scale_2"],
                                                 res["scale_2"] / res["scale_1"]))
        lines.append("")
    lines.append("Note: smtp-source sends a fixed pre-built body; ringmail renders, builds MIME and "
                 "records every outcome in Redis per message, so the ratio is the cost of doing the "
                 "real work.")
    lines.append("")
    if "submit_1m_s" in res:
        lines.append("Submit: %d recipients in %.2f s (%.0f/s); Redis memory %.0f bytes per queued "
                     "recipient. 100k-recipient submit: %.2f s." % (
                         res["submit_n"], res["submit_1m_s"], res["submit_n"] / res["submit_1m_s"],
                         res["redis_bytes_per_rcpt"], res["submit_100k_s"]))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        path = os.path.join(HERE, "RESULTS.md")
        head = "# Benchmark results\n\nNewest first. Produced by `make bench` (bench/bench.py).\n\n"
        old = open(path).read() if os.path.exists(path) else head
        if old.startswith(head):
            old = old[len(head):]
        with open(path, "w") as f:
            f.write(head + text + "\n" + old)


if __name__ == "__main__":
    r, c = main()
    report(r, c)

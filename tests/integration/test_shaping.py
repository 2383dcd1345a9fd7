"""Traffic shaping in the worker: a configured message rate holds across
the run, the adaptive controller backs off from a receiver that answers
421 above its limit, and `ringmail explain` / `status --sites` name the
binding constraint while mail waits."""
import re
import subprocess
import time
import unittest

from services import BIN, Redis, Sink, ThrottleSink, Workdir, ringmail

CAMP = """name: shaping
from: "S <s@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""


class Shaping(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.camp = self.wd.file("c.yaml", CAMP)
        self.sinks = []

    def tearDown(self):
        for s in self.sinks:
            s.stop()
        self.redis.stop()
        self.wd.cleanup()

    def config(self, port, extra):
        return self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
retry: {delay: 1s, max_delay: 2s, max_attempts: 50}
routes:
  shape.test: 127.0.0.1:%d
%s""" % (self.redis.port, port, extra))

    def submit(self, cfg, n):
        rows = ["email,name"] + ["u%d@shape.test,N%d" % (i, i) for i in range(n)]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        return ringmail("submit", "--config", cfg, self.camp, csv).stdout.strip()

    def test_fixed_rate_holds_and_explain_names_it(self):
        sink = Sink(self.wd.path)
        self.sinks.append(sink)
        cfg = self.config(sink.port, "shaping:\n  defaults: {max_message_rate: 20/s, "
                                     "adaptive: false}\n")
        n = 100
        cid = self.submit(cfg, n)
        # A record left by a worker that died an hour ago: pruned.
        stale = "%d\x1fdead-1-0\x1f5\x1f0\x1fnone\x1fx\x1f\x1f0" % ((time.time() - 3600) * 1000)
        self.redis.raw("HSET", "rm:sites", "old.site\x1fdead-1-0", stale)
        t0 = time.time()
        p = subprocess.Popen([BIN, "worker", "--config", cfg, "--until-done"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        self.assertEqual(self.redis.raw("HEXISTS", "rm:sites", "old.site\x1fdead-1-0").strip(),
                         "0", "stale site record pruned")
        ex = ringmail("explain", "--config", cfg, "127.0.0.1", check=False).stdout
        sites = ringmail("status", "--config", cfg, "--sites").stdout
        camp = ringmail("explain", "--config", cfg, cid).stdout
        p.communicate(timeout=60)
        took = time.time() - t0
        self.assertEqual(len(sink.messages()), n)
        # 100 messages at 20/s take at least ~4.5 s (burst 1).
        self.assertGreaterEqual(took, 4.5, "the rate held")
        self.assertIn("rate:", ex, ex)
        self.assertIn("bind=rate", sites, sites)
        self.assertIn("campaign %s: state active" % cid, camp)
        # ETA from the live budget: the recipients the worker holds for
        # the site at its 20/s, and from the rate so far.
        m = re.search(r"live budgets: not before (\d+) s \(site 127\.0\.0\.1:\d+: "
                      r"(\d+) queued in workers at its current 20\.0/s", camp)
        self.assertIsNotNone(m, camp)
        self.assertAlmostEqual(int(m.group(1)), int(m.group(2)) / 20.0, delta=1, msg=camp)
        self.assertGreater(int(m.group(2)), 10, camp)
        self.assertRegex(camp, r"ETA: \d+ s at the rate so far \(\d+\.\d outcomes/s\)")

    def test_rate_holds_fleet_wide_across_two_workers(self):
        sink = Sink(self.wd.path)
        self.sinks.append(sink)
        cfg = self.config(sink.port, "shaping:\n  defaults: {max_message_rate: 20/s, "
                                     "adaptive: false}\n")
        n = 120
        self.submit(cfg, n)
        t0 = time.time()
        ps = [subprocess.Popen([BIN, "worker", "--config", cfg, "--until-done"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(2)]
        for p in ps:
            p.wait(timeout=90)
        took = time.time() - t0
        self.assertEqual(len(sink.messages()), n)
        # Two workers sharing one 20/s bucket need ~6 s; each alone at
        # 20/s would finish in ~3 s.
        self.assertGreaterEqual(took, 5.0, "the limit held across workers (%.1fs)" % took)
        self.assertNotEqual(self.redis.raw("KEYS", "rm:shape*").strip(), "", "leases in Redis")

    def test_connection_cap_holds_fleet_wide_across_two_workers(self):
        # Two workers with two threads each: four holders that would open
        # 3 sessions each (12) if connection_limit held per thread.
        # A slow receiver (20 ms a message) keeps sessions busy, so each
        # thread has queue enough to want all of its sessions at once.
        sink = ThrottleSink(self.wd.path, rate=100000, delay=0.02)
        self.sinks.append(sink)
        cfg = self.config(sink.port, "shaping:\n  defaults: {connection_limit: 3, "
                                     "max_deliveries_per_connection: 5, adaptive: false}\n")
        with open(cfg) as f:
            text = f.read().replace("threads: 1", "threads: 2, fetch_batch: 1, max_queued: 20")
        with open(cfg, "w") as f:
            f.write(text)
        n = 400
        rows = ["email,name"] + ["u%d@shape.test,N%d" % (i, i) for i in range(n)]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        # Jobs of 10 recipients, one per fetch, at most 20 held per
        # thread: every thread of both workers gets some.
        cid = ringmail("submit", "--config", cfg, "--batch", "10", self.camp,
                       csv).stdout.strip()
        ps = [subprocess.Popen([BIN, "worker", "--config", cfg, "--until-done"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
        # While they run, `ringmail explain SITE` names the fleet-wide cap
        # whenever the thread that published last is the one waiting.
        seen, t_end, outs = "", time.time() + 60, []
        while time.time() < t_end and any(p.poll() is None for p in ps):
            ex = ringmail("explain", "--config", cfg, "127.0.0.1:%d" % sink.port,
                          check=False).stdout
            outs.append(ex)
            if "fleet-wide connection_limit 3 reached" in ex:
                seen = ex
                break
            time.sleep(0.2)
        errs = [p.communicate(timeout=120)[1] for p in ps]
        self.assertIn("binding: connections: fleet-wide", seen, outs[-8:])
        st = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(st.get("sent"), str(n), (st, errs))
        time.sleep(0.3)  # the sink writes its stats every 0.2 s
        stats = sink.stats()
        self.assertEqual(stats["accepted"], n, stats)
        self.assertLessEqual(stats["max_concurrent"], 3, stats)
        self.assertGreaterEqual(stats["max_concurrent"], 2, "the cap was used: %r" % stats)
        # 400 messages at 5 per session: at least 80 sessions, each with a
        # slot taken and given back; nothing stays held after the run.
        self.assertGreaterEqual(stats["connections"], 80, stats)
        held = self.redis.raw("HGETALL", "rm:shape:{127.0.0.1:%d}:held" % sink.port).strip()
        self.assertEqual(held, "", "slots released at exit")

    def test_adaptive_backs_off_from_throttling_receiver(self):
        sink = ThrottleSink(self.wd.path, rate=30)
        self.sinks.append(sink)
        cfg = self.config(sink.port, "shaping:\n  defaults: {max_message_rate: 200/s}\n")
        n = 300
        cid = self.submit(cfg, n)
        r = ringmail("worker", "--config", cfg, "--until-done", timeout=180)
        st = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(st["sent"], str(n), st)
        self.assertIn("reason=throttle", r.stderr, "the controller cut the rate")
        ev = self.redis.raw("XRANGE", "rm:events", "-", "+")
        self.assertIn("rate-limited", ev, "421s classified as rate limiting")


if __name__ == "__main__":
    unittest.main()

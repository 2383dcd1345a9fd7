"""IP warm-up (issue 6): sources listed in warmup.sources send at most the
day's volume of warmup.schedule, the rest of their pool carries the
overflow; a day advances only when the previous day's deferral and bounce
ratios stayed under the maxima; when every source of a pool has used its
volume, mail waits and `ringmail explain` says why."""
import signal
import subprocess
import time
import unittest

from services import BIN, Redis, Sink, Workdir, ringmail

CAMP = """name: warmup
from: "W <w@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""


class Warmup(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.sink = Sink(self.wd.path)
        self.camp = self.wd.file("c.yaml", CAMP)

    def tearDown(self):
        self.sink.stop()
        self.redis.stop()
        self.wd.cleanup()

    def config(self, sources, warming, schedule):
        return self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
smtp:
  connection_limit: 2
  max_deliveries_per_connection: 3
pools:
  p:
%s
warmup:
  sources: [%s]
  schedule: [%s]
  max_deferral_rate: 10%%
  max_bounce_rate: 5%%
routes:
  warm.test: 127.0.0.1:%d
""" % (self.redis.port, "\n".join("    - {source: %s}" % s for s in sources),
       ", ".join(warming), ", ".join(str(n) for n in schedule), self.sink.port))

    def submit(self, cfg, n):
        rows = ["email,name"] + ["u%d@warm.test,N%d" % (i, i) for i in range(n)]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        return ringmail("submit", "--config", cfg, "--pool", "p", self.camp,
                        csv).stdout.strip()

    def by_peer(self):
        out = {}
        for m in self.sink.messages():
            out[m["peer"]] = out.get(m["peer"], 0) + 1
        return out

    def test_daily_volume_and_overflow_to_warm_source(self):
        cfg = self.config(["127.0.0.2", "127.0.0.3"], ["127.0.0.2"], [5, 10])
        self.submit(cfg, 30)
        ringmail("worker", "--config", cfg, "--until-done", timeout=120)
        self.assertEqual(self.by_peer(), {"127.0.0.2": 5, "127.0.0.3": 25})
        h = self.redis.hgetall("rm:warmup:{127.0.0.2}")
        self.assertEqual((h["day"], h["taken"], h["sent"]), ("0", "5", "5"), h)
        self.assertEqual(h["date"], time.strftime("%Y%m%d", time.gmtime()))
        self.assertEqual(self.redis.raw("EXISTS", "rm:warmup:{127.0.0.3}").strip(), "0")

    def test_day_advances_only_under_thresholds(self):
        cfg = self.config(["127.0.0.2", "127.0.0.4", "127.0.0.3"],
                          ["127.0.0.2", "127.0.0.4"], [5, 10])
        # Yesterday: .2 deferred 2 of 100 (2%): advances; .4 deferred 30
        # of 100 (30% > 10%): stays on day 1's volume.
        yday = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
        self.redis.raw("HSET", "rm:warmup:{127.0.0.2}", "day", "0", "date", yday,
                       "taken", "100", "sent", "98", "deferred", "2", "bounced", "0")
        self.redis.raw("HSET", "rm:warmup:{127.0.0.4}", "day", "0", "date", yday,
                       "taken", "100", "sent", "70", "deferred", "30", "bounced", "0")
        self.submit(cfg, 40)
        ringmail("worker", "--config", cfg, "--until-done", timeout=120)
        self.assertEqual(self.by_peer(), {"127.0.0.2": 10, "127.0.0.4": 5, "127.0.0.3": 25})
        a = self.redis.hgetall("rm:warmup:{127.0.0.2}")
        b = self.redis.hgetall("rm:warmup:{127.0.0.4}")
        self.assertEqual((a["day"], a["last_advanced"], a["last_deferred"]), ("1", "1", "2"), a)
        self.assertEqual((b["day"], b["last_advanced"], b["last_deferred"]), ("0", "0", "30"), b)
        # What an operator sees.
        ex = ringmail("explain", "--config", cfg, "127.0.0.2").stdout
        self.assertIn("warm-up day 2 of 2: 10 messages a day; 10 taken today", ex)
        self.assertIn("used up, the pool's other sources carry on", ex)
        self.assertRegex(ex, r"last active day \d{8}: sent 98, deferred 2, bounced 0: "
                             r"advanced a day \(maxima: deferrals 10%, bounces 5%\)")
        ex = ringmail("explain", "--config", cfg, "127.0.0.4").stdout
        self.assertIn("warm-up day 1 of 2: 5 messages a day", ex)
        self.assertIn("stayed on its day", ex)
        ex = ringmail("explain", "--config", cfg, "127.0.0.3", check=False)
        self.assertEqual(ex.returncode, 1, "a warm source has no warm-up record")

    def test_past_the_schedule_is_warm(self):
        cfg = self.config(["127.0.0.2"], ["127.0.0.2"], [5])
        yday = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
        self.redis.raw("HSET", "rm:warmup:{127.0.0.2}", "day", "0", "date", yday,
                       "taken", "5", "sent", "5", "deferred", "0", "bounced", "0")
        self.submit(cfg, 12)
        ringmail("worker", "--config", cfg, "--until-done", timeout=120)
        self.assertEqual(self.by_peer(), {"127.0.0.2": 12})

    def test_all_sources_spent_mail_waits_and_explain_says_why(self):
        cfg = self.config(["127.0.0.2"], ["127.0.0.2"], [3, 6])
        cid = self.submit(cfg, 6)
        p = subprocess.Popen([BIN, "worker", "--config", cfg],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            t_end = time.time() + 30
            while time.time() < t_end and len(self.sink.messages()) < 3:
                time.sleep(0.1)
            time.sleep(2.5)   # past a publish; nothing more may go out
            self.assertEqual(self.by_peer(), {"127.0.0.2": 3})
            ex = ringmail("explain", "--config", cfg, "127.0.0.1", check=False).stdout
            self.assertIn("warm-up: every source of pool p has used today's volume", ex)
        finally:
            p.send_signal(signal.SIGTERM)
            err = p.communicate(timeout=60)[1]
        self.assertEqual(p.returncode, 0, err[-2000:])
        self.assertIn("warm-up day=1 volume=3 used", err)
        # Nothing lost: 3 sent, 3 back in Redis for later.
        st = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(st.get("sent"), "3", st)


if __name__ == "__main__":
    unittest.main()

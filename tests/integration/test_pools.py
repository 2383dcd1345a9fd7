"""IP pools: sessions are bound to the pool's source addresses (before
connect) and greet with each source's EHLO name; a campaign picks its pool
at submit time; an unknown pool is refused."""
import unittest

from services import Redis, Sink, Workdir, ringmail

CAMP = """name: pools
from: "P <p@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""


class Pools(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.redis = Redis(self.wd.path)
        self.sink = Sink(self.wd.path)
        self.cfg = self.wd.file("config.yaml", """redis: {port: %d}
worker: {threads: 1}
smtp:
  connection_limit: 2
  max_deliveries_per_connection: 5
pools:
  warm:
    - {source: 127.0.0.2, ehlo_name: mta2.sender.test}
    - {source: 127.0.0.3, ehlo_name: mta3.sender.test}
  other:
    - {source: 127.0.0.4}
routes:
  pool.test: 127.0.0.1:%d
""" % (self.redis.port, self.sink.port))
        self.camp = self.wd.file("c.yaml", CAMP)
        rows = ["email,name"] + ["u%d@pool.test,N%d" % (i, i) for i in range(60)]
        self.csv = self.wd.file("r.csv", "\n".join(rows) + "\n")

    def tearDown(self):
        self.sink.stop()
        self.redis.stop()
        self.wd.cleanup()

    def test_campaign_pool_binds_sources_with_their_ehlo(self):
        ringmail("submit", "--config", self.cfg, "--pool", "warm", self.camp, self.csv)
        ringmail("worker", "--config", self.cfg, "--until-done", timeout=120)
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 60)
        pairs = {(m["peer"], m["helo"]) for m in msgs}
        self.assertEqual(pairs, {("127.0.0.2", "mta2.sender.test"),
                                 ("127.0.0.3", "mta3.sender.test")})

    def test_default_pool_from_config(self):
        cfg = open(self.cfg).read().replace("  max_deliveries_per_connection: 5",
                                            "  max_deliveries_per_connection: 5\n  pool: other")
        p = self.wd.file("c2.yaml", cfg)
        ringmail("submit", "--config", p, self.camp, self.csv)
        ringmail("worker", "--config", p, "--until-done", timeout=120)
        self.assertEqual({m["peer"] for m in self.sink.messages()}, {"127.0.0.4"})

    def test_unknown_pool_refused(self):
        r = ringmail("submit", "--config", self.cfg, "--pool", "nope", self.camp, self.csv,
                     check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no pool named 'nope'", r.stderr)
        bad = self.wd.file("bad.yaml", "pools:\n  p1:\n    - {source: mta.example}\n")
        r = ringmail("worker", "--config", bad, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"bad\.yaml:3:\d+: pools\.p1\[0\]\.source")


if __name__ == "__main__":
    unittest.main()

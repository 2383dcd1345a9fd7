"""Delivery without static routes: MX resolution through a real DNS server
(dnsmasq on loopback), sites shared by domains with the same MX set,
failover from a dead MX to the next one, null MX and NXDOMAIN bounces."""
import unittest

from services import Redis, Sink, Workdir, ringmail
from test_dns import Dnsmasq

RECORDS = [
    # shop1 and shop2 share one MX set: one site. The preferred MX is on
    # 127.0.0.2, where nothing listens: sessions must fail over.
    "--mx-host=shop1.test,mxdown.hosts.test,10",
    "--mx-host=shop1.test,mxup.hosts.test,20",
    "--mx-host=shop2.test,mxup.hosts.test,20",
    "--mx-host=shop2.test,mxdown.hosts.test,10",
    "--host-record=mxdown.hosts.test,127.0.0.2",
    "--host-record=mxup.hosts.test,127.0.0.1",
    "--host-record=implicit.test,127.0.0.1",
    "--dns-rr=nullmx.test,15,000000",
]

CAMP = """name: mx
from: "M <m@sender.test>"
subject: "Hi {{name}}"
text: "Hello {{name}}"
"""


class MX(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.dns = Dnsmasq(self.wd.path, records=RECORDS)
        self.redis = Redis(self.wd.path)
        self.sink = Sink(self.wd.path)
        self.cfg = self.wd.file("config.yaml", """redis:
  port: %d
worker:
  threads: 1
smtp:
  remote_port: %d
  timeouts: {connect: 3s}
dns:
  resolvers: ["127.0.0.1:%d"]
  timeout: 500ms
retry:
  delay: 1s
  max_attempts: 2
""" % (self.redis.port, self.sink.port, self.dns.port))
        self.camp = self.wd.file("c.yaml", CAMP)

    def tearDown(self):
        self.sink.stop()
        self.redis.stop()
        self.dns.stop()
        self.wd.cleanup()

    def test_sites_failover_and_permanent_dns_failures(self):
        rows = ["email,name"]
        for i in range(40):
            rows.append("u%d@shop%d.test,N%d" % (i, 1 + i % 2, i))
        rows += ["a@implicit.test,I", "b@nullmx.test,Z", "c@nosuchdomain.test,X"]
        csv = self.wd.file("r.csv", "\n".join(rows) + "\n")
        cid = ringmail("submit", "--config", self.cfg, self.camp, csv).stdout.strip()
        r = ringmail("worker", "--config", self.cfg, "--until-done", timeout=120)
        got = sorted(m["rcpt_tos"][0] for m in self.sink.messages())
        want = sorted(["u%d@shop%d.test" % (i, 1 + i % 2) for i in range(40)] +
                      ["a@implicit.test"])
        self.assertEqual(got, want)
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(stats["sent"], "41")
        self.assertEqual(stats["bounced"], "2")
        ev = self.redis.raw("XRANGE", "rm:events", "-", "+")
        # One site for both shops, named by its MX set.
        self.assertIn("mxdown.hosts.test,mxup.hosts.test", ev)
        self.assertIn("\nmx\nmxup.hosts.test\n", ev, "the MX host is in the event")
        self.assertIn("5.1.10", ev)          # null MX, RFC 7505
        self.assertIn("5.1.2", ev)           # NXDOMAIN
        # The dead preferred MX was tried and skipped.
        self.assertIn("host=mxdown.hosts.test", r.stderr)
        self.assertEqual(self.redis.hget("rm:{%s}:meta" % cid, "state"), "done")

    def test_resolver_down_defers(self):
        cfg = open(self.cfg).read().replace("127.0.0.1:%d" % self.dns.port, "127.0.0.1:1")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        csv = self.wd.file("r.csv", "email,name\nx@shop1.test,X\n")
        cid = ringmail("submit", "--config", self.cfg, self.camp, csv).stdout.strip()
        ringmail("worker", "--config", self.cfg, "--until-done", timeout=120)
        stats = self.redis.hgetall("rm:{%s}:stats" % cid)
        self.assertEqual(stats.get("failed"), "1", stats)
        self.assertGreaterEqual(int(stats.get("deferred", 0)), 1)
        self.assertIn("4.4.3", self.redis.raw("XRANGE", "rm:events", "-", "+"))


if __name__ == "__main__":
    unittest.main()

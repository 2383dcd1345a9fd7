"""MX resolution against a real DNS server: dnsmasq on a free loopback port
serves MX, A, AAAA and null-MX records; `ringmail route --resolver` resolves
them through c-ares driven by the io_uring loop and prints one JSON line
per domain."""
import json
import os
import socket
import subprocess
import time
import unittest

from services import Workdir, free_port, ringmail, stop_proc, wait_port

DNSMASQ = "/usr/sbin/dnsmasq"

RECORDS = [
    # MX order: 10 before 20 before 30.
    "--mx-host=order.test,mx30.hosts.test,30",
    "--mx-host=order.test,mx10.hosts.test,10",
    "--mx-host=order.test,mx20.hosts.test,20",
    # Equal preference: both orders over repeated lookups.
    "--mx-host=equal.test,mxa.hosts.test,10",
    "--mx-host=equal.test,mxb.hosts.test,10",
    # Same MX set as order.test, other preferences and case: same site.
    "--mx-host=sibling.test,MX20.hosts.test,5",
    "--mx-host=sibling.test,mx30.hosts.test,1",
    "--mx-host=sibling.test,mx10.hosts.test,7",
    # One MX host without any address: left out.
    "--mx-host=partial.test,gone.hosts.test,5",
    "--mx-host=partial.test,mx20.hosts.test,50",
    # No MX host resolves: temporary.
    "--mx-host=dangling.test,gone.hosts.test,10",
    # Null MX (RFC 7505): preference 0, exchange "." (the root).
    "--dns-rr=null.test,15,000000",
    "--host-record=null.test,127.0.0.66",
    # No MX at all: the domain's own addresses (implicit MX).
    "--host-record=implicit.test,127.0.0.9,::9",
    "--host-record=mx10.hosts.test,127.0.0.10,::1",
    "--host-record=mx20.hosts.test,127.0.0.20",
    "--host-record=mx30.hosts.test,::30",
    "--host-record=mxa.hosts.test,127.0.0.11",
    "--host-record=mxb.hosts.test,127.0.0.12",
]
# 40 MX hosts: the answer exceeds 512 bytes, so it comes over TCP (c-ares
# retries a truncated UDP answer); the route keeps the best 16, and the
# site key, longer than 511 bytes, ends in a digest.
for i in range(1, 41):
    h = "mx%02d-aaaaaaaaaaaaaaaaaaaaaaaa.big.test" % i
    RECORDS += ["--mx-host=big.test,%s,%d" % (h, i % 7),
                "--host-record=%s,127.0.1.%d" % (h, i)]


class Dnsmasq:
    def __init__(self, workdir, listen="127.0.0.1", records=None):
        records = RECORDS if records is None else records
        self.log = os.path.join(workdir, "dnsmasq.log")
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", "--port=%d" % self.port,
                 "--listen-address=%s" % listen, "--bind-interfaces",
                 "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                 "--pid-file=", "--log-facility=" + self.log,
                 "--local=/test/", "--local-ttl=60"] + records,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if listen == "127.0.0.1":
                    wait_port(self.port, timeout=5)
                else:
                    time.sleep(0.3)
                if self.proc.poll() is None:
                    return
            except RuntimeError:
                pass
            self.stop()
        raise RuntimeError("dnsmasq did not start")

    def stop(self):
        stop_proc(self.proc)


class DNS(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.dns = Dnsmasq(self.wd.path)
        self.resolver = "127.0.0.1:%d" % self.dns.port

    def tearDown(self):
        self.dns.stop()
        self.wd.cleanup()

    def route(self, *domains, resolver=None, check=True):
        r = ringmail("route", "--resolver", resolver or self.resolver,
                     *domains, timeout=60, check=False)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([x["domain"] for x in lines], list(domains))
        if check:
            ok = all(x["status"] == "ok" for x in lines)
            self.assertEqual(r.returncode, 0 if ok else 1)
        return lines

    def test_mx_order_and_addresses(self):
        (r,) = self.route("order.test")
        self.assertEqual(r["status"], "ok")
        self.assertFalse(r["implicit"])
        self.assertEqual([h["name"] for h in r["hosts"]],
                         ["mx10.hosts.test", "mx20.hosts.test",
                          "mx30.hosts.test"])
        self.assertEqual([h["pref"] for h in r["hosts"]], [10, 20, 30])
        # IPv6 and IPv4, IPv6 first; an IPv6-only host.
        self.assertEqual(r["hosts"][0]["addrs"], ["::1", "127.0.0.10"])
        self.assertEqual(r["hosts"][1]["addrs"], ["127.0.0.20"])
        self.assertEqual(r["hosts"][2]["addrs"], ["::30"])
        self.assertEqual(r["site"],
                         "mx10.hosts.test,mx20.hosts.test,mx30.hosts.test")
        self.assertIsNone(r["why"])

    def test_equal_preference_is_randomised(self):
        # Concurrent lookups in one run (one shared query, shuffled per
        # caller) and separate runs: both orders must show up.
        seen = set()
        for r in self.route(*(["equal.test"] * 40)):
            self.assertEqual(r["status"], "ok")
            self.assertEqual([h["pref"] for h in r["hosts"]], [10, 10])
            seen.add(tuple(h["name"] for h in r["hosts"]))
        self.assertEqual(seen, {("mxa.hosts.test", "mxb.hosts.test"),
                                ("mxb.hosts.test", "mxa.hosts.test")})
        seen = set()
        for _ in range(30):
            (r,) = self.route("equal.test")
            seen.add(r["hosts"][0]["name"])
            if len(seen) == 2:
                break
        self.assertEqual(seen, {"mxa.hosts.test", "mxb.hosts.test"})
        self.assertEqual(r["site"], "mxa.hosts.test,mxb.hosts.test")

    def test_implicit_mx(self):
        (r,) = self.route("implicit.test")
        self.assertEqual(r["status"], "ok")
        self.assertTrue(r["implicit"])
        self.assertEqual(r["site"], "implicit.test")
        self.assertEqual(len(r["hosts"]), 1)
        self.assertEqual(r["hosts"][0]["name"], "implicit.test")
        self.assertEqual(r["hosts"][0]["addrs"], ["::9", "127.0.0.9"])

    def test_null_mx_is_permanent(self):
        # The domain has an A record too: a null MX still wins.
        (r,) = self.route("null.test", check=False)
        self.assertEqual(r["status"], "null_mx")
        self.assertTrue(r["permanent"])
        self.assertEqual(r["hosts"], [])
        self.assertIn("RFC 7505", r["why"])

    def test_nxdomain_is_permanent(self):
        (r,) = self.route("nosuch.test", check=False)
        self.assertEqual(r["status"], "nxdomain")
        self.assertTrue(r["permanent"])
        self.assertEqual(r["hosts"], [])
        self.assertIn("NXDOMAIN", r["why"])

    def test_same_mx_set_same_site(self):
        a, b, c = self.route("order.test", "Sibling.TEST.", "equal.test")
        self.assertEqual(a["site"], b["site"])
        self.assertNotEqual(a["site"], c["site"])
        # sibling.test's own order: by its preferences.
        self.assertEqual([h["name"] for h in b["hosts"]],
                         ["mx30.hosts.test", "mx20.hosts.test",
                          "mx10.hosts.test"])

    def test_hosts_without_address_are_dropped(self):
        p, d = self.route("partial.test", "dangling.test", check=False)
        self.assertEqual(p["status"], "ok")
        self.assertEqual([h["name"] for h in p["hosts"]], ["mx20.hosts.test"])
        # The site is the MX set, resolved or not.
        self.assertEqual(p["site"], "gone.hosts.test,mx20.hosts.test")
        self.assertEqual(d["status"], "temporary")
        self.assertFalse(d["permanent"])
        self.assertEqual(d["hosts"], [])

    def test_large_mx_set_over_tcp(self):
        (r,) = self.route("big.test")
        self.assertEqual(r["status"], "ok")
        self.assertEqual(len(r["hosts"]), 16)
        prefs = [h["pref"] for h in r["hosts"]]
        self.assertEqual(prefs, sorted(prefs))
        self.assertEqual(prefs, [0] * 5 + [1] * 6 + [2] * 5)
        self.assertLessEqual(len(r["site"]), 511)
        self.assertRegex(r["site"], r"^mx01-a+\.big\.test,.*#[0-9a-f]{64}$")
        (again,) = self.route("big.test")
        self.assertEqual(again["site"], r["site"])

    def test_unreachable_resolver_is_temporary(self):
        dead = free_port()
        t0 = time.time()
        (r,) = self.route("order.test", resolver="127.0.0.1:%d" % dead,
                          check=False)
        self.assertEqual(r["status"], "temporary")
        self.assertFalse(r["permanent"])
        self.assertLess(time.time() - t0, 30)

    def test_silent_resolver_times_out(self):
        # A UDP socket that never answers: only the loop timer driving
        # ares_timeout() can end these lookups (200 ms, then 400 ms).
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        try:
            cfg = self.wd.file("config.yaml",
                               "dns:\n  timeout: 200ms\n  tries: 2\n")
            t0 = time.time()
            r = ringmail("route", "--config", cfg, "--resolver",
                         "127.0.0.1:%d" % silent.getsockname()[1],
                         "order.test", "equal.test", timeout=30,
                         check=False)
            took = time.time() - t0
        finally:
            silent.close()
        self.assertEqual(r.returncode, 1, r.stderr)
        for line in r.stdout.splitlines():
            out = json.loads(line)
            self.assertEqual(out["status"], "temporary")
            self.assertIn("Timeout", out["why"])
        self.assertGreater(took, 0.5)
        self.assertLess(took, 10)

    def test_many_domains_at_once(self):
        names = ["order.test", "equal.test", "implicit.test", "null.test",
                 "nosuch.test", "sibling.test", "partial.test"] * 6
        res = self.route(*names, check=False)
        want = {"order.test": "ok", "equal.test": "ok", "implicit.test": "ok",
                "null.test": "null_mx", "nosuch.test": "nxdomain",
                "sibling.test": "ok", "partial.test": "ok"}
        for r in res:
            self.assertEqual(r["status"], want[r["domain"]], r)


class DNSv6(unittest.TestCase):
    """The resolver itself reached over IPv6."""

    def setUp(self):
        self.wd = Workdir(self._testMethodName)
        self.dns = Dnsmasq(self.wd.path, listen="::1")

    def tearDown(self):
        self.dns.stop()
        self.wd.cleanup()

    def test_ipv6_resolver(self):
        r = ringmail("route", "--resolver", "[::1]:%d" % self.dns.port,
                     "order.test", timeout=60)
        out = json.loads(r.stdout)
        self.assertEqual(out["status"], "ok")
        self.assertEqual(out["hosts"][0]["name"], "mx10.hosts.test")


if __name__ == "__main__":
    unittest.main()

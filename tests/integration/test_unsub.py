"""`ringmail unsubscribe-server` (engine/in/unsubd.c) against a real
redis-server, driven with curl (and raw sockets for malformed requests):
RFC 8058 one-click POST, the GET landing page that changes nothing,
forged and expired tokens, malformed and oversized requests, and an
idempotent repeat."""
import os
import socket
import subprocess
import time
import unittest

from services import Redis, Workdir, free_port, ringmail, wait_port, BIN

CAMP = "spring-26"
ADDR = "Alice.Example@Example.COM"
NORM = "alice.example@example.com"


def curl(*args):
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}",
                        "--max-time", "10"] + list(args),
                       capture_output=True, text=True, timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


class UnsubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("unsub")
        cls.redis = Redis(cls.wd.path)
        cls.port = free_port()
        secret = cls.wd.file("secret", os.urandom(16).hex() + "\n")
        os.chmod(secret, 0o600)
        cls.cfg = cls.wd.file("config.yaml", "\n".join([
            "redis:", "  host: 127.0.0.1", "  port: %d" % cls.redis.port,
            "unsubscribe:", "  url: https://unsub.test/u/",
            "  secret_file: %s" % secret, "  max_age: 30d",
            "  listen: 127.0.0.1:%d" % cls.port, ""]))
        cls.log = open(os.path.join(cls.wd.path, "unsubd.log"), "w")
        cls.proc = subprocess.Popen([BIN, "unsubscribe-server", "--config",
                                     cls.cfg], stdout=cls.log,
                                    stderr=subprocess.STDOUT)
        wait_port(cls.port)
        cls.base = "http://127.0.0.1:%d/u/" % cls.port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()
        cls.redis.stop()
        cls.wd.cleanup()

    def token(self, camp=CAMP, addr=ADDR, issued=None):
        args = ["unsubscribe-token", "--config", self.cfg]
        if issued is not None:
            args += ["--issued", str(issued)]
        out = ringmail(*(args + [camp, addr])).stdout.split("\n")
        self.assertTrue(out[1].startswith("https://unsub.test/u/"))
        return out[0]

    def state(self):
        return (self.redis.raw("HLEN", "rm:suppress").strip(),
                self.redis.raw("XLEN", "rm:events").strip(),
                self.redis.raw("XLEN", "rm:suppress:log").strip())

    def assertAlive(self):
        self.assertIsNone(self.proc.poll(), "server died")
        code, _ = curl(self.base + "x")
        self.assertEqual(code, 400)

    def test_1_get_shows_form_changes_nothing(self):
        tok = self.token(addr="get-only@example.com")
        before = self.state()
        code, body = curl(self.base + tok)
        self.assertEqual(code, 200)
        self.assertIn('<form method="post">', body)
        self.assertIn('name="List-Unsubscribe" value="One-Click"', body)
        self.assertIn("get-only@example.com", body)
        code, _ = curl("-I", self.base + tok)
        self.assertEqual(code, 200)
        self.assertEqual(self.state(), before)
        self.assertEqual(self.redis.hget("rm:suppress",
                                         "get-only@example.com"), "")

    def test_2_one_click_post_then_idempotent(self):
        tok = self.token()
        code, body = curl("-X", "POST", "-H",
                          "Content-Type: application/x-www-form-urlencoded",
                          "--data", "List-Unsubscribe=One-Click",
                          self.base + tok)
        self.assertEqual(code, 200, body)
        val = self.redis.hget("rm:suppress", NORM)
        reason, source, ts = val.split("\x1f")[:3]
        self.assertEqual(source, "unsubscribe")
        self.assertIn(CAMP, reason)
        self.assertGreater(int(ts), 0)
        ev = self.redis.raw("XRANGE", "rm:events", "-", "+").split("\n")
        self.assertIn("unsubscribed", ev)
        i = ev.index("type")
        fields = dict(zip(ev[i - 2::2], ev[i - 1::2]))
        self.assertEqual(fields.get("campaign"), CAMP)
        self.assertEqual(fields.get("rcpt"), NORM)
        self.assertEqual(fields.get("v"), "1")
        self.assertIn("ts", fields)
        log = self.redis.raw("XRANGE", "rm:suppress:log", "-", "+")
        self.assertIn(NORM, log)
        self.assertEqual(self.redis.hget("rm:{%s}:stats" % CAMP,
                                         "unsubscribed"), "1")
        before = self.state()
        # The same POST again, and the landing page's multipart variant.
        code, _ = curl("-X", "POST", "--data", "List-Unsubscribe=One-Click",
                       self.base + tok)
        self.assertEqual(code, 200)
        code, _ = curl("-F", "List-Unsubscribe=One-Click", self.base + tok)
        self.assertEqual(code, 200)
        self.assertEqual(self.state(), before)
        self.assertEqual(self.redis.hget("rm:{%s}:stats" % CAMP,
                                         "unsubscribed"), "1")

    def test_3_multipart_form_data(self):
        tok = self.token(addr="multi@example.com")
        code, _ = curl("-F", "List-Unsubscribe=One-Click", self.base + tok)
        self.assertEqual(code, 200)
        self.assertNotEqual(self.redis.hget("rm:suppress",
                                            "multi@example.com"), "")

    def test_4_forged_and_expired_tokens(self):
        before = self.state()
        tok = self.token(addr="victim@example.com")
        forged = tok[:-3] + ("AAA" if tok[-3:] != "AAA" else "BBB")
        for t, want in ((forged, 403), (tok[:20], 403), ("!!", 404),
                        ("A" * 30, 400)):
            code, body = curl("-X", "POST", "--data",
                              "List-Unsubscribe=One-Click", self.base + t)
            self.assertIn(code, (400, 403) if want != 404 else (404,),
                          (t, code))
        expired = self.token(addr="victim@example.com",
                             issued=int(time.time()) - 31 * 86400)
        code, body = curl("-X", "POST", "--data",
                          "List-Unsubscribe=One-Click", self.base + expired)
        self.assertEqual(code, 403)
        self.assertIn("expired", body)
        code, _ = curl(self.base + expired)
        self.assertEqual(code, 403)
        # Valid token, wrong body: refused, nothing changes.
        code, _ = curl("-X", "POST", "--data", "List-Unsubscribe=Yes",
                       self.base + tok)
        self.assertEqual(code, 400)
        self.assertEqual(self.state(), before)
        self.assertEqual(self.redis.hget("rm:suppress",
                                         "victim@example.com"), "")

    def raw(self, data, read=True):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(data)
        out = b""
        if read:
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    out += b
            except socket.timeout:
                pass
        s.close()
        return out

    def test_5_malformed_requests(self):
        cases = [
            (b"GARBAGE\r\n\r\n", b"400"),
            (b"GET /u/x HTTP/1.1\r\n\r\n", b"400"),          # no Host
            (b"GET /u/x HTTP/3.0\r\nHost: h\r\n\r\n", b"505"),
            (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n", b"414"),
            (b"GET /u/x HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 9000, b"431"),
            (b"POST /u/x HTTP/1.1\r\nHost: h\r\nContent-Length: 99999\r\n"
             b"\r\n", b"413"),
            (b"POST /u/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nabc", b"400"),
            (b"GET /u/x HTTP/1.1\nHost: h\n\n", b"400"),
            (b"\x00\xff\r\n\r\n", b"400"),
        ]
        for req, want in cases:
            out = self.raw(req)
            self.assertTrue(out.startswith(b"HTTP/1.1 " + want),
                            (req[:40], out[:60]))
            self.assertIn(b"Connection: close", out)
        # Half a request, then the peer goes away: the server goes on.
        self.raw(b"POST /u/x HTTP/1.1\r\nHost: h\r\nContent-Len", read=False)
        self.assertAlive()

    def test_6_keep_alive_pipelined(self):
        tok = self.token(addr="get-only@example.com")
        req = ("GET /u/%s HTTP/1.1\r\nHost: h\r\n\r\n" % tok).encode()
        last = ("GET /u/%s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                % tok).encode()
        out = self.raw(req + req + last)
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 3)

    def test_7_stalled_request_times_out(self):
        # UNSUBD_REQ_MS (10 s): half a request, then silence -> closed.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        s.sendall(b"POST /u/x HTTP/1.1\r\nHost: h\r\nContent-Length: 26"
                  b"\r\n\r\nList-Unsub")
        t0 = time.time()
        self.assertEqual(s.recv(100), b"")
        took = time.time() - t0
        s.close()
        self.assertGreater(took, 8)
        self.assertLess(took, 15)
        self.assertAlive()


if __name__ == "__main__":
    unittest.main()

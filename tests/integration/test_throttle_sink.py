"""The benchmark receiver for shaping (throttle_sink.py): it refuses with
421 4.7.0 above its rate and counts concurrent connections exactly."""
import smtplib
import threading
import time
import unittest

from services import ThrottleSink, Workdir


class ThrottleSinkTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("throttle")
        self.sinks = []

    def tearDown(self):
        for s in self.sinks:
            s.stop()
        self.wd.cleanup()

    def send(self, port, nthreads, per_thread, reuse=False):
        res = {}
        lock = threading.Lock()

        def run():
            s = smtplib.SMTP("127.0.0.1", port, timeout=10) if reuse else None
            for _ in range(per_thread):
                conn = s or smtplib.SMTP("127.0.0.1", port, timeout=10)
                try:
                    conn.sendmail("a@b.test", ["c@d.test"], "Subject: x\r\n\r\nhi\r\n")
                    k = "250"
                except smtplib.SMTPResponseException as e:
                    k = "%d %s" % (e.smtp_code, e.smtp_error.decode())
                except smtplib.SMTPServerDisconnected:
                    k = "closed"
                if not reuse:
                    try:
                        conn.quit()
                    except smtplib.SMTPException:
                        pass
                else:
                    conn.rset()
                with lock:
                    res[k] = res.get(k, 0) + 1
            if s:
                s.quit()

        ths = [threading.Thread(target=run) for _ in range(nthreads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        time.sleep(0.5)  # one stats write period
        return res

    def test_refuses_above_rate_and_counts_connections(self):
        # --close: smtplib drops the connection without QUIT after a 421, so
        # the sink ends it at the 421 to count it exactly.
        sink = ThrottleSink(self.wd.path, rate=5, close=True)
        self.sinks.append(sink)
        t0 = time.time()
        res = self.send(sink.port, 3, 10)
        elapsed = time.time() - t0
        st = sink.stats()
        self.assertEqual(st["messages"], 30)
        self.assertGreater(st["throttled"], 0)
        self.assertEqual(res.get("421 4.7.0 Try again later, rate limited", 0), st["throttled"])
        self.assertLessEqual(st["accepted"], 5 * (elapsed + 1))
        self.assertEqual(st["accepted"] + st["throttled"], 30)
        self.assertLessEqual(st["max_concurrent"], 3)
        self.assertGreaterEqual(st["max_concurrent"], 1)
        self.assertEqual(st["concurrent"], 0)

    def test_fraction_zero_accepts_all_and_reused_connections(self):
        sink = ThrottleSink(self.wd.path, rate=1, fraction=0.0, at="data", name="f0")
        self.sinks.append(sink)
        res = self.send(sink.port, 4, 5, reuse=True)
        st = sink.stats()
        self.assertEqual(res, {"250": 20})
        self.assertEqual(st["accepted"], 20)
        self.assertEqual(st["max_concurrent"], 4)


if __name__ == "__main__":
    unittest.main()

"""DKIM signatures made by `ringmail dkim-sign` (engine/mail/dkim.c), checked
by an independent verifier: Debian's python3-dkim (dkimpy). Keys are made
with `openssl genpkey` at test time; the TXT record served by the test DNS
function is built here from `openssl pkey -pubout`, not by ringmail."""
import base64
import os
import subprocess
import tempfile
import unittest

import dkim

BIN = os.environ.get("RINGMAIL_BIN", "build/ringmail")
DOMAIN = "example.com"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class DkimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ringmail-dkim-")
        d = cls.tmp.name
        cls.rsa = os.path.join(d, "rsa.pem")
        cls.ed = os.path.join(d, "ed.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", cls.rsa)
        openssl("genpkey", "-algorithm", "ED25519", "-out", cls.ed)
        cls.txt = {
            "rsa1._domainkey.%s." % DOMAIN: cls.record(cls.rsa, "rsa"),
            "ed1._domainkey.%s." % DOMAIN: cls.record(cls.ed, "ed25519"),
        }

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @staticmethod
    def record(pem, k):
        der = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        if k == "ed25519":
            der = der[-32:]  # RFC 8463 4.2: the raw key, not the SPKI
        p = base64.b64encode(der).decode()
        return ("v=DKIM1; k=%s; p=%s" % (k, p)).encode()

    def dns(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return self.txt.get(name)

    def sign(self, msg, keys=(("rsa",),), extra=(), expect_rc=0):
        path = os.path.join(self.tmp.name, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        args = [BIN, "dkim-sign", "--domain", DOMAIN]
        for (k,) in keys:
            args += ["--key", self.rsa if k == "rsa" else self.ed,
                     "--selector", "rsa1" if k == "rsa" else "ed1"]
        for h in extra:
            args += ["--header", h]
        args.append(path)
        r = subprocess.run(args, capture_output=True)
        self.assertEqual(r.returncode, expect_rc, r.stderr.decode())
        return r.stdout

    def verify(self, signed, idx=0):
        if idx == 0:
            # The module-level entry point: what a receiver would call.
            return dkim.verify(signed, dnsfunc=self.dns)
        try:
            return dkim.DKIM(signed).verify(idx, dnsfunc=self.dns)
        except dkim.DKIMException:
            return False

    def check(self, msg, **kw):
        for alg in ("rsa", "ed"):
            with self.subTest(alg=alg):
                signed = self.sign(msg, keys=((alg,),), **kw)
                self.assertTrue(signed.startswith(b"DKIM-Signature: v=1; "))
                self.assertIn((b"a=rsa-sha256;" if alg == "rsa" else
                               b"a=ed25519-sha256;"), signed)
                self.assertTrue(self.verify(signed), signed[:600])
                for line in signed.split(b"\r\n"):
                    self.assertLessEqual(len(line), 998)
        return signed

    BASE = (b"From: Shop <news@example.com>\r\n"
            b"To: alice@example.net\r\n"
            b"Subject: Spring sale\r\n"
            b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <1.2@example.com>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"List-Unsubscribe: <https://unsub.example/u/abc>,"
            b" <mailto:unsub@example.com?subject=abc>\r\n"
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"Feedback-ID: spring:shop:ringmail\r\n"
            b"\r\n"
            b"Hello Alice,\r\n\r\nOur sale starts today.\r\n")

    def test_plain_both_algorithms(self):
        signed = self.check(self.BASE)
        hdr = signed.split(b"\r\n\r\n")[0]
        h = hdr.split(b"h=")[1].split(b";")[0].replace(b"\r\n ", b"")
        names = h.split(b":")
        # Over-signed: one more than present.
        self.assertEqual(names.count(b"from"), 2)
        self.assertEqual(names.count(b"subject"), 2)
        self.assertEqual(names.count(b"list-unsubscribe"), 2)
        self.assertEqual(names.count(b"list-unsubscribe-post"), 2)
        for n in (b"to", b"date", b"message-id", b"mime-version",
                  b"content-type", b"feedback-id"):
            self.assertEqual(names.count(n), 1, n)

    def test_non_ascii_headers(self):
        msg = (b"From: =?UTF-8?B?w4lsb2TDqWU=?= <news@example.com>\r\n"
               b"To: =?UTF-8?Q?J=C3=BCrgen?= <j@example.net>\r\n"
               b"Subject: =?UTF-8?B?w4ljaGFudGlsbG9uIGdyYXR1aXQg4pyT?=\r\n"
               b" =?UTF-8?B?IHN1aXRl?=\r\n"
               b"MIME-Version: 1.0\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n"
               b"\r\n" + "Grüße, 日本語のテキスト\r\n".encode())
        self.check(msg)

    def test_long_lines_and_folded_headers(self):
        long_subject = b"Subject: " + b" ".join([b"word%d" % i
                                                 for i in range(60)])
        folded = long_subject[:70] + b"\r\n " + long_subject[70:]
        msg = (b"From: news@example.com\r\nTo: a@example.net\r\n" +
               folded + b"\r\nX-Long: " + b"y" * 900 + b"\r\n\r\n" +
               (b"x" * 990 + b"\r\n") * 20 + b"end")
        self.check(msg, extra=("X-Long",))

    def test_trailing_whitespace(self):
        msg = (b"From: news@example.com \t\r\n"
               b"To:   a@example.net\r\n"
               b"Subject:  spaced   out\t \r\n"
               b"\r\n"
               b"line with trailing   \t\r\n"
               b"  leading\tand  inner   \r\n"
               b" \t \r\n\r\n\r\n")
        self.check(msg)

    def test_empty_body(self):
        self.check(b"From: news@example.com\r\nSubject: empty\r\n\r\n")
        self.check(b"From: news@example.com\r\nSubject: none\r\n")
        self.check(b"From: news@example.com\r\nSubject: blanks\r\n\r\n"
                   b"\r\n\r\n  \r\n")

    def test_lf_input_is_made_crlf(self):
        self.check(self.BASE.replace(b"\r\n", b"\n"))

    def test_dual_signature(self):
        signed = self.sign(self.BASE, keys=(("rsa",), ("ed",)))
        self.assertEqual(signed.count(b"DKIM-Signature:"), 2)
        self.assertTrue(self.verify(signed, 0))
        self.assertTrue(self.verify(signed, 1))

    def test_relaxed_survives_refolding(self):
        for alg in ("rsa", "ed"):
            signed = self.sign(self.BASE, keys=((alg,),))
            moved = signed.replace(b"Subject: Spring sale",
                                   b"subject:   Spring\r\n\t sale  ")
            self.assertNotEqual(moved, signed)
            self.assertTrue(self.verify(moved), alg)

    def test_tampering_fails(self):
        for alg in ("rsa", "ed"):
            signed = self.sign(self.BASE, keys=((alg,),))
            head, body = signed.split(b"\r\n\r\n", 1)
            cases = {
                "changed subject": signed.replace(b"Spring sale",
                                                  b"Spring sa1e"),
                "added From on top": head.replace(
                    b"From: Shop", b"From: evil@attacker.example\r\n"
                    b"From: Shop") + b"\r\n\r\n" + body,
                "added From below": head + b"\r\nFrom: evil@attacker"
                b".example\r\n\r\n" + body,
                "added Subject": head + b"\r\nSubject: other\r\n\r\n" + body,
                "added List-Unsubscribe": head + b"\r\nList-Unsubscribe: "
                b"<https://evil.example/>\r\n\r\n" + body,
                "changed body": head + b"\r\n\r\n" + body.replace(b"today",
                                                                  b"never"),
                "appended body": signed + b"P.S. more\r\n",
            }
            self.assertTrue(self.verify(signed))
            for name, msg in cases.items():
                with self.subTest(alg=alg, case=name):
                    self.assertNotEqual(msg, signed)
                    self.assertFalse(self.verify(msg))

    def test_no_from_is_refused(self):
        self.sign(b"To: a@example.net\r\nSubject: x\r\n\r\nbody\r\n",
                  expect_rc=1)
        self.sign(b"From: a@example.com\r\nFrom: b@example.com\r\n\r\nb\r\n",
                  expect_rc=1)

    def key_error(self, path, want):
        r = subprocess.run([BIN, "dkim-sign", "--key", path, "--domain",
                            DOMAIN, "--selector", "s", "--dns"],
                           capture_output=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn(want, r.stderr.decode())

    def test_key_errors(self):
        d = self.tmp.name
        self.key_error(os.path.join(d, "missing.pem"),
                       "No such file or directory")
        small = os.path.join(d, "small.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:1024", "-out", small)
        self.key_error(small, "RSA key has 1024 bits")
        ec = os.path.join(d, "ec.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", ec)
        self.key_error(ec, "DKIM needs RSA or Ed25519")
        pub = os.path.join(d, "pub.pem")
        openssl("pkey", "-in", self.ed, "-pubout", "-out", pub)
        self.key_error(pub, "not a PEM private key (this is a public key)")
        enc = os.path.join(d, "enc.pem")
        openssl("pkey", "-in", self.ed, "-aes256", "-passout", "pass:x",
                "-out", enc)
        self.key_error(enc, "encrypted private keys are not supported")
        junk = os.path.join(d, "junk.pem")
        with open(junk, "w") as f:
            f.write("hello\n")
        self.key_error(junk, "not a PEM private key")
        if os.geteuid() != 0:
            locked = os.path.join(d, "locked.pem")
            openssl("genpkey", "-algorithm", "ED25519", "-out", locked)
            os.chmod(locked, 0)
            self.key_error(locked, "Permission denied")
        self.key_error(d, "not a regular file")

    def test_dns_record_matches_openssl(self):
        r = subprocess.run([BIN, "dkim-sign", "--key", self.rsa, "--domain",
                            DOMAIN, "--selector", "rsa1", "--key", self.ed,
                            "--selector", "ed1", "--dns"],
                           capture_output=True, check=True)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2)
        for line in lines:
            name, _, value = line.split(" ", 2)
            self.assertEqual(value.strip('"').encode(), self.txt[name + "."])


if __name__ == "__main__":
    unittest.main()

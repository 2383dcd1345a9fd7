"""Helpers shared by the transport tests (test_hostile, test_interop) and
bench/bench_conns.py: the hostile server as a process, a test CA, a minimal
RESP reader for rm:events, a bounded worker run and the one-outcome check."""
import json
import os
import socket
import subprocess

from services import BIN, HERE, PY, free_port, stop_proc, wait_port


class EvilSMTP:
    """tests/integration/evil_smtp.py in a process of its own."""

    def __init__(self, workdir, mode, name=None, cert=None, key=None):
        self.mode = mode
        name = name or "evil-" + mode
        self.outdir = os.path.join(workdir, name)
        self.port = free_port()
        args = [PY, os.path.join(HERE, "evil_smtp.py"), "--port", str(self.port),
                "--outdir", self.outdir, "--mode", mode]
        if cert:
            args += ["--tls-cert", cert, "--tls-key", key]
        self.log = open(os.path.join(workdir, name + ".log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError("evil_smtp %s did not start" % mode)
        wait_port(self.port)

    def stats(self):
        with open(os.path.join(self.outdir, "stats.json")) as f:
            return json.load(f)

    def messages(self):
        out = []
        for f in sorted(os.listdir(self.outdir)):
            if f.endswith(".eml"):
                with open(os.path.join(self.outdir, f), "rb") as e:
                    out.append(e.read())
        return out

    def stop(self):
        stop_proc(self.proc)
        self.log.close()


# --- Redis: a small RESP client, so event fields with any bytes survive ---

def _resp_read(f):
    t = f.read(1)
    line = f.readline().rstrip(b"\r\n")
    if t == b"+":
        return line.decode()
    if t == b"-":
        raise RuntimeError(line.decode())
    if t == b":":
        return int(line)
    if t == b"$":
        n = int(line)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if t == b"*":
        n = int(line)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise RuntimeError("bad RESP type %r" % t)


def redis_cmd(port, *args):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        return _resp_read(s.makefile("rb"))
    finally:
        s.close()


def events(port, campaign=None):
    """rm:events as a list of dicts, oldest first."""
    out = []
    for _id, fields in redis_cmd(port, "XRANGE", "rm:events", "-", "+") or []:
        ev = dict(zip(fields[0::2], fields[1::2]))
        if campaign is None or ev.get("campaign") == campaign:
            out.append(ev)
    return out


def stats(port, cid):
    r = redis_cmd(port, "HGETALL", "rm:{%s}:stats" % cid) or []
    return {k: int(v) for k, v in zip(r[0::2], r[1::2])}


FINAL = ("sent", "bounced", "failed", "expired", "suppressed", "cancelled")


def transport_config(path, redis_port, routes, timeouts="3s", tls=None,
                     ca_file=None, extra_smtp="", threads=1, max_attempts=2,
                     connection_limit=2, stage_timeouts=None, host_penalty=None):
    """Config with every smtp.timeouts.* shortened to `timeouts` and quick
    retries: delay 1s, max_attempts 2, so deferrals end within seconds.
    stage_timeouts {stage: duration} overrides single stages (a test about
    one stage's deadline need not wait as long as the others allow);
    host_penalty sets smtp.host_penalty (default 15 s: a test whose peer
    fails at connection level would wait that long before its retry)."""
    t = ["connect", "banner", "ehlo", "mail_from", "rcpt_to", "data",
         "data_block", "data_dot", "idle"]
    stage_timeouts = stage_timeouts or {}
    unknown = set(stage_timeouts) - set(t)
    if unknown:
        raise ValueError("unknown smtp.timeouts stages: %s" % sorted(unknown))
    lines = ["redis:", "  host: 127.0.0.1", "  port: %d" % redis_port,
             "worker:", "  threads: %d" % threads, "  claim_idle: 30s",
             "smtp:", "  ehlo_name: client.ringmail.test",
             "  connection_limit: %d" % connection_limit]
    if host_penalty is not None:
        lines.append("  host_penalty: %s" % host_penalty)
    lines.append("  timeouts:")
    lines += ["    %s: %s" % (k, stage_timeouts.get(k, timeouts)) for k in t]
    if tls is not None:
        lines.append("  tls: %s" % tls)
    if ca_file is not None:
        lines.append("  tls_ca_file: %s" % ca_file)
    lines += [l for l in extra_smtp.split("\n") if l]
    lines += ["retry:", "  delay: 1s", "  max_delay: 1s",
              "  max_attempts: %d" % max_attempts,
              "log:", "  level: info", "routes:"]
    for dom, port in routes.items():
        lines.append("  %s: 127.0.0.1:%d" % (dom, port))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def run_worker(cfg, logpath, timeout):
    """`ringmail worker --until-done`, bounded: returns (returncode, log);
    returncode None means it hung and was killed."""
    with open(logpath, "w") as log:
        p = subprocess.Popen([BIN, "worker", "--config", cfg, "--until-done"],
                             stdout=log, stderr=log)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
    with open(logpath, errors="replace") as f:
        return rc, f.read()


# --- a throwaway CA and server certificates (openssl req at test time) ---

def _ossl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))


def make_ca(d, name="ca"):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    _ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-keyout", key, "-out", crt, "-days", "2",
          "-subj", "/CN=ringmail test CA %s" % name,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, crt


def make_cert(d, name, ca, sans=("DNS:mx.interop.test", "DNS:localhost",
                                  "IP:127.0.0.1")):
    """Server certificate signed by ca (key, crt); returns (key, crt)."""
    key, csr, crt = (os.path.join(d, name + x) for x in (".key", ".csr", ".crt"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n" % ",".join(sans))
    _ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name)
    _ossl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0],
          "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return key, crt

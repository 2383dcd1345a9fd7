"""Real components for the integration tests, started on free loopback
ports and stopped afterwards: redis-server, SMTP receivers (aiosmtpd, and
Postfix's smtp-sink), and the ringmail binary itself."""
import collections
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("RINGMAIL_BIN", os.path.join(ROOT, "build", "ringmail"))
PY = "/usr/bin/python3"  # Debian's python: has aiosmtpd, dkim


# run.py -j N runs test modules in N processes at once and gives each a
# slot (RINGMAIL_TEST_SLOT). A port picked here is only bound later by the
# service, so two processes asking the kernel for "any free port" could be
# handed the same one in between; each slot therefore picks from its own
# range below the kernel's ephemeral range (where outgoing connections
# cannot take it either), and does not hand out a port again while it is
# among the last thousand it gave.
PORT_SLOT_SIZE = 2000
PORT_BASE = 12000
_SLOT = os.environ.get("RINGMAIL_TEST_SLOT")
_given = collections.deque(maxlen=PORT_SLOT_SIZE // 2)    # recently handed out


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def stop_proc(proc, timeout=10):
    """SIGTERM a child we started (if any and still running), then SIGKILL
    it after `timeout` seconds; always reaps it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port():
    if _SLOT is not None:
        lo = PORT_BASE + int(_SLOT) * PORT_SLOT_SIZE
        if lo + PORT_SLOT_SIZE <= _ephemeral_low():
            for _ in range(200):
                port = random.randrange(lo, lo + PORT_SLOT_SIZE)
                if port in _given:
                    continue
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                finally:
                    s.close()
                _given.append(port)
                return port
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given:
            _given.append(port)
            return port


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on port %d" % port)


class Redis:
    def __init__(self, workdir, aof=False):
        self.port = free_port()
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.aof = aof
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", self.aof if isinstance(self.aof, str) else "everysec",
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.time() + 10
        while time.time() < end:
            if self.cli("PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--no-raw"] + list(args),
                           capture_output=True, text=True)
        return r.stdout

    def raw(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--raw"] + list(args),
                           capture_output=True, text=True)
        return r.stdout

    def hget(self, key, field):
        return self.raw("HGET", key, field).rstrip("\n")

    def hgetall(self, key):
        """Only for hashes whose values have no newlines (stats)."""
        out = self.raw("HGETALL", key).split("\n")
        if out and out[-1] == "":
            out.pop()
        return dict(zip(out[0::2], out[1::2]))

    def stop(self):
        stop_proc(self.proc)


class Sink:
    """aiosmtpd receiver (tests/integration/sink.py)."""

    def __init__(self, workdir, name="sink", slow=0.0, delay=0.0, tls=None):
        self.port = free_port()
        self.outdir = os.path.join(workdir, name)
        args = [PY, os.path.join(HERE, "sink.py"), "--port", str(self.port),
                "--outdir", self.outdir, "--slow", str(slow), "--delay", str(delay)]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(workdir, name + ".log"), "w"),
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError("sink did not start")
        wait_port(self.port)

    def messages(self):
        import json
        out = []
        for f in sorted(os.listdir(self.outdir)):
            if f.endswith(".json"):
                base = os.path.join(self.outdir, f[:-5])
                with open(base + ".json") as j:
                    env = json.load(j)
                with open(base + ".eml", "rb") as e:
                    env["data"] = e.read()
                out.append(env)
        return out

    def stop(self):
        stop_proc(self.proc)


class ThrottleSink:
    """Receiver that answers 421 above a rate (throttle_sink.py) and counts
    concurrent connections; stats() reads its JSON stats file."""

    def __init__(self, workdir, rate, fraction=1.0, at="mail", close=False,
                 name="throttle", delay=0.0):
        self.port = free_port()
        self.statsfile = os.path.join(workdir, name + ".json")
        args = [PY, os.path.join(HERE, "throttle_sink.py"), "--port", str(self.port),
                "--rate", str(rate), "--fraction", str(fraction), "--at", at,
                "--stats", self.statsfile, "--delay", str(delay)]
        if close:
            args.append("--close")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(workdir, name + ".log"), "w"),
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError("throttle sink did not start")

    def stats(self):
        import json
        with open(self.statsfile) as f:
            return json.load(f)

    def stop(self):
        stop_proc(self.proc)


def write_config(path, redis_port, routes, extra=""):
    lines = ["redis:", "  host: 127.0.0.1", "  port: %d" % redis_port,
             "worker:", "  threads: 2",
             "retry:", "  delay: 1s", "  max_attempts: 3",
             "log:", "  level: info", "routes:"]
    for dom, port in routes.items():
        lines.append("  %s: 127.0.0.1:%d" % (dom, port))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)


def ringmail(*args, timeout=120, check=True, env=None, cwd=None):
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError("ringmail %s failed (%d):\n%s\n%s" %
                             (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def make_cert(workdir, cn="localhost", san="IP:127.0.0.1,DNS:localhost"):
    """Self-signed certificate made at test time (no keys in git)."""
    key = os.path.join(workdir, "key.pem")
    crt = os.path.join(workdir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True)
    return crt, key


class Workdir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="ringmail-%s-" % name)

    def file(self, name, content):
        p = os.path.join(self.path, name)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(p, mode) as f:
            f.write(content)
        return p

    def cleanup(self):
        if os.environ.get("RINGMAIL_KEEP") != "1":
            shutil.rmtree(self.path, ignore_errors=True)


class Inbound:
    """`ringmail inbound` on free loopback ports with a self-signed
    certificate (made by `openssl req` now), a VERP secret and a users file
    made with `ringmail passwd`. users: {name: password}."""

    BOUNCE = "bounce.test"
    REPLY = "reply.test"

    def __init__(self, workdir, redis_port, users, extra_env=None):
        self.dir = workdir
        self.ports = {p: free_port() for p in
                      ("smtp", "imap", "imaps", "pop3", "pop3s")}
        self.cert = os.path.join(workdir, "cert.pem")
        self.key = os.path.join(workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", self.key, "-out", self.cert,
                        "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        self.secret = os.path.join(workdir, "verp.secret")
        with open(self.secret, "w") as f:
            f.write(os.urandom(16).hex() + "\n")
        os.chmod(self.secret, 0o600)
        self.users = os.path.join(workdir, "users")
        with open(self.users, "w") as f:
            for u, pw in users.items():
                r = subprocess.run([BIN, "passwd", u], input=pw + "\n",
                                   capture_output=True, text=True, check=True)
                f.write(r.stdout)
        self.root = os.path.join(workdir, "maildir")
        self.config = os.path.join(workdir, "inbound.yaml")
        lines = ["redis: {host: 127.0.0.1, port: %d}" % redis_port,
                 "log: {level: info}",
                 "smtp: {ehlo_name: mx.test}",
                 "verp: {bounce_domain: %s, secret_file: %s}" % (
                     self.BOUNCE, self.secret),
                 "inbound:"]
        for p, port in self.ports.items():
            lines.append("  listen_%s: \"127.0.0.1:%d\"" % (p, port))
        lines += ["  tls_cert_file: %s" % self.cert,
                  "  tls_key_file: %s" % self.key,
                  "  maildir_root: %s" % self.root,
                  "  users_file: %s" % self.users,
                  "  bounce_domains: [%s]" % self.BOUNCE,
                  "  reply_domains: [%s]" % self.REPLY,
                  "  max_message_size: 1MB",
                  "  max_connections_per_ip: 60"]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ)
        env["RINGMAIL_INBOUND_IDLE_POLL_MS"] = "300"
        env.update(extra_env or {})
        self.log = os.path.join(workdir, "inbound.log")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([BIN, "inbound", "--config", self.config],
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.logf, env=env)
        for port in self.ports.values():
            wait_port(port)

    def verp(self, campaign, index):
        r = ringmail("inbound", "--config", self.config, "--verp-encode",
                     campaign, str(index))
        return r.stdout.strip()

    def mailbox_files(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.root, user, sub)
            if os.path.isdir(d):
                out += [os.path.join(d, f) for f in sorted(os.listdir(d))]
        return out

    def logtext(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        stop_proc(self.proc)
        self.logf.close()
        return self.proc.returncode

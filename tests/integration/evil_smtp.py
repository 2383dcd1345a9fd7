#!/usr/bin/python3
"""A scriptable hostile SMTP server for the integration tests (asyncio,
127.0.0.1 only, stdlib only).

    evil_smtp.py --port P --outdir DIR --mode MODE [--tls-cert F --tls-key F]

Prints 'READY <port>' once listening; stops on SIGTERM, or by itself after
--lifetime seconds (bounded, so a forgotten server never outlives a run).
Counters go to DIR/stats.json (rewritten atomically after every change);
accepted messages to DIR/<seq>.eml (dot-stuffing undone) + DIR/<seq>.json.

Modes (each is what one kind of broken or hostile peer does):
  normal          a well-behaved ESMTP server (PIPELINING, SIZE, 8BITMIME,
                  ENHANCEDSTATUSCODES)
  split           every reply written one byte at a time with a delay;
                  banner, EHLO and final-dot replies are multi-line
  bare_lf         every reply line ends in LF, not CRLF
  longline        the EHLO reply carries a 10 KB line
  garbage_banner  the greeting is binary garbage
  banner421       421 at the greeting, then close
  banner554       554 at the greeting (RFC 5321 3.1), QUIT answered
  close_mid_data  after 354, read a little of the message and close
  stall_dot       never answer the final dot (the connection stays open)
  data250         answer DATA with 250 instead of 354; anything the client
                  sends after that which is not a command is counted as
                  'stray' (a message body sent without a 354)
  rcpt452         452 4.5.3 Too many recipients at every RCPT
  tls_garbage     offer STARTTLS, answer 220, then send garbage instead of
                  a ServerHello; sessions without STARTTLS are served
                  normally (so a plain-text retry can deliver)
  tls_half        offer STARTTLS, answer 220, start a real handshake and
                  close after sending half of the server's first flight
  trickle         the greeting comes at 1 byte/s, endlessly (continuation
                  lines): only a per-stage deadline that is NOT reset by
                  each byte ends it
  trickle_dot     as trickle, for the reply to the final dot
  ehlo5xx         502 to EHLO; HELO works; MAIL parameters (SIZE=,
                  BODY=) are refused after HELO as a strict RFC 821 peer
  size_small      advertises SIZE 100; MAIL with SIZE= over it gets 552
  no_pipelining   no PIPELINING: a command that arrives before the reply to
                  the previous one is counted in 'pipelining_violations'
  starttls        offers STARTTLS with --tls-cert/--tls-key (a working TLS
                  server, for the TLS happy path)
  starttls_split  starttls + split: after the handshake every byte of a
                  reply is a TLS record of its own
Counters: connections, open, max_open, messages, commands (per verb),
starttls, tls_ok, stray, pipelining_violations, mail_params, plain_mail
(MAIL commands received outside TLS).
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

MODES = ("normal", "split", "bare_lf", "longline", "garbage_banner",
         "banner421", "banner554", "close_mid_data", "stall_dot", "data250",
         "rcpt452", "tls_garbage", "tls_half", "trickle", "trickle_dot",
         "ehlo5xx", "size_small", "no_pipelining", "starttls",
         "starttls_split")

TLS_MODES = ("tls_garbage", "tls_half", "starttls", "starttls_split")
LINE_MAX = 65536          # bytes per command or data line we read
MSG_MAX = 10 * 1024 * 1024
IDLE = 120.0              # seconds a silent client is kept


class Stats:
    def __init__(self, outdir):
        self.path = os.path.join(outdir, "stats.json")
        self.d = {"connections": 0, "open": 0, "max_open": 0, "messages": 0,
                  "commands": {}, "starttls": 0, "tls_ok": 0, "stray": 0,
                  "pipelining_violations": 0, "mail_params": 0,
                  "plain_mail": 0}
        self.save()

    def inc(self, key, n=1):
        self.d[key] += n
        if key == "open":
            self.d["max_open"] = max(self.d["max_open"], self.d["open"])
        self.save()

    def cmd(self, verb):
        c = self.d["commands"]
        c[verb] = c.get(verb, 0) + 1
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.d, f)
        os.replace(tmp, self.path)


class Closed(Exception):
    pass


class Session:
    """One client connection. All reads go through our own plaintext
    buffer and TLS runs over memory BIOs, so that bytes the client sends
    right after our 220 to STARTTLS (its ClientHello) are never lost in a
    stream buffer, and after the handshake every write of ours is one TLS
    record (a byte-by-byte writer makes one record per byte)."""

    def __init__(self, srv, reader, writer):
        self.srv = srv
        self.mode = srv.mode
        self.r = reader
        self.w = writer
        self.helo = False      # HELO (not EHLO): no ESMTP parameters
        self.tls = None        # ssl.SSLObject once STARTTLS is done
        self.rbuf = bytearray()

    # -- transport ------------------------------------------------------
    async def send(self, data):
        if self.tls is not None:
            self.tls.write(data)
            data = self.bio_out.read()
        self.w.write(data)
        await self.w.drain()

    async def fill(self, timeout=IDLE):
        """Read more from the socket into rbuf (plaintext)."""
        try:
            data = await asyncio.wait_for(self.r.read(65536), timeout)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            raise Closed()
        if not data:
            raise Closed()
        if self.tls is None:
            self.rbuf += data
            return
        self.bio_in.write(data)
        while True:
            try:
                self.rbuf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLError, ssl.SSLZeroReturnError):
                raise Closed()
        out = self.bio_out.read()
        if out:
            self.w.write(out)

    # -- output ---------------------------------------------------------
    async def raw(self, data):
        if self.mode in ("split", "starttls_split"):
            for i in range(len(data)):
                await self.send(data[i:i + 1])
                if i + 1 < len(data):
                    await asyncio.sleep(0.002)
        else:
            await self.send(data)

    async def reply(self, code, *lines):
        eol = b"\n" if self.mode == "bare_lf" else b"\r\n"
        lines = lines or ("",)
        out = b""
        for i, text in enumerate(lines):
            sep = b" " if i == len(lines) - 1 else b"-"
            t = text.encode() if isinstance(text, str) else text
            out += str(code).encode() + sep + t + eol
        await self.raw(out)

    async def trickle(self, prefix, seconds=300):
        """Continuation lines at 1 byte/s, bounded in time."""
        line = prefix + b"-still thinking\r\n"
        for i in range(seconds):
            await self.send(line[i % len(line):i % len(line) + 1])
            await asyncio.sleep(1.0)

    # -- input ----------------------------------------------------------
    async def line(self):
        for _ in range(LINE_MAX):
            i = self.rbuf.find(b"\n")
            if i >= 0:
                out = bytes(self.rbuf[:i + 1])
                del self.rbuf[:i + 1]
                return out
            if len(self.rbuf) > LINE_MAX:
                raise Closed()
            await self.fill()
        raise Closed()

    async def check_pipelining(self):
        """No PIPELINING offered: nothing may follow a command before we
        answered it (RFC 2920 3.1, 5321 4.3)."""
        if self.mode != "no_pipelining":
            return
        await asyncio.sleep(0.02)
        if self.rbuf or len(getattr(self.r, "_buffer", b"")) > 0:
            self.srv.stats.inc("pipelining_violations")

    # -- protocol -------------------------------------------------------
    def ehlo_lines(self):
        caps = ["evil.test greets you"]
        if self.mode == "longline":
            caps.append("X-LONG " + "A" * 10240)
        if self.mode not in ("no_pipelining",):
            caps.append("PIPELINING")
        caps.append("SIZE 100" if self.mode == "size_small" else "SIZE 10485760")
        caps += ["8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.mode in TLS_MODES and not self.tls:
            caps.append("STARTTLS")
        return caps

    async def banner(self):
        m = self.mode
        if m == "garbage_banner":
            await self.raw(b"\x16\x03\x01\x00\xa5\xff\xfeHELLO? \x00\x01garbage\r\n")
            return True
        if m == "banner421":
            await self.reply(421, "4.3.2 evil.test Service not available, closing")
            return False
        if m == "banner554":
            await self.reply(554, "5.7.1 evil.test No SMTP service here")
            return True
        if m == "trickle":
            await self.trickle(b"220")
            return False
        if m == "split":
            await self.reply(220, "evil.test ESMTP first line", "second line",
                             "ready")
            return True
        await self.reply(220, "evil.test ESMTP ready")
        return True

    async def run(self):
        if not await self.banner():
            return
        while True:
            line = await self.line()
            cmd = line.rstrip(b"\r\n")
            verb = cmd.split(b" ", 1)[0].upper().decode("latin-1")[:16]
            if verb not in ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET",
                            "NOOP", "QUIT", "STARTTLS", "VRFY", "BDAT"):
                self.srv.stats.inc("stray")
                await self.reply(500, "5.5.2 command not recognized")
                continue
            self.srv.stats.cmd(verb)
            await self.check_pipelining()
            if self.mode == "banner554" and verb != "QUIT":
                await self.reply(503, "5.5.1 no service here, QUIT please")
                continue
            if verb == "QUIT":
                await self.reply(221, "2.0.0 bye")
                return
            if verb == "EHLO":
                if self.mode == "ehlo5xx":
                    await self.reply(502, "5.5.2 EHLO not implemented")
                    continue
                await self.reply(250, *self.ehlo_lines())
            elif verb == "HELO":
                self.helo = True
                await self.reply(250, "evil.test")
            elif verb == "STARTTLS":
                if not await self.starttls():
                    return
            elif verb == "MAIL":
                await self.mail(cmd)
            elif verb == "RCPT":
                if self.mode == "rcpt452":
                    await self.reply(452, "4.5.3 Too many recipients")
                else:
                    await self.reply(250, "2.1.5 ok")
            elif verb == "DATA":
                if not await self.data():
                    return
            elif verb in ("RSET", "NOOP"):
                await self.reply(250, "2.0.0 ok")
            else:
                await self.reply(502, "5.5.1 not implemented")

    async def mail(self, cmd):
        params = cmd.split(b">", 1)[1].strip() if b">" in cmd else b""
        if params:
            self.srv.stats.inc("mail_params")
        if self.tls is None:
            self.srv.stats.inc("plain_mail")
        if self.helo and params:
            await self.reply(555, "5.5.4 MAIL parameters not recognized after HELO")
            return
        if self.mode == "size_small":
            for p in params.split():
                if p.upper().startswith(b"SIZE=") and int(p[5:] or b"0") > 100:
                    await self.reply(552, "5.3.4 Message size exceeds fixed limit")
                    return
        await self.reply(250, "2.1.0 ok")

    async def data(self):
        m = self.mode
        if m == "rcpt452":
            await self.reply(554, "5.5.1 no valid recipients")
            return True
        if m == "data250":
            await self.reply(250, "2.0.0 OK (but no 354)")
            return True
        if self.srv.hold:
            await asyncio.sleep(self.srv.hold)      # smtp-sink -w
        await self.reply(354, "End data with <CR><LF>.<CR><LF>")
        body = []
        size = 0
        while True:
            line = await self.line()
            if m == "close_mid_data" and len(body) >= 2:
                self.w.close()
                return False
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > MSG_MAX:
                await self.reply(552, "5.3.4 too big")
                return False
            body.append(line)
        if m == "stall_dot":
            # Never answer; keep reading (and discarding) until they go.
            while True:
                await self.line()
        if m == "trickle_dot":
            await self.trickle(b"250")
            return False
        n = self.srv.store(b"".join(body))
        if m == "split":
            await self.reply(250, "2.0.0 Ok", "queued as %06d" % n)
        else:
            await self.reply(250, "2.0.0 Ok: queued as %06d" % n)
        return True

    async def starttls(self):
        self.srv.stats.inc("starttls")
        if self.rbuf:
            # Plain text pipelined after STARTTLS (RFC 3207 5): refuse.
            self.srv.stats.inc("stray")
        await self.reply(220, "2.0.0 Ready to start TLS")
        m = self.mode
        if m == "tls_garbage":
            try:
                await asyncio.wait_for(self.r.read(4096), 10)
            except (asyncio.TimeoutError, ConnectionError):
                pass
            await self.raw(b"this is not TLS at all\r\n" * 8)
            await asyncio.sleep(0.5)
            return False
        if self.srv.tls_ctx is None:
            return False
        self.bio_in, self.bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.srv.tls_ctx.wrap_bio(self.bio_in, self.bio_out,
                                        server_side=True)
        for _ in range(64):
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flight = self.bio_out.read()
                if m == "tls_half" and flight:
                    # Half of our first flight, then hang up.
                    self.w.write(flight[:max(1, len(flight) // 2)])
                    await self.w.drain()
                    await asyncio.sleep(0.3)
                    return False
                if flight:
                    self.w.write(flight)
                    await self.w.drain()
                try:
                    data = await asyncio.wait_for(self.r.read(65536), 10)
                except (asyncio.TimeoutError, ConnectionError, OSError):
                    return False
                if not data:
                    return False
                self.bio_in.write(data)
            except ssl.SSLError:
                return False
        else:
            return False
        out = self.bio_out.read()
        if out:
            self.w.write(out)
            await self.w.drain()
        self.tls = obj
        self.rbuf.clear()
        # The client's first command may have come in the same read as its
        # Finished: it is already in the SSL object.
        while True:
            try:
                self.rbuf += obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:
                return False
        self.helo = False
        self.srv.stats.inc("tls_ok")
        return True


class Server:
    def __init__(self, args):
        self.mode = args.mode
        self.outdir = args.outdir
        os.makedirs(self.outdir, exist_ok=True)
        self.stats = Stats(self.outdir)
        self.seq = 0
        self.hold = args.hold
        self.tls_ctx = None
        if args.tls_cert:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(args.tls_cert, args.tls_key)

    def store(self, data):
        self.seq += 1
        base = os.path.join(self.outdir, "%06d" % self.seq)
        with open(base + ".eml", "wb") as f:
            f.write(data)
        self.stats.inc("messages")
        return self.seq

    async def handle(self, reader, writer):
        self.stats.inc("connections")
        self.stats.inc("open")
        s = Session(self, reader, writer)
        try:
            await s.run()
        except (Closed, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.stats.inc("open", -1)
            try:
                writer.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--mode", choices=MODES, default="normal")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--lifetime", type=float, default=900.0)
    ap.add_argument("--hold", type=float, default=0.0,
                    help="wait this long before answering DATA (bench)")
    ap.add_argument("--backlog", type=int, default=1024)
    args = ap.parse_args()
    srv = Server(args)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", args.port,
                                        limit=LINE_MAX, backlog=args.backlog)
    print("READY %d" % args.port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.lifetime)
    except asyncio.TimeoutError:
        pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

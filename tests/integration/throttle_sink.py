#!/usr/bin/python3
"""A receiver that throttles like a big provider, to measure how fast the
shaping controller (engine/out/shape.h) settles: aiosmtpd, like sink.py.

Once more than --rate messages arrived in the last second (a sliding
window over MAIL FROM commands), each further message is answered
"421 4.7.0 Try again later, rate limited" with probability --fraction
(default 1). Where: at MAIL FROM (default), or after the data (--at data).
With --close the connection is closed after a 421 (RFC 5321 3.8), as
most providers do.

It counts concurrent connections (from accept to QUIT, to a 421 with
--close, or to the connection's loss; a client that drops a connection
without QUIT and reconnects at once can briefly count twice, so measure
caps with --close) and writes, to --stats (JSON, replaced
atomically at most every 0.2 s and at exit):
  max_concurrent  most connections open at once since start
  concurrent      connections open now
  connections     connections accepted in total (one more than the
                  clients made: aiosmtpd's own start-up probe)
  messages        MAIL FROM commands seen
  accepted        messages answered 250 after the data
  throttled       421 answers
  rate, fraction  the configuration
Messages are counted, not stored. Prints 'READY <port>' once listening;
stops on SIGTERM/SIGINT.
"""
import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--rate", type=float, required=True, help="messages/s before throttling")
ap.add_argument("--fraction", type=float, default=1.0, help="share of excess messages refused")
ap.add_argument("--at", choices=("mail", "data"), default="mail")
ap.add_argument("--close", action="store_true", help="close the connection after a 421")
ap.add_argument("--stats", required=True, help="JSON stats file")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--delay", type=float, default=0.0,
                help="seconds before answering each message's data (a slow receiver)")
args = ap.parse_args()
if not 0.0 <= args.fraction <= 1.0 or args.rate <= 0:
    sys.exit("throttle_sink: --fraction must be 0..1 and --rate > 0")

REPLY_421 = "421 4.7.0 Try again later, rate limited"
lock = threading.Lock()
rnd = random.Random(args.seed)
window = collections.deque()  # monotonic times of MAIL FROM, last second
st = {"max_concurrent": 0, "concurrent": 0, "connections": 0, "messages": 0,
      "accepted": 0, "throttled": 0, "rate": args.rate, "fraction": args.fraction}
dirty = [True]


def over_limit():
    """Count one message; True when it should be refused."""
    now = time.monotonic()
    with lock:
        st["messages"] += 1
        while window and window[0] <= now - 1.0:
            window.popleft()
        window.append(now)
        dirty[0] = True
        return len(window) > args.rate and rnd.random() < args.fraction


def refuse(server):
    with lock:
        st["throttled"] += 1
        dirty[0] = True
    if args.close and server.transport is not None:
        server.uncount()
        asyncio.get_event_loop().call_later(0.01, server.transport.close)
    return REPLY_421


class CountingSMTP(SMTP):
    """Counts a connection from accept until the server decides it ends
    (QUIT, a 421 with --close) or it is lost, whichever is first: the
    client may reconnect before connection_lost runs, and that overlap
    must not count as concurrency."""

    counted = False

    def connection_made(self, transport):
        with lock:
            st["connections"] += 1
            st["concurrent"] += 1
            st["max_concurrent"] = max(st["max_concurrent"], st["concurrent"])
            dirty[0] = True
        self.counted = True
        super().connection_made(transport)

    def uncount(self):
        if self.counted:
            self.counted = False
            with lock:
                st["concurrent"] -= 1
                dirty[0] = True

    async def smtp_QUIT(self, arg):
        self.uncount()
        await super().smtp_QUIT(arg)

    def connection_lost(self, exc):
        self.uncount()
        super().connection_lost(exc)


class Handler:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if args.at == "mail" and over_limit():
            return refuse(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_DATA(self, server, session, envelope):
        if args.delay > 0:
            await asyncio.sleep(args.delay)
        if args.at == "data" and over_limit():
            return refuse(server)
        with lock:
            st["accepted"] += 1
            dirty[0] = True
        return "250 2.0.0 Ok: queued"


class ThrottleController(Controller):
    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def write_stats():
    with lock:
        if not dirty[0]:
            return
        data = json.dumps(st, sort_keys=True)
        dirty[0] = False
    tmp = args.stats + ".tmp"
    with open(tmp, "w") as f:
        f.write(data + "\n")
    os.replace(tmp, args.stats)


ctl = ThrottleController(Handler(), hostname="127.0.0.1", port=args.port,
                         server_kwargs={"decode_data": False})
ctl.start()
write_stats()
print("READY %d" % args.port, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
signal.signal(signal.SIGINT, lambda *a: stop.set())
while not stop.wait(0.2):
    write_stats()
ctl.stop()
write_stats()
sys.exit(0)

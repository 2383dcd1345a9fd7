#!/usr/bin/python3
"""A real SMTP receiver for the integration tests: Python's aiosmtpd.

Every accepted message is stored as OUTDIR/<seq>.eml (raw bytes as received,
after the SMTP layer removed dot-stuffing) with OUTDIR/<seq>.json holding the
envelope. Behaviour is chosen per recipient by its local part:
  bounce*  -> 550 5.1.1 at RCPT
  defer*   -> 451 4.3.0 at RCPT
  slow*    -> accepted after --slow seconds at DATA
Prints 'READY <port>' once listening. Stops on SIGTERM.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--outdir", required=True)
ap.add_argument("--slow", type=float, default=0.0)
ap.add_argument("--delay", type=float, default=0.0, help="delay every DATA")
ap.add_argument("--tls-cert", help="offer STARTTLS with this certificate")
ap.add_argument("--tls-key")
args = ap.parse_args()
os.makedirs(args.outdir, exist_ok=True)
lock = threading.Lock()
seq = [0]
stats = {"connections": 0}


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith("defer"):
            return "451 4.3.0 <%s>: Temporary lookup failure" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        slow = any(r.split("@")[0].lower().startswith("slow") for r in envelope.rcpt_tos)
        if slow and args.slow:
            await asyncio.sleep(args.slow)
        if args.delay:
            await asyncio.sleep(args.delay)
        with lock:
            seq[0] += 1
            n = seq[0]
        base = os.path.join(args.outdir, "%06d" % n)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        # The .json appears last and whole (rename): a test listing the
        # directory while mail arrives must never read a half-written one.
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "peer": session.peer[0] if session.peer else None,
                       "helo": session.host_name}, f)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as %06d" % n


kw = {"decode_data": False}
if args.tls_cert:
    import ssl
    tctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tctx.load_cert_chain(args.tls_cert, args.tls_key)
    kw["tls_context"] = tctx


class TLSRecorder(Handler):
    async def handle_DATA(self, server, session, envelope):
        r = await Handler.handle_DATA(self, server, session, envelope)
        # Record whether the transaction ran over TLS, next to the message.
        n = r.split()[-1]
        with open(os.path.join(args.outdir, n + ".tls"), "w") as f:
            f.write(str(session.ssl is not None))
        return r


ctl = Controller(TLSRecorder(), hostname="127.0.0.1", port=args.port, server_kwargs=kw)
ctl.start()
print("READY %d" % args.port, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
signal.signal(signal.SIGINT, lambda *a: stop.set())
stop.wait()
ctl.stop()
sys.exit(0)

#!/usr/bin/python3
"""IMAP and SMTP-receive numbers for `ringmail inbound`, run by hand:

    /usr/bin/python3 bench/bench_imap.py [--bin build/ringmail]
        [--clients 50] [--seconds 20] [--messages 200]

1. SMTP receive: --messages messages (2 KiB) over 4 concurrent smtplib
   connections into the Maildir (every message fsynced and renamed before
   250): messages/s.
2. IMAP: --clients processes, each looping LOGIN / SELECT INBOX / 5 x
   FETCH n (BODY.PEEK[]) / LOGOUT for --seconds, against ringmail and then
   against Dovecot (Debian's dovecot-imapd, installed with apt-get when
   missing, configured in a temp dir on a free loopback port with a
   passwd-file over the same Maildir). Prints commands/s, sessions/s,
   errors and the ratio ringmail/Dovecot.

Both servers run on the same machine in the same run; the load generator
shares the CPUs with them, so compare the ratio, not the absolute rates.
"""
import argparse
import imaplib
import multiprocessing
import os
import random
import shutil
import smtplib
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

USER, PW = "bench", "bench-pw-123"


def smtp_bench(port, n, conc=4):
    body = ("From: a@elsewhere.example\r\nTo: %s@reply.test\r\n"
            "Subject: bench\r\n\r\n" % USER) + ("x" * 70 + "\r\n") * 28
    errors = [0]
    per = n // conc

    def worker():
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        for _ in range(per):
            try:
                s.sendmail("a@elsewhere.example", ["%s@reply.test" % USER],
                           body)
            except smtplib.SMTPException:
                errors[0] += 1
        s.quit()

    t0 = time.time()
    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.time() - t0
    return per * conc, dt, errors[0]


def imap_client(args):
    port, seconds, nmsg, seed = args
    rnd = random.Random(seed)
    cmds = sessions = errors = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            m.login(USER, PW)
            typ, data = m.select("INBOX")
            if typ != "OK":
                raise imaplib.IMAP4.error("select")
            cmds += 2
            exists = int(data[0])
            for _ in range(5):
                typ, d = m.fetch(str(rnd.randint(1, max(1, min(exists,
                                                                nmsg)))),
                                 "(BODY.PEEK[])")
                if typ != "OK" or not d or d[0] is None:
                    raise imaplib.IMAP4.error("fetch")
                cmds += 1
            m.logout()
            cmds += 1
            sessions += 1
        except (imaplib.IMAP4.error, OSError, EOFError):
            errors += 1
            time.sleep(0.05)
    return cmds, sessions, errors


def imap_bench(port, clients, seconds, nmsg):
    with multiprocessing.Pool(clients) as pool:
        res = pool.map(imap_client, [(port, seconds, nmsg, i)
                                     for i in range(clients)])
    cmds = sum(r[0] for r in res)
    sess = sum(r[1] for r in res)
    errs = sum(r[2] for r in res)
    return cmds / seconds, sess / seconds, errs


def dovecot_start(workdir, root, port):
    if shutil.which("dovecot") is None:
        r = subprocess.run(["apt-get", "install", "-y", "dovecot-imapd"],
                           capture_output=True, text=True,
                           env=dict(os.environ,
                                    DEBIAN_FRONTEND="noninteractive"))
        if r.returncode != 0:
            raise SystemExit("dovecot-imapd not installable:\n" + r.stderr)
    d = os.path.join(workdir, "dovecot")
    # The auth process runs as user dovecot: it needs to reach passwd.
    os.chmod(workdir, 0o711)
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s:::::\n" % (USER, PW))
    os.chmod(d, 0o755)
    os.chmod(os.path.join(d, "passwd"), 0o644)
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        # Dovecot refuses to access mail as root: hand the (already
        # filled) maildir to nobody.
        import pwd
        nb = pwd.getpwnam("nobody")
        uid, gid = nb.pw_uid, nb.pw_gid
        os.chmod(root, 0o711)
        for dp, dns, fns in os.walk(os.path.join(root, USER)):
            os.chown(dp, uid, gid)
            for fn in fns:
                os.chown(os.path.join(dp, fn), uid, gid)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
mail_location = maildir:{root}/%u
mail_uid = {uid}
mail_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_min_avail = 2
}}
service anvil {{
  client_limit = 4096
}}
service imap {{
  process_limit = 1024
}}
default_process_limit = 1024
default_client_limit = 2048
""".format(d=d, root=root, uid=uid, gid=gid, port=port))
    p = subprocess.Popen(["dovecot", "-F", "-c", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p, d


def main():
    from services import Inbound, Redis, Workdir, free_port, wait_port
    import services

    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build",
                                                  "ringmail"))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--messages", type=int, default=200)
    a = ap.parse_args()
    services.BIN = os.path.abspath(a.bin)
    w = Workdir("bench-imap")
    redis = Redis(w.path)
    ib = Inbound(w.path, redis.port, {USER: PW})
    dv = None
    try:
        m = imaplib.IMAP4("127.0.0.1", ib.ports["imap"])
        m.login(USER, PW)        # creates the user's maildir
        m.logout()
        n, dt, err = smtp_bench(ib.ports["smtp"], a.messages)
        print("smtp receive: %d messages in %.2f s = %.0f msg/s "
              "(fsync + rename each), errors=%d" % (n, dt, n / dt, err))
        r_cmd, r_sess, r_err = imap_bench(ib.ports["imap"], a.clients,
                                          a.seconds, n)
        print("ringmail imap: %.0f commands/s, %.1f sessions/s, errors=%d"
              % (r_cmd, r_sess, r_err))
        port = free_port()
        dv, dvdir = dovecot_start(w.path, ib.root, port)
        wait_port(port)
        d_cmd, d_sess, d_err = imap_bench(port, a.clients, a.seconds, n)
        print("dovecot imap:  %.0f commands/s, %.1f sessions/s, errors=%d"
              % (d_cmd, d_sess, d_err))
        print("ratio ringmail/dovecot: %.2f" % (r_cmd / d_cmd if d_cmd
                                                else float("inf")))
    finally:
        if dv is not None:
            dv.terminate()
            try:
                dv.wait(10)
            except subprocess.TimeoutExpired:
                dv.kill()
        ib.stop()
        redis.stop()
        w.cleanup()


if __name__ == "__main__":
    main()

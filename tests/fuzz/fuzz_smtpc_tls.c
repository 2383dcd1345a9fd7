/*
 * fuzz_smtpc_tls: peer bytes into smtpc sessions with STARTTLS and
 * CHUNKING in play, and into a TLS client's handshake.
 *
 * Input: byte 0 picks the session (TLS mode, chunking, pipelining, raw or
 * wire-form message, chunk size), byte 1 how the caller answers
 * EV_STARTTLS (handshake done or failed); the rest is what the server
 * says. Invariants checked beyond fuzz_reply's:
 *   - REQUIRED: no transaction ever starts without TLS up;
 *   - NONE: STARTTLS is never written;
 *   - EV_STARTTLS only in TLS_HANDSHAKE, never with EV_CLOSE;
 *   - exactly one result per message or failed setup; success only as a
 *     2xx at stage DOT;
 *   - a BDAT command is followed by exactly the announced octets.
 * The same bytes are also fed to a tls_conn client as if from the
 * server: it must fail cleanly or wait, never crash or loop.
 * smtp_crlf output is checked to be canonical.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "core/tls.h"
#include "lib/buf.h"
#include "out/smtpc.h"

#define FUZZ_CHECK(e)	do { if (!(e)) abort(); } while (0)

static const char fuzz_wire[] = "Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\n";
static const char fuzz_raw[] = "Subject: x\r\n\r\nbody\r\n.dot\r\n";

/* Check the bytes smtpc wants written, then drop them. */
static void
fuzz_out(struct smtpc *c, enum smtpc_tls_mode mode)
{
	const char	*p = buf_peek(&c->out), *b;
	size_t		 n = buf_unread(&c->out);
	unsigned long	 k;

	if (mode == SMTPC_TLS_NONE)
		FUZZ_CHECK(memmem(p, n, "STARTTLS", 8) == NULL);
	if ((b = memmem(p, n, "BDAT ", 5)) != NULL) {
		char	*end;

		k = strtoul(b + 5, &end, 10);
		FUZZ_CHECK(strncmp(end, " LAST\r\n", 7) == 0);
		end += 7;
		FUZZ_CHECK(k == sizeof(fuzz_raw) - 1);
		/* Nothing after the chunk in the same write. */
		FUZZ_CHECK((size_t)(end - p) + k == n);
		FUZZ_CHECK(memcmp(end, fuzz_raw, k) == 0);
	}
	buf_consume(&c->out, n);
}

static void
fuzz_session(const uint8_t *data, size_t len, uint8_t cfg, uint8_t tlsans)
{
	enum smtpc_tls_mode mode = (enum smtpc_tls_mode)(cfg % 3);
	bool		 chunk = cfg & 4, pipe = cfg & 8, raw = cfg & 16;
	size_t		 step = (size_t)(cfg >> 5), off = 0, end;
	struct smtpc	 c;
	unsigned	 ev;
	int		 inflight = 0, sent = 0, setup_done = 0, r;

	smtpc_init(&c, "fuzz.example", pipe);
	smtpc_set_tls(&c, mode);
	smtpc_set_chunking(&c, chunk);
	for (;;) {
		if (c.state == SMTPC_READY && sent < 4) {
			setup_done = 1;
			r = raw ? smtpc_send_msg_raw(&c, "a@b.example",
			    "r@c.example", fuzz_raw, sizeof(fuzz_raw) - 1) :
			    smtpc_send_msg(&c, "a@b.example", "r@c.example",
			    fuzz_wire, sizeof(fuzz_wire) - 1);
			FUZZ_CHECK(r == 0 || (r == -EMSGSIZE &&
			    c.size_max < sizeof(fuzz_wire)));
			if (r == 0) {
				/* The policy: no mail in the clear. */
				FUZZ_CHECK(mode != SMTPC_TLS_REQUIRED || c.tls);
				inflight = 1;
			}
			sent = r == 0 ? sent + 1 : 4;
			fuzz_out(&c, mode);
		}
		if (off >= len || c.state == SMTPC_CLOSED)
			break;
		end = step == 0 || len - off < step ? len : off + step;
		ev = smtpc_recv(&c, (const char *)data + off, end - off);
		off = end;
		FUZZ_CHECK(!((ev & SMTPC_EV_READY) && (ev & SMTPC_EV_CLOSE)));
		FUZZ_CHECK(!(ev & SMTPC_EV_READY) || c.state == SMTPC_READY);
		FUZZ_CHECK(!(ev & SMTPC_EV_CLOSE) || c.state == SMTPC_CLOSED);
		FUZZ_CHECK(!(ev & SMTPC_EV_STARTTLS) ||
		    (c.state == SMTPC_TLS_HANDSHAKE && mode != SMTPC_TLS_NONE &&
		    !c.tls && !(ev & (SMTPC_EV_CLOSE | SMTPC_EV_RESULT))));
		if (ev & SMTPC_EV_RESULT) {
			FUZZ_CHECK(inflight == 1 || !setup_done);
			FUZZ_CHECK(strlen(c.result.text) <
			    sizeof(c.result.text));
			FUZZ_CHECK(c.result.code / 100 != 2 ||
			    c.result.stage == SMTPC_ST_DOT);
			if (!setup_done)
				setup_done = 2;	/* setup failed: once */
			inflight = 0;
		}
		fuzz_out(&c, mode);
		if (ev & SMTPC_EV_STARTTLS) {
			if (tlsans & 1) {
				ev = smtpc_tls_started(&c);
				FUZZ_CHECK(ev == 0 && c.tls && c.caps == 0 &&
				    c.state == SMTPC_EHLO);
			} else {
				ev = smtpc_tls_failed(&c, (tlsans & 2) ?
				    NULL : "fuzz handshake failure");
				FUZZ_CHECK(ev == (SMTPC_EV_RESULT |
				    SMTPC_EV_CLOSE));
				FUZZ_CHECK(c.result.stage == SMTPC_ST_EHLO &&
				    c.result.code == 0);
			}
			tlsans >>= 2;
			fuzz_out(&c, mode);
		}
		FUZZ_CHECK(c.in_msg == (inflight == 1));
	}
	ev = smtpc_conn_lost(&c, "fuzz");
	FUZZ_CHECK(ev & SMTPC_EV_CLOSE);
	FUZZ_CHECK(!!(ev & SMTPC_EV_RESULT) == (inflight == 1) ||
	    (!setup_done && c.state == SMTPC_CLOSED));
	smtpc_fini(&c);
}

/* Server bytes into a TLS client: a clean error or a wait, nothing else. */
static void
fuzz_tls(const uint8_t *data, size_t len, size_t step)
{
	static SSL_CTX	*ctx;
	struct tls_conn	 t;
	struct buf	 plain;
	size_t		 off = 0, end;
	int		 rc = 0;

	if (ctx == NULL) {
		char	 err[256];

		ctx = tls_client_ctx_new(NULL, err, sizeof(err));
		FUZZ_CHECK(ctx != NULL);
	}
	FUZZ_CHECK(tls_conn_start(&t, ctx, "mx.fuzz.example", len & 1,
	    NULL) == 0);
	FUZZ_CHECK(buf_unread(&t.net_out) > 0);	/* ClientHello */
	buf_init(&plain);
	while (off < len && rc == 0) {
		end = step == 0 || len - off < step ? len : off + step;
		rc = tls_conn_input(&t, (const char *)data + off, end - off,
		    &plain);
		off = end;
		buf_consume(&t.net_out, buf_unread(&t.net_out));
	}
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	if (rc == -EPROTO) {
		FUZZ_CHECK(t.failed && t.reason[0] != '\0');
		FUZZ_CHECK(strlen(t.reason) < sizeof(t.reason));
	}
	/*
	 * Static bytes cannot answer a fresh ClientHello's key share and
	 * random with a valid Finished: the handshake never completes.
	 */
	FUZZ_CHECK(!t.handshake_done && plain.len == 0);
	tls_conn_fini(&t);
	buf_free(&plain);
}

static void
fuzz_crlf(const uint8_t *data, size_t len)
{
	struct buf	 b;

	buf_init(&b);
	FUZZ_CHECK(smtp_crlf(&b, (const char *)data, len) == 0);
	FUZZ_CHECK(b.len == 0 || (b.len >= 2 &&
	    memcmp(b.data + b.len - 2, "\r\n", 2) == 0));
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] == '\r')
			FUZZ_CHECK(i + 1 < b.len && b.data[i + 1] == '\n');
		if (b.data[i] == '\n')
			FUZZ_CHECK(i > 0 && b.data[i - 1] == '\r');
	}
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t	 cfg, tlsans;

	if (len < 2)
		return 0;
	cfg = data[0];
	tlsans = data[1];
	data += 2;
	len -= 2;
	fuzz_session(data, len, cfg, tlsans);
	/* The opposite mode and chunking on the same bytes. */
	fuzz_session(data, len, (uint8_t)(cfg ^ 0x15), tlsans);
	fuzz_tls(data, len, (size_t)(cfg >> 5));
	fuzz_crlf(data, len);
	return 0;
}

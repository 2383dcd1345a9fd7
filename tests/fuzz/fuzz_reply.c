/*
 * fuzz_reply: arbitrary peer bytes into the reply parser (all at once
 * and one byte at a time must agree), into smtpc sessions (pipelined and
 * not, from the banner and from READY), and into smtp_dotstuff. Checks
 * the invariants the connection layer relies on: bounded NUL-terminated
 * texts, exactly one result per message, EV_READY never with EV_CLOSE,
 * and wire output with no bare CR/LF and no early terminator.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/reply.h"
#include "out/smtpc.h"

#define FUZZ_MAXREPLIES	256

#define FUZZ_CHECK(e)	do { if (!(e)) abort(); } while (0)

static void
fuzz_check_reply(const struct reply *r, int rc)
{
	FUZZ_CHECK(r->textlen < REPLY_TEXT_MAX);
	FUZZ_CHECK(r->text[r->textlen] == '\0');
	FUZZ_CHECK(strlen(r->text) == r->textlen);
	FUZZ_CHECK(memchr(r->esc, '\0', sizeof(r->esc)) != NULL);
	if (rc == 1) {
		FUZZ_CHECK(r->code >= 200 && r->code <= 599);
		FUZZ_CHECK(r->nlines >= 1);
		for (size_t i = 0; i < r->textlen; i++)
			FUZZ_CHECK((unsigned char)r->text[i] >= 0x20 ||
			    r->text[i] == '\t');
	} else
		FUZZ_CHECK(r->code == 0);
}

/* Parse data in chunks of `step` (0 = all at once); record the replies. */
static int
fuzz_parse(const char *data, size_t len, size_t step, int *codes,
    size_t *n)
{
	struct reply_parser	*p;
	struct reply		 r;
	size_t			 off = 0, end, used;
	int			 rc = 0;

	p = malloc(sizeof(*p));
	FUZZ_CHECK(p != NULL);
	reply_parser_init(p);
	*n = 0;
	while (off < len) {
		end = step == 0 || len - off < step ? len : off + step;
		rc = reply_parser_feed(p, data + off, end - off, &used, &r);
		FUZZ_CHECK(used <= end - off);
		if (rc != 0)	/* on 0, *out is left alone */
			fuzz_check_reply(&r, rc);
		if (rc < 0)
			break;
		FUZZ_CHECK(rc == 1 || used == end - off);
		off += used;
		if (rc == 1 && *n < FUZZ_MAXREPLIES)
			codes[(*n)++] = r.code;
	}
	free(p);
	return rc < 0 ? rc : 0;
}

static const char fuzz_body[] = "Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\n";

/* Run peer bytes through a session; count results against messages. */
static void
fuzz_session(const uint8_t *data, size_t len, bool pipe, bool from_ready,
    size_t step)
{
	struct smtpc	 c;
	unsigned	 ev;
	size_t		 off = 0, end;
	int		 inflight = 0, sent = 0, r;

	smtpc_init(&c, "fuzz.example", pipe);
	if (from_ready) {
		static const char hello[] = "220 x\r\n250-x\r\n"
		    "250-PIPELINING\r\n250-SIZE 100000\r\n"
		    "250-8BITMIME\r\n250 SMTPUTF8\r\n";

		ev = smtpc_recv(&c, hello, sizeof(hello) - 1);
		FUZZ_CHECK(ev == SMTPC_EV_READY);
	}
	for (;;) {
		if (c.state == SMTPC_READY && sent < 8) {
			r = smtpc_send_msg(&c, "a@b.example", "r@c.example",
			    fuzz_body, sizeof(fuzz_body) - 1);
			/* Only a tiny peer SIZE may refuse it. */
			FUZZ_CHECK(r == 0 || (r == -EMSGSIZE &&
			    c.size_max < sizeof(fuzz_body)));
			if (r == 0)
				inflight = 1;
			sent = r == 0 ? sent + 1 : 8;
		}
		if (off >= len || c.state == SMTPC_CLOSED)
			break;
		end = step == 0 || len - off < step ? len : off + step;
		ev = smtpc_recv(&c, (const char *)data + off, end - off);
		off = end;
		/* What the caller writes is gone from the buffer. */
		buf_consume(&c.out, buf_unread(&c.out));
		FUZZ_CHECK(!((ev & SMTPC_EV_READY) && (ev & SMTPC_EV_CLOSE)));
		FUZZ_CHECK(!(ev & SMTPC_EV_READY) || c.state == SMTPC_READY);
		FUZZ_CHECK(!(ev & SMTPC_EV_CLOSE) || c.state == SMTPC_CLOSED);
		if (ev & SMTPC_EV_RESULT) {
			FUZZ_CHECK(inflight == 1 || sent == 0);
			FUZZ_CHECK(strlen(c.result.text) <
			    sizeof(c.result.text));
			FUZZ_CHECK(c.result.code == 0 ||
			    (c.result.code >= 200 && c.result.code <= 599));
			/* A delivery is only ever a 2xx after the dot. */
			FUZZ_CHECK(c.result.code / 100 != 2 ||
			    c.result.stage == SMTPC_ST_DOT);
			inflight = 0;
		}
		FUZZ_CHECK(c.in_msg == (inflight == 1));
	}
	ev = smtpc_conn_lost(&c, "fuzz");
	FUZZ_CHECK(ev & SMTPC_EV_CLOSE);
	FUZZ_CHECK(!!(ev & SMTPC_EV_RESULT) == (inflight == 1) ||
	    (sent == 0 && c.state == SMTPC_CLOSED));
	smtpc_fini(&c);
}

static void
fuzz_dotstuff(const uint8_t *data, size_t len)
{
	struct buf	 b;
	const char	*p;

	buf_init(&b);
	FUZZ_CHECK(smtp_dotstuff(&b, (const char *)data, len) == 0);
	FUZZ_CHECK(b.len >= 3 && memcmp(b.data + b.len - 3, ".\r\n", 3) == 0);
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] == '\r')
			FUZZ_CHECK(i + 1 < b.len && b.data[i + 1] == '\n');
		if (b.data[i] == '\n')
			FUZZ_CHECK(i > 0 && b.data[i - 1] == '\r');
	}
	p = memmem(b.data, b.len, "\r\n.\r\n", 5);
	FUZZ_CHECK(p == NULL || (size_t)(p - b.data) == b.len - 5);
	FUZZ_CHECK(b.len == 3 || memcmp(b.data, ".\r\n", 3) != 0);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int	 c1[FUZZ_MAXREPLIES], c2[FUZZ_MAXREPLIES];
	size_t		 n1, n2, step;
	int		 r1, r2;

	/* Differential: chunking must not change what is parsed. */
	r1 = fuzz_parse((const char *)data, len, 0, c1, &n1);
	r2 = fuzz_parse((const char *)data, len, 1, c2, &n2);
	FUZZ_CHECK(r1 == r2 && n1 == n2);
	FUZZ_CHECK(memcmp(c1, c2, n1 * sizeof(c1[0])) == 0);

	step = len > 0 ? (size_t)data[0] % 17 : 0;
	fuzz_session(data, len, true, false, step);
	fuzz_session(data, len, true, true, step);
	fuzz_session(data, len, false, true, 0);
	fuzz_dotstuff(data, len);
	return 0;
}

/* smtpc: sans-I/O SMTP client session. See smtpc.h for the states. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "mail/reply.h"

#include "out/smtpc.h"

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with the brackets. */
#define SMTPC_ADDR_MAX	254

static bool smtpc_has_8bit(const char *s, size_t n);

static const char *const smtpc_state_names[] = {
	[SMTPC_BANNER] = "banner", [SMTPC_EHLO] = "ehlo",
	[SMTPC_HELO] = "helo", [SMTPC_READY] = "ready",
	[SMTPC_MAIL] = "mail", [SMTPC_RCPT] = "rcpt", [SMTPC_DATA] = "data",
	[SMTPC_DOT] = "dot", [SMTPC_RSET] = "rset", [SMTPC_QUIT] = "quit",
	[SMTPC_CLOSED] = "closed", [SMTPC_STARTTLS] = "starttls",
	[SMTPC_TLS_HANDSHAKE] = "tls_handshake", [SMTPC_BDAT] = "bdat",
};

const char *
smtpc_stage_name(enum smtpc_stage st)
{
	switch (st) {
	case SMTPC_ST_CONNECT:
		return "connect";
	case SMTPC_ST_BANNER:
		return "banner";
	case SMTPC_ST_EHLO:
		return "ehlo";
	case SMTPC_ST_MAIL:
		return "mail";
	case SMTPC_ST_RCPT:
		return "rcpt";
	case SMTPC_ST_DATA:
		return "data";
	case SMTPC_ST_DOT:
		return "dot";
	case SMTPC_ST_QUIT:
		return "quit";
	}
	return "unknown";
}

enum smtpc_stage
smtpc_stage(const struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_BANNER:
		return SMTPC_ST_BANNER;
	case SMTPC_EHLO:
	case SMTPC_HELO:
	case SMTPC_STARTTLS:
	case SMTPC_TLS_HANDSHAKE:
		return SMTPC_ST_EHLO;
	case SMTPC_READY:
	case SMTPC_MAIL:
	case SMTPC_RSET:
		return SMTPC_ST_MAIL;
	case SMTPC_RCPT:
		return SMTPC_ST_RCPT;
	case SMTPC_DATA:
		return SMTPC_ST_DATA;
	case SMTPC_DOT:
	case SMTPC_BDAT:
		return SMTPC_ST_DOT;
	case SMTPC_QUIT:
	case SMTPC_CLOSED:
		return SMTPC_ST_QUIT;
	}
	return SMTPC_ST_QUIT;
}

/* What we were waiting for, for timeout and lost-connection reasons. */
static const char *
smtpc_where(const struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_STARTTLS:
		return "STARTTLS";
	case SMTPC_TLS_HANDSHAKE:
		return "TLS handshake";
	case SMTPC_BDAT:
		return "BDAT";
	case SMTPC_BANNER:
	case SMTPC_EHLO:
	case SMTPC_HELO:
	case SMTPC_READY:
	case SMTPC_MAIL:
	case SMTPC_RCPT:
	case SMTPC_DATA:
	case SMTPC_DOT:
	case SMTPC_RSET:
	case SMTPC_QUIT:
	case SMTPC_CLOSED:
		break;
	}
	return smtpc_stage_name(smtpc_stage(c));
}

static void
smtpc_set_state(struct smtpc *c, enum smtpc_state st)
{
	log_debug("smtpc state from=%s to=%s", smtpc_state_names[c->state],
	    smtpc_state_names[st]);
	c->state = st;
}

static bool
smtpc_in_setup(const struct smtpc *c)
{
	return c->state == SMTPC_BANNER || c->state == SMTPC_EHLO ||
	    c->state == SMTPC_HELO || c->state == SMTPC_STARTTLS ||
	    c->state == SMTPC_TLS_HANDSHAKE;
}

/* Copy at most dstsz-1 bytes and never end inside a UTF-8 sequence. */
static void
smtpc_copy_text(char *dst, size_t dstsz, const char *src)
{
	size_t	 n = strlen(src);

	if (n >= dstsz) {
		n = dstsz - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Record the result of the message (or failed setup). Returns EV_RESULT. */
static unsigned
smtpc_result(struct smtpc *c, enum smtpc_stage st, int code, const char *esc,
    const char *text)
{
	c->result.stage = st;
	c->result.code = code;
	smtpc_copy_text(c->result.esc, sizeof(c->result.esc), esc);
	smtpc_copy_text(c->result.text, sizeof(c->result.text), text);
	c->in_msg = false;
	c->body = NULL;
	c->bodylen = 0;
	return SMTPC_EV_RESULT;
}

static unsigned
smtpc_result_reply(struct smtpc *c, enum smtpc_stage st,
    const struct reply *r)
{
	return smtpc_result(c, st, r->code, r->esc, r->text);
}

/*
 * The session is over. A message in flight or an unfinished setup gets a
 * result with `code` and `text`; otherwise there is nobody to tell.
 */
static unsigned
smtpc_close(struct smtpc *c, int code, const char *esc, const char *text)
{
	unsigned	 ev = SMTPC_EV_CLOSE;

	if (c->state == SMTPC_CLOSED)
		return ev;
	if (c->in_msg || smtpc_in_setup(c))
		ev |= smtpc_result(c, smtpc_stage(c), code, esc, text);
	c->in_msg = false;
	c->body = NULL;
	c->bodylen = 0;
	c->pending = 0;
	smtpc_set_state(c, SMTPC_CLOSED);
	return ev;
}

static unsigned
smtpc_protocol_error(struct smtpc *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static unsigned
smtpc_protocol_error(struct smtpc *c, const char *fmt, ...)
{
	char	 why[sizeof(c->result.text)];
	va_list	 ap;
	int	 n;

	n = snprintf(why, sizeof(why), "protocol error: ");
	va_start(ap, fmt);
	vsnprintf(why + n, sizeof(why) - (size_t)n, fmt, ap);
	va_end(ap);
	return smtpc_close(c, 0, "", why);
}

/* Queue a command; on -ENOMEM the session cannot go on. */
static int
smtpc_cmd(struct smtpc *c, const char *cmd)
{
	return buf_puts(&c->out, cmd);
}

static unsigned
smtpc_nomem(struct smtpc *c)
{
	return smtpc_close(c, 0, "", "out of memory queueing command");
}

static unsigned
smtpc_send_quit(struct smtpc *c)
{
	if (smtpc_cmd(c, "QUIT\r\n") != 0)
		return smtpc_nomem(c);
	c->pending = 1;
	smtpc_set_state(c, SMTPC_QUIT);
	return 0;
}

/* After a failed transaction: RSET (RFC 5321 4.1.1.5), then READY. */
static unsigned
smtpc_send_rset(struct smtpc *c)
{
	if (smtpc_cmd(c, "RSET\r\n") != 0)
		return smtpc_nomem(c);
	c->pending = 1;
	smtpc_set_state(c, SMTPC_RSET);
	return 0;
}

static unsigned
smtpc_send_ehlo(struct smtpc *c, const char *verb)
{
	c->caps = 0;
	c->size_max = 0;
	if (buf_printf(&c->out, "%s %s\r\n", verb, c->ehlo_name) != 0)
		return smtpc_nomem(c);
	c->pending = 1;
	smtpc_set_state(c, verb[0] == 'E' ? SMTPC_EHLO : SMTPC_HELO);
	return 0;
}

/* Does the keyword at s[0..len) equal kw (ASCII, any case)? */
static bool
smtpc_kw(const char *s, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(s, kw, len) == 0;
}

/*
 * One EHLO line (RFC 5321 4.1.1.1): "keyword *(SP param)". Line 0 is
 * the greeting. Unknown keywords are ignored.
 */
static void
smtpc_ehlo_line(void *arg, int code, unsigned lineno, const char *text,
    size_t len)
{
	struct smtpc	*c = arg;
	unsigned long	 v;
	size_t		 kl, i;

	if (c->state != SMTPC_EHLO || code / 100 != 2 || lineno == 0)
		return;
	for (kl = 0; kl < len && text[kl] != ' ' && text[kl] != '\t'; kl++)
		;
	if (smtpc_kw(text, kl, "PIPELINING"))
		c->caps |= SMTPC_CAP_PIPELINING;
	else if (smtpc_kw(text, kl, "8BITMIME"))
		c->caps |= SMTPC_CAP_8BITMIME;
	else if (smtpc_kw(text, kl, "STARTTLS"))
		c->caps |= SMTPC_CAP_STARTTLS;
	else if (smtpc_kw(text, kl, "ENHANCEDSTATUSCODES"))
		c->caps |= SMTPC_CAP_ENHANCED;
	else if (smtpc_kw(text, kl, "SMTPUTF8"))
		c->caps |= SMTPC_CAP_SMTPUTF8;
	else if (smtpc_kw(text, kl, "CHUNKING"))
		c->caps |= SMTPC_CAP_CHUNKING;
	else if (smtpc_kw(text, kl, "SIZE")) {
		/* RFC 1870: "SIZE [n]"; no, 0 or a bad n = no fixed limit. */
		c->caps |= SMTPC_CAP_SIZE;
		v = 0;
		for (i = kl; i < len && text[i] == ' '; i++)
			;
		for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
			if (v > (~0UL - 9) / 10)
				break;
			v = v * 10 + (unsigned long)(text[i] - '0');
		}
		/* "SIZE 1A000" is not a limit of 1: ignore a bad value. */
		if (i < len && text[i] != ' ' && text[i] != '\t')
			v = 0;
		c->size_max = v;
	}
}

void
smtpc_reset(struct smtpc *c)
{
	struct buf	 out = c->out;
	const char	*name = c->ehlo_name;
	bool		 pipe = c->use_pipelining, chunk = c->use_chunking;
	enum smtpc_tls_mode tmode = c->tls_mode;

	memset(c, 0, sizeof(*c));
	c->out = out;
	buf_reset(&c->out);
	c->ehlo_name = name;
	c->use_pipelining = pipe;
	c->use_chunking = chunk;
	c->tls_mode = tmode;
	c->state = SMTPC_BANNER;
	c->pending = 1;			/* the greeting */
	reply_parser_init(&c->rp);
	reply_parser_set_line_cb(&c->rp, smtpc_ehlo_line, c);
}

void
smtpc_init(struct smtpc *c, const char *ehlo_name, bool use_pipelining)
{
	/* Config validates the name; a CR/LF here would inject commands. */
	ENGINE_ASSERT(ehlo_name != NULL && ehlo_name[0] != '\0' &&
	    strpbrk(ehlo_name, " \t\r\n") == NULL);
	memset(c, 0, sizeof(*c));
	buf_init(&c->out);
	c->ehlo_name = ehlo_name;
	c->use_pipelining = use_pipelining;
	smtpc_reset(c);
}

void
smtpc_fini(struct smtpc *c)
{
	buf_free(&c->out);
	memset(c, 0, sizeof(*c));
	c->state = SMTPC_CLOSED;
}

/* EHLO/HELO succeeded: STARTTLS first when wanted, else READY. */
static unsigned
smtpc_ehlo_done(struct smtpc *c)
{
	unsigned	 ev;

	if (!c->tls && c->tls_mode != SMTPC_TLS_NONE) {
		if (c->caps & SMTPC_CAP_STARTTLS) {
			if (smtpc_cmd(c, "STARTTLS\r\n") != 0)
				return smtpc_nomem(c);
			c->pending = 1;
			smtpc_set_state(c, SMTPC_STARTTLS);
			return 0;
		}
		if (c->tls_mode == SMTPC_TLS_REQUIRED) {
			ev = smtpc_result(c, SMTPC_ST_EHLO, 0, "",
			    "TLS required but STARTTLS not offered");
			return ev | smtpc_send_quit(c);
		}
	}
	smtpc_set_state(c, SMTPC_READY);
	return SMTPC_EV_READY;
}

/* The reply to STARTTLS (RFC 3207 4). */
static unsigned
smtpc_on_starttls(struct smtpc *c, const struct reply *r)
{
	char		 text[sizeof(c->result.text)];
	unsigned	 ev;
	int		 cls = r->code / 100;

	if (r->code == 220) {
		smtpc_set_state(c, SMTPC_TLS_HANDSHAKE);
		return SMTPC_EV_STARTTLS;
	}
	if (cls != 4 && cls != 5)
		return smtpc_protocol_error(c, "unexpected %d reply to STARTTLS",
		    r->code);
	if (c->tls_mode == SMTPC_TLS_REQUIRED) {
		snprintf(text, sizeof(text), "STARTTLS refused: %s", r->text);
		ev = smtpc_result(c, SMTPC_ST_EHLO, r->code, r->esc, text);
		return ev | smtpc_send_quit(c);
	}
	/* Opportunistic: the session goes on in plain text. */
	log_debug("smtpc starttls refused code=%d, continuing in plain text",
	    r->code);
	smtpc_set_state(c, SMTPC_READY);
	return SMTPC_EV_READY;
}

/*
 * 354 came: queue the body, or a lone "." when the transaction already
 * failed (pipelined DATA that the server accepted anyway). A raw body is
 * dot-stuffed here, into out (the same copy the wire form costs).
 */
static unsigned
smtpc_data_go(struct smtpc *c)
{
	int	 r;

	if (c->txn_failed)
		r = smtpc_cmd(c, ".\r\n");
	else if (c->body_raw)
		r = smtp_dotstuff(&c->out, c->body, c->bodylen);
	else
		r = buf_append(&c->out, c->body, c->bodylen);
	if (r != 0)
		return smtpc_nomem(c);
	c->pending = 1;
	smtpc_set_state(c, SMTPC_DOT);
	return 0;
}

/* RFC 3030 2: "BDAT <n> LAST" and exactly n octets, in one go. */
static int
smtpc_queue_bdat(struct smtpc *c)
{
	int	 r;

	r = buf_printf(&c->out, "BDAT %zu LAST\r\n", c->bodylen);
	if (r == 0)
		r = buf_append(&c->out, c->body, c->bodylen);
	return r;
}

/* A MAIL/RCPT/DATA/DOT/BDAT reply was 4xx/5xx. */
static unsigned
smtpc_txn_fail(struct smtpc *c, enum smtpc_stage st, const struct reply *r)
{
	unsigned	 ev = 0;

	if (!c->txn_failed && c->in_msg)
		ev = smtpc_result_reply(c, st, r);
	c->txn_failed = true;
	return ev;
}

/* A reply to MAIL or RCPT (pipelined or not). */
static unsigned
smtpc_on_envelope(struct smtpc *c, const struct reply *r)
{
	bool		 mail = c->state == SMTPC_MAIL;
	enum smtpc_state next;
	unsigned	 ev = 0;
	int		 cls = r->code / 100, rc;

	if (cls == 4 || cls == 5)
		ev = smtpc_txn_fail(c, mail ? SMTPC_ST_MAIL : SMTPC_ST_RCPT, r);
	else if (cls != 2)
		return smtpc_protocol_error(c, "unexpected %d reply to %s",
		    r->code, mail ? "MAIL" : "RCPT");
	next = mail ? SMTPC_RCPT : c->chunked ? SMTPC_BDAT : SMTPC_DATA;
	if (c->pending > 0) {
		/* Pipelined: the next reply answers the next command. */
		smtpc_set_state(c, next);
		return ev;
	}
	if (c->txn_failed)
		return ev | smtpc_send_rset(c);
	if (mail)
		rc = buf_printf(&c->out, "RCPT TO:<%s>\r\n", c->rcpt);
	else if (c->chunked)
		rc = smtpc_queue_bdat(c);
	else
		rc = smtpc_cmd(c, "DATA\r\n");
	if (rc != 0)
		return smtpc_nomem(c);
	c->pending = 1;
	smtpc_set_state(c, next);
	return ev;
}

static unsigned
smtpc_on_data(struct smtpc *c, const struct reply *r)
{
	unsigned	 ev = 0;
	int		 cls = r->code / 100;

	if (r->code == 354)
		return smtpc_data_go(c);
	if (cls == 4 || cls == 5) {
		/* After a failed MAIL/RCPT this is the expected 503/554. */
		ev = smtpc_txn_fail(c, SMTPC_ST_DATA, r);
		return ev | smtpc_send_rset(c);
	}
	/* A 250 here must never pass for a delivery: close. */
	return smtpc_protocol_error(c, "unexpected %d reply to DATA", r->code);
}

static unsigned
smtpc_on_dot(struct smtpc *c, const struct reply *r)
{
	unsigned	 ev;
	int		 cls = r->code / 100;

	if (c->txn_failed)	/* reply to our lone ".": nothing to report */
		return smtpc_send_rset(c);
	if (cls == 2) {
		ev = smtpc_result_reply(c, SMTPC_ST_DOT, r);
		c->nmsgs++;
		smtpc_set_state(c, SMTPC_READY);
		return ev | SMTPC_EV_READY;
	}
	if (cls == 4 || cls == 5) {
		ev = smtpc_txn_fail(c, SMTPC_ST_DOT, r);
		return ev | smtpc_send_rset(c);
	}
	return smtpc_protocol_error(c, "unexpected %d reply to end of data",
	    r->code);
}

/* The reply to BDAT <n> LAST: the final verdict on the message. */
static unsigned
smtpc_on_bdat(struct smtpc *c, const struct reply *r)
{
	unsigned	 ev;
	int		 cls = r->code / 100;

	if (cls != 2 && cls != 4 && cls != 5)
		return smtpc_protocol_error(c, "unexpected %d reply to BDAT",
		    r->code);
	/* After a failed MAIL/RCPT: the expected 503/554, just consumed. */
	if (c->txn_failed)
		return smtpc_send_rset(c);
	if (cls == 2) {
		ev = smtpc_result_reply(c, SMTPC_ST_DOT, r);
		c->nmsgs++;
		smtpc_set_state(c, SMTPC_READY);
		return ev | SMTPC_EV_READY;
	}
	/* RFC 3030 2: no more chunks after a 4xx/5xx; RSET the rest. */
	ev = smtpc_txn_fail(c, SMTPC_ST_DOT, r);
	return ev | smtpc_send_rset(c);
}

/* One complete reply in the current state. */
static unsigned
smtpc_on_reply(struct smtpc *c, const struct reply *r)
{
	unsigned	 ev;
	int		 cls = r->code / 100;

	if (c->state == SMTPC_QUIT) {
		/* Whatever it says (RFC 5321 4.1.1.10), we are done. */
		smtpc_set_state(c, SMTPC_CLOSED);
		return SMTPC_EV_CLOSE;
	}
	/* RFC 5321 3.8: 421 may come at any time; the server is closing. */
	if (r->code == 421)
		return smtpc_close(c, r->code, r->esc, r->text);
	if (c->pending == 0)
		return smtpc_protocol_error(c,
		    "unexpected %d reply in state %s", r->code,
		    smtpc_state_names[c->state]);
	c->pending--;
	switch (c->state) {
	case SMTPC_BANNER:
		if (cls == 2)
			return smtpc_send_ehlo(c, "EHLO");
		if (cls == 4 || cls == 5) {
			/* RFC 5321 3.1: 554 greeting; say QUIT, then close. */
			ev = smtpc_result_reply(c, SMTPC_ST_BANNER, r);
			return ev | smtpc_send_quit(c);
		}
		break;
	case SMTPC_EHLO:
	case SMTPC_HELO:
		if (cls == 2) {
			if (c->state == SMTPC_HELO)
				c->caps = 0;
			return smtpc_ehlo_done(c);
		}
		/* RFC 5321 4.1.4: a server without EHLO may still do HELO. */
		if (cls == 5 && c->state == SMTPC_EHLO)
			return smtpc_send_ehlo(c, "HELO");
		if (cls == 4 || cls == 5) {
			ev = smtpc_result_reply(c, SMTPC_ST_EHLO, r);
			return ev | smtpc_send_quit(c);
		}
		break;
	case SMTPC_MAIL:
	case SMTPC_RCPT:
		return smtpc_on_envelope(c, r);
	case SMTPC_DATA:
		return smtpc_on_data(c, r);
	case SMTPC_DOT:
		return smtpc_on_dot(c, r);
	case SMTPC_BDAT:
		return smtpc_on_bdat(c, r);
	case SMTPC_STARTTLS:
		return smtpc_on_starttls(c, r);
	case SMTPC_RSET:
		if (cls == 2) {
			c->txn_failed = false;
			smtpc_set_state(c, SMTPC_READY);
			return SMTPC_EV_READY;
		}
		if (cls == 4 || cls == 5)
			return smtpc_send_quit(c);
		break;
	case SMTPC_READY:
	case SMTPC_QUIT:
	case SMTPC_CLOSED:
	case SMTPC_TLS_HANDSHAKE:
		break;
	}
	return smtpc_protocol_error(c, "unexpected %d reply in state %s",
	    r->code, smtpc_state_names[c->state]);
}

unsigned
smtpc_recv(struct smtpc *c, const char *data, size_t len)
{
	struct reply	 r;
	unsigned	 ev = 0;
	size_t		 used;
	int		 rc;

	while (len > 0 && c->state != SMTPC_CLOSED) {
		if (c->state == SMTPC_TLS_HANDSHAKE) {
			/*
			 * Plain text after the 220 to STARTTLS (or before
			 * smtpc_tls_started): someone is injecting replies
			 * that would be taken as sent under TLS. RFC 3207 5.
			 */
			ev |= smtpc_protocol_error(c,
			    "plain text after STARTTLS 220 reply");
			break;
		}
		rc = reply_parser_feed(&c->rp, data, len, &used, &r);
		if (rc < 0) {
			if (c->state == SMTPC_QUIT) {
				smtpc_set_state(c, SMTPC_CLOSED);
				ev |= SMTPC_EV_CLOSE;
			} else
				ev |= smtpc_protocol_error(c, "%s", r.text);
			break;
		}
		data += used;
		len -= used;
		if (rc == 0)
			break;
		ev |= smtpc_on_reply(c, &r);
	}
	if (c->state == SMTPC_CLOSED)
		ev = (ev & ~(SMTPC_EV_READY | SMTPC_EV_STARTTLS)) |
		    SMTPC_EV_CLOSE;
	else if (c->state != SMTPC_READY)
		ev &= ~SMTPC_EV_READY;
	return ev;
}

/* Is s a safe envelope address? Sets *utf8 when it needs SMTPUTF8. */
static int
smtpc_addr_ok(const char *s, bool *utf8)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++) {
		unsigned char u = (unsigned char)s[n];

		if (n >= SMTPC_ADDR_MAX || u < 0x20 || u == 0x7f)
			return -EINVAL;
		if (u >= 0x80)
			*utf8 = true;
	}
	return 0;
}

static int	smtpc_queue_txn(struct smtpc *c, const char *from,
		    const char *rcpt, const char *body, size_t bodylen,
		    size_t size, bool eight, bool utf8, bool raw);

int
smtpc_send_msg(struct smtpc *c, const char *from, const char *rcpt,
    const char *body, size_t bodylen)
{
	size_t		 i, nstuffed = 0, size;
	bool		 utf8 = false, eight = false, bol = true;

	if (c->state != SMTPC_READY)
		return -EBUSY;
	if (from == NULL || rcpt == NULL || rcpt[0] == '\0' || body == NULL ||
	    smtpc_addr_ok(from, &utf8) != 0 || smtpc_addr_ok(rcpt, &utf8) != 0)
		return -EINVAL;
	/* The terminator, alone or after a CRLF (RFC 5321 4.1.1.4). */
	if (bodylen < 3 || memcmp(body + bodylen - 3, ".\r\n", 3) != 0 ||
	    (bodylen > 3 && (bodylen < 5 ||
	    memcmp(body + bodylen - 5, "\r\n", 2) != 0)))
		return -EINVAL;
	if (utf8 && !(c->caps & SMTPC_CAP_SMTPUTF8))
		return -EPROTONOSUPPORT;
	/* One pass for the 8-bit test and the RFC 1870 size. */
	if (c->caps & (SMTPC_CAP_SIZE | SMTPC_CAP_8BITMIME)) {
		for (i = 0; i < bodylen - 3; i++) {
			if (bol && body[i] == '.')
				nstuffed++;
			if ((unsigned char)body[i] >= 0x80)
				eight = true;
			bol = body[i] == '\n';
		}
	}
	size = bodylen - 3 - nstuffed;
	if ((c->caps & SMTPC_CAP_SIZE) && c->size_max > 0 &&
	    size > c->size_max)
		return -EMSGSIZE;
	return smtpc_queue_txn(c, from, rcpt, body, bodylen, size, eight,
	    utf8, false);
}

bool
smtpc_will_chunk(const struct smtpc *c)
{
	return c->use_chunking && (c->caps & SMTPC_CAP_CHUNKING);
}

int
smtpc_send_msg_raw(struct smtpc *c, const char *from, const char *rcpt,
    const char *msg, size_t len)
{
	bool	 utf8 = false, eight = false;
	size_t	 i;

	if (c->state != SMTPC_READY)
		return -EBUSY;
	if (from == NULL || rcpt == NULL || rcpt[0] == '\0' || msg == NULL ||
	    smtpc_addr_ok(from, &utf8) != 0 || smtpc_addr_ok(rcpt, &utf8) != 0)
		return -EINVAL;
	/*
	 * Canonical only: BDAT sends the octets as they are, so a bare CR
	 * or LF here would reach receivers that disagree on line ends.
	 */
	if (len > 0 && (len < 2 || msg[len - 2] != '\r' ||
	    msg[len - 1] != '\n'))
		return -EINVAL;
	/* Every line ends in CRLF: the only CR of a line is just before
	 * its LF. memchr keeps this check off the profile. */
	for (i = 0; i < len;) {
		const char	*nl = memchr(msg + i, '\n', len - i);
		const char	*cr;

		if (nl == NULL)
			return -EINVAL;
		cr = memchr(msg + i, '\r', (size_t)(nl - (msg + i)));
		if (cr == NULL || cr != nl - 1)
			return -EINVAL;
		i = (size_t)(nl - msg) + 1;
	}
	eight = smtpc_has_8bit(msg, len);
	if (utf8 && !(c->caps & SMTPC_CAP_SMTPUTF8))
		return -EPROTONOSUPPORT;
	if ((c->caps & SMTPC_CAP_SIZE) && c->size_max > 0 &&
	    len > c->size_max)
		return -EMSGSIZE;
	return smtpc_queue_txn(c, from, rcpt, msg, len, len, eight, utf8,
	    true);
}

/*
 * Queue MAIL (and, pipelined, RCPT and DATA or BDAT with the message) for
 * a checked message. size is the RFC 1870 size; raw: body is canonical.
 * Nothing stays queued on failure.
 */
static int
smtpc_queue_txn(struct smtpc *c, const char *from, const char *rcpt,
    const char *body, size_t bodylen, size_t size, bool eight, bool utf8,
    bool raw)
{
	size_t	 mark;
	int	 r;

	mark = c->out.len;
	r = buf_printf(&c->out, "MAIL FROM:<%s>", from);
	if (r == 0 && (c->caps & SMTPC_CAP_SIZE))
		r = buf_printf(&c->out, " SIZE=%zu", size);
	if (r == 0 && eight && (c->caps & SMTPC_CAP_8BITMIME))
		r = buf_puts(&c->out, " BODY=8BITMIME");
	if (r == 0 && utf8)
		r = buf_puts(&c->out, " SMTPUTF8");
	if (r == 0)
		r = buf_puts(&c->out, "\r\n");
	/*
	 * RFC 2920 3.1: DATA is the last command of a pipelined group.
	 * RFC 3030 4.2: BDAT may be pipelined too; its chunk follows it.
	 */
	c->pipelined = c->use_pipelining && (c->caps & SMTPC_CAP_PIPELINING);
	c->chunked = raw && smtpc_will_chunk(c);
	c->body = body;
	c->bodylen = bodylen;
	if (r == 0 && c->pipelined)
		r = buf_printf(&c->out, "RCPT TO:<%s>\r\n", rcpt);
	if (r == 0 && c->pipelined)
		r = c->chunked ? smtpc_queue_bdat(c) :
		    buf_puts(&c->out, "DATA\r\n");
	if (r == 0 && !c->pipelined)
		smtpc_copy_text(c->rcpt, sizeof(c->rcpt), rcpt);
	if (r != 0) {
		c->out.len = mark;
		if (c->out.data != NULL)
			c->out.data[mark] = '\0';
		c->body = NULL;
		c->bodylen = 0;
		c->chunked = false;
		return r;
	}
	c->body_raw = raw;
	c->in_msg = true;
	c->txn_failed = false;
	c->pending = c->pipelined ? 3 : 1;
	memset(&c->result, 0, sizeof(c->result));
	smtpc_set_state(c, SMTPC_MAIL);
	return 0;
}

unsigned
smtpc_quit(struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_READY:
		return smtpc_send_quit(c);
	case SMTPC_QUIT:
		return 0;
	case SMTPC_CLOSED:
		return SMTPC_EV_CLOSE;
	case SMTPC_BANNER:
	case SMTPC_EHLO:
	case SMTPC_HELO:
	case SMTPC_STARTTLS:
	case SMTPC_TLS_HANDSHAKE:
		/* The caller gave up on the session: not a setup failure. */
		smtpc_set_state(c, SMTPC_CLOSED);
		return SMTPC_EV_CLOSE;
	case SMTPC_MAIL:
	case SMTPC_RCPT:
	case SMTPC_DATA:
	case SMTPC_DOT:
	case SMTPC_BDAT:
	case SMTPC_RSET:
		break;
	}
	return smtpc_close(c, 0, "", "session closed during transaction");
}

unsigned
smtpc_timeout(struct smtpc *c)
{
	char	 why[64];

	if (c->state == SMTPC_QUIT || c->state == SMTPC_READY) {
		smtpc_set_state(c, SMTPC_CLOSED);
		return SMTPC_EV_CLOSE;
	}
	if (c->state == SMTPC_TLS_HANDSHAKE)
		snprintf(why, sizeof(why), "timeout during TLS handshake");
	else
		snprintf(why, sizeof(why), "timeout waiting for %s reply",
		    smtpc_where(c));
	return smtpc_close(c, 0, "", why);
}

unsigned
smtpc_conn_lost(struct smtpc *c, const char *why)
{
	char	 text[sizeof(c->result.text)];

	snprintf(text, sizeof(text), "connection lost during %s%s%s",
	    smtpc_where(c), why != NULL ? ": " : "",
	    why != NULL ? why : "");
	return smtpc_close(c, 0, "", text);
}

void
smtpc_set_tls(struct smtpc *c, enum smtpc_tls_mode mode)
{
	c->tls_mode = mode;
}

void
smtpc_set_chunking(struct smtpc *c, bool on)
{
	c->use_chunking = on;
}

unsigned
smtpc_tls_started(struct smtpc *c)
{
	if (c->state == SMTPC_CLOSED)
		return SMTPC_EV_CLOSE;
	ENGINE_ASSERT(c->state == SMTPC_TLS_HANDSHAKE);
	c->tls = true;
	/*
	 * RFC 3207 4.2: discard everything learned before TLS and ask again
	 * (smtpc_send_ehlo clears the capabilities). A fresh parser, too:
	 * nothing from the plain-text stream may carry over.
	 */
	reply_parser_init(&c->rp);
	reply_parser_set_line_cb(&c->rp, smtpc_ehlo_line, c);
	return smtpc_send_ehlo(c, "EHLO");
}

unsigned
smtpc_tls_failed(struct smtpc *c, const char *why)
{
	char	 text[sizeof(c->result.text)];

	snprintf(text, sizeof(text), "STARTTLS: %s",
	    why != NULL && why[0] != '\0' ? why : "TLS handshake failed");
	return smtpc_close(c, 0, "", text);
}

/* smtp_dotstuff and smtp_crlf: one pass, stuffing optional. */
/* Index of the next CR or LF at or after i, or n (memchr-fast). */
static size_t
smtpc_scan_eol(const char *s, size_t i, size_t n)
{
	const char	*nl = memchr(s + i, '\n', n - i);
	size_t		 end = nl ? (size_t)(nl - s) : n;
	const char	*cr = memchr(s + i, '\r', end - i);

	return cr ? (size_t)(cr - s) : end;
}

/* Any byte >= 0x80? Eight at a time. */
static bool
smtpc_has_8bit(const char *s, size_t n)
{
	size_t	i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t	w;

		memcpy(&w, s + i, 8);
		if (w & 0x8080808080808080ULL)
			return true;
	}
	for (; i < n; i++)
		if ((unsigned char)s[i] & 0x80)
			return true;
	return false;
}

static int
smtp_canon(struct buf *out, const char *msg, size_t len, bool stuff)
{
	size_t	 i = 0, start, mark = out->len;
	bool	 bol = true;
	int	 r = 0;

	while (i < len && r == 0) {
		/* RFC 5321 4.5.2: a line starting with "." gets one more. */
		if (stuff && bol && msg[i] == '.' &&
		    (r = buf_putc(out, '.')) != 0)
			break;
		start = i;
		i = smtpc_scan_eol(msg, i, len);
		if (i == len) {
			r = buf_append(out, msg + start, i - start);
			bol = false;
			break;
		}
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n') {
			/* Proper CRLF: copy it with the line. */
			i += 2;
			r = buf_append(out, msg + start, i - start);
		} else {
			/*
			 * Bare CR or LF: receivers disagree on what ends a
			 * line, which is what SMTP smuggling exploits. Make
			 * every one a CRLF so all of them see the same.
			 */
			r = buf_append(out, msg + start, i - start);
			if (r == 0)
				r = buf_append(out, "\r\n", 2);
			i++;
		}
		bol = true;
	}
	if (r == 0 && !bol)
		r = buf_append(out, "\r\n", 2);
	if (r == 0 && stuff)
		r = buf_append(out, ".\r\n", 3);
	if (r != 0) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = '\0';
	}
	return r;
}

int
smtp_dotstuff(struct buf *out, const char *msg, size_t len)
{
	return smtp_canon(out, msg, len, true);
}

int
smtp_crlf(struct buf *out, const char *msg, size_t len)
{
	return smtp_canon(out, msg, len, false);
}

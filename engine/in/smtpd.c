/* smtpd: sans-I/O SMTP receiver session. See smtpd.h. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"

#include "in/smtpd.h"

/*
 * Session states. Transitions are in smtpd.h; WAIT is "message handed to
 * the caller, input held back", DONE is terminal.
 */
enum smtpd_state {
	SMTPD_GREET,	/* before EHLO/HELO */
	SMTPD_READY,	/* EHLO seen, no transaction */
	SMTPD_MAIL,	/* MAIL accepted, no recipient yet */
	SMTPD_RCPT,	/* at least one recipient */
	SMTPD_DATA,	/* reading message data */
	SMTPD_WAIT,	/* message complete, caller storing it */
	SMTPD_DONE,	/* closed */
};

/* Where the end-of-data scanner is; only CRLF "." CRLF ends data. */
enum smtpd_dstate {
	SMTPD_D_BOL,	/* at a line start that followed CRLF */
	SMTPD_D_DOT,	/* BOL, then "." (held back) */
	SMTPD_D_DOTCR,	/* BOL, ".", CR */
	SMTPD_D_MID,	/* inside a line */
	SMTPD_D_CR,	/* inside a line, after CR */
};

struct smtpd_session {
	struct smtpd_conf	 conf;		/* copy; pointers borrowed */
	char			 peer[64];
	enum smtpd_state	 state;
	enum smtpd_dstate	 dstate;
	struct buf		 line;		/* owns: partial command line */
	struct buf		 pend;		/* owns: input held back */
	struct buf		 msg;		/* owns: message data */
	bool			 discarding;	/* skipping an over-long line */
	bool			 too_big;	/* message over max_size */
	bool			 esmtp;
	bool			 tls;
	char			 helo[256];
	char			 from[SMTPD_PATH_MAX + 1];
	struct smtpd_rcpt	*rcpt;		/* owns: max_rcpt slots */
	size_t			 nrcpt;
	unsigned		 ncmd;
	unsigned		 nerr;
};

bool
smtpd_domain_in(const char *const *list, size_t n, const char *domain,
    size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len &&
		    strncasecmp(list[i], domain, len) == 0)
			return true;
	return false;
}

struct smtpd_session *
smtpd_session_new(const struct smtpd_conf *conf)
{
	struct smtpd_session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conf = *conf;
	snprintf(s->peer, sizeof(s->peer), "%s",
	    conf->peer != NULL ? conf->peer : "");
	s->conf.peer = s->peer;
	if (s->conf.hostname == NULL)
		s->conf.hostname = "localhost";
	if (s->conf.max_size == 0)
		s->conf.max_size = SMTPD_SIZE_DEFAULT;
	if (s->conf.max_rcpt == 0)
		s->conf.max_rcpt = SMTPD_RCPT_MAX;
	if (s->conf.max_commands == 0)
		s->conf.max_commands = INSESS_MAX_COMMANDS;
	if ((s->rcpt = calloc(s->conf.max_rcpt, sizeof(*s->rcpt))) == NULL) {
		free(s);
		return NULL;
	}
	s->tls = conf->tls_active;
	buf_init(&s->line);
	buf_init(&s->pend);
	buf_init(&s->msg);
	return s;
}

void
smtpd_session_free(struct smtpd_session *s)
{
	if (s == NULL)
		return;
	buf_free(&s->line);
	buf_free(&s->pend);
	buf_free(&s->msg);
	free(s->rcpt);
	free(s);
}

void
smtpd_session_greeting(struct smtpd_session *s, struct buf *out)
{
	buf_printf(out, "220 %s ESMTP ringmail\r\n", s->conf.hostname);
}

static void
smtpd_reset_tx(struct smtpd_session *s)
{
	s->from[0] = '\0';
	s->nrcpt = 0;
	s->too_big = false;
	buf_reset(&s->msg);
	if (s->state != SMTPD_GREET && s->state != SMTPD_DONE)
		s->state = SMTPD_READY;
}

/* Case-insensitive prefix test; returns the rest or NULL. */
static const char *
smtpd_prefix(const char *line, const char *kw)
{
	size_t	n = strlen(kw);

	if (strncasecmp(line, kw, n) != 0)
		return NULL;
	return line + n;
}

/*
 * Parse "<path>" plus parameters after "FROM:" / "TO:". RFC 5321 4.1.2
 * with the usual leniency (a space after the colon). The path is copied
 * without the brackets; source routes ("@a,@b:") are dropped (4.1.1.3).
 * 0 or -EINVAL.
 */
static int
smtpd_path(const char *p, char *out, size_t outsz, const char **params)
{
	const char	*e;
	size_t		 n;

	while (*p == ' ')
		p++;
	if (*p != '<')
		return -EINVAL;
	p++;
	if ((e = strchr(p, '>')) == NULL)
		return -EINVAL;
	if (*p == '@') {			/* source route */
		const char *c = memchr(p, ':', (size_t)(e - p));

		if (c == NULL)
			return -EINVAL;
		p = c + 1;
	}
	n = (size_t)(e - p);
	if (n >= outsz || n > SMTPD_PATH_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		/* No controls, spaces or brackets inside a path: it may be
		 * written into headers and Redis records. */
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>')
			return -EINVAL;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	*params = e + 1;
	return 0;
}

/* Valid local@domain with a non-empty local part and domain. */
static int
smtpd_split(const char *addr, size_t *local_len, const char **dom)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at == addr || at[1] == '\0')
		return -EINVAL;
	*local_len = (size_t)(at - addr);
	*dom = at + 1;
	return 0;
}

static void
smtpd_reply_err(struct smtpd_session *s, struct buf *out, const char *r)
{
	buf_puts(out, r);
	s->nerr++;
}

/* MAIL parameters: SIZE=n, BODY=7BIT|8BITMIME (RFC 1870, 6152). */
static int
smtpd_mail_params(struct smtpd_session *s, const char *p, struct buf *out)
{
	while (*p != '\0') {
		const char	*w, *e;
		size_t		 n;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		w = p;
		while (*p != '\0' && *p != ' ')
			p++;
		n = (size_t)(p - w);
		if (n > 5 && strncasecmp(w, "SIZE=", 5) == 0) {
			unsigned long long v = 0;

			for (e = w + 5; e < p; e++) {
				if (!isdigit((unsigned char)*e) ||
				    v > 1000000000000ull)
					goto bad;
				v = v * 10 + (unsigned)(*e - '0');
			}
			if (v > s->conf.max_size) {
				smtpd_reply_err(s, out, "552 5.3.4 Message "
				    "size exceeds fixed limit\r\n");
				return -EFBIG;
			}
		} else if ((n == 9 && strncasecmp(w, "BODY=7BIT", 9) == 0) ||
		    (n == 13 && strncasecmp(w, "BODY=8BITMIME", 13) == 0)) {
			/* RFC 6152: we store bytes as they come */
		} else if (n == 8 && strncasecmp(w, "SMTPUTF8", 8) == 0) {
			/* RFC 6531 3.4: UTF-8 paths; stored as they come */
		} else {
			goto bad;
		}
	}
	return 0;
bad:
	smtpd_reply_err(s, out, "555 5.5.4 Unsupported MAIL parameter\r\n");
	return -EINVAL;
}

static void
smtpd_cmd_mail(struct smtpd_session *s, const char *arg, struct buf *out)
{
	const char	*params;
	char		 path[SMTPD_PATH_MAX + 1];

	if (s->state == SMTPD_GREET) {
		smtpd_reply_err(s, out, "503 5.5.1 Send EHLO first\r\n");
		return;
	}
	if (s->state != SMTPD_READY) {
		smtpd_reply_err(s, out, "503 5.5.1 Nested MAIL command\r\n");
		return;
	}
	if (smtpd_path(arg, path, sizeof(path), &params) != 0) {
		smtpd_reply_err(s, out, "501 5.1.7 Bad sender address "
		    "syntax\r\n");
		return;
	}
	if (*params != '\0' && !s->esmtp) {
		smtpd_reply_err(s, out, "555 5.5.4 Parameters need EHLO\r\n");
		return;
	}
	if (smtpd_mail_params(s, params, out) != 0)
		return;
	memcpy(s->from, path, strlen(path) + 1);
	s->state = SMTPD_MAIL;
	buf_puts(out, "250 2.1.0 Ok\r\n");
	s->nerr = 0;
}

static void
smtpd_cmd_rcpt(struct smtpd_session *s, const char *arg, struct buf *out)
{
	const char		*params, *dom;
	char			 path[SMTPD_PATH_MAX + 1];
	size_t			 ll;
	enum smtpd_rcpt_kind	 kind;
	struct smtpd_rcpt	*r;

	if (s->state != SMTPD_MAIL && s->state != SMTPD_RCPT) {
		smtpd_reply_err(s, out, "503 5.5.1 Need MAIL first\r\n");
		return;
	}
	if (smtpd_path(arg, path, sizeof(path), &params) != 0 ||
	    path[0] == '\0') {
		smtpd_reply_err(s, out, "501 5.1.3 Bad recipient address "
		    "syntax\r\n");
		return;
	}
	while (*params == ' ')
		params++;
	if (*params != '\0') {
		smtpd_reply_err(s, out, "555 5.5.4 Unsupported RCPT "
		    "parameter\r\n");
		return;
	}
	if (strcasecmp(path, "postmaster") == 0) {
		/* RFC 5321 4.5.1: always accepted, goes to the replies. */
		kind = SMTPD_RCPT_REPLY;
		ll = strlen(path);
	} else if (smtpd_split(path, &ll, &dom) != 0) {
		smtpd_reply_err(s, out, "501 5.1.3 Bad recipient address "
		    "syntax\r\n");
		return;
	} else if (smtpd_domain_in(s->conf.bounce_domains, s->conf.nbounce,
	    dom, strlen(dom))) {
		kind = SMTPD_RCPT_BOUNCE;
	} else if (smtpd_domain_in(s->conf.reply_domains, s->conf.nreply,
	    dom, strlen(dom))) {
		kind = SMTPD_RCPT_REPLY;
	} else {
		smtpd_reply_err(s, out, "550 5.7.1 Relay access denied\r\n");
		return;
	}
	if (s->nrcpt >= s->conf.max_rcpt) {
		/* RFC 5321 4.5.3.1.10: 452, the client sends the rest
		 * in another transaction. */
		smtpd_reply_err(s, out, "452 4.5.3 Too many recipients\r\n");
		return;
	}
	r = &s->rcpt[s->nrcpt++];
	memcpy(r->addr, path, strlen(path) + 1);
	r->kind = kind;
	r->local_len = ll;
	s->state = SMTPD_RCPT;
	buf_puts(out, "250 2.1.5 Ok\r\n");
	s->nerr = 0;
}

static void
smtpd_ehlo(struct smtpd_session *s, const char *arg, bool esmtp,
    struct buf *out)
{
	size_t n;

	while (*arg == ' ')
		arg++;
	n = strcspn(arg, " ");
	if (n == 0) {
		smtpd_reply_err(s, out, "501 5.5.4 Syntax: EHLO hostname\r\n");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)arg[i] <= ' ' ||
		    (unsigned char)arg[i] >= 0x7f) {
			smtpd_reply_err(s, out, "501 5.5.4 Bad host name\r\n");
			return;
		}
	if (n >= sizeof(s->helo))
		n = sizeof(s->helo) - 1;
	memcpy(s->helo, arg, n);
	s->helo[n] = '\0';
	s->esmtp = esmtp;
	s->state = SMTPD_READY;
	smtpd_reset_tx(s);
	s->nerr = 0;
	if (!esmtp) {
		buf_printf(out, "250 %s\r\n", s->conf.hostname);
		return;
	}
	buf_printf(out, "250-%s\r\n", s->conf.hostname);
	buf_printf(out, "250-SIZE %llu\r\n",
	    (unsigned long long)s->conf.max_size);
	buf_puts(out, "250-PIPELINING\r\n250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n");
	if (s->conf.tls_available && !s->tls)
		buf_puts(out, "250-STARTTLS\r\n");
	buf_puts(out, "250 SMTPUTF8\r\n");
}

/* Run one command line (CRLF/LF stripped, NUL-free). */
static unsigned
smtpd_command(struct smtpd_session *s, const char *line, struct buf *out)
{
	const char *a;

	if (++s->ncmd > s->conf.max_commands) {
		buf_puts(out, "421 4.7.0 Too many commands, closing\r\n");
		s->state = SMTPD_DONE;
		return INSESS_CLOSE;
	}
	if ((a = smtpd_prefix(line, "EHLO")) != NULL &&
	    (*a == ' ' || *a == '\0')) {
		smtpd_ehlo(s, a, true, out);
	} else if ((a = smtpd_prefix(line, "HELO")) != NULL &&
	    (*a == ' ' || *a == '\0')) {
		smtpd_ehlo(s, a, false, out);
	} else if ((a = smtpd_prefix(line, "MAIL FROM:")) != NULL) {
		smtpd_cmd_mail(s, a, out);
	} else if ((a = smtpd_prefix(line, "RCPT TO:")) != NULL) {
		smtpd_cmd_rcpt(s, a, out);
	} else if (strcasecmp(line, "DATA") == 0) {
		if (s->state != SMTPD_RCPT) {
			smtpd_reply_err(s, out, s->state == SMTPD_MAIL ?
			    "554 5.5.1 No valid recipients\r\n" :
			    "503 5.5.1 Need RCPT first\r\n");
		} else {
			buf_puts(out, "354 End data with <CR><LF>.<CR><LF>"
			    "\r\n");
			s->state = SMTPD_DATA;
			s->dstate = SMTPD_D_BOL;
			buf_reset(&s->msg);
			s->too_big = false;
		}
	} else if (strcasecmp(line, "RSET") == 0) {
		smtpd_reset_tx(s);
		buf_puts(out, "250 2.0.0 Ok\r\n");
	} else if ((a = smtpd_prefix(line, "NOOP")) != NULL &&
	    (*a == ' ' || *a == '\0')) {
		buf_puts(out, "250 2.0.0 Ok\r\n");
	} else if (strcasecmp(line, "QUIT") == 0) {
		buf_puts(out, "221 2.0.0 Bye\r\n");
		s->state = SMTPD_DONE;
		return INSESS_CLOSE;
	} else if (strcasecmp(line, "STARTTLS") == 0) {
		if (!s->conf.tls_available || s->tls) {
			smtpd_reply_err(s, out, "502 5.5.1 STARTTLS not "
			    "available\r\n");
		} else if (s->state != SMTPD_GREET &&
		    s->state != SMTPD_READY) {
			smtpd_reply_err(s, out, "503 5.5.1 STARTTLS inside "
			    "a transaction\r\n");
		} else {
			buf_puts(out, "220 2.0.0 Ready to start TLS\r\n");
			/* Anything pipelined after STARTTLS was sent in
			 * plain text: drop it (RFC 3207 5, CVE-2011-0411). */
			buf_reset(&s->pend);
			return INSESS_STARTTLS_NOW;
		}
	} else if ((a = smtpd_prefix(line, "VRFY")) != NULL &&
	    (*a == ' ' || *a == '\0')) {
		buf_puts(out, "252 2.5.2 Cannot VRFY user\r\n");
	} else if ((a = smtpd_prefix(line, "HELP")) != NULL &&
	    (*a == ' ' || *a == '\0')) {
		buf_puts(out, "214 2.0.0 See RFC 5321\r\n");
	} else {
		smtpd_reply_err(s, out, "500 5.5.2 Command not recognized\r\n");
	}
	if (s->nerr >= SMTPD_MAX_ERRORS) {
		buf_puts(out, "421 4.7.0 Too many errors, closing\r\n");
		s->state = SMTPD_DONE;
		return INSESS_CLOSE;
	}
	return 0;
}

static void
smtpd_data_put(struct smtpd_session *s, const char *p, size_t n)
{
	if (s->too_big)
		return;
	if (s->msg.len + n > s->conf.max_size) {
		s->too_big = true;
		buf_reset(&s->msg);
		return;
	}
	if (buf_append(&s->msg, p, n) != 0) {
		s->too_big = true;	/* answered 552 like a huge one */
		buf_reset(&s->msg);
	}
}

/*
 * Scan data bytes; returns bytes consumed. Sets state to WAIT (or back to
 * READY after a 552) when CRLF.CRLF was seen.
 */
static size_t
smtpd_data(struct smtpd_session *s, const char *p, size_t n,
    struct buf *out, unsigned *fl)
{
	size_t i = 0;

	while (i < n) {
		char c = p[i];

		switch (s->dstate) {
		case SMTPD_D_MID: {
			const char *cr = memchr(p + i, '\r', n - i);
			size_t	    k = cr ? (size_t)(cr - (p + i)) : n - i;

			smtpd_data_put(s, p + i, k);
			i += k;
			if (cr != NULL) {
				smtpd_data_put(s, "\r", 1);
				s->dstate = SMTPD_D_CR;
				i++;
			}
			continue;
		}
		case SMTPD_D_CR:
			smtpd_data_put(s, &c, 1);
			s->dstate = c == '\n' ? SMTPD_D_BOL :
			    c == '\r' ? SMTPD_D_CR : SMTPD_D_MID;
			break;
		case SMTPD_D_BOL:
			if (c == '.') {
				s->dstate = SMTPD_D_DOT;
			} else {
				smtpd_data_put(s, &c, 1);
				s->dstate = c == '\r' ? SMTPD_D_CR :
				    SMTPD_D_MID;
			}
			break;
		case SMTPD_D_DOT:
			/* The leading dot is dropped (RFC 5321 4.5.2). */
			if (c == '\r') {
				s->dstate = SMTPD_D_DOTCR;
			} else {
				smtpd_data_put(s, &c, 1);
				s->dstate = SMTPD_D_MID;
			}
			break;
		case SMTPD_D_DOTCR:
			if (c == '\n') {
				i++;
				if (s->too_big) {
					buf_puts(out, "552 5.3.4 Message size "
					    "exceeds fixed limit\r\n");
					smtpd_reset_tx(s);
				} else {
					s->state = SMTPD_WAIT;
					*fl |= SMTPD_F_MESSAGE;
				}
				return i;
			}
			/* "." CR then not LF: ordinary data ".\r..." with
			 * the dot unstuffed; c is looked at again. */
			smtpd_data_put(s, "\r", 1);
			s->dstate = SMTPD_D_CR;
			continue;
		}
		i++;
	}
	return i;
}

/* Run input until it is used up, a message is complete or we close. */
static unsigned
smtpd_run(struct smtpd_session *s, const char *p, size_t n, struct buf *out)
{
	unsigned	fl = 0;
	size_t		i = 0;

	while (i < n) {
		if (s->state == SMTPD_DONE)
			return fl | INSESS_CLOSE;
		if (s->state == SMTPD_WAIT) {
			buf_append(&s->pend, p + i, n - i);
			return fl;
		}
		if (fl & INSESS_STARTTLS_NOW)
			return fl;	/* rest is dropped */
		if (s->state == SMTPD_DATA) {
			i += smtpd_data(s, p + i, n - i, out, &fl);
			continue;
		}
		const char *lf = memchr(p + i, '\n', n - i);
		size_t	    k = lf ? (size_t)(lf - (p + i)) + 1 : n - i;

		if (s->discarding) {
			i += k;
			if (lf != NULL)
				s->discarding = false;
			continue;
		}
		if (s->line.len + k > SMTPD_LINE_MAX) {
			buf_reset(&s->line);
			smtpd_reply_err(s, out, "500 5.5.2 Line too long\r\n");
			i += k;
			s->discarding = lf == NULL;
			if (s->nerr >= SMTPD_MAX_ERRORS) {
				buf_puts(out, "421 4.7.0 Too many errors, "
				    "closing\r\n");
				s->state = SMTPD_DONE;
				return fl | INSESS_CLOSE;
			}
			continue;
		}
		buf_append(&s->line, p + i, k);
		i += k;
		if (lf == NULL)
			break;
		s->line.len--;			/* LF */
		if (s->line.len > 0 && s->line.data[s->line.len - 1] == '\r')
			s->line.len--;
		s->line.data[s->line.len] = '\0';
		if (memchr(s->line.data, '\0', s->line.len) != NULL)
			smtpd_reply_err(s, out, "500 5.5.2 NUL in command\r\n");
		else
			fl |= smtpd_command(s, s->line.data, out);
		buf_reset(&s->line);
	}
	if (s->state == SMTPD_DONE)
		fl |= INSESS_CLOSE;
	return fl;
}

unsigned
smtpd_session_input(struct smtpd_session *s, const char *data, size_t len,
    struct buf *out)
{
	if (s->state == SMTPD_DONE)
		return INSESS_CLOSE;
	if (s->state == SMTPD_WAIT) {
		buf_append(&s->pend, data, len);
		return 0;
	}
	return smtpd_run(s, data, len, out);
}

int
smtpd_session_message(const struct smtpd_session *s, struct smtpd_message *m)
{
	if (s->state != SMTPD_WAIT)
		return -ENOENT;
	m->mail_from = s->from;
	m->helo = s->helo;
	m->rcpt = s->rcpt;
	m->nrcpt = s->nrcpt;
	m->data = s->msg.data != NULL ? s->msg.data : "";
	m->len = s->msg.len;
	m->tls = s->tls;
	return 0;
}

unsigned
smtpd_session_delivered(struct smtpd_session *s, bool ok, struct buf *out)
{
	struct buf	pend;
	unsigned	fl;

	if (s->state != SMTPD_WAIT)
		return s->state == SMTPD_DONE ? INSESS_CLOSE : 0;
	buf_puts(out, ok ? "250 2.0.0 Ok: queued\r\n" :
	    "451 4.3.0 Temporary storage failure, try again later\r\n");
	s->state = SMTPD_READY;
	smtpd_reset_tx(s);
	/* Run what the client pipelined meanwhile; it may hand us the next
	 * message, whose leftovers land in s->pend again. */
	pend = s->pend;
	buf_init(&s->pend);
	fl = smtpd_run(s, buf_peek(&pend), buf_unread(&pend), out);
	if (s->pend.data == NULL) {
		s->pend = pend;
		buf_reset(&s->pend);
	} else {
		buf_free(&pend);
	}
	return fl;
}

void
smtpd_session_tls_started(struct smtpd_session *s)
{
	s->tls = true;
	s->discarding = false;
	buf_reset(&s->line);
	buf_reset(&s->pend);
	smtpd_reset_tx(s);
	s->state = SMTPD_GREET;
	s->helo[0] = '\0';
	s->esmtp = false;
}

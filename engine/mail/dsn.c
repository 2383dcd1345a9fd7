/*
 * dsn: asynchronous bounce / complaint / auto-reply recognition.
 * See dsn.h. The order of the checks matters: a structured report
 * (RFC 3464, RFC 5965) wins over text heuristics, and bounce heuristics
 * run before the auto-reply check because many MTAs mark their bounces
 * "Auto-Submitted: auto-replied" (RFC 3834 5.1 even asks them to).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/classify.h"
#include "mail/dsn.h"
#include "mail/mime_parse.h"

#define DSN_FIELD_MAX	1024	/* one unfolded report field */
#define DSN_WINDOW	4096	/* text scanned after a recipient */

struct dsn_span {
	const char	*p;		/* borrows the input message */
	size_t		 len;
	enum mime_cte	 cte;
	bool		 set;
};

struct dsn_ctx {
	struct dsn_result *out;
	struct mime_ctype top;
	struct dsn_span	 ds;		/* message/delivery-status */
	struct dsn_span	 fb;		/* message/feedback-report */
	struct dsn_span	 text;		/* first text/plain */
	struct dsn_span	 html;		/* first text/html, if no plain */
	struct dsn_span	 orig;		/* message/rfc822 or rfc822-headers */
	bool		 orig_hdrs_only;
	char		*scratch;	/* owns: DSN_SCAN_MAX + 1 */
	size_t		 scratchsz;
};

/* One per-recipient block of a delivery-status body. */
struct dsn_rcpt {
	char	 final[DSN_ADDR_MAX];
	char	 orig[DSN_ADDR_MAX];
	char	 action[16];
	char	 status[16];
	char	 diag[DSN_TEXT_MAX];
	char	 remote[256];
	bool	 any;
};

const char *
dsn_kind_name(enum dsn_kind k)
{
	switch (k) {
	case DSN_KIND_NONE:
		return "none";
	case DSN_KIND_DSN:
		return "dsn";
	case DSN_KIND_ARF:
		return "arf";
	case DSN_KIND_AUTOREPLY:
		return "auto-reply";
	case DSN_KIND_HEURISTIC:
		return "heuristic";
	}
	return "none";
}

static void
dsn_strlcpy(char *dst, const char *src, size_t dstsz)
{
	size_t	 n = strlen(src);

	if (dstsz == 0)
		return;
	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
dsn_span_set(struct dsn_span *s, const struct mime_part *p)
{
	if (s->set)
		return;
	s->p = p->body;
	s->len = p->bodylen;
	s->cte = p->cte;
	s->set = true;
}

static int
dsn_visit(const struct mime_part *p, void *arg)
{
	struct dsn_ctx *c = arg;
	const char *t = p->ct.type, *st = p->ct.subtype;

	if (p->depth == 0)
		c->top = p->ct;
	if (strcmp(t, "message") == 0) {
		if (strcmp(st, "delivery-status") == 0 ||
		    strcmp(st, "global-delivery-status") == 0)
			dsn_span_set(&c->ds, p);
		else if (strcmp(st, "feedback-report") == 0)
			dsn_span_set(&c->fb, p);
		else if (!c->orig.set && (strcmp(st, "rfc822") == 0 ||
		    strcmp(st, "global") == 0 ||
		    strcmp(st, "global-headers") == 0)) {
			dsn_span_set(&c->orig, p);
			c->orig_hdrs_only = strcmp(st, "global-headers") == 0;
		}
	} else if (strcmp(t, "text") == 0) {
		if (strcmp(st, "plain") == 0)
			dsn_span_set(&c->text, p);
		else if (strcmp(st, "html") == 0)
			dsn_span_set(&c->html, p);
		else if (strcmp(st, "rfc822-headers") == 0 && !c->orig.set) {
			dsn_span_set(&c->orig, p);
			c->orig_hdrs_only = true;
		}
	}
	return 0;
}

/* Decode a span into the scratch buffer (NUL-terminated). */
static size_t
dsn_decode(struct dsn_ctx *c, const struct dsn_span *s)
{
	size_t	 n = mime_decode(s->cte, s->p, s->len, c->scratch,
	    c->scratchsz - 1);

	/* NULs would end strstr-style scans early; blank them. */
	for (size_t i = 0; i < n; i++)
		if (c->scratch[i] == '\0')
			c->scratch[i] = ' ';
	c->scratch[n] = '\0';
	return n;
}

/* Crude HTML to text in place: drop tags, keep text. Returns new length. */
static size_t
dsn_strip_html(char *s, size_t n)
{
	size_t	 o = 0;
	bool	 tag = false;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '<') {
			/* "<bob@example.com>" in text is kept as is. */
			size_t	 j = i + 1;
			while (j < n && j < i + 320 && s[j] != '>' &&
			    s[j] != '<' && s[j] != ' ' && s[j] != '@')
				j++;
			if (j < n && s[j] == '@') {
				s[o++] = s[i];
				continue;
			}
			tag = true;
			continue;
		}
		if (tag) {
			if (s[i] == '>') {
				tag = false;
				s[o++] = ' ';
			}
			continue;
		}
		if (s[i] == '&') {
			static const struct {
				const char *e;
				char	 c;
			} ents[] = {
				{ "&lt;", '<' }, { "&gt;", '>' },
				{ "&amp;", '&' }, { "&nbsp;", ' ' },
				{ "&quot;", '"' },
			};
			bool	 done = false;
			for (size_t k = 0; k < 5 && !done; k++) {
				size_t	 el = strlen(ents[k].e);
				if (n - i >= el &&
				    strncasecmp(s + i, ents[k].e, el) == 0) {
					s[o++] = ents[k].c;
					i += el - 1;
					done = true;
				}
			}
			if (done)
				continue;
		}
		s[o++] = s[i];
	}
	s[o] = '\0';
	return o;
}

static bool
dsn_is_local_char(char c)
{
	return isalnum((unsigned char)c) || (c != '\0' &&
	    strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL) ||
	    (unsigned char)c >= 0x80;
}

static bool
dsn_is_domain_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' ||
	    (unsigned char)c >= 0x80;
}

/*
 * Find the first plausible address in s[0..n): local@domain.tld. Copies it
 * into out and sets *end to the offset just after it. Skips the
 * daemon's own addresses. Returns the offset where it starts, or -1.
 */
static long
dsn_find_addr(const char *s, size_t n, char *out, size_t outsz, size_t *end)
{
	for (size_t i = 0; i < n; i++) {
		size_t	 a, b;
		bool	 dot = false;

		if (s[i] != '@')
			continue;
		a = i;
		while (a > 0 && i - a < 64 && dsn_is_local_char(s[a - 1]))
			a--;
		while (a < i && s[a] == '.')
			a++;
		b = i + 1;
		while (b < n && b - i < 255 && dsn_is_domain_char(s[b]))
			b++;
		/* A sentence may end right after the address. */
		while (b > i + 1 && (s[b - 1] == '.' || s[b - 1] == '-'))
			b--;
		dot = b > i + 1 && memchr(s + i + 1, '.', b - i - 1) != NULL;
		if (a == i || !dot || b <= i + 3)
			continue;
		if ((i - a == 13 && strncasecmp(s + a, "mailer-daemon", 13) ==
		    0) || (i - a == 10 && strncasecmp(s + a, "postmaster",
		    10) == 0))
			continue;
		size_t	 len = b - a;
		if (len >= outsz)
			len = outsz - 1;
		memcpy(out, s + a, len);
		out[len] = '\0';
		*end = b;
		return (long)a;
	}
	return -1;
}

/* Address from a header-ish value: "rfc822; <bob@x>", "Bob <bob@x>". */
static void
dsn_addr_from_value(const char *v, char *out, size_t outsz)
{
	const char *semi = strchr(v, ';');
	size_t	 end;

	out[0] = '\0';
	if (semi != NULL && (size_t)(semi - v) < 16 &&
	    memchr(v, '@', (size_t)(semi - v)) == NULL)
		v = semi + 1;
	if (dsn_find_addr(v, strlen(v), out, outsz, &end) >= 0)
		return;
	/*
	 * Not local@domain.tld: keep a single token with an '@' in it
	 * ("user@localhost"), nothing else, so callers never get free text
	 * where they expect an address.
	 */
	while (*v == ' ' || *v == '<')
		v++;
	dsn_strlcpy(out, v, outsz);
	for (size_t n = strlen(out); n > 0 && (out[n - 1] == '>' ||
	    out[n - 1] == ' '); n--)
		out[n - 1] = '\0';
	if (strchr(out, '@') == NULL || out[0] == '@')
		out[0] = '\0';
	for (const char *p = out; *p; p++) {
		if (*p == ' ' || *p == '<' || *p == '>' || *p == '"' ||
		    *p == ',') {
			out[0] = '\0';
			break;
		}
	}
}

/*
 * Parse an RFC 3463 status at s: "5.1.1" not followed by more digits or
 * ".digit" (an IP address). Returns its length or 0.
 */
static size_t
dsn_esc_at(const char *s, size_t n, char *out, size_t outsz)
{
	size_t	 i = 0;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	i = 2;
	for (int comp = 0; comp < 2; comp++) {
		size_t	 st = i;
		while (i < n && isdigit((unsigned char)s[i]) && i - st < 4)
			i++;
		if (i == st || i - st > 3)
			return 0;
		if (comp == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && (isdigit((unsigned char)s[i]) || (s[i] == '.' &&
	    i + 1 < n && isdigit((unsigned char)s[i + 1]))))
		return 0;
	if (out != NULL && outsz > 0) {
		size_t	 k = i < outsz ? i : outsz - 1;
		memcpy(out, s, k);
		out[k] = '\0';
	}
	return i;
}

static bool
dsn_word_start(const char *s, size_t i)
{
	return i == 0 || !(isalnum((unsigned char)s[i - 1]) ||
	    s[i - 1] == '.' || s[i - 1] == '[' || s[i - 1] == '/' ||
	    s[i - 1] == ':' || s[i - 1] == '-' || s[i - 1] == '+');
}

/*
 * Find the first SMTP reply in s[0..n): "550 5.1.1 text", "550-5.1.1",
 * "554: text", "#550 5.1.1". Sets *code and esc (may stay ""). Returns
 * the offset or -1. Falls back to a bare enhanced status ("#5.1.1").
 */
static long
dsn_find_reply(const char *s, size_t n, int *code, char *esc, size_t escsz)
{
	long	 bare = -1;
	char	 bare_esc[16] = "";

	*code = 0;
	esc[0] = '\0';
	for (size_t i = 0; i + 3 < n; i++) {
		if ((s[i] != '4' && s[i] != '5') || !dsn_word_start(s, i))
			continue;
		if (isdigit((unsigned char)s[i + 1]) &&
		    isdigit((unsigned char)s[i + 2]) &&
		    (s[i + 3] == ' ' || s[i + 3] == '-' || s[i + 3] == ':') &&
		    (s[i + 1] <= '5')) {
			size_t	 j = i + 4;
			*code = (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 +
			    (s[i + 2] - '0');
			while (j < n && s[j] == ' ')
				j++;
			dsn_esc_at(s + j, n - j, esc, escsz);
			if (esc[0] != '\0' && esc[0] != s[i])
				esc[0] = '\0';	/* "550 4.x.x" is noise */
			return (long)i;
		}
		if (bare < 0 && dsn_esc_at(s + i, n - i, bare_esc,
		    sizeof(bare_esc)) > 0)
			bare = (long)i;
	}
	if (bare >= 0)
		dsn_strlcpy(esc, bare_esc, escsz);
	return bare;
}

/* End of the paragraph starting at s[i] (blank line or n). */
static size_t
dsn_para_end(const char *s, size_t n, size_t i)
{
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t	 j;
		if (nl == NULL)
			return n;
		j = (size_t)(nl - s) + 1;
		while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r'))
			j++;
		if (j >= n || s[j] == '\n')
			return (size_t)(nl - s);
		i = (size_t)(nl - s) + 1;
	}
	return n;
}

static void
dsn_set_reason(struct dsn_result *r, const char *s, size_t n)
{
	if (n > 2 * DSN_TEXT_MAX)
		n = 2 * DSN_TEXT_MAX;
	mime_unfold(s, n, r->reason, sizeof(r->reason));
}

/* Copy a header block (p[0..n)) of the original message into r. */
static void
dsn_set_orig(struct dsn_result *r, const char *p, size_t n)
{
	size_t	 b;

	if (n > sizeof(r->orig_hdr) - 1)
		n = sizeof(r->orig_hdr) - 1;
	memcpy(r->orig_hdr, p, n);
	r->orig_hdr[n] = '\0';
	b = mime_body_offset(r->orig_hdr, n);
	r->orig_hdrlen = b;
	r->orig_hdr[b] = '\0';
	if (b == 0)
		return;
	mime_hdr_get(r->orig_hdr, b, "Message-ID", r->orig_message_id,
	    sizeof(r->orig_message_id));
}

/* Strip "type;" from a report field ("rfc822; x", "smtp; 550 ..."). */
static const char *
dsn_after_type(const char *v)
{
	const char *semi = strchr(v, ';');

	if (semi == NULL || semi - v > 32)
		return v;
	for (const char *p = v; p < semi; p++)
		if (*p == ' ' || *p == '@')
			return v;
	v = semi + 1;
	while (*v == ' ')
		v++;
	return v;
}

static void
dsn_status_copy(const char *v, char *out, size_t outsz)
{
	out[0] = '\0';
	dsn_esc_at(v, strlen(v), out, outsz);
}

/*
 * Walk the blocks of a delivery-status body (RFC 3464 2.1: one
 * per-message block, then per-recipient blocks, separated by empty
 * lines) and keep the first failed recipient, else the first one.
 */
static void
dsn_parse_status(struct dsn_result *r, const char *d, size_t n)
{
	struct dsn_rcpt cur, best;
	char	 v[DSN_FIELD_MAX];
	size_t	 off = 0;
	bool	 have_best = false;

	memset(&best, 0, sizeof(best));
	while (off < n) {
		struct mime_hdr h;
		size_t	 before;

		/* Skip empty lines between blocks. */
		while (off < n && (d[off] == '\n' || d[off] == '\r' ||
		    d[off] == ' ' || d[off] == '\t'))
			off++;
		if (off >= n)
			break;
		memset(&cur, 0, sizeof(cur));
		before = off;
		size_t	 boff = 0;
		while (mime_hdr_next(d + before, n - before, &boff, &h)) {
			mime_unfold(h.value, h.valuelen, v, sizeof(v));
#define DSN_IS(fld) (h.namelen == sizeof(fld) - 1 && \
	    strncasecmp(h.name, fld, sizeof(fld) - 1) == 0)
			if (DSN_IS("Final-Recipient")) {
				dsn_addr_from_value(v, cur.final,
				    sizeof(cur.final));
				cur.any = true;
			} else if (DSN_IS("Original-Recipient")) {
				dsn_addr_from_value(v, cur.orig,
				    sizeof(cur.orig));
			} else if (DSN_IS("Action")) {
				size_t	 k = 0;
				while (v[k] && v[k] != ' ' && v[k] != '(' &&
				    v[k] != ';' && k + 1 < sizeof(cur.action)) {
					cur.action[k] = (char)tolower(
					    (unsigned char)v[k]);
					k++;
				}
				cur.action[k] = '\0';
				cur.any = true;
			} else if (DSN_IS("Status")) {
				dsn_status_copy(v, cur.status,
				    sizeof(cur.status));
			} else if (DSN_IS("Diagnostic-Code")) {
				dsn_strlcpy(cur.diag, dsn_after_type(v),
				    sizeof(cur.diag));
			} else if (DSN_IS("Remote-MTA")) {
				dsn_strlcpy(cur.remote, dsn_after_type(v),
				    sizeof(cur.remote));
			}
#undef DSN_IS
		}
		if (boff == 0) {
			/* Not a field line: skip it. */
			const char *nl = memchr(d + off, '\n', n - off);
			off = nl ? (size_t)(nl - d) + 1 : n;
			continue;
		}
		off = before + boff;
		if (!cur.any)
			continue;	/* the per-message block */
		if (cur.action[0] == '\0' && cur.status[0] == '5')
			dsn_strlcpy(cur.action, "failed", sizeof(cur.action));
		else if (cur.action[0] == '\0' && cur.status[0] == '2')
			dsn_strlcpy(cur.action, "delivered",
			    sizeof(cur.action));
		r->nrcpt++;
		bool	 failed = strcmp(cur.action, "failed") == 0;
		if (failed)
			r->nfailed++;
		if (!have_best || (failed &&
		    strcmp(best.action, "failed") != 0)) {
			best = cur;
			have_best = true;
		}
	}
	if (!have_best)
		return;
	dsn_strlcpy(r->recipient, best.final, sizeof(r->recipient));
	dsn_strlcpy(r->orig_recipient, best.orig, sizeof(r->orig_recipient));
	dsn_strlcpy(r->dsn_action, best.action, sizeof(r->dsn_action));
	dsn_strlcpy(r->status, best.status, sizeof(r->status));
	dsn_strlcpy(r->remote_mta, best.remote, sizeof(r->remote_mta));
	dsn_strlcpy(r->reason, best.diag, sizeof(r->reason));
	if (best.diag[0] != '\0') {
		char	 esc[16];
		int	 code;
		long	 at = dsn_find_reply(best.diag, strlen(best.diag),
		    &code, esc, sizeof(esc));
		/* Only a reply at the start is the remote's reply code. */
		if (at >= 0 && at < 4) {
			r->smtp_code = code;
			if (r->status[0] == '\0')
				dsn_strlcpy(r->status, esc, sizeof(r->status));
		}
	}
	if (r->recipient[0] == '\0')
		dsn_strlcpy(r->recipient, best.orig, sizeof(r->recipient));
}

static void
dsn_parse_feedback(struct dsn_result *r, const char *d, size_t n)
{
	struct mime_hdr h;
	char	 v[DSN_FIELD_MAX], removal[DSN_ADDR_MAX] = "";
	size_t	 off = 0;

	/* Tolerate leading empty lines. */
	while (off < n && (d[off] == '\n' || d[off] == '\r'))
		off++;
	d += off;
	n -= off;
	off = 0;
	while (mime_hdr_next(d, n, &off, &h)) {
		mime_unfold(h.value, h.valuelen, v, sizeof(v));
		if (h.namelen == 13 && strncasecmp(h.name, "Feedback-Type",
		    13) == 0) {
			size_t	 k = 0;
			while (v[k] && v[k] != ' ' && v[k] != ';' &&
			    k + 1 < sizeof(r->feedback_type)) {
				r->feedback_type[k] = (char)tolower(
				    (unsigned char)v[k]);
				k++;
			}
			r->feedback_type[k] = '\0';
		} else if (h.namelen == 16 && strncasecmp(h.name,
		    "Original-Rcpt-To", 16) == 0 && r->recipient[0] == '\0') {
			dsn_addr_from_value(v, r->recipient,
			    sizeof(r->recipient));
		} else if (h.namelen == 17 && strncasecmp(h.name,
		    "Removal-Recipient", 17) == 0 && removal[0] == '\0') {
			dsn_addr_from_value(v, removal, sizeof(removal));
		}
	}
	if (r->recipient[0] == '\0')
		dsn_strlcpy(r->recipient, removal, sizeof(r->recipient));
}

struct dsn_marker {
	const char	*text;
	const char	*format;
	const char	*anchor;	/* recipient list starts after it */
};

/* Strong body markers: the notice text of each MTA family. */
static const struct dsn_marker dsn_body_markers[] = {
	{ "This is the qmail-send program", "qmail", "given up" },
	{ "I'm afraid I wasn't able to deliver your message", "qmail",
	    "given up" },
	{ "This message was created automatically by mail delivery software",
	    "exim", "failed:" },
	{ "could not be delivered to one or more of its", "exim",
	    "failed:" },
	{ "This is the mail system at host", "postfix", "The mail system" },
	{ "The following addresses had permanent fatal errors", "sendmail",
	    NULL },
	{ "Returned mail: see transcript for details", "sendmail",
	    "permanent fatal errors" },
	{ "Delivery has failed to these recipients or groups", "exchange",
	    NULL },
	{ "Your message did not reach some or all of the intended recipients",
	    "exchange", "cannot be reached" },
	{ "The following recipient(s) cannot be reached", "exchange", NULL },
	{ "Delivery to the following recipients failed", "exchange", NULL },
	{ "Your message wasn't delivered to", "gmail", NULL },
	{ "Delivery to the following recipient failed permanently", "gmail",
	    NULL },
	{ "Sorry, we were unable to deliver your message to the following",
	    "yahoo", NULL },
	{ "Delivery to the following recipient has been delayed", "gmail",
	    NULL },
	{ "There was a temporary problem delivering your message", "gmail",
	    NULL },
	{ "There was a problem delivering your message to", "gmail", NULL },
	{ "Die Zustellung an folgende Empf\xc3\xa4nger oder Gruppen ist "
	    "fehlgeschlagen", "exchange", NULL },
	{ "La remise aux destinataires ou groupes suivants a \xc3\xa9" "chou"
	    "\xc3\xa9", "exchange", NULL },
	{ "Error de entrega a estos destinatarios o grupos", "exchange",
	    NULL },
};

/*
 * Phrases a person might also write: only trusted from a daemon-ish
 * sender, since a false bounce can suppress a real address.
 */
static const struct dsn_marker dsn_weak_body_markers[] = {
	{ "could not be delivered to the following recipients", "generic",
	    NULL },
	{ "message could not be delivered", "generic", NULL },
	{ "couldn't be delivered", "generic", NULL },
	{ "was not delivered to", "generic", NULL },
	{ "delivery to the following", "generic", NULL },
	{ "permanent error", "generic", NULL },
};

/* Weaker subject markers: only trusted from a daemon-ish sender. */
static const struct dsn_marker dsn_subject_markers[] = {
	{ "Undelivered Mail Returned to Sender", "postfix", NULL },
	{ "Mail delivery failed", "exim", NULL },
	{ "failure notice", "qmail", NULL },
	{ "Returned mail:", "sendmail", NULL },
	{ "Undeliverable:", "exchange", NULL },
	{ "Undeliverable mail", "generic", NULL },
	{ "Delivery Status Notification", "gmail", NULL },
	{ "Delivery Failure", "generic", NULL },
	{ "Mail System Error", "generic", NULL },
	{ "Delivery delayed", "generic", NULL },
	{ "Warning: could not send message", "sendmail", NULL },
	{ "Unzustellbar:", "exchange", NULL },
	{ "Non remis", "exchange", NULL },
	{ "No se puede entregar:", "exchange", NULL },
};

static const char *const dsn_delay_markers[] = {
	"Delivery Status Notification (Delay)",
	"There was a temporary problem delivering your message",
	"Delivery to the following recipient has been delayed",
	"This is a warning message only",
	"Warning: could not send message for past",
	"Delivery delayed",
	"has not yet been delivered",
	"will continue trying",
	"will retry",
	"still trying",
	"Delayed Mail",
};

static const char *const dsn_orig_markers[] = {
	/* Exim: "..., including all the headers" or "...'s headers" */
	"This is a copy of the message",
	"Below this line is a copy of the message",
	"Original message follows",
	"Unsent message follows",
	"Original message headers:",
	"Original Message Headers",
	"----- Original message -----",
	"Returned message follows",
	"The original message was",
};

static const struct dsn_marker *
dsn_match_markers(const char *s, size_t n, const struct dsn_marker *m,
    size_t nm, size_t *pos)
{
	for (size_t i = 0; i < nm; i++) {
		const char *hit = mime_memcasemem(s, n, m[i].text,
		    strlen(m[i].text));
		if (hit != NULL) {
			*pos = (size_t)(hit - s) + strlen(m[i].text);
			return &m[i];
		}
	}
	return NULL;
}

static bool
dsn_any_marker(const char *s, size_t n, const char *const *m, size_t nm)
{
	for (size_t i = 0; i < nm; i++)
		if (mime_memcasemem(s, n, m[i], strlen(m[i])) != NULL)
			return true;
	return false;
}

/* Is this sender a mail system rather than a person? */
static bool
dsn_daemon_sender(const char *from, const char *return_path, bool have_rp)
{
	static const char *const who[] = {
		"mailer-daemon", "postmaster", "mail delivery",
		"mail-daemon", "maildelivery", "microsoftexchange",
	};

	if (have_rp && strstr(return_path, "<>") != NULL)
		return true;
	for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++)
		if (mime_memcasemem(from, strlen(from), who[i],
		    strlen(who[i])) != NULL)
			return true;
	return false;
}

/* Find an inline copy of the original message and keep its headers. */
static void
dsn_inline_orig(struct dsn_result *r, const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(dsn_orig_markers) /
	    sizeof(dsn_orig_markers[0]); i++) {
		const char *hit = mime_memcasemem(s, n, dsn_orig_markers[i],
		    strlen(dsn_orig_markers[i]));
		if (hit == NULL)
			continue;
		size_t	 p = (size_t)(hit - s);
		const char *nl = memchr(s + p, '\n', n - p);
		if (nl == NULL)
			return;
		p = (size_t)(nl - s) + 1;
		/* Skip blank lines and dashed separators. */
		for (;;) {
			size_t	 q = p;
			while (q < n && (s[q] == ' ' || s[q] == '\t' ||
			    s[q] == '-' || s[q] == '\r'))
				q++;
			if (q < n && s[q] == '\n') {
				p = q + 1;
				continue;
			}
			p = q;
			break;
		}
		struct mime_hdr h;
		size_t	 off = 0;
		if (p < n && mime_hdr_next(s + p, n - p, &off, &h)) {
			dsn_set_orig(r, s + p, n - p);
			return;
		}
	}
}

/* Texts that introduce the remote server's answer in a notice. */
static const char *const dsn_response_markers[] = {
	"The response from the remote server was:",
	"The response was:",
	"Remote host said:",
	"Remote Server returned",
	"Technical details of permanent failure:",
	"Technical details of temporary failure:",
	"Delay reason:",
	"reason:",
	"said:",
};

/* Skip blanks and list punctuation before a reason. */
static size_t
dsn_skip_junk(const char *s, size_t n, size_t p)
{
	while (p < n && (s[p] == '>' || s[p] == ':' || s[p] == ' ' ||
	    s[p] == '\t' || s[p] == '\r' || s[p] == '\n' || s[p] == '\'' ||
	    s[p] == '('))
		p++;
	return p;
}

/*
 * Text heuristics over the human-readable notice s[0..n): recipient,
 * reply code/status and reason. start: where to look for the recipient.
 */
static void
dsn_scan_text(struct dsn_result *r, const char *s, size_t n, size_t start,
    const char *xfailed)
{
	char	 esc[16];
	size_t	 aend = start, win;
	long	 at = -1;
	int	 code = 0;

	if (start > n)
		start = n;
	if (r->recipient[0] == '\0' && xfailed[0] != '\0')
		dsn_addr_from_value(xfailed, r->recipient,
		    sizeof(r->recipient));
	if (r->recipient[0] == '\0') {
		char	 a[DSN_ADDR_MAX];
		size_t	 e;
		long	 p = dsn_find_addr(s + start, n - start, a, sizeof(a),
		    &e);
		if (p >= 0) {
			dsn_strlcpy(r->recipient, a, sizeof(r->recipient));
			aend = start + e;
		}
	} else {
		/* Look for the known recipient to scan after it. */
		const char *hit = mime_memcasemem(s + start, n - start,
		    r->recipient, strlen(r->recipient));
		if (hit != NULL)
			aend = (size_t)(hit - s) + strlen(r->recipient);
	}
	win = n - aend < DSN_WINDOW ? n - aend : DSN_WINDOW;
	at = dsn_find_reply(s + aend, win, &code, esc, sizeof(esc));
	if (at >= 0) {
		size_t	 p = aend + (size_t)at;
		if (r->smtp_code == 0)
			r->smtp_code = code;
		if (r->status[0] == '\0')
			dsn_strlcpy(r->status, esc, sizeof(r->status));
		if (r->reason[0] == '\0') {
			if (code == 0) {
				/* Bare "#5.1.1": the reason is its line. */
				while (p > aend && s[p - 1] != '\n')
					p--;
			}
			dsn_set_reason(r, s + p, dsn_para_end(s, n, p) - p);
		}
	}
	if (r->reason[0] == '\0' && aend < n) {
		/* No reply code: the text after "The response was:" and
		 * the like, else what follows the recipient. */
		const char *best = NULL;
		size_t	 p = aend;
		for (size_t i = 0; i < sizeof(dsn_response_markers) /
		    sizeof(dsn_response_markers[0]); i++) {
			const char *hit = mime_memcasemem(s + aend, win,
			    dsn_response_markers[i],
			    strlen(dsn_response_markers[i]));
			if (hit != NULL && (best == NULL || hit < best)) {
				best = hit;
				p = (size_t)(hit - s) +
				    strlen(dsn_response_markers[i]);
			}
		}
		p = dsn_skip_junk(s, n, p);
		/* "addr. See the details below." is no reason: skip a
		 * sentence tail left on the recipient's line. */
		if (best == NULL && p < n && s[p] == '.') {
			const char *nl = memchr(s + p, '\n', n - p);
			p = nl ? dsn_skip_junk(s, n, (size_t)(nl - s)) : n;
		}
		if (p < n)
			dsn_set_reason(r, s + p, dsn_para_end(s, n, p) - p);
	}
}

static void
dsn_classify(struct dsn_result *r)
{
	classify_reply(r->smtp_code, r->status, r->reason, &r->cls);
}

/* After classification: a final failure is a bounce whatever its class. */
static void
dsn_finish_failed(struct dsn_result *r)
{
	r->is_bounce = true;
	r->cls.actions &= ~CLASSIFY_A_DEFER;
	r->cls.actions |= CLASSIFY_A_BOUNCE;
	if (r->cls.category == CLASSIFY_DELIVERED)
		r->cls.category = CLASSIFY_UNKNOWN;
}

static void
dsn_finish_delayed(struct dsn_result *r)
{
	r->is_bounce = false;
	r->cls.actions &= CLASSIFY_A_SLOW_DOWN;
	r->cls.actions |= CLASSIFY_A_DEFER;
	if (r->cls.category == CLASSIFY_DELIVERED ||
	    r->cls.category == CLASSIFY_UNKNOWN)
		r->cls.category = CLASSIFY_TRANSIENT;
}

static bool
dsn_autoreply(const char *hdr, size_t hlen, const char *subject)
{
	static const char *const subj[] = {
		"out of office", "out of the office", "automatic reply",
		"auto-reply", "autoreply", "auto reply", "auto:",
		"abwesenheitsnotiz", "r\xc3\xa9ponse automatique",
		"respuesta autom", "away from", "on vacation", "vacation",
		"autosvar", "automatisch antwoord", "risposta automatica",
		"automatische antwort", "abwesend",
	};
	char	 v[256];

	if (mime_hdr_get(hdr, hlen, "Auto-Submitted", v, sizeof(v)) > 0 &&
	    strncasecmp(v, "no", 2) != 0)
		return true;
	if (mime_hdr_get(hdr, hlen, "X-Autoreply", v, sizeof(v)) >= 0 ||
	    mime_hdr_get(hdr, hlen, "X-Autorespond", v, sizeof(v)) >= 0 ||
	    mime_hdr_get(hdr, hlen, "X-Autoresponder", v, sizeof(v)) >= 0)
		return true;
	if (mime_hdr_get(hdr, hlen, "Precedence", v, sizeof(v)) > 0 &&
	    strncasecmp(v, "auto_reply", 10) == 0)
		return true;
	for (size_t i = 0; i < sizeof(subj) / sizeof(subj[0]); i++) {
		size_t	 l = strlen(subj[i]);
		const char *s = subject;
		/* At the start, or after "Re: " and the like? No: a
		 * human "Re: out of office party" must stay human. */
		while (*s == ' ')
			s++;
		if (strncasecmp(s, subj[i], l) == 0)
			return true;
	}
	return false;
}

static void
dsn_copy_format(struct dsn_result *r, const char *f)
{
	dsn_strlcpy(r->format, f, sizeof(r->format));
}

int
dsn_parse(const char *msg, size_t len, struct dsn_result *out)
{
	struct dsn_ctx c;
	const struct dsn_marker *m = NULL;
	char	 rawsubj[512], subject[512], from[512], rp[512];
	char	 xfailed[DSN_ADDR_MAX];
	size_t	 hlen, tn = 0, pos = 0;
	const char *t = "";
	bool	 have_rp, daemon, delay;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.out = out;
	c.scratchsz = (len < DSN_SCAN_MAX ? len : DSN_SCAN_MAX) + 1;
	if ((c.scratch = malloc(c.scratchsz)) == NULL)
		return -ENOMEM;
	hlen = mime_body_offset(msg, len);
	mime_hdr_get(msg, hlen, "Subject", rawsubj, sizeof(rawsubj));
	mime_decode_words(rawsubj, subject, sizeof(subject));	/* RFC 2047 */
	mime_hdr_get(msg, hlen, "From", from, sizeof(from));
	have_rp = mime_hdr_get(msg, hlen, "Return-Path", rp, sizeof(rp)) >= 0;
	mime_hdr_get(msg, hlen, "X-Failed-Recipients", xfailed,
	    sizeof(xfailed));
	mime_walk(msg, len, dsn_visit, &c);

	if (c.orig.set) {
		size_t	 n = c.orig.len;
		/* message/rfc822 cannot be encoded (RFC 2046 5.2.1); a
		 * rfc822-headers part might be, so decode. */
		if (c.orig.cte != MIME_CTE_IDENTITY) {
			n = mime_decode(c.orig.cte, c.orig.p, c.orig.len,
			    c.scratch, c.scratchsz - 1);
			dsn_set_orig(out, c.scratch, n);
		} else {
			dsn_set_orig(out, c.orig.p, n);
		}
	}
	/* The human-readable notice, decoded, for heuristics. */
	if (c.text.set) {
		tn = dsn_decode(&c, &c.text);
		t = c.scratch;
	} else if (c.html.set) {
		tn = dsn_strip_html(c.scratch, dsn_decode(&c, &c.html));
		t = c.scratch;
	}
	if (!c.text.set && !c.html.set && hlen < len) {
		/* Broken MIME (no boundary, ...): scan the raw body. */
		struct dsn_span raw = { msg + hlen, len - hlen,
		    MIME_CTE_IDENTITY, true };
		tn = dsn_decode(&c, &raw);
		t = c.scratch;
	}
	/* Keep the text: the report parts below reuse the scratch. */
	char	*text = NULL;
	if (tn > 0 && (c.ds.set || c.fb.set)) {
		if ((text = malloc(tn + 1)) == NULL) {
			free(c.scratch);
			memset(out, 0, sizeof(*out));
			return -ENOMEM;
		}
		memcpy(text, t, tn + 1);
		t = text;
	}

	if (c.ds.set || strcmp(c.top.report_type, "delivery-status") == 0) {
		/* RFC 3464 */
		out->kind = DSN_KIND_DSN;
		dsn_copy_format(out, "rfc3464");
		if (c.ds.set)
			dsn_parse_status(out, c.scratch, dsn_decode(&c, &c.ds));
		if (out->nrcpt == 0) {
			/* Truncated before the status part: use the text. */
			m = dsn_match_markers(t, tn, dsn_body_markers,
			    sizeof(dsn_body_markers) /
			    sizeof(dsn_body_markers[0]), &pos);
			dsn_scan_text(out, t, tn, m ? pos : 0, xfailed);
			out->nrcpt = out->recipient[0] ? 1 : 0;
		} else if (out->status[0] == '\0' && out->reason[0] == '\0') {
			/* Cut before Status/Diagnostic-Code: the notice
			 * text may still quote the remote reply. */
			dsn_scan_text(out, t, tn, 0, xfailed);
		}
		if (out->dsn_action[0] == '\0') {
			/* No Action field (cut short): a warning says so,
			 * anything else reports a failure. */
			delay = dsn_any_marker(subject, strlen(subject),
			    dsn_delay_markers, sizeof(dsn_delay_markers) /
			    sizeof(dsn_delay_markers[0])) ||
			    dsn_any_marker(t, tn, dsn_delay_markers,
			    sizeof(dsn_delay_markers) /
			    sizeof(dsn_delay_markers[0]));
			dsn_strlcpy(out->dsn_action, delay || out->status[0] ==
			    '4' ? "delayed" : "failed",
			    sizeof(out->dsn_action));
		}
		dsn_classify(out);
		if (strcmp(out->dsn_action, "failed") == 0) {
			if (out->nfailed == 0)
				out->nfailed = out->nrcpt;
			dsn_finish_failed(out);
		} else if (strcmp(out->dsn_action, "delayed") == 0) {
			dsn_finish_delayed(out);
		} else {
			/* delivered / relayed / expanded: success notices */
			out->cls.category = CLASSIFY_DELIVERED;
			out->cls.actions = 0;
		}
		goto done;
	}
	if (c.fb.set || strcmp(c.top.report_type, "feedback-report") == 0) {
		/* RFC 5965 */
		out->kind = DSN_KIND_ARF;
		dsn_copy_format(out, "arf");
		if (c.fb.set)
			dsn_parse_feedback(out, c.scratch,
			    dsn_decode(&c, &c.fb));
		if (out->recipient[0] == '\0' && out->orig_hdrlen > 0) {
			char	 v[DSN_FIELD_MAX];
			if (mime_hdr_get(out->orig_hdr, out->orig_hdrlen, "To",
			    v, sizeof(v)) >= 0)
				dsn_addr_from_value(v, out->recipient,
				    sizeof(out->recipient));
		}
		snprintf(out->reason, sizeof(out->reason),
		    "feedback report: %s",
		    out->feedback_type[0] ? out->feedback_type : "unknown");
		out->cls.category = CLASSIFY_COMPLAINT;
		out->cls.actions = CLASSIFY_A_SUPPRESS;
		goto done;
	}

	/* Non-standard bounces. */
	m = dsn_match_markers(t, tn, dsn_body_markers,
	    sizeof(dsn_body_markers) / sizeof(dsn_body_markers[0]), &pos);
	daemon = dsn_daemon_sender(from, rp, have_rp);
	if (m == NULL && daemon)
		m = dsn_match_markers(t, tn, dsn_weak_body_markers,
		    sizeof(dsn_weak_body_markers) /
		    sizeof(dsn_weak_body_markers[0]), &pos);
	if (m == NULL && daemon) {
		size_t	 sp;
		m = dsn_match_markers(subject, strlen(subject),
		    dsn_subject_markers, sizeof(dsn_subject_markers) /
		    sizeof(dsn_subject_markers[0]), &sp);
		pos = 0;
	}
	if (m == NULL && daemon && xfailed[0] != '\0') {
		static const struct dsn_marker exim_hdr = {
			"X-Failed-Recipients", "exim", NULL };
		m = &exim_hdr;
		pos = 0;
	}
	if (m != NULL) {
		out->kind = DSN_KIND_HEURISTIC;
		dsn_copy_format(out, m->format);
		if (m->anchor != NULL && pos < tn) {
			const char *a = mime_memcasemem(t + pos, tn - pos,
			    m->anchor, strlen(m->anchor));
			if (a != NULL)
				pos = (size_t)(a - t) + strlen(m->anchor);
		}
		dsn_scan_text(out, t, tn, pos, xfailed);
		if (out->orig_hdrlen == 0)
			dsn_inline_orig(out, t, tn);
		if (out->recipient[0] == '\0' && out->orig_hdrlen > 0) {
			char	 v[DSN_FIELD_MAX];
			if (mime_hdr_get(out->orig_hdr, out->orig_hdrlen, "To",
			    v, sizeof(v)) >= 0)
				dsn_addr_from_value(v, out->recipient,
				    sizeof(out->recipient));
		}
		out->nrcpt = out->recipient[0] ? 1 : 0;
		delay = dsn_any_marker(subject, strlen(subject),
		    dsn_delay_markers, sizeof(dsn_delay_markers) /
		    sizeof(dsn_delay_markers[0])) ||
		    dsn_any_marker(t, tn < 2048 ? tn : 2048,
		    dsn_delay_markers, sizeof(dsn_delay_markers) /
		    sizeof(dsn_delay_markers[0]));
		dsn_classify(out);
		if (delay && out->status[0] != '5' &&
		    (out->smtp_code / 100) != 5) {
			dsn_strlcpy(out->dsn_action, "delayed",
			    sizeof(out->dsn_action));
			dsn_finish_delayed(out);
		} else {
			dsn_strlcpy(out->dsn_action, "failed",
			    sizeof(out->dsn_action));
			out->nfailed = out->nrcpt;
			dsn_finish_failed(out);
		}
		goto done;
	}

	if (dsn_autoreply(msg, hlen, subject)) {
		/* RFC 3834: the sender is the person who is away. */
		out->kind = DSN_KIND_AUTOREPLY;
		dsn_copy_format(out, "rfc3834");
		dsn_addr_from_value(from, out->recipient,
		    sizeof(out->recipient));
		dsn_strlcpy(out->reason, subject, sizeof(out->reason));
		goto done;
	}
	out->kind = DSN_KIND_NONE;
done:
	if (out->nrcpt == 0 && out->recipient[0] != '\0')
		out->nrcpt = 1;
	free(text);
	free(c.scratch);
	return 0;
}

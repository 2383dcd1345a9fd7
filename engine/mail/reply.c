/* reply: incremental SMTP reply parser. See reply.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mail/reply.h"

/* How much of an offending line goes into an -EPROTO reason. */
#define REPLY_SNIPPET_MAX	40

void
reply_parser_init(struct reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void
reply_parser_set_line_cb(struct reply_parser *p,
    void (*cb)(void *arg, int code, unsigned lineno, const char *text,
    size_t len), void *arg)
{
	p->line_cb = cb;
	p->line_arg = arg;
}

static bool
reply_isdigit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/*
 * Replies end up in logs and events: no control characters may pass
 * (log line injection), and NUL would cut the string early.
 */
static char
reply_safe(char ch)
{
	unsigned char	 u = (unsigned char)ch;

	if ((u < 0x20 && u != '\t') || u == 0x7f)
		return '?';
	return ch;
}

/* Append to the bounded text; what does not fit is silently cut. */
static void
reply_text_add(struct reply *r, const char *s, size_t n)
{
	size_t	 room = REPLY_TEXT_MAX - 1 - r->textlen;

	if (n > room)
		n = room;
	for (size_t i = 0; i < n; i++)
		r->text[r->textlen++] = reply_safe(s[i]);
	r->text[r->textlen] = '\0';
}

/*
 * A cut may have split a UTF-8 sequence (SMTPUTF8 servers send UTF-8
 * text); drop the broken tail so consumers see valid sequences only.
 */
static void
reply_text_trim_utf8(struct reply *r)
{
	size_t		 i, need;
	unsigned char	 lead;

	if (r->textlen < REPLY_TEXT_MAX - 1)
		return;
	for (i = r->textlen; i > 0 && r->textlen - i < 4; i--) {
		lead = (unsigned char)r->text[i - 1];
		if ((lead & 0xc0) == 0x80)
			continue;
		if (lead < 0x80)
			return;
		need = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 :
		    (lead & 0xf8) == 0xf0 ? 4 : 1;
		if (r->textlen - (i - 1) < need) {
			r->textlen = i - 1;
			r->text[r->textlen] = '\0';
		}
		return;
	}
}

/*
 * RFC 3463 2: class "." subject "." detail, 1-3 digits each, and the
 * class must agree with the reply code (2xx/4xx/5xx only). Returns the
 * length of the code when s starts with one followed by SP or the end.
 */
static size_t
reply_esc_len(const char *s, size_t len, int code)
{
	size_t	 i, n;
	int	 part;

	if (len < 5 || s[0] != (char)('0' + code / 100) || s[1] != '.')
		return 0;
	if (code / 100 != 2 && code / 100 != 4 && code / 100 != 5)
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && reply_isdigit(s[i]) && n < 4; i++)
			n++;
		if (n == 0 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

static int
reply_fail(struct reply_parser *p, struct reply *out, const char *why,
    const char *line, size_t len)
{
	char	 snip[REPLY_SNIPPET_MAX + 1];
	size_t	 n = len < REPLY_SNIPPET_MAX ? len : REPLY_SNIPPET_MAX;

	for (size_t i = 0; i < n; i++)
		snip[i] = reply_safe(line[i]);
	snip[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (line != NULL)
		snprintf(out->text, sizeof(out->text), "%s: \"%s%s\"", why,
		    snip, len > n ? "..." : "");
	else
		snprintf(out->text, sizeof(out->text), "%s", why);
	out->textlen = strlen(out->text);
	p->failed = true;
	return -EPROTO;
}

/* One line without its line end. 1 = reply complete, 0 = more lines. */
static int
reply_line(struct reply_parser *p, const char *line, size_t len,
    struct reply *out)
{
	struct reply	*r = &p->cur;
	const char	*text;
	size_t		 tlen, esclen;
	int		 code;
	bool		 last;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !reply_isdigit(line[1]) || !reply_isdigit(line[2]) ||
	    (len > 3 && line[3] != ' ' && line[3] != '-'))
		return reply_fail(p, out, "malformed reply line", line, len);
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';
	if (p->in_reply && code != r->code)
		return reply_fail(p, out,
		    "reply code changed within multi-line reply", line, len);
	if (!p->in_reply) {
		memset(r, 0, sizeof(*r));
		r->code = code;
	}
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	if (p->line_cb != NULL)
		p->line_cb(p->line_arg, code, r->nlines, text, tlen);
	if ((esclen = reply_esc_len(text, tlen, code)) > 0) {
		if (r->esc[0] == '\0') {
			memcpy(r->esc, text, esclen);
			r->esc[esclen] = '\0';
		}
		text += esclen;
		tlen -= esclen;
		while (tlen > 0 && *text == ' ') {
			text++;
			tlen--;
		}
	}
	if (tlen > 0) {
		if (r->textlen > 0)
			reply_text_add(r, " ", 1);
		reply_text_add(r, text, tlen);
	}
	if (r->nlines < (unsigned)-1)
		r->nlines++;
	if (!last) {
		p->in_reply = true;
		return 0;
	}
	p->in_reply = false;
	reply_text_trim_utf8(r);
	*out = *r;
	return 1;
}

int
reply_parser_feed(struct reply_parser *p, const char *data, size_t len,
    size_t *used, struct reply *out)
{
	const char	*lf;
	size_t		 off = 0, n;
	int		 r;

	*used = 0;
	if (p->failed)
		return reply_fail(p, out, "reply stream already failed",
		    NULL, 0);
	while (off < len) {
		lf = memchr(data + off, '\n', len - off);
		n = lf != NULL ? (size_t)(lf - (data + off)) : len - off;
		if (n > REPLY_LINE_MAX - p->linelen) {
			*used = off;
			return reply_fail(p, out, "reply line too long",
			    p->linelen > 0 ? p->line : data + off,
			    p->linelen > 0 ? p->linelen : n);
		}
		if (lf == NULL) {
			memcpy(p->line + p->linelen, data + off, n);
			p->linelen += n;
			*used = len;
			return 0;
		}
		/* Whole line in data: parse it in place, no copy. */
		if (p->linelen == 0) {
			r = reply_line(p, data + off, n, out);
		} else {
			memcpy(p->line + p->linelen, data + off, n);
			r = reply_line(p, p->line, p->linelen + n, out);
			p->linelen = 0;
		}
		off += n + 1;
		*used = off;
		if (r != 0)
			return r;
	}
	return 0;
}

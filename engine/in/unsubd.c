/*
 * unsubd: one-click unsubscribe over HTTP/1.1. See unsubd.h.
 *
 * Connection states (one request at a time, one op of each kind at most):
 *
 *   UC_READ  --head+body complete, GET/bad--> UC_SEND (response queued)
 *   UC_READ  --valid POST--> UC_APPLY (owner's apply() in progress)
 *   UC_APPLY --unsubd_applied--> UC_SEND
 *   UC_SEND  --all sent, keep-alive--> UC_READ (pipelined bytes first)
 *   UC_SEND  --all sent, close--> UC_DEAD
 *   any      --peer EOF, error, timeout, shutdown--> UC_DEAD
 *   UC_DEAD  --no op in flight, no apply pending (unsubd_tick)--> free
 *
 * A dead connection's fd is shut down at once (in-flight recv/send then
 * complete promptly) but closed and its slot reused only at the loop
 * boundary, so a late completion never sees a recycled slot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "core/loop.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mono.h"
#include "mail/token.h"

#include "in/unsubd.h"

#define UNSUBD_RBUF	(UNSUBD_HEAD_MAX + UNSUBD_BODY_MAX)
#define UNSUBD_PREFIX_MAX 256

/* ------------------------------------------------------------------ */
/* sans-I/O: request head                                              */

static int
unsubd_tchar(unsigned char c)
{
	/* RFC 9110 5.6.2 */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~",
	    c) != NULL);
}

static int
unsubd_vchar(unsigned char c)
{
	/* field-vchar, SP, HTAB, obs-text (RFC 9110 5.5) */
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
unsubd_ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* The LF ending a line; the caller checks the CR before it. */
static const char *
unsubd_find_crlf(const char *s, size_t n)
{
	return memchr(s, '\n', n);
}

/* Does the comma list v[0..n) hold the token tok (case-insensitive)? */
static int
unsubd_has_token(const char *v, size_t n, const char *tok)
{
	size_t	 i = 0, a, e;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		a = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > a && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > a && unsubd_ieq(v + a, e - a, tok))
			return 1;
	}
	return 0;
}

/* Media type and the boundary parameter (RFC 9110 8.3.1). */
static void
unsubd_parse_ctype(const char *v, size_t n, struct unsubd_req *req)
{
	size_t	 i = 0, a, ne, vs, ve;
	int	 mp;

	while (i < n && v[i] != ';')
		i++;
	ne = i;
	while (ne > 0 && (v[ne - 1] == ' ' || v[ne - 1] == '\t'))
		ne--;
	if (unsubd_ieq(v, ne, "application/x-www-form-urlencoded")) {
		req->ctype = UNSUBD_CT_URLENCODED;
		return;
	}
	mp = unsubd_ieq(v, ne, "multipart/form-data");
	req->ctype = UNSUBD_CT_OTHER;
	if (!mp)
		return;
	while (i < n) {
		i++;	/* ';' */
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		a = i;
		while (i < n && v[i] != '=' && v[i] != ';')
			i++;
		if (i >= n || v[i] != '=')
			continue;
		ne = i++;
		if (i < n && v[i] == '"') {
			vs = ++i;
			while (i < n && v[i] != '"')
				i++;
			ve = i;
			if (i < n)
				i++;
		} else {
			vs = i;
			while (i < n && v[i] != ';' && v[i] != ' ' &&
			    v[i] != '\t')
				i++;
			ve = i;
		}
		while (i < n && v[i] != ';')
			i++;
		if (unsubd_ieq(v + a, ne - a, "boundary") && ve > vs &&
		    ve - vs <= UNSUBD_BOUNDARY_MAX &&
		    memchr(v + vs, '\\', ve - vs) == NULL) {
			memcpy(req->boundary, v + vs, ve - vs);
			req->boundary[ve - vs] = '\0';
			req->ctype = UNSUBD_CT_MULTIPART;
		}
	}
}

static int
unsubd_bad(int *status, int code)
{
	*status = code;
	return -EBADMSG;
}

int
unsubd_parse_head(const char *data, size_t len, struct unsubd_req *req,
    int *status)
{
	const char	*eol, *p, *end, *sp1, *sp2;
	size_t		 n, lim, nhdr = 0, vs, ve;
	bool		 have_cl = false, have_te = false, have_host = false;
	bool		 conn_close = false, conn_keep = false;
	unsigned long long cl = 0;

	memset(req, 0, sizeof(*req));
	/* Request line (RFC 9112 3). */
	lim = len < UNSUBD_LINE_MAX ? len : UNSUBD_LINE_MAX;
	if ((eol = unsubd_find_crlf(data, lim)) == NULL)
		return len >= UNSUBD_LINE_MAX ? unsubd_bad(status, 414) :
		    -EAGAIN;
	if (eol == data || eol[-1] != '\r')
		return unsubd_bad(status, 400);
	n = (size_t)(eol - 1 - data);
	if ((sp1 = memchr(data, ' ', n)) == NULL || sp1 == data)
		return unsubd_bad(status, 400);
	for (p = data; p < sp1; p++)
		if (!unsubd_tchar((unsigned char)*p))
			return unsubd_bad(status, 400);
	if ((sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - data))) ==
	    NULL || sp2 == sp1 + 1)
		return unsubd_bad(status, 400);
	for (p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return unsubd_bad(status, 400);
	if (sp1[1] != '/')
		return unsubd_bad(status, 400);
	end = data + n;
	if ((size_t)(end - (sp2 + 1)) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7))
		return unsubd_bad(status, end - (sp2 + 1) >= 5 &&
		    memcmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400);
	if (sp2[8] == '1')
		req->http11 = true;
	else if (sp2[8] != '0')
		return unsubd_bad(status, 505);
	/* Methods are case-sensitive (RFC 9110 9.1). */
	if (sp1 - data == 3 && memcmp(data, "GET", 3) == 0)
		req->method = UNSUBD_M_GET;
	else if (sp1 - data == 4 && memcmp(data, "HEAD", 4) == 0)
		req->method = UNSUBD_M_HEAD;
	else if (sp1 - data == 4 && memcmp(data, "POST", 4) == 0)
		req->method = UNSUBD_M_POST;
	else
		req->method = UNSUBD_M_OTHER;
	req->target = sp1 + 1;
	req->targetlen = (size_t)(sp2 - sp1 - 1);

	/* Header fields (RFC 9112 5). */
	p = eol + 1;
	lim = len < UNSUBD_HEAD_MAX ? len : UNSUBD_HEAD_MAX;
	for (;;) {
		const char	*colon;

		if ((size_t)(p - data) >= lim)
			return len >= UNSUBD_HEAD_MAX ?
			    unsubd_bad(status, 431) : -EAGAIN;
		if ((eol = unsubd_find_crlf(p, lim - (size_t)(p - data))) ==
		    NULL)
			return len >= UNSUBD_HEAD_MAX ?
			    unsubd_bad(status, 431) : -EAGAIN;
		if (eol == p || eol[-1] != '\r')
			return unsubd_bad(status, 400);	/* bare LF */
		n = (size_t)(eol - 1 - p);
		if (n == 0)
			break;
		if (++nhdr > UNSUBD_HEADERS_MAX)
			return unsubd_bad(status, 431);
		/* No obs-fold, no space before the colon (RFC 9112 5.1/5.2). */
		if ((colon = memchr(p, ':', n)) == NULL || colon == p)
			return unsubd_bad(status, 400);
		for (const char *q = p; q < colon; q++)
			if (!unsubd_tchar((unsigned char)*q))
				return unsubd_bad(status, 400);
		vs = (size_t)(colon + 1 - p);
		ve = n;
		for (size_t k = vs; k < ve; k++)
			if (!unsubd_vchar((unsigned char)p[k]))
				return unsubd_bad(status, 400);
		while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
			vs++;
		while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
			ve--;
		n = (size_t)(colon - p);
		if (unsubd_ieq(p, n, "Content-Length")) {
			unsigned long long v = 0;

			if (ve == vs || ve - vs > 10)
				return unsubd_bad(status, 400);
			for (size_t k = vs; k < ve; k++) {
				if (p[k] < '0' || p[k] > '9')
					return unsubd_bad(status, 400);
				v = v * 10 + (unsigned)(p[k] - '0');
			}
			if (have_cl && v != cl)
				return unsubd_bad(status, 400);
			have_cl = true;
			cl = v;
		} else if (unsubd_ieq(p, n, "Transfer-Encoding"))
			have_te = true;
		else if (unsubd_ieq(p, n, "Host")) {
			if (have_host)
				return unsubd_bad(status, 400);
			have_host = true;
		} else if (unsubd_ieq(p, n, "Connection")) {
			conn_close |= unsubd_has_token(p + vs, ve - vs,
			    "close");
			conn_keep |= unsubd_has_token(p + vs, ve - vs,
			    "keep-alive");
		} else if (unsubd_ieq(p, n, "Content-Type"))
			unsubd_parse_ctype(p + vs, ve - vs, req);
		p = eol + 1;
	}
	req->headlen = (size_t)(eol + 1 - data);
	/* RFC 9112 6.1: both is how requests are smuggled. */
	if (have_te && have_cl)
		return unsubd_bad(status, 400);
	if (have_te)
		return unsubd_bad(status, 501);
	if (req->http11 && !have_host)
		return unsubd_bad(status, 400);	/* RFC 9112 3.2 */
	if (cl > UNSUBD_BODY_MAX)
		return unsubd_bad(status, 413);
	req->content_length = (size_t)cl;
	req->keep_alive = req->http11 ? !conn_close : conn_keep && !conn_close;
	return 0;
}

/* ------------------------------------------------------------------ */
/* sans-I/O: body and target                                           */

static int
unsubd_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent/plus-decode s[0..n) and compare with want (exact). */
static int
unsubd_form_eq(const char *s, size_t n, const char *want)
{
	size_t	 i, k = 0, wl = strlen(want);
	int	 hi, lo;
	char	 c;

	for (i = 0; i < n; i++, k++) {
		c = s[i];
		if (c == '+')
			c = ' ';
		else if (c == '%') {
			if (i + 2 >= n ||
			    (hi = unsubd_hexval(s[i + 1])) < 0 ||
			    (lo = unsubd_hexval(s[i + 2])) < 0)
				return 0;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (k >= wl || want[k] != c)
			return 0;
	}
	return k == wl;
}

static bool
unsubd_urlenc_one_click(const char *b, size_t n)
{
	size_t	 i = 0, a, eq, e;

	/* Tolerate a trailing line end some clients add. */
	while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r'))
		n--;
	while (i <= n) {
		a = i;
		while (i < n && b[i] != '&')
			i++;
		e = i;
		for (eq = a; eq < e && b[eq] != '='; eq++)
			;
		if (eq < e && unsubd_form_eq(b + a, eq - a,
		    "List-Unsubscribe") && unsubd_form_eq(b + eq + 1,
		    e - eq - 1, "One-Click"))
			return true;
		i++;
	}
	return false;
}

/* Is the name parameter of a Content-Disposition value `want`? */
static int
unsubd_disp_name(const char *v, size_t n, const char *want)
{
	size_t	 i = 0, wl = strlen(want);

	while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
		v++;
		n--;
	}
	if (n < 9 || strncasecmp(v, "form-data", 9) != 0)
		return 0;
	for (i = 9; i + 5 <= n; i++) {
		if ((v[i - 1] == ';' || v[i - 1] == ' ' || v[i - 1] == '\t') &&
		    strncasecmp(v + i, "name=", 5) == 0) {
			const char	*q = v + i + 5;
			size_t		 left = n - i - 5;

			if (left >= wl + 2 && q[0] == '"' &&
			    memcmp(q + 1, want, wl) == 0 && q[wl + 1] == '"')
				return 1;
			if (left >= wl && memcmp(q, want, wl) == 0 &&
			    (left == wl || q[wl] == ';' || q[wl] == ' '))
				return 1;
			return 0;
		}
	}
	return 0;
}

/* RFC 7578: a part named List-Unsubscribe with content One-Click. */
static bool
unsubd_multipart_one_click(const char *b, size_t n, const char *bnd)
{
	char		 delim[UNSUBD_BOUNDARY_MAX + 5];
	size_t		 dl;
	const char	*p, *end = b + n, *le, *c, *next;
	int		 named;

	dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", bnd);
	/* The first delimiter may open the body (RFC 2046 5.1.1). */
	if (n >= dl - 2 && memcmp(b, delim + 2, dl - 2) == 0)
		p = b + dl - 2;
	else if ((p = memmem(b, n, delim, dl)) != NULL)
		p += dl;
	else
		return false;
	for (;;) {
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return false;		/* close delimiter */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			return false;
		p += 2;
		named = 0;
		for (;;) {
			if ((le = memmem(p, (size_t)(end - p), "\r\n", 2)) ==
			    NULL)
				return false;
			if (le == p) {
				p += 2;
				break;
			}
			c = memchr(p, ':', (size_t)(le - p));
			if (c != NULL && unsubd_ieq(p, (size_t)(c - p),
			    "Content-Disposition") && unsubd_disp_name(c + 1,
			    (size_t)(le - c - 1), "List-Unsubscribe"))
				named = 1;
			p = le + 2;
		}
		if ((next = memmem(p, (size_t)(end - p), delim, dl)) == NULL)
			return false;
		if (named && next - p == 9 && memcmp(p, "One-Click", 9) == 0)
			return true;
		p = next + dl;
	}
}

bool
unsubd_body_one_click(const struct unsubd_req *req, const char *body,
    size_t len)
{
	switch (req->ctype) {
	case UNSUBD_CT_NONE:
	case UNSUBD_CT_URLENCODED:
		return unsubd_urlenc_one_click(body, len);
	case UNSUBD_CT_MULTIPART:
		return unsubd_multipart_one_click(body, len, req->boundary);
	case UNSUBD_CT_OTHER:
		return false;
	}
	return false;
}

int
unsubd_target_token(const char *prefix, const char *target,
    size_t targetlen, const char **tok, size_t *toklen)
{
	size_t	 pl = strlen(prefix), i;

	if (targetlen < pl || memcmp(target, prefix, pl) != 0)
		return -ENOENT;
	for (i = pl; i < targetlen && target[i] != '?'; i++) {
		char	 c = target[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -ENOENT;
	}
	if (i == pl || i - pl > UNSUB_TOKEN_MAX)
		return -ENOENT;
	*tok = target + pl;
	*toklen = i - pl;
	return 0;
}

/* ------------------------------------------------------------------ */
/* sans-I/O: responses                                                 */

static const char *
unsubd_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

int
unsubd_respond(struct buf *out, int status, bool keep_alive,
    bool head_only, const char *ctype, const char *body, size_t len)
{
	int	 r;

	if ((r = buf_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: %s\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Referrer-Policy: no-referrer\r\n"
	    "Content-Security-Policy: default-src 'none'; "
	    "style-src 'unsafe-inline'; form-action 'self'; "
	    "frame-ancestors 'none'\r\n"
	    "%s\r\n", status, unsubd_reason(status), ctype, len,
	    keep_alive ? "keep-alive" : "close",
	    status == 405 ? "Allow: GET, HEAD, POST\r\n" : "")) != 0)
		return r;
	return head_only ? 0 : buf_append(out, body, len);
}

static int
unsubd_put_html_escaped(struct buf *b, const char *s)
{
	int	 r = 0;

	for (; *s != '\0' && r == 0; s++) {
		switch (*s) {
		case '&': r = buf_puts(b, "&amp;"); break;
		case '<': r = buf_puts(b, "&lt;"); break;
		case '>': r = buf_puts(b, "&gt;"); break;
		case '"': r = buf_puts(b, "&quot;"); break;
		case '\'': r = buf_puts(b, "&#39;"); break;
		default: r = buf_putc(b, *s); break;
		}
	}
	return r;
}

#define UNSUBD_HTML_HEAD \
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" \
	"<meta name=\"viewport\" content=\"width=device-width\">" \
	"<meta name=\"robots\" content=\"noindex\">" \
	"<title>Unsubscribe</title><style>body{font-family:sans-serif;" \
	"max-width:32em;margin:3em auto;padding:0 1em}</style></head><body>\n"

int
unsubd_landing_page(struct buf *out, const char *address)
{
	int	 r;

	if ((r = buf_puts(out, UNSUBD_HTML_HEAD
	    "<h1>Unsubscribe</h1>\n<p>Stop sending mail to <strong>")) != 0 ||
	    (r = unsubd_put_html_escaped(out, address)) != 0)
		return r;
	return buf_puts(out, "</strong>?</p>\n"
	    "<form method=\"post\">"
	    "<input type=\"hidden\" name=\"List-Unsubscribe\" "
	    "value=\"One-Click\">"
	    "<button type=\"submit\">Unsubscribe</button></form>\n"
	    "</body></html>\n");
}

static int
unsubd_plain_page(struct buf *out, const char *title, const char *text)
{
	return buf_printf(out, UNSUBD_HTML_HEAD "<h1>%s</h1>\n<p>%s</p>\n"
	    "</body></html>\n", title, text);
}

/* ------------------------------------------------------------------ */
/* server                                                              */

enum unsubd_cstate { UC_FREE, UC_READ, UC_APPLY, UC_SEND, UC_DEAD };

struct unsubd_conn {
	struct unsubd	*d;		/* borrows: the server */
	enum unsubd_cstate st;
	int		 fd;
	struct loop_op	 op_recv;
	struct loop_op	 op_send;
	char		 rbuf[UNSUBD_RBUF];
	size_t		 rlen;
	size_t		 reqlen;	/* bytes of the request being served */
	struct buf	 tx;		/* owns: response bytes */
	struct buf	 page;		/* owns: scratch for bodies */
	mono_us		 deadline;
	bool		 keep_alive;
	bool		 head_only;
	bool		 applying;	/* apply() answer outstanding */
	struct unsubd_conn *next_free;
};

struct unsubd {
	struct loop	*loop;		/* borrows */
	struct unsubd_opts o;		/* borrows its strings */
	char		 prefix[UNSUBD_PREFIX_MAX];
	int		 lfd;
	uint16_t	 port;
	struct loop_op	 op_accept;
	struct loop_op	 op_cancel;	/* cancels op_accept at shutdown */
	bool		 stopping;
	struct unsubd_conn *conns;	/* owns: UNSUBD_CONN_MAX */
	struct unsubd_conn *free;	/* free list */
};

static void unsubd_arm_accept(struct unsubd *d);
static void unsubd_conn_step(struct unsubd_conn *c);

static int64_t
unsubd_now_s(const struct unsubd *d)
{
	return d->o.now_s != NULL ? d->o.now_s() : (int64_t)time(NULL);
}

static void
unsubd_conn_kill(struct unsubd_conn *c)
{
	if (c->st == UC_DEAD || c->st == UC_FREE)
		return;
	c->st = UC_DEAD;
	/* Wakes an in-flight recv/send; the fd is closed in unsubd_tick. */
	shutdown(c->fd, SHUT_RDWR);
}

static void
unsubd_on_send(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct unsubd_conn *c = op->arg;

	(void)l;
	(void)flags;
	if (c->st != UC_SEND)
		return;
	if (res <= 0) {
		unsubd_conn_kill(c);
		return;
	}
	buf_consume(&c->tx, (size_t)res);
	unsubd_conn_step(c);
}

static void
unsubd_on_recv(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct unsubd_conn *c = op->arg;

	(void)l;
	(void)flags;
	if (c->st != UC_READ)
		return;
	if (res <= 0) {
		unsubd_conn_kill(c);
		return;
	}
	if (c->rlen == 0)
		c->deadline = mono_now() + (mono_us)UNSUBD_REQ_MS * 1000;
	c->rlen += (size_t)res;
	unsubd_conn_step(c);
}

/* Queue a response; close after it unless keep-alive. */
static void
unsubd_reply(struct unsubd_conn *c, int status, const char *title,
    const char *text, bool keep_alive)
{
	buf_reset(&c->page);
	buf_reset(&c->tx);
	if (unsubd_plain_page(&c->page, title, text) != 0 ||
	    unsubd_respond(&c->tx, status, keep_alive, c->head_only,
	    "text/html; charset=utf-8", c->page.data, c->page.len) != 0) {
		unsubd_conn_kill(c);
		return;
	}
	c->keep_alive = keep_alive;
	c->st = UC_SEND;
}

/* Serve one complete request held in rbuf[0..headlen+content_length). */
static void
unsubd_serve(struct unsubd_conn *c, const struct unsubd_req *req)
{
	struct unsubd	*d = c->d;
	const char	*tok;
	size_t		 toklen;
	char		 camp[TOKEN_CAMPAIGN_BUFSZ], addr[TOKEN_ADDR_BUFSZ];
	int		 r;

	c->head_only = req->method == UNSUBD_M_HEAD;
	if (req->method == UNSUBD_M_OTHER) {
		unsubd_reply(c, 405, "Method not allowed",
		    "Use the link in the message.", false);
		return;
	}
	if (unsubd_target_token(d->prefix, req->target, req->targetlen,
	    &tok, &toklen) != 0) {
		unsubd_reply(c, 404, "Not found",
		    "This is not an unsubscribe link.", req->keep_alive);
		return;
	}
	r = unsub_token_check(d->o.key, tok, toklen, unsubd_now_s(d),
	    d->o.max_age_s, camp, addr);
	if (r == -EINVAL) {
		unsubd_reply(c, 400, "Invalid link",
		    "This unsubscribe link is damaged. Copy the whole link "
		    "from the message.", req->keep_alive);
		return;
	}
	if (r == -ESTALE) {
		unsubd_reply(c, 403, "Link expired",
		    "This unsubscribe link has expired. Use the link in a "
		    "recent message.", req->keep_alive);
		return;
	}
	if (r != 0) {
		unsubd_reply(c, 403, "Invalid link",
		    "This unsubscribe link is not valid.", req->keep_alive);
		return;
	}
	if (req->method != UNSUBD_M_POST) {
		buf_reset(&c->page);
		buf_reset(&c->tx);
		if (unsubd_landing_page(&c->page, addr) != 0 ||
		    unsubd_respond(&c->tx, 200, req->keep_alive, c->head_only,
		    "text/html; charset=utf-8", c->page.data,
		    c->page.len) != 0) {
			unsubd_conn_kill(c);
			return;
		}
		c->keep_alive = req->keep_alive;
		c->st = UC_SEND;
		return;
	}
	if (!unsubd_body_one_click(req, c->rbuf + req->headlen,
	    req->content_length)) {
		unsubd_reply(c, 400, "Bad request",
		    "Expected List-Unsubscribe=One-Click.", false);
		return;
	}
	c->keep_alive = req->keep_alive;
	c->st = UC_APPLY;
	c->applying = true;
	if ((r = d->o.apply(d->o.arg, c, camp, addr)) != 0) {
		c->applying = false;
		c->st = UC_READ;
		unsubd_reply(c, 503, "Try again later",
		    "The request could not be recorded. Please try again.",
		    false);
		return;
	}
	log_info("unsubscribe campaign=%s", camp);
}

void
unsubd_applied(struct unsubd_conn *c, int res)
{
	c->applying = false;
	if (c->st != UC_APPLY)
		return;		/* the client went away; still recorded */
	if (res == 0)
		unsubd_reply(c, 200, "Unsubscribed",
		    "You will not receive these mails any more.",
		    c->keep_alive);
	else
		unsubd_reply(c, 503, "Try again later",
		    "The request could not be recorded. Please try again.",
		    false);
	unsubd_conn_step(c);
}

/* Advance a connection: parse, send, or read more. */
static void
unsubd_conn_step(struct unsubd_conn *c)
{
	struct io_uring_sqe *sqe;
	struct unsubd_req req;
	int		 r, status = 400;

	for (;;) {
		switch (c->st) {
		case UC_FREE:
		case UC_DEAD:
		case UC_APPLY:
			return;
		case UC_SEND:
			if (c->op_send.busy)
				return;
			if (buf_unread(&c->tx) > 0) {
				if ((sqe = loop_sqe(c->d->loop,
				    &c->op_send)) == NULL) {
					unsubd_conn_kill(c);
					return;
				}
				io_uring_prep_send(sqe, c->fd, buf_peek(&c->tx),
				    buf_unread(&c->tx), MSG_NOSIGNAL);
				return;
			}
			/* Sent: drop the request, keep pipelined bytes. */
			if (!c->keep_alive || c->d->stopping) {
				unsubd_conn_kill(c);
				return;
			}
			memmove(c->rbuf, c->rbuf + c->reqlen,
			    c->rlen - c->reqlen);
			c->rlen -= c->reqlen;
			c->reqlen = 0;
			c->st = UC_READ;
			c->deadline = mono_now() + (mono_us)(c->rlen > 0 ?
			    UNSUBD_REQ_MS : UNSUBD_IDLE_MS) * 1000;
			break;
		case UC_READ:
			if (c->op_recv.busy)
				return;
			r = unsubd_parse_head(c->rbuf, c->rlen, &req, &status);
			if (r == 0 && c->rlen - req.headlen >=
			    req.content_length) {
				c->reqlen = req.headlen + req.content_length;
				unsubd_serve(c, &req);
				break;
			}
			if (r == -EBADMSG) {
				c->head_only = false;
				unsubd_reply(c, status, "Bad request",
				    "The request could not be understood.",
				    false);
				break;
			}
			/* -EAGAIN or body incomplete: read more. */
			if ((sqe = loop_sqe(c->d->loop, &c->op_recv)) ==
			    NULL) {
				unsubd_conn_kill(c);
				return;
			}
			io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rlen,
			    sizeof(c->rbuf) - c->rlen, 0);
			return;
		}
	}
}

static void
unsubd_on_accept(struct loop *l, struct loop_op *op, int res,
    unsigned flags)
{
	struct unsubd	*d = op->arg;
	struct unsubd_conn *c;

	(void)l;
	(void)flags;
	if (res < 0) {
		if (res != -ECANCELED && !d->stopping)
			log_msgc(LOG_WARN, -res, "unsubscribe-server accept");
		if (!d->stopping)
			unsubd_arm_accept(d);
		return;
	}
	if (d->stopping || (c = d->free) == NULL) {
		close(res);
		return;
	}
	d->free = c->next_free;
	c->next_free = NULL;
	c->fd = res;
	c->st = UC_READ;
	c->rlen = 0;
	c->reqlen = 0;
	c->applying = false;
	buf_reset(&c->tx);
	c->deadline = mono_now() + (mono_us)UNSUBD_IDLE_MS * 1000;
	unsubd_conn_step(c);
	unsubd_arm_accept(d);
}

static void
unsubd_on_cancel(struct loop *l, struct loop_op *op, int res,
    unsigned flags)
{
	(void)l;
	(void)op;
	(void)res;
	(void)flags;
}

static void
unsubd_arm_accept(struct unsubd *d)
{
	struct io_uring_sqe *sqe;

	if (d->stopping || d->op_accept.busy || d->free == NULL)
		return;
	if ((sqe = loop_sqe(d->loop, &d->op_accept)) == NULL)
		return;		/* retried from unsubd_tick */
	io_uring_prep_accept(sqe, d->lfd, NULL, NULL, SOCK_CLOEXEC);
}

struct unsubd *
unsubd_new(struct loop *l, const struct unsubd_opts *o, char *err,
    size_t errlen)
{
	struct unsubd		*d;
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	int			 one = 1, i;

	if (o->prefix == NULL || o->prefix[0] != '/' ||
	    strlen(o->prefix) >= UNSUBD_PREFIX_MAX || o->key == NULL ||
	    o->apply == NULL) {
		snprintf(err, errlen, "bad unsubscribe-server options");
		return NULL;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, o->host,
	    &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(o->port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, o->host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(o->port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "listen address %s: not an IP literal",
		    o->host);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->conns = calloc(UNSUBD_CONN_MAX, sizeof(*d->conns))) == NULL) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->loop = l;
	d->o = *o;
	snprintf(d->prefix, sizeof(d->prefix), "%s", o->prefix);
	d->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->lfd < 0 ||
	    setsockopt(d->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 ||
	    bind(d->lfd, (struct sockaddr *)&ss, sl) != 0 ||
	    listen(d->lfd, 128) != 0 ||
	    getsockname(d->lfd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "listen on %s:%u: %s", o->host,
		    (unsigned)o->port, strerror(errno));
		if (d->lfd >= 0)
			close(d->lfd);
		free(d->conns);
		free(d);
		return NULL;
	}
	d->port = ntohs(ss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	for (i = UNSUBD_CONN_MAX - 1; i >= 0; i--) {
		struct unsubd_conn *c = &d->conns[i];

		c->d = d;
		c->fd = -1;
		c->st = UC_FREE;
		c->op_recv = (struct loop_op){ unsubd_on_recv, c, false };
		c->op_send = (struct loop_op){ unsubd_on_send, c, false };
		buf_init(&c->tx);
		buf_init(&c->page);
		c->next_free = d->free;
		d->free = c;
	}
	d->op_accept = (struct loop_op){ unsubd_on_accept, d, false };
	d->op_cancel = (struct loop_op){ unsubd_on_cancel, d, false };
	unsubd_arm_accept(d);
	return d;
}

uint16_t
unsubd_port(const struct unsubd *d)
{
	return d->port;
}

void
unsubd_tick(struct unsubd *d)
{
	mono_us	 now = mono_now();

	for (size_t i = 0; i < UNSUBD_CONN_MAX; i++) {
		struct unsubd_conn *c = &d->conns[i];

		if (c->st == UC_FREE)
			continue;
		/*
		 * Idle, stalled or slow-reading peers are closed; an apply
		 * in progress is the owner's to finish (Redis has its own
		 * timeouts) and the connection waits for it.
		 */
		if (c->st != UC_DEAD && c->st != UC_APPLY && now > c->deadline)
			unsubd_conn_kill(c);
		if (c->st == UC_DEAD && !c->op_recv.busy &&
		    !c->op_send.busy && !c->applying) {
			close(c->fd);
			c->fd = -1;
			c->st = UC_FREE;
			c->rlen = 0;
			c->next_free = d->free;
			d->free = c;
		}
	}
	unsubd_arm_accept(d);
}

bool
unsubd_shutdown(struct unsubd *d)
{
	struct io_uring_sqe *sqe;

	if (!d->stopping) {
		d->stopping = true;
		if (d->op_accept.busy &&
		    (sqe = loop_sqe(d->loop, &d->op_cancel)) != NULL)
			io_uring_prep_cancel(sqe, &d->op_accept, 0);
		shutdown(d->lfd, SHUT_RDWR);
	}
	for (size_t i = 0; i < UNSUBD_CONN_MAX; i++)
		if (d->conns[i].st != UC_FREE && d->conns[i].st != UC_SEND)
			unsubd_conn_kill(&d->conns[i]);
	unsubd_tick(d);
	for (size_t i = 0; i < UNSUBD_CONN_MAX; i++)
		if (d->conns[i].st != UC_FREE)
			return false;
	return !d->op_accept.busy && !d->op_cancel.busy;
}

void
unsubd_free(struct unsubd *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < UNSUBD_CONN_MAX; i++) {
		if (d->conns[i].fd >= 0)
			close(d->conns[i].fd);
		buf_free(&d->conns[i].tx);
		buf_free(&d->conns[i].page);
	}
	close(d->lfd);
	free(d->conns);
	free(d);
}

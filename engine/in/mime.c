/* mime: bounded MIME structure parser. See mime.h. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"

#include "in/mime.h"

/* End of the header block: *body_off after the blank line. */
static void
mime_split(const char *p, size_t len, size_t *body_off)
{
	size_t	 i = 0;

	/* A part may start with its blank line: no header at all. */
	if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
		*body_off = 2;
		return;
	}
	while (i < len) {
		const char *nl = memchr(p + i, '\n', len - i);

		if (nl == NULL)
			break;
		i = (size_t)(nl - p) + 1;
		if (i + 1 < len && p[i] == '\r' && p[i + 1] == '\n') {
			*body_off = i + 2;
			return;
		}
		if (i < len && p[i] == '\n') {
			*body_off = i + 1;
			return;
		}
	}
	*body_off = len;	/* all header, no body */
}

/* Next field of a header block: [*fs, *fe) raw incl. folded lines. */
static bool
mime_next_field(const char *hdr, size_t len, size_t *pos, size_t *fs,
    size_t *fe)
{
	size_t	 i = *pos;

	if (i >= len || hdr[i] == '\r' || hdr[i] == '\n')
		return false;
	*fs = i;
	for (;;) {
		const char *nl = memchr(hdr + i, '\n', len - i);

		if (nl == NULL) {
			i = len;
			break;
		}
		i = (size_t)(nl - hdr) + 1;
		if (i >= len || (hdr[i] != ' ' && hdr[i] != '\t'))
			break;
	}
	*fe = i;
	*pos = i;
	return true;
}

static bool
mime_field_is(const char *f, size_t flen, const char *name, size_t nlen,
    size_t *vstart)
{
	size_t	 k = nlen;

	if (flen <= nlen || strncasecmp(f, name, nlen) != 0)
		return false;
	while (k < flen && (f[k] == ' ' || f[k] == '\t'))
		k++;
	if (k >= flen || f[k] != ':')
		return false;
	*vstart = k + 1;
	return true;
}

int
mime_header_get(const char *hdr, size_t len, const char *name,
    struct buf *out)
{
	size_t	 pos = 0, fs, fe, v, nlen = strlen(name);

	while (mime_next_field(hdr, len, &pos, &fs, &fe)) {
		size_t	 start = out->len;

		if (!mime_field_is(hdr + fs, fe - fs, name, nlen, &v))
			continue;
		for (size_t i = fs + v; i < fe; i++) {
			if (hdr[i] == '\r' || hdr[i] == '\n')
				continue;
			buf_putc(out, hdr[i]);
		}
		/* trim */
		while (out->len > start && isspace((unsigned char)
		    out->data[out->len - 1]))
			out->len--;
		if (out->data != NULL)
			out->data[out->len] = '\0';
		{
			size_t k = start;

			while (k < out->len &&
			    isspace((unsigned char)out->data[k]))
				k++;
			if (k > start) {
				memmove(out->data + start, out->data + k,
				    out->len - k + 1);
				out->len -= k - start;
			}
		}
		return 0;
	}
	return -ENOENT;
}

void
mime_header_filter(const char *hdr, size_t len, const char *const *names,
    size_t nnames, bool exclude, struct buf *out)
{
	size_t	 pos = 0, fs, fe, v;

	while (mime_next_field(hdr, len, &pos, &fs, &fe)) {
		bool hit = false;

		for (size_t i = 0; i < nnames && !hit; i++)
			hit = mime_field_is(hdr + fs, fe - fs, names[i],
			    strlen(names[i]), &v);
		if (hit != exclude) {
			buf_append(out, hdr + fs, fe - fs);
			if (hdr[fe - 1] != '\n')
				buf_puts(out, "\r\n");
		}
	}
	buf_puts(out, "\r\n");
}

size_t
mime_params(const char *value, size_t len,
    void (*cb)(const char *name, size_t nlen, const char *val, size_t vlen,
    void *arg), void *arg)
{
	const char	*p = memchr(value, ';', len), *end = value + len;
	char		 v[512];
	size_t		 n = 0;

	while (p != NULL && p < end) {
		const char	*ns, *ne;
		size_t		 vl = 0;

		p++;	/* the ';' */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		ns = p;
		while (p < end && *p != '=' && *p != ';' && *p != ' ' &&
		    *p != '\t')
			p++;
		ne = p;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (ne == ns || p >= end || *p != '=') {
			p = memchr(p, ';', (size_t)(end - p));
			continue;
		}
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				if (vl < sizeof(v))
					v[vl++] = *p;
			}
			if (p < end)
				p++;
		} else {
			while (p < end && *p != ';' && *p != ' ' &&
			    *p != '\t' && *p != '(') {
				if (vl < sizeof(v))
					v[vl++] = *p;
				p++;
			}
		}
		cb(ns, (size_t)(ne - ns), v, vl, arg);
		n++;
		p = memchr(p, ';', (size_t)(end - p));
	}
	return n;
}

size_t
mime_count_lines(const char *p, size_t len)
{
	size_t	 n = 0;

	for (size_t i = 0; i < len; i++)
		n += p[i] == '\n';
	if (len > 0 && p[len - 1] != '\n')
		n++;
	return n;
}

struct mime_bparam {
	char	*out;
	size_t	 cap;
	bool	 found;
};

static void
mime_boundary_cb(const char *name, size_t nlen, const char *val, size_t vlen,
    void *arg)
{
	struct mime_bparam *b = arg;

	if (b->found || nlen != 8 || strncasecmp(name, "boundary", 8) != 0 ||
	    vlen == 0 || vlen >= b->cap)
		return;
	memcpy(b->out, val, vlen);
	b->out[vlen] = '\0';
	b->found = true;
}

/* Copy a token lowercased; false when empty or not a token. */
static bool
mime_token(const char *s, size_t n, char *out, size_t cap)
{
	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
			return false;
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	return true;
}

/* Parse Content-Type into node; boundary (if multipart) into bnd. */
static void
mime_ctype(struct mime_node *nd, const char *hdr, size_t hlen,
    bool digest, char *bnd, size_t bcap)
{
	struct buf		 v;
	const char		*s, *slash, *e;
	struct mime_bparam	 bp = { bnd, bcap, false };

	strcpy(nd->type, digest ? "message" : "text");
	strcpy(nd->subtype, digest ? "rfc822" : "plain");
	bnd[0] = '\0';
	buf_init(&v);
	if (mime_header_get(hdr, hlen, "Content-Type", &v) != 0 ||
	    v.len == 0) {
		buf_free(&v);
		return;
	}
	nd->has_ctype = true;
	s = v.data;
	e = s + strcspn(s, ";");
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	slash = memchr(s, '/', (size_t)(e - s));
	if (slash != NULL) {
		const char	*ts = s, *te = slash, *ss = slash + 1;

		while (te > ts && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		while (ss < e && (*ss == ' ' || *ss == '\t'))
			ss++;
		if (!mime_token(ts, (size_t)(te - ts), nd->type,
		    sizeof(nd->type)) ||
		    !mime_token(ss, (size_t)(e - ss), nd->subtype,
		    sizeof(nd->subtype))) {
			/* RFC 2045 5.2: an invalid type means text/plain. */
			strcpy(nd->type, "text");
			strcpy(nd->subtype, "plain");
			nd->has_ctype = false;
		}
	} else {
		strcpy(nd->type, "text");
		strcpy(nd->subtype, "plain");
		nd->has_ctype = false;
	}
	if (strcmp(nd->type, "multipart") == 0)
		mime_params(v.data, v.len, mime_boundary_cb, &bp);
	buf_free(&v);
}

static struct mime_node *mime_entity(struct mime_tree *t, size_t off,
	    size_t len, unsigned depth, bool digest);

/* Is the line at p (up to end) "--bnd" or "--bnd--"? 1, 2 (close), 0. */
static int
mime_delim(const char *p, const char *end, const char *bnd, size_t blen)
{
	const char	*q;

	if ((size_t)(end - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, bnd, blen) != 0)
		return 0;
	q = p + 2 + blen;
	if (q + 1 < end && q[0] == '-' && q[1] == '-')
		return 2;
	/* Only linear white space may follow (RFC 2046 5.1.1). */
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q == end || *q == '\r' || *q == '\n')
		return 1;
	return 0;
}

static void
mime_multipart(struct mime_tree *t, struct mime_node *nd, const char *bnd,
    unsigned depth)
{
	const char		*base = t->base;
	const char		*p = base + nd->body_off;
	const char		*end = p + nd->body_len;
	size_t			 blen = strlen(bnd);
	const char		*part = NULL;
	struct mime_node	**tail = &nd->child;
	bool			 digest = strcmp(nd->subtype, "digest") == 0;

	while (p < end) {
		const char	*nl = memchr(p, '\n', (size_t)(end - p));
		const char	*next = nl ? nl + 1 : end;
		int		 d = mime_delim(p, end, bnd, blen);

		if (d != 0) {
			if (part != NULL) {
				/* The CRLF before the delimiter is its own. */
				const char *pe = p;

				if (pe > part && pe[-1] == '\n')
					pe--;
				if (pe > part && pe[-1] == '\r')
					pe--;
				if (pe < part)
					pe = part;
				struct mime_node *c = mime_entity(t,
				    (size_t)(part - base), (size_t)(pe - part),
				    depth + 1, digest);
				if (c == NULL)
					return;
				*tail = c;
				tail = &c->next;
				nd->nchild++;
			}
			if (d == 2)
				return;
			part = next;
		}
		p = next;
	}
	if (part != NULL && part <= end) {
		/* No closing delimiter: the last part runs to the end. */
		struct mime_node *c = mime_entity(t, (size_t)(part - base),
		    (size_t)(end - part), depth + 1, digest);

		if (c != NULL) {
			*tail = c;
			nd->nchild++;
		}
	}
}

static struct mime_node *
mime_entity(struct mime_tree *t, size_t off, size_t len, unsigned depth,
    bool digest)
{
	struct mime_node	*nd;
	size_t			 body;
	char			 bnd[80];

	if (t->n >= MIME_NODES_MAX)
		return NULL;
	nd = &t->nodes[t->n++];
	memset(nd, 0, sizeof(*nd));
	nd->hdr_off = off;
	mime_split(t->base + off, len, &body);
	nd->body_off = off + body;
	nd->body_len = len - body;
	mime_ctype(nd, t->base + off, body, digest, bnd, sizeof(bnd));
	if (depth >= MIME_DEPTH_MAX)
		return nd;
	if (strcmp(nd->type, "multipart") == 0 && bnd[0] != '\0')
		mime_multipart(t, nd, bnd, depth);
	else if (strcmp(nd->type, "message") == 0 &&
	    strcmp(nd->subtype, "rfc822") == 0)
		nd->msg = mime_entity(t, nd->body_off, nd->body_len, depth + 1,
		    false);
	return nd;
}

void
mime_parse(struct mime_tree *t, const char *p, size_t len)
{
	t->base = p;
	t->len = len;
	t->n = 0;
	(void)mime_entity(t, 0, len, 0, false);
}

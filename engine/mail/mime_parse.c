/*
 * mime_parse: bounded MIME reader. See mime_parse.h.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mail/mime_parse.h"

#define MIME_CT_VALUE_MAX	1024

static bool
mime_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Whitespace inside a (possibly still folded) header value. */
static bool
mime_is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* End of the line starting at s (offset of '\n', or len). */
static size_t
mime_eol(const char *p, size_t len, size_t s)
{
	const char *nl = memchr(p + s, '\n', len - s);

	return nl ? (size_t)(nl - p) : len;
}

/* Line p[s..e) without a trailing CR: is it empty? */
static bool
mime_line_blank(const char *p, size_t s, size_t e)
{
	return e == s || (e == s + 1 && p[s] == '\r');
}

bool
mime_hdr_next(const char *p, size_t len, size_t *off, struct mime_hdr *h)
{
	size_t	 s = *off, e, colon, n;

	if (s == 0 && len >= 5 && memcmp(p, "From ", 5) == 0) {
		e = mime_eol(p, len, 0);
		s = e < len ? e + 1 : len;
	}
	for (;;) {
		if (s >= len) {
			*off = len;
			return false;
		}
		e = mime_eol(p, len, s);
		if (mime_line_blank(p, s, e)) {
			*off = e < len ? e + 1 : len;
			return false;
		}
		if (!mime_is_wsp(p[s]))
			break;
		/* A fold with no field before it: skip the stray line. */
		s = e < len ? e + 1 : len;
	}
	for (colon = s; colon < e && p[colon] != ':'; colon++) {
		unsigned char c = (unsigned char)p[colon];
		if ((c < 33 || c > 126) && !mime_is_wsp((char)c))
			break;
	}
	n = colon;
	while (n > s && mime_is_wsp(p[n - 1]))
		n--;
	if (colon >= e || p[colon] != ':' || n == s ||
	    memchr(p + s, ' ', n - s) != NULL ||
	    memchr(p + s, '\t', n - s) != NULL) {
		/* Not a field: the body starts here (no empty line). */
		*off = s;
		return false;
	}
	h->name = p + s;
	h->namelen = n - s;
	h->value = p + colon + 1;
	/* Take continuation lines (RFC 5322 2.2.3). */
	while (e < len && e + 1 < len && mime_is_wsp(p[e + 1])) {
		size_t	 e2 = mime_eol(p, len, e + 1);
		if (mime_line_blank(p, e + 1, e2))
			break;
		e = e2;
	}
	n = e;
	if (n > colon + 1 && p[n - 1] == '\r')
		n--;
	h->valuelen = n - (colon + 1);
	*off = e < len ? e + 1 : len;
	return true;
}

size_t
mime_body_offset(const char *p, size_t len)
{
	struct mime_hdr h;
	size_t	 off = 0;

	while (mime_hdr_next(p, len, &off, &h))
		;
	return off;
}

size_t
mime_unfold(const char *v, size_t vlen, char *out, size_t outsz)
{
	size_t	 o = 0;
	bool	 space = false;

	if (outsz == 0)
		return 0;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\r' || c == '\n' || c == '\t' || c == ' ' ||
		    c < 32 || c == 127) {
			space = o > 0;
			continue;
		}
		if (space) {
			if (o + 1 >= outsz)
				break;
			out[o++] = ' ';
			space = false;
		}
		if (o + 1 >= outsz)
			break;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return o;
}

int
mime_hdr_get(const char *p, size_t len, const char *name, char *out,
    size_t outsz)
{
	struct mime_hdr h;
	size_t	 off = 0, nlen = strlen(name);

	while (mime_hdr_next(p, len, &off, &h)) {
		if (h.namelen == nlen && strncasecmp(h.name, name, nlen) == 0)
			return (int)mime_unfold(h.value, h.valuelen, out,
			    outsz);
	}
	if (outsz > 0)
		out[0] = '\0';
	return -1;
}

static void
mime_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

int
mime_param_get(const char *value, const char *name, char *out, size_t outsz)
{
	const char *s = value;
	size_t	 nlen = strlen(name);
	bool	 inq = false;

	if (outsz > 0)
		out[0] = '\0';
	/* Skip the type itself (stop at the first ';' outside quotes). */
	for (; *s; s++) {
		if (*s == '"')
			inq = !inq;
		else if (*s == ';' && !inq)
			break;
	}
	while (*s == ';') {
		const char *n;
		size_t	 o = 0;

		s++;
		while (mime_is_fws(*s))
			s++;
		n = s;
		while (*s && *s != '=' && *s != ';' && !mime_is_fws(*s))
			s++;
		bool	 match = (size_t)(s - n) == nlen &&
		    strncasecmp(n, name, nlen) == 0;
		while (mime_is_fws(*s))
			s++;
		if (*s != '=') {
			while (*s && *s != ';')
				s++;
			continue;
		}
		s++;
		while (mime_is_fws(*s))
			s++;
		if (*s == '"') {
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && s[1] != '\0')
					s++;
				if (match && o + 1 < outsz)
					out[o++] = *s;
			}
			if (*s == '"')
				s++;
		} else {
			for (; *s && *s != ';' && !mime_is_fws(*s);
			    s++)
				if (match && o + 1 < outsz)
					out[o++] = *s;
		}
		if (match) {
			if (outsz > 0)
				out[o] = '\0';
			return (int)o;
		}
		/* Skip anything up to the next parameter. */
		inq = false;
		for (; *s; s++) {
			if (*s == '"')
				inq = !inq;
			else if (*s == ';' && !inq)
				break;
		}
	}
	return -1;
}

static void
mime_token_copy(const char *s, size_t n, char *out, size_t outsz)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	mime_lower(out);
}

void
mime_ctype_parse(const char *value, struct mime_ctype *ct)
{
	const char *semi, *slash;
	size_t	 tlen;

	memset(ct, 0, sizeof(*ct));
	semi = strchr(value, ';');
	tlen = semi ? (size_t)(semi - value) : strlen(value);
	slash = memchr(value, '/', tlen);
	if (slash == NULL) {
		strcpy(ct->type, "text");
		strcpy(ct->subtype, "plain");
	} else {
		mime_token_copy(value, (size_t)(slash - value), ct->type,
		    sizeof(ct->type));
		mime_token_copy(slash + 1, tlen - (size_t)(slash - value) - 1,
		    ct->subtype, sizeof(ct->subtype));
		if (ct->type[0] == '\0' || ct->subtype[0] == '\0') {
			strcpy(ct->type, "text");
			strcpy(ct->subtype, "plain");
		}
	}
	mime_param_get(value, "boundary", ct->boundary, sizeof(ct->boundary));
	mime_param_get(value, "report-type", ct->report_type,
	    sizeof(ct->report_type));
	mime_lower(ct->report_type);
	mime_param_get(value, "charset", ct->charset, sizeof(ct->charset));
	mime_lower(ct->charset);
}

enum mime_cte
mime_cte_parse(const char *value)
{
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, "base64", 6) == 0)
		return MIME_CTE_BASE64;
	if (strncasecmp(value, "quoted-printable", 16) == 0)
		return MIME_CTE_QP;
	return MIME_CTE_IDENTITY;
}

static int
mime_b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

static int
mime_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t
mime_decode(enum mime_cte cte, const char *in, size_t inlen, char *out,
    size_t outsz)
{
	size_t	 o = 0;

	switch (cte) {
	case MIME_CTE_IDENTITY:
		o = inlen < outsz ? inlen : outsz;
		memcpy(out, in, o);
		return o;
	case MIME_CTE_BASE64: {
		unsigned acc = 0, nbits = 0;
		for (size_t i = 0; i < inlen && o < outsz; i++) {
			int	 v = mime_b64val((unsigned char)in[i]);
			if (in[i] == '=')
				nbits = 0;	/* padding: drop partial bits */
			if (v < 0)
				continue;
			acc = (acc << 6 | (unsigned)v) & 0xffffffu;
			nbits += 6;
			if (nbits >= 8) {
				nbits -= 8;
				out[o++] = (char)((acc >> nbits) & 0xff);
			}
		}
		return o;
	}
	case MIME_CTE_QP:
		for (size_t i = 0; i < inlen && o < outsz; i++) {
			if (in[i] != '=') {
				out[o++] = in[i];
				continue;
			}
			if (i + 1 < inlen && in[i + 1] == '\n') {
				i += 1;		/* soft break, bare LF */
				continue;
			}
			if (i + 2 < inlen && in[i + 1] == '\r' &&
			    in[i + 2] == '\n') {
				i += 2;		/* soft break */
				continue;
			}
			if (i + 2 < inlen) {
				int	 hi, lo;
				hi = mime_hexval((unsigned char)in[i + 1]);
				lo = mime_hexval((unsigned char)in[i + 2]);
				if (hi >= 0 && lo >= 0) {
					out[o++] = (char)(hi << 4 | lo);
					i += 2;
					continue;
				}
			}
			out[o++] = '=';
		}
		return o;
	}
	return 0;
}

/*
 * Parse one encoded-word at s ("=?charset?X?text?="). On success returns
 * its length and, when out is not NULL, decodes the text into out[0..*n).
 */
static size_t
mime_word_at(const char *s, char *out, size_t outsz, size_t *n)
{
	const char *cs = s + 2, *enc, *txt, *end;
	enum mime_cte cte;

	if (s[0] != '=' || s[1] != '?')
		return 0;
	for (enc = cs; *enc && *enc != '?' && *enc != ' ' && enc - cs < 64;
	    enc++)
		;
	if (*enc != '?' || enc == cs)
		return 0;
	enc++;
	if ((*enc == 'B' || *enc == 'b') && enc[1] == '?')
		cte = MIME_CTE_BASE64;
	else if ((*enc == 'Q' || *enc == 'q') && enc[1] == '?')
		cte = MIME_CTE_QP;
	else
		return 0;
	txt = enc + 2;
	for (end = txt; *end && *end != ' ' && *end != '\t' &&
	    !(end[0] == '?' && end[1] == '='); end++)
		;
	if (end[0] != '?' || end[1] != '=')
		return 0;
	if (out == NULL) {
		*n = 0;
	} else if (cte == MIME_CTE_BASE64) {
		*n = mime_decode(cte, txt, (size_t)(end - txt), out, outsz);
	} else {
		/* RFC 2047 4.2: "_" is a space, "=XX" an octet. */
		size_t	 o = 0;
		for (const char *p = txt; p < end && o < outsz; p++) {
			int	 hi, lo;
			if (*p == '_') {
				out[o++] = ' ';
			} else if (*p == '=' && end - p >= 3 &&
			    (hi = mime_hexval((unsigned char)p[1])) >= 0 &&
			    (lo = mime_hexval((unsigned char)p[2])) >= 0) {
				out[o++] = (char)(hi << 4 | lo);
				p += 2;
			} else {
				out[o++] = *p;
			}
		}
		*n = o;
	}
	return (size_t)(end + 2 - s);
}

size_t
mime_decode_words(const char *in, char *out, size_t outsz)
{
	size_t	 o = 0, wsp_start = 0;
	bool	 after_word = false, in_wsp = false;

	if (outsz == 0)
		return 0;
	for (const char *p = in; *p && o + 1 < outsz;) {
		size_t	 n = 0, used;

		if ((used = mime_word_at(p, NULL, 0, &n)) > 0) {
			if (after_word && in_wsp)
				o = wsp_start;	/* drop space between words */
			mime_word_at(p, out + o, outsz - 1 - o, &n);
			o += n;
			p += used;
			after_word = true;
			in_wsp = false;
			continue;
		}
		if (*p == ' ' || *p == '\t') {
			if (!in_wsp)
				wsp_start = o;
			in_wsp = true;
		} else {
			after_word = false;
			in_wsp = false;
		}
		out[o++] = *p++;
	}
	/* Decoded NULs or controls must not cut or inject: blank them. */
	for (size_t i = 0; i < o; i++)
		if ((unsigned char)out[i] < 32 || out[i] == 127)
			out[i] = ' ';
	out[o] = '\0';
	return o;
}

const char *
mime_memcasemem(const char *h, size_t hlen, const char *n, size_t nlen)
{
	int	 f0, f1;

	if (nlen == 0 || nlen > hlen)
		return NULL;
	f0 = tolower((unsigned char)n[0]);
	f1 = toupper((unsigned char)n[0]);
	for (size_t i = 0; i + nlen <= hlen; i++) {
		if (h[i] != f0 && h[i] != f1)
			continue;
		if (strncasecmp(h + i + 1, n + 1, nlen - 1) == 0)
			return h + i;
	}
	return NULL;
}

struct mime_walk_ctx {
	mime_visit_fn	 fn;
	void		*arg;
	unsigned	 n;
};

/*
 * Find the next delimiter line "--boundary[--]" (RFC 2046 5.1.1) in
 * b[from..len). On success *ls is where the line starts, *next where the
 * following line starts, *close whether it is the close delimiter.
 */
static bool
mime_find_delim(const char *b, size_t len, size_t from, const char *bd,
    size_t bdlen, size_t *ls, size_t *next, bool *close)
{
	while (from < len) {
		const char *hit = memmem(b + from, len - from, bd, bdlen);
		size_t	 h, e, k;

		if (hit == NULL)
			return false;
		h = (size_t)(hit - b);
		from = h + 1;
		if (h < 2 || b[h - 1] != '-' || b[h - 2] != '-' ||
		    (h > 2 && b[h - 3] != '\n'))
			continue;
		k = h + bdlen;
		*close = k + 1 < len && b[k] == '-' && b[k + 1] == '-';
		if (*close)
			k += 2;
		e = mime_eol(b, len, k);
		/* Only transport padding may follow; else it's a longer
		 * boundary sharing our prefix. */
		for (; k < e; k++)
			if (!mime_is_wsp(b[k]) && b[k] != '\r')
				break;
		if (k < e)
			continue;
		*ls = h - 2;
		*next = e < len ? e + 1 : len;
		return true;
	}
	return false;
}

static int
mime_walk_entity(struct mime_walk_ctx *c, const char *p, size_t len,
    unsigned depth, const struct mime_part *parent)
{
	struct mime_part part;
	char	 val[MIME_CT_VALUE_MAX];
	size_t	 boff, bdlen, pos, ls, next;
	bool	 close;
	int	 rc;

	if (c->n >= MIME_PARTS_MAX)
		return 0;
	memset(&part, 0, sizeof(part));
	part.depth = depth;
	part.index = c->n++;
	part.parent = parent;
	boff = mime_body_offset(p, len);
	part.hdr = p;
	part.hdrlen = boff;
	part.body = p + boff;
	part.bodylen = len - boff;
	if (mime_hdr_get(p, boff, "Content-Type", val, sizeof(val)) >= 0)
		mime_ctype_parse(val, &part.ct);
	else if (parent != NULL && strcmp(parent->ct.subtype, "digest") == 0)
		mime_ctype_parse("message/rfc822", &part.ct);
	else
		mime_ctype_parse("text/plain", &part.ct);
	if (mime_hdr_get(p, boff, "Content-Transfer-Encoding", val,
	    sizeof(val)) >= 0)
		part.cte = mime_cte_parse(val);
	if ((rc = c->fn(&part, c->arg)) != 0)
		return rc;
	if (strcmp(part.ct.type, "multipart") != 0 ||
	    part.ct.boundary[0] == '\0' || depth + 1 >= MIME_DEPTH_MAX)
		return 0;
	bdlen = strlen(part.ct.boundary);
	if (!mime_find_delim(part.body, part.bodylen, 0, part.ct.boundary,
	    bdlen, &ls, &pos, &close))
		return 0;
	while (!close && pos < part.bodylen) {
		size_t	 start = pos, end;

		if (mime_find_delim(part.body, part.bodylen, pos,
		    part.ct.boundary, bdlen, &ls, &next, &close)) {
			end = ls;
			/* The CRLF before a delimiter belongs to it. */
			if (end > start && part.body[end - 1] == '\n')
				end--;
			if (end > start && part.body[end - 1] == '\r')
				end--;
			pos = next;
		} else {
			end = part.bodylen;	/* truncated: take the rest */
			pos = part.bodylen;
			close = true;
		}
		rc = mime_walk_entity(c, part.body + start, end - start,
		    depth + 1, &part);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
mime_walk(const char *msg, size_t len, mime_visit_fn fn, void *arg)
{
	struct mime_walk_ctx c = { fn, arg, 0 };

	return mime_walk_entity(&c, msg, len, 0, NULL);
}

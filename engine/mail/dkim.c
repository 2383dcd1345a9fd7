/*
 * dkim: DKIM signing, relaxed/relaxed. See dkim.h.
 *
 * What a signature costs beyond the OpenSSL signature call is kept
 * small, since a bulk sender signs every message (bench/bench_dkim.sh):
 * the body is canonicalised line by line (memchr for line ends, a
 * 16-byte SIMD test for the rare WSP runs that change); unchanged
 * spans of 256 bytes or more are hashed where they lie, and shorter
 * pieces (text between two rewritten runs, a replacement SP, a deferred
 * CRLF) are copied into a 2 KB stage, so that EVP_DigestUpdate runs a
 * few times per message, not once per word. The same code feeds
 * a buf for the tests (struct dkim_sink).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/buf.h"

#include "mail/dkim.h"

#define DKIM_FOLD_COL	78	/* RFC 5322 2.1.1 "SHOULD" line length */

struct dkim_hname {
	char	 name[DKIM_HNAME_MAX + 1];	/* lower-case */
	size_t	 len;
	bool	 oversign;
};

struct dkim_key {
	enum dkim_alg	 alg;
	EVP_PKEY	*pkey;		/* owns one reference */
	EVP_MD		*sha256;	/* owns (fetched once) */
	EVP_MD_CTX	*md;		/* owns; body then header hash */
	EVP_PKEY_CTX	*rsa;		/* owns; RSA: sign_init done once */
	EVP_MD_CTX	*ed;		/* owns; Ed25519: DigestSignInit once */
	char		 domain[DKIM_DOMAIN_MAX + 1];
	char		 selector[DKIM_SELECTOR_MAX + 1];
	struct dkim_hname hdr[DKIM_HEADERS_MAX];
	size_t		 nhdr;
};

/* The always-signed list, in h= order. */
static const struct {
	const char	*name;
	bool		 oversign;
} dkim_default_hdrs[] = {
	{ "from", true },
	{ "to", false },
	{ "cc", false },
	{ "reply-to", false },
	{ "subject", true },
	{ "date", false },
	{ "message-id", false },
	{ "mime-version", false },
	{ "content-type", false },
	{ "list-unsubscribe", true },
	{ "list-unsubscribe-post", true },
	{ "feedback-id", false },
};

/*
 * Where canonical bytes go: a digest (signing) or a buf (tests), through
 * the same staging so the tests exercise what signing runs. Short pieces
 * (words, a replacement SP, a CRLF) are gathered in stage[] and hashed
 * in one EVP_DigestUpdate when it fills: an update costs far more than
 * copying a few bytes. Spans of DKIM_DIRECT bytes or more (a clean body
 * is one span) are hashed where they lie, never copied.
 */
#define DKIM_STAGE	2048
#define DKIM_DIRECT	256

struct dkim_sink {
	EVP_MD_CTX	*md;
	struct buf	*b;
	int		 err;
	size_t		 n;		/* bytes waiting in stage */
	unsigned char	 stage[DKIM_STAGE];
};

static void
dkim_sink_init(struct dkim_sink *s, EVP_MD_CTX *md, struct buf *b)
{
	s->md = md;
	s->b = b;
	s->err = 0;
	s->n = 0;
}

static void
dkim_sink_out(struct dkim_sink *s, const void *p, size_t n)
{
	if (s->md != NULL) {
		if (EVP_DigestUpdate(s->md, p, n) != 1)
			s->err = -EIO;
	} else if (buf_append(s->b, p, n) != 0) {
		s->err = -ENOMEM;
	}
}

/* Everything staged goes out; call before reading the result. */
static int
dkim_sink_flush(struct dkim_sink *s)
{
	if (s->n > 0 && s->err == 0)
		dkim_sink_out(s, s->stage, s->n);
	s->n = 0;
	return s->err;
}

static void
dkim_emit(struct dkim_sink *s, const void *p, size_t n)
{
	if (n == 0 || s->err != 0)
		return;
	if (n >= DKIM_DIRECT) {
		dkim_sink_flush(s);
		if (s->err == 0)
			dkim_sink_out(s, p, n);
		return;
	}
	if (s->n + n > sizeof(s->stage))
		dkim_sink_flush(s);
	memcpy(s->stage + s->n, p, n);
	s->n += n;
}

static bool
dkim_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* 0x80 in each byte of w that equals the byte repeated in pat. */
static inline uint64_t
dkim_eqmask(uint64_t w, uint64_t pat)
{
	const uint64_t	lo = 0x7f7f7f7f7f7f7f7fULL;
	uint64_t	x = w ^ pat;

	return ~(((x & lo) + lo) | x | lo);
}

/* A mask of the first n < 8 bytes of a word loaded with memcpy. */
static inline uint64_t
dkim_lowbytes(size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (1ULL << (8 * n)) - 1;
#else
	return ~(~0ULL >> (8 * n));
#endif
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DKIM_FIRST_BYTE(m)	(__builtin_ctzll(m) >> 3)
#else
#define DKIM_FIRST_BYTE(m)	(__builtin_clzll(m) >> 3)
#endif

/* p (< e) starts a break in a header value: WSP or a line end. */
static inline bool
dkim_hbrk(const char *p, const char *e)
{
	return dkim_wsp(*p) || *p == '\n' ||
	    (*p == '\r' && p + 1 < e && p[1] == '\n');
}

/*
 * The first byte of [p, e) where a header value's text may change: a
 * TAB, CR or LF, or an SP followed by any of those or by another SP. e
 * when there is none (a single SP between words stays). e[-1] is text.
 */
static const char *
dkim_hval_fix(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i	vsp = _mm_set1_epi8(' '), vht = _mm_set1_epi8('\t');
	const __m128i	vcr = _mm_set1_epi8('\r'), vlf = _mm_set1_epi8('\n');

	while (e - p >= 17) {
		__m128i		v0 = _mm_loadu_si128((const __m128i *)p);
		__m128i		v1 = _mm_loadu_si128((const __m128i *)(p + 1));
		__m128i		x0, x1;
		unsigned	m;

		x0 = _mm_or_si128(_mm_cmpeq_epi8(v0, vht), _mm_or_si128(
		    _mm_cmpeq_epi8(v0, vcr), _mm_cmpeq_epi8(v0, vlf)));
		x1 = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v1, vsp),
		    _mm_cmpeq_epi8(v1, vht)), _mm_or_si128(
		    _mm_cmpeq_epi8(v1, vcr), _mm_cmpeq_epi8(v1, vlf)));
		m = (unsigned)_mm_movemask_epi8(_mm_or_si128(x0,
		    _mm_and_si128(_mm_cmpeq_epi8(v0, vsp), x1)));
		if (m != 0)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (e - p >= 9) {
		const uint64_t	sp = 0x2020202020202020ULL;
		const uint64_t	ht = 0x0909090909090909ULL;
		const uint64_t	cr = 0x0d0d0d0d0d0d0d0dULL;
		const uint64_t	lf = 0x0a0a0a0a0a0a0a0aULL;
		uint64_t	w0, w1, m;

		memcpy(&w0, p, 8);
		memcpy(&w1, p + 1, 8);
		m = dkim_eqmask(w0, ht) | dkim_eqmask(w0, cr) |
		    dkim_eqmask(w0, lf) | (dkim_eqmask(w0, sp) &
		    (dkim_eqmask(w1, sp) | dkim_eqmask(w1, ht) |
		    dkim_eqmask(w1, cr) | dkim_eqmask(w1, lf)));
		if (m != 0)
			return p + DKIM_FIRST_BYTE(m);
		p += 8;
	}
	for (; p < e; p++)
		if (*p == '\t' || *p == '\r' || *p == '\n' || (*p == ' ' &&
		    p + 1 < e && (dkim_wsp(p[1]) || p[1] == '\r' ||
		    p[1] == '\n')))
			return p;
	return e;
}

/*
 * RFC 6376 3.4.2 on a header value (after the colon): unfold, runs of
 * WSP to one SP, no WSP at either end. v[0..n) may hold folding line
 * ends ("\r\n" or "\n", each followed by WSP); a CR not before LF is
 * ordinary text, as the RFC leaves it. A line end only unfolds: a run
 * of breaks becomes one SP when it holds WSP, nothing otherwise. The
 * text between runs goes out in spans found by dkim_hval_fix().
 */
static void
dkim_canon_value(struct dkim_sink *s, const char *v, size_t n)
{
	const char *p = v, *e = v + n;

	while (p < e && dkim_hbrk(p, e))
		p++;
	while (e > p) {
		if (dkim_wsp(e[-1])) {
			e--;
		} else if (e[-1] == '\n') {
			e--;
			if (e > p && e[-1] == '\r')
				e--;
		} else {
			break;
		}
	}
	while (p < e) {
		const char	*q = dkim_hval_fix(p, e);
		bool		 wsp = false;

		dkim_emit(s, p, (size_t)(q - p));
		if (q == e)
			break;
		if (!dkim_hbrk(q, e)) {		/* a lone CR: text */
			dkim_emit(s, q, 1);
			p = q + 1;
			continue;
		}
		while (q < e && dkim_hbrk(q, e)) {
			wsp |= dkim_wsp(*q);
			q += *q == '\r' ? 2 : 1;
		}
		if (wsp)
			dkim_emit(s, " ", 1);
		p = q;
	}
}

/* Lower-case a header name into the sink (names are short). */
static void
dkim_emit_lower(struct dkim_sink *s, const char *name, size_t n)
{
	char	tmp[64];
	size_t	k = 0;

	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		tmp[k++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		if (k == sizeof(tmp)) {
			dkim_emit(s, tmp, k);
			k = 0;
		}
	}
	dkim_emit(s, tmp, k);
}

/*
 * One whole field "Name : value" (no final line end) in relaxed form,
 * without the trailing CRLF. -EINVAL when there is no colon.
 */
static int
dkim_canon_field(struct dkim_sink *s, const char *f, size_t n)
{
	const char	*colon = memchr(f, ':', n);
	size_t		 nl;

	if (colon == NULL)
		return -EINVAL;
	nl = (size_t)(colon - f);
	while (nl > 0 && (dkim_wsp(f[nl - 1]) || f[nl - 1] == '\n' ||
	    f[nl - 1] == '\r'))
		nl--;
	dkim_emit_lower(s, f, nl);
	dkim_emit(s, ":", 1);
	dkim_canon_value(s, colon + 1, n - (size_t)(colon - f) - 1);
	return 0;
}

/* Strip one trailing line end ("\r\n" or "\n") from [p, p+n). */
static size_t
dkim_chomp(const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\n') {
		n--;
		if (n > 0 && p[n - 1] == '\r')
			n--;
	}
	return n;
}

int
dkim_canon_header(const char *field, size_t len, struct buf *out)
{
	struct dkim_sink s;

	dkim_sink_init(&s, NULL, out);
	if (dkim_canon_field(&s, field, dkim_chomp(field, len)) != 0)
		return -EINVAL;
	dkim_emit(&s, "\r\n", 2);
	return dkim_sink_flush(&s);
}

static const char dkim_crlfs[] =
    "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";

/*
 * The body is mostly its own canonical form, so bytes that pass through
 * unchanged are gathered into one pending range of the input [cs, ce)
 * and hashed in as few EVP_DigestUpdate calls as possible (one for a
 * clean body); only a change (a WSP run that is not one SP, a dropped
 * trailing WSP, a bare LF, a deferred empty line) cuts the range.
 */
struct dkim_chunk {
	struct dkim_sink	*s;
	const char		*cs, *ce;
};

static void
dkim_chunk_flush(struct dkim_chunk *c)
{
	if (c->cs != NULL)
		dkim_emit(c->s, c->cs, (size_t)(c->ce - c->cs));
	c->cs = c->ce = NULL;
}

static inline void
dkim_chunk_raw(struct dkim_chunk *c, const char *p, size_t n)
{
	if (c->cs != NULL && c->ce == p) {
		c->ce += n;
		return;
	}
	dkim_chunk_flush(c);
	c->cs = p;
	c->ce = p + n;
}

static void
dkim_chunk_const(struct dkim_chunk *c, const char *p, size_t n)
{
	dkim_chunk_flush(c);
	dkim_emit(c->s, p, n);
}

static void
dkim_chunk_crlfs(struct dkim_chunk *c, size_t n)
{
	while (n > 0) {
		size_t k = n < 16 ? n : 16;

		dkim_chunk_const(c, dkim_crlfs, 2 * k);
		n -= k;
	}
}

/*
 * The first WSP run in [p, t) that relaxed canonicalisation rewrites: a
 * run starting with a TAB or holding more than one byte. t when there is
 * none, which is the usual case: a single SP between words stays as it
 * is. t[-1] is not WSP, so a run starts at t - 2 at the latest and its
 * second byte is inside [p, t): the test may read past t (up to e, the
 * end of the body) and keep only the hits before t. Sixteen bytes a
 * step with SSE2, else eight without branches on the text (SWAR).
 */
static const char *
dkim_wsp_fix(const char *p, const char *t, const char *e)
{
	const uint64_t	sp = 0x2020202020202020ULL;
	const uint64_t	ht = 0x0909090909090909ULL;

#ifdef __SSE2__
	const __m128i	vsp = _mm_set1_epi8(' '), vht = _mm_set1_epi8('\t');

	while (p < t && e - p >= 17) {
		__m128i		v0 = _mm_loadu_si128((const __m128i *)p);
		__m128i		v1 = _mm_loadu_si128((const __m128i *)(p + 1));
		unsigned	m;

		m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
		    _mm_cmpeq_epi8(v0, vht), _mm_and_si128(
		    _mm_cmpeq_epi8(v0, vsp), _mm_or_si128(
		    _mm_cmpeq_epi8(v1, vsp), _mm_cmpeq_epi8(v1, vht)))));
		if (t - p < 16)
			m &= (1u << (t - p)) - 1;
		if (m != 0)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (p < t && e - p >= 9) {
		uint64_t w0, w1, m;

		memcpy(&w0, p, 8);
		memcpy(&w1, p + 1, 8);	/* the next byte of each */
		m = dkim_eqmask(w0, ht) | (dkim_eqmask(w0, sp) &
		    (dkim_eqmask(w1, sp) | dkim_eqmask(w1, ht)));
		if (t - p < 8)
			m &= dkim_lowbytes((size_t)(t - p));
		if (m != 0)
			return p + DKIM_FIRST_BYTE(m);
		p += 8;
	}
	for (; p < t; p++)
		if (*p == '\t' || (*p == ' ' && p + 1 < t && dkim_wsp(p[1])))
			return p;
	return t;
}

/*
 * One line's text [p, t), t[-1] not WSP: runs of WSP to one SP. The
 * body goes on to e.
 */
static void
dkim_canon_line(struct dkim_chunk *c, const char *p, const char *t,
    const char *e)
{
	while (p < t) {
		const char *q = dkim_wsp_fix(p, t, e);

		dkim_chunk_raw(c, p, (size_t)(q - p));
		if (q == t)
			break;
		while (dkim_wsp(*q))
			q++;
		dkim_chunk_const(c, " ", 1);
		p = q;
	}
}

/*
 * RFC 6376 3.4.4: drop WSP at line ends, runs of WSP to one SP, drop
 * empty lines at the end, end a non-empty body with CRLF. A line of
 * only WSP is empty. Line by line (memchr), each line's text checked
 * by dkim_wsp_fix(). Line ends after the last text are deferred
 * (ncrlf) until more text follows, which is how trailing empty lines
 * disappear without look-ahead; the first nraw of them are a plain
 * "\r\n" in the input at lend, so a clean body stays one span.
 */
static void
dkim_canon_body_sink(struct dkim_sink *s, const char *body, size_t len)
{
	struct dkim_chunk	 c = { s, NULL, NULL };
	const char		*p = body, *e = body + len, *lend = NULL;
	size_t			 ncrlf = 0, nraw = 0;
	bool			 any = false;

	while (p < e) {
		const char	*nl = memchr(p, '\n', (size_t)(e - p));
		const char	*t = nl != NULL ? nl : e;
		bool		 crlf = nl != NULL && nl > p && nl[-1] == '\r';

		if (crlf)
			t--;
		while (t > p && dkim_wsp(t[-1]))
			t--;
		if (t == p) {			/* empty, or only WSP */
			if (nl == NULL)
				break;
			if (crlf && nl == p + 1 && nraw == ncrlf &&
			    (nraw == 0 || lend + 2 * nraw == p)) {
				if (nraw == 0)
					lend = p;
				nraw++;
			}
			ncrlf++;
			p = nl + 1;
			continue;
		}
		/* Text: the line ends deferred so far were not trailing. */
		if (nraw > 0)
			dkim_chunk_raw(&c, lend, 2 * nraw);
		dkim_chunk_crlfs(&c, ncrlf - nraw);
		dkim_canon_line(&c, p, t, e);
		any = true;
		if (nl == NULL) {
			dkim_chunk_const(&c, "\r\n", 2);
			ncrlf = nraw = 0;
			break;
		}
		ncrlf = 1;
		nraw = crlf && t + 1 == nl ? 1 : 0;
		lend = nraw > 0 ? t : NULL;
		p = nl + 1;
	}
	if (any && nraw > 0)
		dkim_chunk_raw(&c, lend, 2);
	else if (any && ncrlf > 0)
		dkim_chunk_const(&c, "\r\n", 2);
	dkim_chunk_flush(&c);
}

int
dkim_canon_body(const char *body, size_t len, struct buf *out)
{
	struct dkim_sink s;

	dkim_sink_init(&s, NULL, out);
	dkim_canon_body_sink(&s, body, len);
	return dkim_sink_flush(&s);
}

static void
dkim_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dkim_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* LDH labels (and '_', used in selectors), dots between, bounded. */
static bool
dkim_name_ok(const char *s, size_t max)
{
	size_t len = strlen(s), lab = 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' ||
		    (c == '-' && lab > 0)))
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0 && s[len - 1] != '-';
}

/* RFC 5322 2.2: field-name = 1*ftext, ftext = %d33-57 / %d59-126 */
static bool
dkim_hname_ok(const char *s, size_t len)
{
	if (len == 0 || len > DKIM_HNAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == ':')
			return false;
	}
	return true;
}

static void
dkim_hname_set(struct dkim_hname *h, const char *s, size_t len,
    bool oversign)
{
	for (size_t i = 0; i < len; i++)
		h->name[i] = (s[i] >= 'A' && s[i] <= 'Z') ?
		    (char)(s[i] + 32) : s[i];
	h->name[len] = '\0';
	h->len = len;
	h->oversign = oversign;
}

/* Never prompt for a pass phrase: an encrypted key is a config error. */
static int
dkim_no_pass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Read the whole (small, regular) file into a fresh buffer. */
static int
dkim_read_file(const char *path, char **data, size_t *len, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*d;
	ssize_t		 r;
	size_t		 n = 0;
	int		 fd, rc;

	/* O_NONBLOCK: a FIFO named here must not hang startup. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		rc = -errno;
		dkim_errf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		dkim_errf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_size > DKIM_KEYFILE_MAX) {
		close(fd);
		dkim_errf(err, errlen, "%s: larger than %d bytes, not a key",
		    path, DKIM_KEYFILE_MAX);
		return -EFBIG;
	}
	if ((d = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (n < (size_t)st.st_size) {
		r = read(fd, d + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			OPENSSL_cleanse(d, n);
			free(d);
			close(fd);
			dkim_errf(err, errlen, "%s: read error", path);
			return rc;
		}
		n += (size_t)r;
	}
	close(fd);
	d[n] = '\0';
	*data = d;
	*len = n;
	return 0;
}

/* The reusable contexts for k->pkey. 0 or -EIO. */
static int
dkim_key_contexts(struct dkim_key *k)
{
	if ((k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (k->md = EVP_MD_CTX_new()) == NULL)
		return -EIO;
	if (k->alg == DKIM_ALG_RSA_SHA256) {
		/* RFC 8017 RSASSA-PKCS1-v1_5 over our own SHA-256. */
		if ((k->rsa = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey,
		    NULL)) == NULL ||
		    EVP_PKEY_sign_init(k->rsa) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(k->rsa,
		    RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(k->rsa, k->sha256) != 1)
			return -EIO;
	} else {
		if ((k->ed = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit_ex(k->ed, NULL, NULL, NULL, NULL,
		    k->pkey, NULL) != 1)
			return -EIO;
	}
	return 0;
}

static void
dkim_key_defaults(struct dkim_key *k)
{
	size_t n = sizeof(dkim_default_hdrs) / sizeof(dkim_default_hdrs[0]);

	for (size_t i = 0; i < n; i++)
		dkim_hname_set(&k->hdr[i], dkim_default_hdrs[i].name,
		    strlen(dkim_default_hdrs[i].name),
		    dkim_default_hdrs[i].oversign);
	k->nhdr = n;
}

struct dkim_key *
dkim_key_load(const char *pem_path, const char *domain, const char *selector,
    char *err, size_t errlen)
{
	struct dkim_key	*k = NULL;
	EVP_PKEY	*pk = NULL;
	BIO		*bio = NULL;
	char		*data = NULL;
	size_t		 len = 0;
	int		 bits;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (pem_path == NULL || *pem_path == '\0') {
		dkim_errf(err, errlen, "no key file given");
		return NULL;
	}
	if (domain == NULL || !dkim_name_ok(domain, DKIM_DOMAIN_MAX)) {
		dkim_errf(err, errlen, "%s: bad DKIM domain (d=)", pem_path);
		return NULL;
	}
	if (selector == NULL || !dkim_name_ok(selector, DKIM_SELECTOR_MAX)) {
		dkim_errf(err, errlen, "%s: bad DKIM selector (s=)", pem_path);
		return NULL;
	}
	if (dkim_read_file(pem_path, &data, &len, err, errlen) != 0)
		return NULL;
	if (strstr(data, "ENCRYPTED") != NULL) {
		dkim_errf(err, errlen, "%s: encrypted private keys are not "
		    "supported (store it unencrypted, mode 0600)", pem_path);
		goto fail;
	}
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
		goto fail_ssl;
	pk = PEM_read_bio_PrivateKey(bio, NULL, dkim_no_pass, NULL);
	if (pk == NULL) {
		dkim_errf(err, errlen, "%s: not a PEM private key%s", pem_path,
		    strstr(data, "PUBLIC KEY") != NULL ?
		    " (this is a public key)" : "");
		goto fail;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL)
		goto fail_ssl;
	if (EVP_PKEY_is_a(pk, "RSA")) {
		bits = EVP_PKEY_get_bits(pk);
		if (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS) {
			dkim_errf(err, errlen, "%s: RSA key has %d bits; "
			    "DKIM needs %d..%d (RFC 8301)", pem_path, bits,
			    DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
			goto fail;
		}
		k->alg = DKIM_ALG_RSA_SHA256;
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		k->alg = DKIM_ALG_ED25519_SHA256;
	} else {
		dkim_errf(err, errlen, "%s: %s key; DKIM needs RSA or Ed25519",
		    pem_path, EVP_PKEY_get0_type_name(pk) != NULL ?
		    EVP_PKEY_get0_type_name(pk) : "unknown");
		goto fail;
	}
	k->pkey = pk;
	pk = NULL;
	snprintf(k->domain, sizeof(k->domain), "%s", domain);
	snprintf(k->selector, sizeof(k->selector), "%s", selector);
	dkim_key_defaults(k);
	if (dkim_key_contexts(k) != 0)
		goto fail_ssl;
	BIO_free(bio);
	OPENSSL_cleanse(data, len);
	free(data);
	return k;
fail_ssl:
	dkim_errf(err, errlen, "%s: OpenSSL could not set up the key",
	    pem_path);
fail:
	dkim_key_free(k);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	OPENSSL_cleanse(data, len);
	free(data);
	return NULL;
}

struct dkim_key *
dkim_key_dup(const struct dkim_key *k)
{
	struct dkim_key *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->alg = k->alg;
	memcpy(d->domain, k->domain, sizeof(d->domain));
	memcpy(d->selector, k->selector, sizeof(d->selector));
	memcpy(d->hdr, k->hdr, sizeof(d->hdr));
	d->nhdr = k->nhdr;
	if (EVP_PKEY_up_ref(k->pkey) != 1) {
		free(d);
		return NULL;
	}
	d->pkey = k->pkey;
	if (dkim_key_contexts(d) != 0) {
		dkim_key_free(d);
		return NULL;
	}
	return d;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_MD_CTX_free(k->ed);
	EVP_PKEY_CTX_free(k->rsa);
	EVP_MD_CTX_free(k->md);
	EVP_MD_free(k->sha256);
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

const char *
dkim_key_domain(const struct dkim_key *k)
{
	return k->domain;
}

const char *
dkim_key_selector(const struct dkim_key *k)
{
	return k->selector;
}

const char *
dkim_alg_name(enum dkim_alg alg)
{
	switch (alg) {
	case DKIM_ALG_RSA_SHA256:
		return "rsa-sha256";
	case DKIM_ALG_ED25519_SHA256:
		return "ed25519-sha256";
	}
	return "?";
}

int
dkim_key_add_headers(struct dkim_key *k, const char *const *names, size_t n,
    char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const char	*s = names[i];
		size_t		 len = s != NULL ? strlen(s) : 0;
		bool		 dup = false;

		if (!dkim_hname_ok(s, len)) {
			dkim_errf(err, errlen, "'%.64s' is not a header name "
			    "(printable ASCII without ':' or space, at most "
			    "%d)", s != NULL ? s : "", DKIM_HNAME_MAX);
			return -EINVAL;
		}
		if (strcasecmp(s, "dkim-signature") == 0) {
			dkim_errf(err, errlen, "DKIM-Signature cannot be "
			    "signed");
			return -EINVAL;
		}
		for (size_t j = 0; j < k->nhdr && !dup; j++)
			dup = k->hdr[j].len == len &&
			    strncasecmp(k->hdr[j].name, s, len) == 0;
		if (dup)
			continue;
		if (k->nhdr == DKIM_HEADERS_MAX) {
			dkim_errf(err, errlen, "at most %d signed header names",
			    DKIM_HEADERS_MAX);
			return -E2BIG;
		}
		dkim_hname_set(&k->hdr[k->nhdr++], s, len, false);
	}
	return 0;
}

static int
dkim_b64_append(struct buf *out, const unsigned char *p, size_t n)
{
	char	tmp[1024];
	int	m;

	if (4 * ((n + 2) / 3) + 1 > sizeof(tmp))
		return -E2BIG;
	m = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
	return m < 0 ? -EIO : buf_append(out, tmp, (size_t)m);
}

int
dkim_key_dns_txt(const struct dkim_key *k, struct buf *out)
{
	unsigned char	 der[1024], *p = der;
	size_t		 n = sizeof(der);
	int		 m, rc;

	if (k->alg == DKIM_ALG_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(k->pkey, der, &n) != 1)
			return -EIO;
		rc = buf_puts(out, "v=DKIM1; k=ed25519; p=");
	} else {
		if ((m = i2d_PUBKEY(k->pkey, NULL)) <= 0 ||
		    (size_t)m > sizeof(der) || i2d_PUBKEY(k->pkey, &p) != m)
			return -EIO;
		n = (size_t)m;
		rc = buf_puts(out, "v=DKIM1; k=rsa; p=");
	}
	return rc != 0 ? rc : dkim_b64_append(out, der, n);
}

/* A header field found in the message and wanted for h=. */
struct dkim_field {
	const char	*p;	/* field start (the name) */
	size_t		 len;	/* to the end of its last line, no line end */
	size_t		 hidx;	/* into k->hdr */
};

/*
 * Walk the header block: record the fields whose names are in k->hdr
 * (at most DKIM_SIGNED_MAX) and find where the body starts.
 */
static int
dkim_scan(const struct dkim_key *k, const char *msg, size_t len,
    struct dkim_field *f, size_t *nf, size_t *body_off)
{
	const char	*p = msg, *e = msg + len, *nl;
	struct dkim_field *cur = NULL;
	size_t		 n = 0;

	*body_off = len;
	while (p < e) {
		const char	*lend;

		nl = memchr(p, '\n', (size_t)(e - p));
		lend = nl != NULL ? nl : e;
		if (lend > p && lend[-1] == '\r' && nl != NULL)
			lend--;
		if (lend == p) {		/* the empty line */
			*body_off = nl != NULL ? (size_t)(nl + 1 - msg) : len;
			break;
		}
		if (dkim_wsp(*p)) {		/* continuation */
			if (cur != NULL)
				cur->len = (size_t)(lend - cur->p);
		} else {
			const char	*colon;
			size_t		 nl_len;

			cur = NULL;
			colon = memchr(p, ':', (size_t)(lend - p));
			if (colon != NULL) {
				nl_len = (size_t)(colon - p);
				while (nl_len > 0 && dkim_wsp(p[nl_len - 1]))
					nl_len--;
				for (size_t i = 0; i < k->nhdr; i++) {
					if (k->hdr[i].len != nl_len ||
					    strncasecmp(k->hdr[i].name, p,
					    nl_len) != 0)
						continue;
					if (n == DKIM_SIGNED_MAX)
						return -E2BIG;
					cur = &f[n++];
					cur->p = p;
					cur->len = (size_t)(lend - p);
					cur->hidx = i;
					break;
				}
			}
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	*nf = n;
	return 0;
}

/* Folding writer for the signature header. */
struct dkim_fold {
	struct buf	*b;
	size_t		 col;
	int		 err;
};

static void
dkim_fold_raw(struct dkim_fold *w, const char *s, size_t n)
{
	if (w->err == 0 && (w->err = buf_append(w->b, s, n)) == 0)
		w->col += n;
}

/* Append s after sep, or on a new line when it would pass the column. */
static void
dkim_fold_tok(struct dkim_fold *w, const char *sep, const char *s, size_t n)
{
	size_t sl = strlen(sep);

	if (w->col + sl + n > DKIM_FOLD_COL) {
		dkim_fold_raw(w, "\r\n ", 3);
		w->col = 1;
	} else {
		dkim_fold_raw(w, sep, sl);
	}
	dkim_fold_raw(w, s, n);
}

/* Base64 value folded wherever the line is full (FWS allowed there). */
static void
dkim_fold_b64(struct dkim_fold *w, const char *s, size_t n)
{
	while (n > 0 && w->err == 0) {
		size_t room = w->col < DKIM_FOLD_COL ? DKIM_FOLD_COL - w->col :
		    0, k;

		if (room == 0) {
			dkim_fold_raw(w, "\r\n ", 3);
			w->col = 1;
			continue;
		}
		k = n < room ? n : room;
		dkim_fold_raw(w, s, k);
		s += k;
		n -= k;
	}
}

/*
 * tag, value, end into tmp (room for "d=" and the longest domain), the
 * signature header's pieces without printf's cost. Returns the length.
 */
static size_t
dkim_tag(char *tmp, const char *tag, const char *v, size_t vlen, char end)
{
	size_t tl = strlen(tag);

	memcpy(tmp, tag, tl);
	memcpy(tmp + tl, v, vlen);
	tmp[tl + vlen] = end;
	return tl + vlen + 1;
}

/* "t=<now_s>;" */
static size_t
dkim_tag_time(char *tmp, size_t cap, int64_t now_s)
{
	char		 d[24], *p = d + sizeof(d);
	uint64_t	 v = (uint64_t)now_s;

	if (now_s < 0)		/* not a real clock; keep it printable */
		return (size_t)snprintf(tmp, cap, "t=%lld;", (long long)now_s);
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	return dkim_tag(tmp, "t=", p, (size_t)(d + sizeof(d) - p), ';');
}

static int
dkim_digest_final(EVP_MD_CTX *md, unsigned char out[32])
{
	unsigned int n = 0;

	return EVP_DigestFinal_ex(md, out, &n) == 1 && n == 32 ? 0 : -EIO;
}

static int
dkim_sign_digest(const struct dkim_key *k, const unsigned char hh[32],
    unsigned char *sig, size_t *siglen)
{
	size_t cap = *siglen;

	if (k->alg == DKIM_ALG_RSA_SHA256)
		return EVP_PKEY_sign(k->rsa, sig, siglen, hh, 32) == 1 ? 0 :
		    -EIO;
	/*
	 * RFC 8463 3: PureEdDSA (Ed25519) whose message is the SHA-256 of
	 * the canonical header data, not that data itself. OpenSSL 3.0
	 * lets the one-shot context be reused; should a later version
	 * refuse, initialise it again and retry once.
	 */
	if (EVP_DigestSign(k->ed, sig, siglen, hh, 32) == 1)
		return 0;
	*siglen = cap;
	if (EVP_MD_CTX_reset(k->ed) != 1 ||
	    EVP_DigestSignInit_ex(k->ed, NULL, NULL, NULL, NULL, k->pkey,
	    NULL) != 1 ||
	    EVP_DigestSign(k->ed, sig, siglen, hh, 32) != 1)
		return -EIO;
	return 0;
}

int
dkim_sign(const struct dkim_key *k, const char *msg, size_t len,
    int64_t now_s, struct buf *header_out)
{
	struct dkim_field	 f[DKIM_SIGNED_MAX];
	struct dkim_sink	 s;
	struct dkim_fold	 w = { header_out, 0, 0 };
	unsigned char		 bh[32], hh[32], sig[DKIM_RSA_MAX_BITS / 8];
	char			 tmp[DKIM_DOMAIN_MAX + 64];
	char			 b64[4 * ((sizeof(sig) + 2) / 3) + 1];
	size_t			 nf, body_off, siglen = sizeof(sig), start, n;
	size_t			 nsigned = 0, nfrom = 0;
	int			 rc, m;

	if ((rc = dkim_scan(k, msg, len, f, &nf, &body_off)) != 0)
		return rc;
	for (size_t i = 0; i < nf; i++)
		if (f[i].hidx == 0)	/* "from" is always first */
			nfrom++;
	if (nfrom != 1)
		return -EINVAL;		/* RFC 6376 5.4: From is required */
	for (size_t h = 0; h < k->nhdr; h++) {
		for (size_t i = 0; i < nf; i++)
			nsigned += f[i].hidx == h;
		nsigned += k->hdr[h].oversign;
	}
	if (nsigned > DKIM_SIGNED_MAX)
		return -E2BIG;

	/* bh= (RFC 6376 3.7 step 1) */
	if (EVP_DigestInit_ex(k->md, k->sha256, NULL) != 1)
		return -EIO;
	dkim_sink_init(&s, k->md, NULL);
	dkim_canon_body_sink(&s, msg + body_off, len - body_off);
	if (dkim_sink_flush(&s) != 0 || dkim_digest_final(k->md, bh) != 0)
		return -EIO;

	/* The header, up to and including "b=". */
	start = header_out->len;
	dkim_fold_raw(&w, "DKIM-Signature: v=1;", 20);
	n = dkim_tag(tmp, "a=", dkim_alg_name(k->alg),
	    strlen(dkim_alg_name(k->alg)), ';');
	dkim_fold_tok(&w, " ", tmp, n);
	dkim_fold_tok(&w, " ", "c=relaxed/relaxed;", 18);
	n = dkim_tag(tmp, "d=", k->domain, strlen(k->domain), ';');
	dkim_fold_tok(&w, " ", tmp, n);
	n = dkim_tag(tmp, "s=", k->selector, strlen(k->selector), ';');
	dkim_fold_tok(&w, " ", tmp, n);
	n = dkim_tag_time(tmp, sizeof(tmp), now_s);
	dkim_fold_tok(&w, " ", tmp, n);
	{
		/* Each name carries its ':' (or the final ';'), so a fold
		 * never pushes a separator past the column. */
		size_t done = 0;

		for (size_t h = 0; h < k->nhdr; h++) {
			size_t c = 0;

			for (size_t i = 0; i < nf; i++)
				c += f[i].hidx == h;
			c += k->hdr[h].oversign;
			for (size_t j = 0; j < c; j++, done++) {
				n = dkim_tag(tmp, done == 0 ? "h=" : "",
				    k->hdr[h].name, k->hdr[h].len,
				    done + 1 == nsigned ? ';' : ':');
				dkim_fold_tok(&w, done == 0 ? " " : "", tmp,
				    n);
			}
		}
	}
	m = EVP_EncodeBlock((unsigned char *)b64, bh, 32);
	n = dkim_tag(tmp, "bh=", b64, (size_t)m, ';');
	dkim_fold_tok(&w, " ", tmp, n);
	dkim_fold_tok(&w, " ", "b=", 2);
	if (w.err != 0) {
		rc = w.err;
		goto fail;
	}

	/*
	 * Header hash (RFC 6376 3.7 step 2): the h= instances, each name
	 * taken bottom-up (5.4.2), an over-signed extra contributes
	 * nothing; then this header with an empty b= and no final CRLF.
	 */
	rc = -EIO;
	if (EVP_DigestInit_ex(k->md, k->sha256, NULL) != 1)
		goto fail;
	for (size_t h = 0; h < k->nhdr; h++) {
		for (size_t i = nf; i-- > 0;) {
			if (f[i].hidx != h)
				continue;
			dkim_canon_field(&s, f[i].p, f[i].len);
			dkim_emit(&s, "\r\n", 2);
		}
	}
	dkim_canon_field(&s, header_out->data + start,
	    header_out->len - start);
	if (dkim_sink_flush(&s) != 0 || dkim_digest_final(k->md, hh) != 0)
		goto fail;
	if ((rc = dkim_sign_digest(k, hh, sig, &siglen)) != 0)
		goto fail;
	m = EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	dkim_fold_b64(&w, b64, (size_t)m);
	dkim_fold_raw(&w, "\r\n", 2);
	if ((rc = w.err) != 0)
		goto fail;
	return 0;
fail:
	header_out->len = start;
	if (header_out->data != NULL)
		header_out->data[start] = '\0';
	return rc;
}

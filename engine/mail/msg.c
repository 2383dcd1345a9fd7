/*
 * msg: one RFC 5322 / MIME message from rendered parts. See msg.h.
 *
 * Everything is appended straight into the caller's buffer, so a buffer
 * reused per message stops allocating after warm-up. On any error the
 * buffer is cut back to its length on entry: no half message is left.
 *
 * Header lines aim at 78 octets (RFC 5322 2.1.1 SHOULD) and never exceed
 * 998: ASCII values are folded at whitespace; values that are not ASCII,
 * or that hold a word too long to fold, become RFC 2047 encoded-words
 * (at most 75 octets each, never splitting a UTF-8 character). Control
 * characters in subject and extra header values are turned into spaces
 * so that no value can start a header of its own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/buf.h"
#include "mail/msg.h"

#define MSG_LINE_SOFT	78	/* RFC 5322 2.1.1 SHOULD */
#define MSG_LINE_HARD	998	/* RFC 5322 2.1.1 MUST, excluding CRLF */
#define MSG_EW_MAX	75	/* RFC 2047 2: one encoded-word */
#define MSG_EW_OVERHEAD	12	/* "=?UTF-8?Q?" + "?=" */
#define MSG_WORD_MAX	900	/* longest ASCII word we fold around */
#define MSG_NAME_MAX	76	/* longest extra header name accepted */
#define MSG_QP_LINE	76	/* RFC 2045 6.7 (5) */
#define MSG_BOUNDARY_TRIES 8

/* Header writer: tracks the current line's length for folding. */
struct msg_hdr {
	struct buf	*b;		/* borrows: the output */
	size_t		 linelen;	/* octets on the current line */
};

static int
msg_isctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Whitespace for folding purposes; controls count as (and become) SP. */
static int
msg_isfws(unsigned char c)
{
	return c == ' ' || c == '\t' || msg_isctl(c);
}

static int
msg_put(struct msg_hdr *h, const char *s, size_t n)
{
	h->linelen += n;
	return buf_append(h->b, s, n);
}

static int
msg_fold(struct msg_hdr *h)
{
	h->linelen = 0;
	return buf_append(h->b, "\r\n", 2);
}

static int
msg_hdr_begin(struct msg_hdr *h, const char *name)
{
	int	r;

	h->linelen = 0;
	if ((r = msg_put(h, name, strlen(name))) != 0)
		return r;
	return msg_put(h, ":", 1);
}

static int
msg_hdr_end(struct msg_hdr *h)
{
	return msg_fold(h);
}

/* Length of the UTF-8 character at s, or 1 when it is not valid UTF-8. */
static size_t
msg_utf8_unit(const unsigned char *s, size_t n)
{
	size_t	 len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 1;
	if (len > n)
		return 1;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 1;
	return len;
}

/* RFC 2047 5 (3): the Q characters safe even inside a phrase. */
static int
msg_q_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '!' || c == '*' || c == '+' ||
	    c == '-' || c == '/';
}

static size_t
msg_q_cost(unsigned char c)
{
	return msg_q_safe(c) || msg_isfws(c) ? 1 : 3;
}

static const char msg_hex[] = "0123456789ABCDEF";
static const char msg_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
msg_put_q(struct msg_hdr *h, const unsigned char *s, size_t n)
{
	char	 e[3 * 32];
	size_t	 i, o;
	int	 r = 0;

	/* Into a local buffer, 32 octets at a time: one append each. */
	for (i = 0; i < n && r == 0;) {
		for (o = 0; i < n && o < sizeof(e) - 3; i++) {
			if (msg_isfws(s[i]))
				e[o++] = '_';
			else if (msg_q_safe(s[i]))
				e[o++] = (char)s[i];
			else {
				e[o++] = '=';
				e[o++] = msg_hex[s[i] >> 4];
				e[o++] = msg_hex[s[i] & 15];
			}
		}
		r = msg_put(h, e, o);
	}
	return r;
}

static int
msg_put_b(struct msg_hdr *h, const unsigned char *s, size_t n)
{
	char		 e[4];
	unsigned char	 c[3];
	size_t		 i, k;
	uint32_t	 v;
	int		 r = 0;

	for (i = 0; i < n && r == 0; i += 3) {
		/* Controls were already refused or made spaces by callers. */
		for (k = 0; k < 3; k++)
			c[k] = i + k < n ? (msg_isctl(s[i + k]) ? ' ' :
			    s[i + k]) : 0;
		v = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
		e[0] = msg_b64[(v >> 18) & 63];
		e[1] = msg_b64[(v >> 12) & 63];
		e[2] = i + 1 < n ? msg_b64[(v >> 6) & 63] : '=';
		e[3] = i + 2 < n ? msg_b64[v & 63] : '=';
		r = msg_put(h, e, 4);
	}
	return r;
}

/*
 * Append s[0..n) as a run of encoded-words, each on the current line when
 * it fits in MSG_LINE_SOFT and on a folded line otherwise. Q is chosen when
 * it is no longer than B for the whole value (mostly-ASCII text stays
 * readable). Words end on UTF-8 character boundaries (RFC 2047 5 (3)).
 */
static int
msg_put_words(struct msg_hdr *h, const unsigned char *s, size_t n)
{
	size_t	 i, qlen = 0, blen, budget, take, cost, u, k;
	int	 useq, r;

	for (i = 0; i < n; i++)
		qlen += msg_q_cost(s[i]);
	blen = (n + 2) / 3 * 4;
	useq = qlen <= blen;
	i = 0;
	while (i < n) {
		budget = MSG_LINE_SOFT > h->linelen + 1 + MSG_EW_OVERHEAD ?
		    MSG_LINE_SOFT - h->linelen - 1 - MSG_EW_OVERHEAD : 0;
		if (budget < 12) {
			/* Not even one 4-byte character fits: fold first. */
			if ((r = msg_fold(h)) != 0)
				return r;
			continue;
		}
		if (budget > MSG_EW_MAX - MSG_EW_OVERHEAD)
			budget = MSG_EW_MAX - MSG_EW_OVERHEAD;
		take = 0;
		cost = 0;
		while (i + take < n) {
			u = msg_utf8_unit(s + i + take, n - i - take);
			if (useq) {
				size_t	 c = 0;

				for (k = 0; k < u; k++)
					c += msg_q_cost(s[i + take + k]);
				if (cost + c > budget)
					break;
				cost += c;
			} else if ((take + u + 2) / 3 * 4 > budget)
				break;
			take += u;
		}
		if ((r = msg_put(h, useq ? " =?UTF-8?Q?" : " =?UTF-8?B?",
		    11)) != 0)
			return r;
		r = useq ? msg_put_q(h, s + i, take) :
		    msg_put_b(h, s + i, take);
		if (r != 0 || (r = msg_put(h, "?=", 2)) != 0)
			return r;
		i += take;
	}
	return 0;
}

/*
 * Append s[0..n) folded at whitespace, controls written as spaces. Leading
 * and trailing whitespace is dropped. The caller made sure no word is
 * longer than MSG_WORD_MAX, so no line can reach MSG_LINE_HARD.
 */
static int
msg_put_folded(struct msg_hdr *h, const unsigned char *s, size_t n)
{
	size_t	 i = 0, ws, w, k;
	int	 r, first = 1;

	while (n > 0 && msg_isfws(s[n - 1]))
		n--;
	while (i < n && msg_isfws(s[i]))
		i++;
	while (i < n) {
		ws = i;
		while (i < n && msg_isfws(s[i]))
			i++;
		w = i;
		while (i < n && !msg_isfws(s[i]))
			i++;
		if (first) {
			if ((r = msg_put(h, " ", 1)) != 0)
				return r;
			first = 0;
		} else if (h->linelen + (i - ws) > MSG_LINE_SOFT &&
		    (r = msg_fold(h)) != 0)
			return r;
		for (k = ws; k < w; k++)
			if ((r = msg_put(h, s[k] == '\t' ? "\t" : " ", 1)) != 0)
				return r;
		if ((r = msg_put(h, (const char *)s + w, i - w)) != 0)
			return r;
	}
	return 0;
}

/* Has s[0..n) a word too long to fold around? */
static int
msg_has_long_word(const unsigned char *s, size_t n)
{
	size_t	 i, run = 0;

	for (i = 0; i < n; i++) {
		run = msg_isfws(s[i]) ? 0 : run + 1;
		if (run > MSG_WORD_MAX)
			return 1;
	}
	return 0;
}

/* Does s[0..n) need encoded-words: 8-bit, or a word too long to fold? */
static int
msg_needs_words(const unsigned char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return 1;
	return msg_has_long_word(s, n);
}

/*
 * An unstructured header (Subject, extra headers). With guard, text that
 * a reader would take for an encoded-word ("=?...?=") is itself encoded,
 * as RFC 2047 5 asks, so merge data cannot smuggle in a decoded string.
 */
static int
msg_put_unstructured(struct msg_hdr *h, const char *name, const char *v,
    int guard)
{
	const unsigned char	*s = (const unsigned char *)(v ? v : "");
	size_t			 n = strlen((const char *)s);
	int			 r;

	if ((r = msg_hdr_begin(h, name)) != 0)
		return r;
	while (n > 0 && msg_isfws(s[n - 1]))
		n--;
	while (n > 0 && msg_isfws(s[0])) {
		s++;
		n--;
	}
	if (msg_needs_words(s, n) ||
	    (guard && memmem(s, n, "=?", 2) != NULL))
		r = msg_put_words(h, s, n);
	else
		r = msg_put_folded(h, s, n);
	return r != 0 ? r : msg_hdr_end(h);
}

/*
 * A configured mailbox (From, Reply-To): `addr`, `Name <addr>` or
 * `"Name" <addr>`. Controls are refused (-EINVAL) rather than repaired:
 * this is configuration, not merge data. A non-ASCII display name becomes
 * encoded-words; a non-ASCII address is left to RFC 6532.
 */
static int
msg_put_mailbox(struct msg_hdr *h, const char *name, const char *v)
{
	const unsigned char	*s = (const unsigned char *)v, *lt = NULL;
	unsigned char		 unq[256];
	size_t			 n, i, a, e, k;
	int			 r, high = 0;

	if (v == NULL || *v == '\0')
		return -EINVAL;
	n = strlen(v);
	for (i = 0; i < n; i++) {
		if (msg_isctl(s[i]))
			return -EINVAL;
		if (s[i] >= 0x80)
			high = 1;
		if (s[i] == '<')
			lt = s + i;
	}
	if ((r = msg_hdr_begin(h, name)) != 0)
		return r;
	if (!high || lt == NULL || lt == s) {
		/* Addresses cannot be encoded: refuse what cannot fold. */
		if (msg_has_long_word(s, n))
			return -EINVAL;
		if ((r = msg_put_folded(h, s, n)) != 0)
			return r;
		return msg_hdr_end(h);
	}
	/* Display name: s[0..lt), trimmed, outer quotes dropped. */
	a = 0;
	e = (size_t)(lt - s);
	while (a < e && msg_isfws(s[a]))
		a++;
	while (e > a && msg_isfws(s[e - 1]))
		e--;
	if (e - a >= 2 && s[a] == '"' && s[e - 1] == '"') {
		a++;
		e--;
		/* RFC 5322 3.2.4: undo quoted-pairs; the words carry any. */
		if (e - a <= sizeof(unq)) {
			for (i = a, k = 0; i < e; i++) {
				if (s[i] == '\\' && i + 1 < e)
					i++;
				unq[k++] = s[i];
			}
			if (k > 0 && (r = msg_put_words(h, unq, k)) != 0)
				return r;
			a = e;
		}
	}
	if (e > a && (r = msg_put_words(h, s + a, e - a)) != 0)
		return r;
	n -= (size_t)(lt - s);
	if (n > MSG_WORD_MAX)
		return -EINVAL;
	if (h->linelen + 1 + n > MSG_LINE_SOFT && (r = msg_fold(h)) != 0)
		return r;
	if ((r = msg_put(h, " ", 1)) != 0 ||
	    (r = msg_put(h, (const char *)lt, n)) != 0)
		return r;
	return msg_hdr_end(h);
}

/*
 * Octets a token may not hold, one bit per set: a table lookup per octet
 * rather than a strchr over the set.
 */
#define MSG_BAD_ADDR	0x01	/* <>(),;:"\[] */
#define MSG_BAD_AT	0x02	/* @, with ADDR: a Message-ID half */
#define MSG_BAD_URI	0x04	/* <>", */
#define MSG_BAD_CID	0x08	/* <>"()[]\,;: */
static const unsigned char msg_bad[256] = {
	['<'] = 0x0d, ['>'] = 0x0d, ['('] = 0x09, [')'] = 0x09,
	[','] = 0x0d, [';'] = 0x09, [':'] = 0x09, ['"'] = 0x0d,
	['\\'] = 0x09, ['['] = 0x09, [']'] = 0x09, ['@'] = 0x02,
};

/* A bare address or Message-ID half: printable, no space or specials. */
static int
msg_valid_token(const char *s, unsigned bad, int allow8)
{
	size_t	 n;

	if (s == NULL || *s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		unsigned char	 c = (unsigned char)s[n];

		if (msg_isctl(c) || c == ' ' || (c >= 0x80 && !allow8) ||
		    (msg_bad[c] & bad))
			return 0;
	}
	return n <= MSG_WORD_MAX / 2;
}

/* RFC 5322 2.2: ftext is printable ASCII except ':'. */
static int
msg_valid_name(const char *name)
{
	static const char *const reserved[] = {
		"Date", "Message-ID", "From", "To", "Cc", "Bcc", "Subject",
		"Reply-To", "Sender", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding",
	};
	static const size_t reslen[] = { 4, 10, 4, 2, 2, 3, 7, 8, 6, 12, 12,
		25 };
	size_t	 n, i;

	if (name == NULL)
		return 0;
	for (n = 0; name[n] != '\0'; n++)
		if ((unsigned char)name[n] <= 32 ||
		    (unsigned char)name[n] >= 127 || name[n] == ':')
			return 0;
	if (n == 0 || n > MSG_NAME_MAX)
		return 0;
	/* Headers we write ourselves would be duplicated or contradicted. */
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (reslen[i] == n && strcasecmp(name, reserved[i]) == 0)
			return 0;
	return 1;
}

/*
 * ASCII case-insensitive: does s start with lower-case p (n octets)?
 * strncasecmp goes through the locale, on every message.
 */
static int
msg_prefix_ci(const char *s, const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		if (c != (unsigned char)p[i])
			return 0;
	}
	return 1;
}

/* Two decimal digits of v (0..99). */
static void
msg_put2(char *d, int v)
{
	d[0] = (char)('0' + v / 10);
	d[1] = (char)('0' + v % 10);
}

/* Append the strings up to NULL: header lines without printf. */
static int
msg_cat(struct buf *b, ...)
{
	va_list		 ap;
	const char	*s;
	int		 r = 0;

	va_start(ap, b);
	while (r == 0 && (s = va_arg(ap, const char *)) != NULL)
		r = buf_append(b, s, strlen(s));
	va_end(ap);
	return r;
}

/* RFC 5322 3.3, always in UTC. */
static int
msg_put_date(struct buf *b, int64_t date_ms)
{
	static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed",
		"Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm	 tm;
	time_t		 t;
	int64_t		 sec;
	char		 d[40];

	sec = date_ms / 1000 - (date_ms % 1000 < 0 ? 1 : 0);
	t = (time_t)sec;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1900 ||
	    tm.tm_year + 1900 > 9999)
		return -EINVAL;
	/* "Date: Tue, 14 Nov 2023 22:13:20 +0000": by hand, no printf. */
	memcpy(d, "Date: ", 6);
	memcpy(d + 6, wday[tm.tm_wday], 3);
	memcpy(d + 9, ", ", 2);
	msg_put2(d + 11, tm.tm_mday);
	d[13] = ' ';
	memcpy(d + 14, mon[tm.tm_mon], 3);
	d[17] = ' ';
	msg_put2(d + 18, (tm.tm_year + 1900) / 100);
	msg_put2(d + 20, (tm.tm_year + 1900) % 100);
	d[22] = ' ';
	msg_put2(d + 23, tm.tm_hour);
	d[25] = ':';
	msg_put2(d + 26, tm.tm_min);
	d[28] = ':';
	msg_put2(d + 29, tm.tm_sec);
	memcpy(d + 31, " +0000\r\n", 8);
	return buf_append(b, d, 39);
}

/* Index of the first CR or LF in s[i..n), or n: memchr beats a byte loop. */
static size_t
msg_eol(const char *s, size_t i, size_t n)
{
	const char	*lf, *cr;
	size_t		 e;

	lf = memchr(s + i, '\n', n - i);
	e = lf != NULL ? (size_t)(lf - s) : n;
	cr = memchr(s + i, '\r', e - i);
	return cr != NULL ? (size_t)(cr - s) : e;
}

/* QP: printable ASCII other than '=' and space, copied as it is. */
static const unsigned char msg_qp_plain[256] = {
	['!'] = 1, ['"'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1,
	['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1,
	['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1,
	['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
	['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['>'] = 1, ['?'] = 1,
	['@'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
	['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
	['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
	['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
	['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['['] = 1, ['\\'] = 1, [']'] = 1,
	['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
	['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,
	['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['{'] = 1,
	['|'] = 1, ['}'] = 1, ['~'] = 1,
};

/*
 * 7bit (RFC 2045 2.7) when the part is ASCII without NUL and every line is
 * at most 998 octets. Bare LF and bare CR are allowed here: they are hard
 * line breaks that msg_put_7bit writes as CRLF (templates are usually
 * written with LF line ends, and encoding them as QP would cost size and
 * CPU for nothing).
 */
static int
msg_is_7bit_bytes(const char *s, size_t n)
{
	const uint64_t	 lo = 0x0101010101010101ULL;
	const uint64_t	 hi = 0x8080808080808080ULL;
	uint64_t	 w, acc = 0;
	size_t		 i = 0;

	/*
	 * Eight bytes at a time: any byte >= 0x80 or == 0 fails. The loop
	 * only ORs, so it runs at load speed; the verdict comes at the end.
	 */
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		acc |= w | ((w - lo) & ~w & hi);
	}
	if ((acc & hi) != 0)
		return 0;
	for (; i < n; i++)
		if (s[i] == 0 || (unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

static int
msg_is_7bit(const char *s, size_t n)
{
	size_t		 i, e;

	if (!msg_is_7bit_bytes(s, n))
		return 0;
	/* Line lengths, CR and LF both ending a line. */
	for (i = 0; i < n; i = e + 1) {
		e = msg_eol(s, i, n);
		if (e - i > MSG_LINE_HARD)
			return 0;
	}
	return 1;
}

/* Copy a 7bit part, every line end (CRLF, bare LF, bare CR) as CRLF. */
static int
msg_put_7bit(struct buf *b, const char *s, size_t n)
{
	size_t	 i = 0, e;
	int	 r;

	while (i < n) {
		e = msg_eol(s, i, n);
		if ((r = buf_append(b, s + i, e - i)) != 0)
			return r;
		if (e == n)
			break;
		if ((r = buf_append(b, "\r\n", 2)) != 0)
			return r;
		i = e + ((s[e] == '\r' && e + 1 < n && s[e + 1] == '\n') ? 2 : 1);
	}
	return 0;
}

/*
 * RFC 2045 6.7. Hard line breaks (CRLF, or a bare LF or CR, normalised)
 * become CRLF; encoded lines are at most 76 octets with the soft break.
 * '=' and everything outside 33..126 is encoded, except space and tab that
 * are not at the end of a line (rule 3). "=_" can never appear in the
 * output, which the boundary relies on.
 */
static int
msg_put_qp(struct buf *b, const char *s, size_t n)
{
	size_t	 i, e, next, linelen, tok;
	char	*o;
	int	 r;

	/*
	 * Written straight into reserved room: this is the hottest loop of
	 * a message with non-ASCII merge data. Worst case per input byte:
	 * an escape (3) after a soft break (3); a line end is 1..2 -> 2.
	 */
	if (n > (SIZE_MAX - 16) / 6)
		return -ENOMEM;
	if ((r = buf_reserve(b, 6 * n + 16)) != 0)
		return r;
	o = b->data + b->len;
	i = 0;
	while (i < n) {
		e = msg_eol(s, i, n);
		next = e;
		if (next < n)
			next += (s[next] == '\r' && next + 1 < n &&
			    s[next + 1] == '\n') ? 2 : 1;
		linelen = 0;
		for (; i < e; i++) {
			unsigned char	 c = (unsigned char)s[i];
			int		 lit;
			size_t		 j, room;

			/*
			 * Fast path: a run of printable characters other
			 * than '=' and space is copied a chunk at a time,
			 * never up to the line's last octet (the slow path
			 * decides that one: it may take the 76th column).
			 */
			if (msg_qp_plain[c] && linelen < MSG_QP_LINE - 1) {
				room = MSG_QP_LINE - 1 - linelen;
				if (room > e - i)
					room = e - i;
				for (j = i; j < i + room &&
				    msg_qp_plain[(unsigned char)s[j]]; j++)
					;
				if (j == e)
					j--;	/* the line's last octet */
				if (j > i) {
					memcpy(o, s + i, j - i);
					o += j - i;
					linelen += j - i;
					i = j - 1;
					continue;
				}
			}

			lit = (c >= 33 && c <= 126 && c != '=') ||
			    ((c == ' ' || c == '\t') && i + 1 < e);
			tok = lit ? 1 : 3;
			if (linelen + tok > (i + 1 < e ? MSG_QP_LINE - 1 :
			    MSG_QP_LINE)) {
				*o++ = '=';
				*o++ = '\r';
				*o++ = '\n';
				linelen = 0;
			}
			if (lit)
				*o++ = (char)c;
			else {
				*o++ = '=';
				*o++ = msg_hex[c >> 4];
				*o++ = msg_hex[c & 15];
			}
			linelen += tok;
		}
		if (next > e) {
			*o++ = '\r';
			*o++ = '\n';
		}
		i = next;
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* Fast path: prepared segments and the streaming encoder (msg.h).     */

#define MSG_STORE_MAX	((size_t)UINT32_MAX - 64)

/*
 * One QP token for c (RFC 2045 6.7 rules 1-3), as msg_put_qp writes it:
 * last says c ends its hard line (or the body), where space and tab must
 * be encoded. Returns its octets.
 */
static inline size_t
msg_qp_tok(char *o, unsigned char c, int last)
{
	if (msg_qp_plain[c] || ((c == ' ' || c == '\t') && !last)) {
		o[0] = (char)c;
		return 1;
	}
	o[0] = '=';
	o[1] = msg_hex[c >> 4];
	o[2] = msg_hex[c & 15];
	return 3;
}

/*
 * QP-encode the raw line s[i..e) from column *col, soft breaks as
 * msg_put_qp places them. hard: a line end follows e (the last octet is
 * then encoded as line-final); else more octets follow on this line.
 */
static char *
msg_qp_run(char *o, const unsigned char *s, size_t i, size_t e, int hard,
    size_t *col)
{
	char	 tok[3];
	size_t	 w;
	int	 last;

	for (; i < e; i++) {
		last = hard && i + 1 == e;
		w = msg_qp_tok(tok, s[i], last);
		if (*col + w > (last ? MSG_QP_LINE : MSG_QP_LINE - 1)) {
			memcpy(o, "=\r\n", 3);
			o += 3;
			*col = 0;
		}
		memcpy(o, tok, w);
		o += w;
		*col += w;
	}
	return o;
}

/* Does s[0..n) hold "=_"? */
static int
msg_has_eq_us(const unsigned char *s, size_t n)
{
	const unsigned char	*p, *end = s + n;

	for (p = s; p < end && (p = memchr(p, '=', (size_t)(end - p))) != NULL;
	    p++)
		if (p + 1 < end && p[1] == '_')
			return 1;
	return 0;
}

int
msg_seg_make(struct buf *st, size_t off, size_t n, struct msg_seg *sg)
{
	const unsigned char	*s;
	size_t			 i, e, next, body, col;
	unsigned		 f = 0;
	char			*o, *q;
	int			 r;

	if (n > MSG_STORE_MAX / 8 || st->len > MSG_STORE_MAX - 8 * n - 32)
		return -ENOMEM;
	if ((r = buf_room(st, 8 * n + 32 + MSG_STORE_PAD)) != 0)
		return r;
	s = (const unsigned char *)st->data + off;
	memset(sg, 0, sizeof(*sg));
	sg->raw = (uint32_t)n;
	if (n == 0)
		return 0;

	/*
	 * One short line without its end, as most merged values are: one
	 * pass. The 7bit form is the text itself, the QP form its tokens up
	 * to the held last byte.
	 */
	if (n <= MSG_LINE_HARD) {
		o = q = st->data + st->len;
		for (i = 0; i < n; i++) {
			unsigned char	 c = s[i];

			if (msg_qp_plain[c] || c == ' ' || c == '\t') {
				*o++ = (char)c;
				continue;
			}
			if (c == '\r' || c == '\n')
				break;
			if (c == 0 || c >= 0x80)
				f |= MSG_SEG_8BIT;
			else if (c == '=' && i + 1 < n && s[i + 1] == '_')
				f |= MSG_SEG_EQUS;
			o[0] = '=';
			o[1] = msg_hex[c >> 4];
			o[2] = msg_hex[c & 15];
			o += 3;
		}
		if (i == n) {
			/* Drop the last byte's token: it is held. */
			o -= msg_qp_plain[s[n - 1]] || s[n - 1] == ' ' ||
			    s[n - 1] == '\t' ? 1 : 3;
			if (s[0] == '_')
				f |= MSG_SEG_US0;
			if (s[n - 1] == '=')
				f |= MSG_SEG_EQ1;
			f |= MSG_SEG_HOLD;
			sg->h1 = sg->hend = (uint32_t)n;
			sg->o7 = (uint32_t)off;
			sg->n7 = (uint32_t)n;
			sg->oqp = (uint32_t)st->len;
			sg->q1 = sg->nqp = (uint32_t)(o - q);
			goto held;
		}
		f = 0;		/* a line end: the general way */
	}

	/* Raw facts. */
	if (!msg_is_7bit_bytes((const char *)s, n))
		f |= MSG_SEG_8BIT;
	if (s[0] == '_')
		f |= MSG_SEG_US0;
	if (s[n - 1] == '=')
		f |= MSG_SEG_EQ1;
	if (msg_has_eq_us(s, n))
		f |= MSG_SEG_EQUS;
	e = msg_eol((const char *)s, 0, n);
	if (e == n) {
		/* One long line: as above, in more passes. */
		sg->h1 = sg->hend = (uint32_t)n;
		if (n > MSG_LINE_HARD)
			f |= MSG_SEG_LONG;
		f |= MSG_SEG_HOLD;
		sg->o7 = (uint32_t)off;
		sg->n7 = (uint32_t)n;
		sg->oqp = (uint32_t)st->len;
		o = q = st->data + st->len;
		for (i = 0; i + 1 < n; i++)
			o += msg_qp_tok(o, s[i], 0);
		sg->q1 = sg->nqp = (uint32_t)(o - q);
		goto held;
	}

	f |= MSG_SEG_EOL;
	if (s[0] == '\r' || s[0] == '\n')
		f |= MSG_SEG_SOL;
	if (s[0] == '\n')
		f |= MSG_SEG_LF0;
	if (s[n - 1] == '\r')
		f |= MSG_SEG_CR1;
	if (s[n - 1] != '\r' && s[n - 1] != '\n')
		f |= MSG_SEG_HOLD;
	sg->h1 = (uint32_t)e;
	for (i = 0; i < n; i = e + 1) {
		e = msg_eol((const char *)s, i, n);
		if (e - i > MSG_LINE_HARD)
			f |= MSG_SEG_LONG;
		if (e < n)
			sg->hend = (uint32_t)(n - e - 1);
	}

	/* 7bit form: msg_put_7bit's. */
	sg->o7 = (uint32_t)st->len;
	o = q = st->data + st->len;
	for (i = 0; i < n;) {
		e = msg_eol((const char *)s, i, n);
		memcpy(o, s + i, e - i);
		o += e - i;
		if (e == n)
			break;
		*o++ = '\r';
		*o++ = '\n';
		i = e + ((s[e] == '\r' && e + 1 < n && s[e + 1] == '\n') ?
		    2 : 1);
	}
	sg->n7 = (uint32_t)(o - q);

	/*
	 * QP form: [first line's tokens, no soft breaks: they depend on the
	 * column the segment starts at] [its line end, the other lines from
	 * column 0 with their soft breaks, the last one up to the held byte]
	 * [the held byte's token when it does not depend on what follows].
	 */
	sg->oqp = (uint32_t)(o - st->data);
	q = o;
	body = (f & MSG_SEG_HOLD) ? n - 1 : n;
	e = msg_eol((const char *)s, 0, body);
	for (i = 0; i < e; i++)
		o += msg_qp_tok(o, s[i], i + 1 == e);
	sg->q1 = (uint32_t)(o - q);
	col = 0;
	while (e < body) {
		/* s[e] is a line end: CRLF, then the next line from 0. */
		next = e + ((s[e] == '\r' && e + 1 < n && s[e + 1] == '\n') ?
		    2 : 1);
		*o++ = '\r';
		*o++ = '\n';
		col = 0;
		e = msg_eol((const char *)s, next, body);
		o = msg_qp_run(o, s, next, e, e < body, &col);
	}
	sg->nqp = (uint32_t)(o - q);
	sg->qend = (uint32_t)col;
held:
	if (f & MSG_SEG_HOLD) {
		sg->last = s[n - 1];
		if (sg->last != ' ' && sg->last != '\t')
			sg->lastw = (unsigned char)msg_qp_tok(o, sg->last, 0);
		o += sg->lastw;
	}
	sg->flags = f;
	st->len = (size_t)(o - st->data);
	st->data[st->len] = '\0';
	/* Room reserved above: 8n + 32 covers the encodings and the pad. */
	return 0;
}

void
msg_enc_begin(struct msg_enc *e, struct buf *b, int qp)
{
	memset(e, 0, sizeof(*e));
	e->b = b;
	e->start = b->len;
	e->qp = qp;
	e->pend = -1;
}

/*
 * Copy n octets. Most segments are short: up to 128 octets are copied as
 * four or eight fixed 16-octet moves whatever n is (no branch on the length to
 * mispredict): the stores keep MSG_STORE_PAD readable octets after their
 * data, and the encoder reserves as many past its output.
 */
static inline __attribute__((always_inline)) char *
msg_copy64(char *o, const char *p, size_t n)
{
	if (n > 64) {
		if (n > MSG_STORE_PAD) {
			memcpy(o, p, n);
			return o + n;
		}
		memcpy(o + 64, p + 64, 16);
		memcpy(o + 80, p + 80, 16);
		memcpy(o + 96, p + 96, 16);
		memcpy(o + 112, p + 112, 16);
	}
	memcpy(o, p, 16);
	memcpy(o + 16, p + 16, 16);
	memcpy(o + 32, p + 32, 16);
	memcpy(o + 48, p + 48, 16);
	return o + n;
}

/*
 * QP: the held byte c, now that what follows it is known (last: a line
 * end or the body's end). Returns the new end; *col is updated.
 */
static char *
msg_enc_flush(char *o, unsigned char c, int last, size_t *col)
{
	char	 tok[3] = { 0, 0, 0 };
	size_t	 w;

	w = msg_qp_tok(tok, c, last);
	if (*col + w > (last ? MSG_QP_LINE : MSG_QP_LINE - 1)) {
		memcpy(o, "=\r\n", 3);
		o += 3;
		*col = 0;
	}
	memcpy(o, tok, 3);	/* room was reserved; w counts */
	*col += w;
	return o + w;
}

/*
 * QP: encoded tokens p[0..n) (no line end inside) from column *col, soft
 * breaks where msg_put_qp puts them; hard: a line end follows, so the
 * last token may take column 76. A break never splits a token: '=' only
 * ever starts one.
 */
static char *
msg_enc_run(char *o, const char *p, size_t n, int hard, size_t *col)
{
	size_t	 k;

	while (*col + n > (hard ? MSG_QP_LINE : MSG_QP_LINE - 1)) {
		k = MSG_QP_LINE - 1 - *col;
		if (k >= 1 && p[k - 1] == '=')
			k -= 1;
		else if (k >= 2 && p[k - 2] == '=')
			k -= 2;
		memcpy(o, p, k);
		memcpy(o + k, "=\r\n", 3);
		o += k + 3;
		p += k;
		n -= k;
		*col = 0;
	}
	memcpy(o, p, n);
	*col += n;
	return o + n;
}

/*
 * The loops below keep the encoder's state in locals (not in *e) so that
 * it stays in registers: this is the per-segment path of every message.
 *
 * Raw facts, whichever the encoding: the current raw line's length
 * (a line over 998 octets rules out 7bit), and "=" ending one segment
 * with "_" starting the next (EQ1 << 1 is US0, US0 << 1 is EQUS).
 * A CR ending one segment and an LF starting the next are one line end,
 * already written: the next one's first two octets are skipped
 * (CR1 >> 1 is LF0, LF0 >> 3 is 2).
 */
#define MSG_ENC_FACTS(sg, f, prev, rawcol, facts) do {			\
	size_t	 t_ = (rawcol) + (sg)->h1;	/* h1 is raw without EOL */ \
									\
	(facts) |= (f) | ((((prev) << 1) & (f) & MSG_SEG_US0) << 1) |	\
	    (t_ > MSG_LINE_HARD ? MSG_SEG_LONG : 0);			\
	(rawcol) = ((f) & MSG_SEG_EOL) ? (sg)->hend : t_;		\
} while (0)

/*
 * Make room for need more octets at *o (whose buffer is b); *lim is the
 * end of the room. 0 or -ENOMEM.
 */
static int
msg_enc_room(struct buf *b, char **o, char **lim, size_t need)
{
	size_t	 len = (size_t)(*o - b->data);
	int	 r;

	b->len = len;
	if ((r = buf_reserve(b, need + 64)) != 0)
		return r;
	*o = b->data + len;
	*lim = b->data + b->cap - 1;
	return 0;
}

/*
 * The loop of msg_enc_plan, compiled twice: lean leaves out the raw
 * facts and the CR-LF join (msg_enc_lean: the caller knows them).
 */
static inline __attribute__((always_inline)) int
msg_enc_loop(struct msg_enc *e, const struct msg_seg *segs0,
    const char *store0, const struct msg_seg *segs1, const char *store1,
    const uint32_t *plan, size_t n, const int lean)
{
	struct buf		*b = e->b;
	const struct msg_seg	*sg;
	const char		*st, *p;
	size_t			 i, skip, k, need;
	size_t			 col = e->col, rawcol = e->rawcol, c;
	unsigned		 facts = e->facts, prev = e->prev, f;
	int			 pend = e->pend, r = 0;
	const int		 qp = e->qp;
	uint32_t		 x;
	char			*o, *lim;

	/*
	 * Locals, not *e or *b: stores through o are char stores that could
	 * alias them, so the compiler would reload them per segment.
	 */
	if ((r = buf_room(b, 64)) != 0)
		return r;
	o = b->data + b->len;
	lim = b->data + b->cap - 1;
	for (i = 0; i < n; i++) {
		x = plan[i];
		if (x & MSG_PLAN_ALT) {
			sg = &segs1[x & ~MSG_PLAN_ALT];
			st = store1;
		} else {
			sg = &segs0[x];
			st = store0;
		}
		if (sg->raw == 0)
			continue;
		f = sg->flags;
		skip = 0;
		if (!qp) {
			if ((size_t)(lim - o) < (size_t)sg->n7 + 144 &&
			    (r = msg_enc_room(b, &o, &lim, sg->n7 + 144)) != 0)
				break;
			if (!lean) {
				MSG_ENC_FACTS(sg, f, prev, rawcol, facts);
				skip = ((prev >> 1) & f & MSG_SEG_LF0) >> 3;
				prev = f;
			}
			o = msg_copy64(o, st + sg->o7 + skip, sg->n7 - skip);
			continue;
		}

		/* Soft breaks add at most 3 octets per 73; 128 for copies. */
		need = (size_t)sg->nqp + sg->nqp / 16 + 160;
		if ((size_t)(lim - o) < need &&
		    (r = msg_enc_room(b, &o, &lim, need)) != 0)
			break;
		if (!lean) {
			MSG_ENC_FACTS(sg, f, prev, rawcol, facts);
			skip = ((prev >> 1) & f & MSG_SEG_LF0) >> 3;
			prev = f;
		}
		if (pend >= 0) {
			if ((pend == ' ' || pend == '\t') &&
			    !(f & MSG_SEG_SOL) && col < MSG_QP_LINE - 1) {
				/* The usual: a space before more text. */
				*o++ = (char)pend;
				col++;
			} else {
				c = col;
				o = msg_enc_flush(o, (unsigned char)pend,
				    (f & MSG_SEG_SOL) != 0, &c);
				col = c;
			}
			pend = -1;
		}
		p = st + sg->oqp;
		if (!(f & MSG_SEG_EOL)) {
			/* One line, no soft break needed: the usual. */
			if (col + sg->q1 <= MSG_QP_LINE - 1) {
				k = sg->q1;
				col += k;
			} else {
				c = col;
				o = msg_enc_run(o, p, sg->q1, 0, &c);
				col = c;
				p += sg->q1;
				k = 0;
			}
		} else {
			if (skip != 0) {
				/* The first line is empty, its end written. */
				p += 2;
				k = sg->nqp - 2;
			} else if (col + sg->q1 <= MSG_QP_LINE)
				k = sg->nqp;
			else {
				c = col;
				o = msg_enc_run(o, p, sg->q1, 1, &c);
				p += sg->q1;
				k = sg->nqp - sg->q1;
			}
			col = sg->qend;
		}
		if (f & MSG_SEG_HOLD) {
			if (sg->lastw != 0 &&
			    col + sg->lastw <= MSG_QP_LINE - 1) {
				k += sg->lastw;
				col += sg->lastw;
			} else
				pend = sg->last;
		}
		o = msg_copy64(o, p, k);
	}
	b->len = (size_t)(o - b->data);
	e->col = col;
	e->rawcol = rawcol;
	e->facts = facts;
	e->prev = prev;
	e->pend = pend;
	return r;
}

int
msg_enc_plan(struct msg_enc *e, const struct msg_seg *segs0,
    const char *store0, const struct msg_seg *segs1, const char *store1,
    const uint32_t *plan, size_t n)
{
	if (e->lean)
		return msg_enc_loop(e, segs0, store0, segs1, store1, plan, n,
		    1);
	return msg_enc_loop(e, segs0, store0, segs1, store1, plan, n, 0);
}

void
msg_enc_lean(struct msg_enc *e, unsigned facts)
{
	e->lean = 1;
	e->facts = facts & (MSG_SEG_8BIT | MSG_SEG_EQUS);
}

int
msg_enc_seg(struct msg_enc *e, const char *store, const struct msg_seg *sg)
{
	uint32_t	 x = 0;

	return msg_enc_plan(e, sg, store, NULL, NULL, &x, 1);
}

int
msg_enc_end(struct msg_enc *e, struct msg_encoded *res)
{
	struct buf	*b = e->b;
	int		 is7, r;

	if ((r = buf_room(b, 8)) != 0)
		return r;
	if (e->pend >= 0) {
		b->len = (size_t)(msg_enc_flush(b->data + b->len,
		    (unsigned char)e->pend, 1, &e->col) - b->data);
		e->pend = -1;
	}
	if (!e->lean && e->rawcol > MSG_LINE_HARD)
		e->facts |= MSG_SEG_LONG;
	is7 = !(e->facts & (MSG_SEG_8BIT | MSG_SEG_LONG));
	/* facts holds every segment's flags; only these three matter. */
	if (is7 == e->qp) {
		b->len = e->start;
		b->data[b->len] = '\0';
		return 1;
	}
	b->data[b->len] = '\0';
	res->s = b->data + e->start;
	res->n = b->len - e->start;
	res->qp = e->qp;
	res->bnd = !e->qp && (e->facts & MSG_SEG_EQUS) != 0;
	return 0;
}

static uint64_t
msg_mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
msg_hash(uint64_t h, const char *s)
{
	/* FNV-1a */
	for (; s != NULL && *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/*
 * "=_rm" + 32 hex digits: looks random (it is a hash of the message's
 * identity) but is reproducible, and "=_" cannot occur in QP output.
 */
static void
msg_boundary(char out[40], const struct msg_input *in, unsigned attempt)
{
	uint64_t	 h, a, c;

	h = msg_hash(0xcbf29ce484222325ULL, in->msgid_local);
	h = msg_hash(h, "@");
	h = msg_hash(h, in->msgid_domain);
	a = msg_mix(h ^ (uint64_t)in->date_ms);
	c = msg_mix(a + attempt + 1);
	a = msg_mix(a ^ ((uint64_t)attempt << 32));
	memcpy(out, "=_rm", 4);
	for (int k = 0; k < 16; k++) {
		out[4 + k] = "0123456789abcdef"[(a >> (60 - 4 * k)) & 15];
		out[20 + k] = "0123456789abcdef"[(c >> (60 - 4 * k)) & 15];
	}
	out[36] = '\0';
}

struct msg_part {
	const char	*type;		/* borrows: a string literal */
	const char	*s;		/* borrows: the caller's body */
	size_t		 n;
	int		 qp;		/* quoted-printable, else 7bit */
	int		 pre;		/* s is already encoded: MSG_PRE_* */
	int		 bnd;		/* MSG_PRE_7BIT: may hold "=_" */
};

#define MSG_PRE_RAW	0
#define MSG_PRE_7BIT	1	/* = raw text with CRLF line ends */
#define MSG_PRE_QP	2

static int
msg_put_part_body(struct buf *b, const struct msg_part *p)
{
	if (p->pre == (p->qp ? MSG_PRE_QP : MSG_PRE_7BIT))
		return buf_append(b, p->s, p->n);
	/*
	 * Also a MSG_PRE_7BIT body forced to QP: QP of the CRLF form is QP
	 * of the raw text, since either line end is one hard break.
	 */
	if (p->qp)
		return msg_put_qp(b, p->s, p->n);
	return msg_put_7bit(b, p->s, p->n);
}

/* Can this part's encoded body hold the boundary? */
static int
msg_part_may_clash(const struct msg_part *p)
{
	/* QP output never holds "=_": '=' is followed by hex or CR. */
	if (p->qp)
		return 0;
	return p->pre == MSG_PRE_RAW || p->bnd;
}

static void
msg_part_from(struct msg_part *p, const char *type, const char *s,
    size_t n, const struct msg_encoded *enc)
{
	p->type = type;
	if (enc != NULL) {
		p->s = enc->s != NULL ? enc->s : "";
		p->n = enc->n;
		p->qp = enc->qp;
		p->pre = enc->qp ? MSG_PRE_QP : MSG_PRE_7BIT;
		p->bnd = enc->bnd;
		return;
	}
	p->s = s;
	p->n = n;
	p->qp = !msg_is_7bit(s, n);
	p->pre = MSG_PRE_RAW;
	p->bnd = 0;
}

static int
msg_put_part_headers(struct buf *b, const struct msg_part *p)
{
	return msg_cat(b, "Content-Type: ", p->type, "; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: ", p->qp ? "quoted-printable" : "7bit",
	    "\r\n\r\n", (const char *)NULL);
}

static int
msg_ends_crlf(const struct buf *b)
{
	return b->len >= 2 && b->data[b->len - 2] == '\r' &&
	    b->data[b->len - 1] == '\n';
}

/* ------------------------------------------------------------------ */
/* Issue 5: List-Unsubscribe, Feedback-ID, attachments.                */

#define MSG_B64_LINE	76	/* RFC 2045 6.8 */
#define MSG_FNAME_MAX	255
#define MSG_CID_MAX	200
#define MSG_FBID_MAX	200
#define MSG_CTYPE_MAX	127

/* Printable ASCII without space or the listed characters, 1..max. */
static int
msg_valid_printable(const char *s, unsigned bad, size_t max)
{
	size_t	 n;

	if (s == NULL || *s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] <= 32 || (unsigned char)s[n] >= 127 ||
		    (msg_bad[(unsigned char)s[n]] & bad))
			return 0;
	return n <= max;
}

/* RFC 2045 5.1 token "/" token. */
static int
msg_valid_ctype(const char *s)
{
	size_t	 n, slash = 0;

	if (s == NULL)
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		if (s[n] == '/') {
			if (slash++ > 0 || n == 0)
				return 0;
			continue;
		}
		if ((unsigned char)s[n] <= 32 || (unsigned char)s[n] >= 127 ||
		    strchr("()<>@,;:\\\"[]?=", s[n]) != NULL)
			return 0;
	}
	return slash == 1 && n > 0 && s[n - 1] != '/' && n <= MSG_CTYPE_MAX;
}

static int
msg_valid_fname(const char *s)
{
	size_t	 n;

	if (s == NULL || *s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if (msg_isctl((unsigned char)s[n]))
			return 0;
	return n <= MSG_FNAME_MAX;
}

static int
msg_valid_extras(const struct msg_input *in)
{
	size_t	 i;

	if (in->unsub_url != NULL &&
	    (!msg_prefix_ci(in->unsub_url, "https://", 8) ||
	    !msg_valid_printable(in->unsub_url, MSG_BAD_URI, MSG_URI_MAX)))
		return 0;
	if (in->unsub_mailto != NULL &&
	    !msg_valid_printable(in->unsub_mailto, MSG_BAD_URI,
	    MSG_URI_MAX - 7))
		return 0;
	if (in->feedback_id != NULL &&
	    !msg_valid_printable(in->feedback_id, 0, MSG_FBID_MAX))
		return 0;
	if (in->nattachments > MSG_ATTACH_MAX ||
	    (in->nattachments > 0 && in->attachments == NULL))
		return 0;
	for (i = 0; i < in->nattachments; i++) {
		const struct msg_attachment *a = &in->attachments[i];

		if (!msg_valid_fname(a->filename) ||
		    !msg_valid_ctype(a->content_type) ||
		    (a->data == NULL && a->len > 0) ||
		    (a->content_id != NULL &&
		    !msg_valid_printable(a->content_id, MSG_BAD_CID,
		    MSG_CID_MAX)))
			return 0;
	}
	return 1;
}

/* Is this extra header one msg_build writes itself this time? */
static int
msg_extra_shadowed(const struct msg_input *in, const char *name)
{
	if ((in->unsub_url != NULL || in->unsub_mailto != NULL) &&
	    (strcasecmp(name, "List-Unsubscribe") == 0 ||
	    strcasecmp(name, "List-Unsubscribe-Post") == 0))
		return 1;
	return in->feedback_id != NULL && strcasecmp(name, "Feedback-ID") == 0;
}

/* One "<uri>" element of a list header, folded before it when needed. */
static int
msg_put_uri(struct msg_hdr *h, const char *prefix, const char *uri,
    int first)
{
	size_t	 n = strlen(prefix) + strlen(uri) + 2;
	int	 r;

	if (!first && (r = msg_put(h, ",", 1)) != 0)
		return r;
	if (!first && h->linelen + 1 + n > MSG_LINE_SOFT &&
	    (r = msg_fold(h)) != 0)
		return r;
	if ((r = msg_put(h, " <", 2)) != 0 ||
	    (r = msg_put(h, prefix, strlen(prefix))) != 0 ||
	    (r = msg_put(h, uri, strlen(uri))) != 0)
		return r;
	return msg_put(h, ">", 1);
}

/* RFC 2369 3.2 and RFC 8058 3.1. */
static int
msg_put_list_unsub(struct msg_hdr *h, const struct msg_input *in)
{
	const char	*m = in->unsub_mailto;
	int		 r, first = 1;

	if (in->unsub_url == NULL && m == NULL)
		return 0;
	if ((r = msg_hdr_begin(h, "List-Unsubscribe")) != 0)
		return r;
	if (in->unsub_url != NULL) {
		if ((r = msg_put_uri(h, "", in->unsub_url, 1)) != 0)
			return r;
		first = 0;
	}
	if (m != NULL && (r = msg_put_uri(h,
	    msg_prefix_ci(m, "mailto:", 7) ? "" : "mailto:", m,
	    first)) != 0)
		return r;
	if ((r = msg_hdr_end(h)) != 0)
		return r;
	if (in->unsub_url != NULL)
		return buf_puts(h->b, "List-Unsubscribe-Post: "
		    "List-Unsubscribe=One-Click\r\n");
	return 0;
}

/* RFC 2045 6.8, CRLF every MSG_B64_LINE characters. */
static int
msg_put_base64(struct buf *b, const unsigned char *s, size_t n)
{
	char		 line[MSG_B64_LINE + 2];
	size_t		 i, k, o;
	uint32_t	 v;
	int		 r;

	for (i = 0; i < n;) {
		o = 0;
		for (k = 0; k < MSG_B64_LINE / 4 && i < n; k++, i += 3) {
			size_t	 left = n - i;

			v = (uint32_t)s[i] << 16;
			if (left > 1)
				v |= (uint32_t)s[i + 1] << 8;
			if (left > 2)
				v |= s[i + 2];
			line[o++] = msg_b64[(v >> 18) & 63];
			line[o++] = msg_b64[(v >> 12) & 63];
			line[o++] = left > 1 ? msg_b64[(v >> 6) & 63] : '=';
			line[o++] = left > 2 ? msg_b64[v & 63] : '=';
			if (left < 3)
				i = n - 3;	/* i += 3 below ends it */
		}
		line[o++] = '\r';
		line[o++] = '\n';
		if ((r = buf_append(b, line, o)) != 0)
			return r;
	}
	return 0;
}

static int
msg_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/*
 * A file name parameter. ASCII: a quoted-string (RFC 2045 5.1, with
 * quoted-pairs). Otherwise RFC 2231 3 and 4: name*0*=utf-8''%XX...;
 * name*1*=... each segment on its own folded line.
 */
static int
msg_put_fname_param(struct buf *b, const char *param, const char *fname)
{
	const unsigned char	*s = (const unsigned char *)fname;
	size_t			 i, seg = 0, linelen;
	int			 r;

	if (msg_is_ascii(fname)) {
		if ((r = buf_printf(b, ";\r\n %s=\"", param)) != 0)
			return r;
		for (i = 0; s[i] != '\0'; i++) {
			if ((s[i] == '"' || s[i] == '\\') &&
			    (r = buf_putc(b, '\\')) != 0)
				return r;
			if ((r = buf_putc(b, (char)s[i])) != 0)
				return r;
		}
		return buf_putc(b, '"');
	}
	linelen = MSG_LINE_SOFT;	/* start a segment at once */
	for (i = 0; s[i] != '\0'; i++) {
		if (linelen + 3 > MSG_LINE_SOFT - 2) {
			if ((r = buf_printf(b, ";\r\n %s*%zu*=%s", param, seg,
			    seg == 0 ? "utf-8''" : "")) != 0)
				return r;
			linelen = 1 + strlen(param) + 6 + (seg == 0 ? 7 : 0);
			seg++;
		}
		/* RFC 2231 7: attribute-char, else %XX. */
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    strchr("!#$&+-.^_`|~", s[i]) != NULL) {
			r = buf_putc(b, (char)s[i]);
			linelen++;
		} else {
			r = buf_printf(b, "%%%c%c", msg_hex[s[i] >> 4],
			    msg_hex[s[i] & 15]);
			linelen += 3;
		}
		if (r != 0)
			return r;
	}
	return 0;
}

static int
msg_put_attachment(struct buf *b, const char *bnd, char sfx,
    const struct msg_attachment *a, int inline_part)
{
	int	 r;

	if ((r = buf_printf(b, "--%s%c\r\nContent-Type: %s", bnd, sfx,
	    a->content_type)) != 0 ||
	    (r = msg_put_fname_param(b, "name", a->filename)) != 0 ||
	    (r = buf_printf(b, "\r\nContent-Disposition: %s",
	    inline_part ? "inline" : "attachment")) != 0 ||
	    (r = msg_put_fname_param(b, "filename", a->filename)) != 0 ||
	    (r = buf_puts(b, "\r\nContent-Transfer-Encoding: base64\r\n")) != 0)
		return r;
	if (a->content_id != NULL &&
	    (r = buf_printf(b, "Content-ID: <%s>\r\n", a->content_id)) != 0)
		return r;
	if ((r = buf_puts(b, "\r\n")) != 0 ||
	    (r = msg_put_base64(b, (const unsigned char *)a->data, a->len)) != 0)
		return r;
	/* An empty file has no body line; the delimiter's CRLF follows. */
	return buf_puts(b, "\r\n");
}

/* A text part inside a multipart: headers, body, the delimiter's CRLF. */
static int
msg_put_text_part(struct buf *b, const char *bnd, char sfx,
    const struct msg_part *p)
{
	int	 r;

	if ((r = buf_printf(b, "--%s%c\r\n", bnd, sfx)) != 0 ||
	    (r = msg_put_part_headers(b, p)) != 0 ||
	    (r = msg_put_part_body(b, p)) != 0)
		return r;
	/* RFC 2046 5.1.1: the CRLF before "--" belongs to the delimiter. */
	return buf_puts(b, "\r\n");
}

/* html, alone or in multipart/related with the inline parts. */
static int
msg_put_html_block(struct buf *b, const char *bnd, char sfx,
    const struct msg_part *html, const struct msg_input *in, size_t ninl,
    int nested)
{
	size_t	 i;
	int	 r;

	if (ninl == 0) {
		if (nested)
			return msg_put_text_part(b, bnd, sfx, html);
		if ((r = msg_put_part_headers(b, html)) != 0)
			return r;
		return msg_put_part_body(b, html);
	}
	if (nested && (r = buf_printf(b, "--%s%c\r\n", bnd, sfx)) != 0)
		return r;
	if ((r = buf_printf(b, "Content-Type: multipart/related;"
	    "\r\n type=\"text/html\";\r\n boundary=\"%sr\"\r\n\r\n",
	    bnd)) != 0 ||
	    (r = msg_put_text_part(b, bnd, 'r', html)) != 0)
		return r;
	for (i = 0; i < in->nattachments; i++)
		if (in->attachments[i].content_id != NULL &&
		    (r = msg_put_attachment(b, bnd, 'r', &in->attachments[i],
		    1)) != 0)
			return r;
	if ((r = buf_printf(b, "--%sr--\r\n", bnd)) != 0)
		return r;
	return nested ? buf_puts(b, "\r\n") : 0;
}

/*
 * Body with attachments (see msg.h for the tree). Boundaries are a base
 * plus one letter per level (m, a, r). Base64 and QP output cannot hold
 * "=_", so only 7bit parts are checked for the base; after
 * MSG_BOUNDARY_TRIES clashes every text part becomes QP.
 */
static int
msg_put_body_attach(struct buf *b, const struct msg_input *in,
    struct msg_part *parts, size_t np)
{
	struct msg_part	*text = NULL, *html = NULL;
	char		 bnd[40];
	size_t		 i, ninl = 0, natt = 0;
	unsigned	 attempt;
	int		 r, clash, mixed;

	for (i = 0; i < np; i++) {
		if (strcmp(parts[i].type, "text/html") == 0)
			html = &parts[i];
		else
			text = &parts[i];
	}
	for (i = 0; i < in->nattachments; i++) {
		if (in->attachments[i].content_id != NULL && html != NULL)
			ninl++;
		else
			natt++;
	}
	for (attempt = 0;; attempt++) {
		msg_boundary(bnd, in, attempt);
		clash = 0;
		for (i = 0; i < np; i++)
			if (msg_part_may_clash(&parts[i]) &&
			    memmem(parts[i].s, parts[i].n, bnd,
			    strlen(bnd)) != NULL)
				clash = 1;
		/*
		 * Not a real clash (never at a line start), but keep it out
		 * of part headers too. "=" only occurs in an RFC 2231 name
		 * as "*=" before a segment, so the name is checked for the
		 * boundary without its "=".
		 */
		for (i = 0; i < in->nattachments; i++)
			if (strstr(in->attachments[i].filename, bnd + 1) !=
			    NULL ||
			    (in->attachments[i].content_id != NULL &&
			    strstr(in->attachments[i].content_id, bnd) != NULL))
				clash = 1;
		if (!clash)
			break;
		if (attempt + 1 == MSG_BOUNDARY_TRIES) {
			for (i = 0; i < np; i++)
				parts[i].qp = 1;
			msg_boundary(bnd, in, attempt + 1);
			break;
		}
	}
	mixed = natt > 0;
	if (mixed && (r = buf_printf(b, "Content-Type: multipart/mixed;"
	    "\r\n boundary=\"%sm\"\r\n\r\n--%sm\r\n", bnd, bnd)) != 0)
		return r;
	if (text != NULL && html != NULL) {
		if ((r = buf_printf(b, "Content-Type: multipart/alternative;"
		    "\r\n boundary=\"%sa\"\r\n\r\n", bnd)) != 0 ||
		    (r = msg_put_text_part(b, bnd, 'a', text)) != 0 ||
		    (r = msg_put_html_block(b, bnd, 'a', html, in, ninl,
		    1)) != 0 ||
		    (r = buf_printf(b, "--%sa--\r\n", bnd)) != 0)
			return r;
	} else if (html != NULL) {
		if ((r = msg_put_html_block(b, bnd, 'a', html, in, ninl,
		    0)) != 0)
			return r;
	} else {
		struct msg_part	 empty = { "text/plain", "", 0, 0, 0, 0 };
		const struct msg_part *t = text != NULL ? text : &empty;

		if ((r = msg_put_part_headers(b, t)) != 0 ||
		    (r = msg_put_part_body(b, t)) != 0)
			return r;
	}
	if (!mixed)
		return msg_ends_crlf(b) ? 0 : buf_puts(b, "\r\n");
	if ((r = buf_puts(b, "\r\n")) != 0)
		return r;
	for (i = 0; i < in->nattachments; i++) {
		const struct msg_attachment *a = &in->attachments[i];

		if (a->content_id != NULL && html != NULL)
			continue;
		if ((r = msg_put_attachment(b, bnd, 'm', a,
		    a->content_id != NULL)) != 0)
			return r;
	}
	return buf_printf(b, "--%sm--\r\n", bnd);
}

static int
msg_put_body(struct buf *b, const struct msg_input *in)
{
	struct msg_part	 parts[2];
	char		 bnd[40];
	size_t		 np = 0, i, start, pstart[2], pend[2];
	unsigned	 attempt;
	int		 r, clash;

	if (in->text_enc != NULL || in->text != NULL)
		msg_part_from(&parts[np++], "text/plain", in->text,
		    in->textlen, in->text_enc);
	if (in->html_enc != NULL || in->html != NULL)
		msg_part_from(&parts[np++], "text/html", in->html,
		    in->htmllen, in->html_enc);
	if (in->nattachments > 0)
		return msg_put_body_attach(b, in, parts, np);
	if (np == 0)
		parts[np++] = (struct msg_part){ "text/plain", "", 0, 0, 0, 0 };

	if (np == 1) {
		if ((r = msg_put_part_headers(b, &parts[0])) != 0 ||
		    (r = msg_put_part_body(b, &parts[0])) != 0)
			return r;
		if (!msg_ends_crlf(b) && (r = buf_append(b, "\r\n", 2)) != 0)
			return r;
		return 0;
	}

	start = b->len;
	for (attempt = 0;; attempt++) {
		/*
		 * After a few clashes (someone is feeding us our own
		 * boundaries), QP-encode everything: it cannot contain "=_".
		 */
		if (attempt == MSG_BOUNDARY_TRIES)
			for (i = 0; i < np; i++)
				parts[i].qp = 1;
		msg_boundary(bnd, in, attempt);
		b->len = start;
		if ((r = msg_cat(b, "Content-Type: multipart/alternative;"
		    "\r\n boundary=\"", bnd, "\"\r\n\r\n",
		    (const char *)NULL)) != 0)
			return r;
		for (i = 0; i < np; i++) {
			if ((r = msg_cat(b, "--", bnd, "\r\n",
			    (const char *)NULL)) != 0 ||
			    (r = msg_put_part_headers(b, &parts[i])) != 0)
				return r;
			pstart[i] = b->len;
			if ((r = msg_put_part_body(b, &parts[i])) != 0)
				return r;
			pend[i] = b->len;
			/* RFC 2046 5.1.1: the CRLF belongs to the delimiter. */
			if ((r = buf_append(b, "\r\n", 2)) != 0)
				return r;
		}
		if ((r = msg_cat(b, "--", bnd, "--\r\n",
		    (const char *)NULL)) != 0)
			return r;
		clash = 0;
		for (i = 0; i < np; i++)
			if (msg_part_may_clash(&parts[i]) &&
			    memmem(b->data + pstart[i], pend[i] - pstart[i],
			    bnd, strlen(bnd)) != NULL)
				clash = 1;
		if (!clash || attempt >= MSG_BOUNDARY_TRIES)
			return 0;
	}
}

int
msg_build(struct buf *out, const struct msg_input *in)
{
	struct msg_hdr	 h = { .b = out };
	size_t		 start = out->len, i;
	int		 r;

	if (in->from == NULL || in->to == NULL ||
	    !msg_valid_token(in->to, MSG_BAD_ADDR, 1) ||
	    !msg_valid_token(in->msgid_local, MSG_BAD_ADDR | MSG_BAD_AT, 0) ||
	    !msg_valid_token(in->msgid_domain, MSG_BAD_ADDR | MSG_BAD_AT, 0))
		return -EINVAL;
	for (i = 0; i < in->nheaders; i++)
		if (!msg_valid_name(in->headers[i].name))
			return -EINVAL;
	if (!msg_valid_extras(in))
		return -EINVAL;

	if ((r = msg_put_date(out, in->date_ms)) != 0 ||
	    (r = msg_cat(out, "Message-ID: <", in->msgid_local, "@",
	    in->msgid_domain, ">\r\n", (const char *)NULL)) != 0 ||
	    (r = msg_put_mailbox(&h, "From", in->from)) != 0 ||
	    (r = msg_cat(out, "To: ", in->to, "\r\n",
	    (const char *)NULL)) != 0 ||
	    (r = msg_put_unstructured(&h, "Subject", in->subject, 1)) != 0)
		goto fail;
	if (in->reply_to != NULL &&
	    (r = msg_put_mailbox(&h, "Reply-To", in->reply_to)) != 0)
		goto fail;
	if ((r = msg_put_list_unsub(&h, in)) != 0)
		goto fail;
	if (in->feedback_id != NULL && (r = msg_cat(out, "Feedback-ID: ",
	    in->feedback_id, "\r\n", (const char *)NULL)) != 0)
		goto fail;
	for (i = 0; i < in->nheaders; i++)
		if (!msg_extra_shadowed(in, in->headers[i].name) &&
		    (r = msg_put_unstructured(&h, in->headers[i].name,
		    in->headers[i].value, 0)) != 0)
			goto fail;
	if ((r = buf_puts(out, "MIME-Version: 1.0\r\n")) != 0 ||
	    (r = msg_put_body(out, in)) != 0)
		goto fail;
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return r;
}

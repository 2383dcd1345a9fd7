/*
 * addr: RFC 5321 mailbox validation. See addr.h.
 *
 *   Mailbox    = Local-part "@" ( Domain / address-literal )   4.1.2
 *   Local-part = Dot-string / Quoted-string
 *   Domain     = sub-domain *("." sub-domain)
 *   sub-domain = Let-dig [Ldh-str]
 *
 * RFC 6531 (SMTPUTF8) adds UTF8-non-ascii to atext, qtextSMTP and
 * sub-domain (U-labels); such bytes must be well-formed UTF-8 and make
 * *utf8 true. We do not check U-labels against IDNA2008 tables; the
 * receiving server does that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "mail/addr.h"

#define ADDR_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX	255	/* 4.5.3.1.2 */
#define ADDR_PATH_MAX	256	/* 4.5.3.1.3, counting "<" and ">" */
#define ADDR_LABEL_MAX	63	/* RFC 1035 2.3.4 */

/*
 * Length of the well-formed UTF-8 sequence (>= 2 bytes, no overlongs,
 * surrogates or > U+10FFFF; RFC 3629 4) at s[0..n), or 0.
 */
static size_t
addr_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char	lo = 0x80, hi = 0xbf;
	size_t		need;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 1;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 2;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 3;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < need + 1)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need + 1;
}

/* RFC 5322 3.2.3 atext. */
static bool
addr_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
addr_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * Parse the local part at s[0..len); on success *end is the offset of
 * the '@' that follows it. 0 or -EINVAL with *why.
 */
static int
addr_local(const unsigned char *s, size_t len, size_t *end, bool *u8,
    const char **why)
{
	size_t i = 0, k;

	if (len > 0 && s[0] == '"') {
		/* Quoted-string: qtextSMTP / quoted-pairSMTP (4.1.2). */
		for (i = 1; i < len && s[i] != '"'; i++) {
			if (s[i] == '\\') {
				if (++i >= len || s[i] < 32 || s[i] > 126) {
					*why = "bad quoted-pair in local part";
					return -EINVAL;
				}
			} else if (s[i] >= 0x80) {
				if ((k = addr_utf8_len(s + i, len - i)) == 0) {
					*why = "invalid UTF-8";
					return -EINVAL;
				}
				*u8 = true;
				i += k - 1;
			} else if (s[i] < 32 || s[i] > 126) {
				*why = "control character in local part";
				return -EINVAL;
			}
		}
		if (i >= len) {
			*why = "unterminated quoted local part";
			return -EINVAL;
		}
		i++;	/* closing quote */
		if (i >= len || s[i] != '@') {
			*why = i >= len ? "missing @" :
			    "text after quoted local part";
			return -EINVAL;
		}
		*end = i;
		return 0;
	}
	/* Dot-string = Atom *("." Atom) */
	for (bool atom = false; i < len && s[i] != '@'; i++) {
		if (s[i] == '.') {
			if (!atom) {
				*why = "empty atom in local part";
				return -EINVAL;
			}
			atom = false;
		} else if (s[i] >= 0x80) {
			if ((k = addr_utf8_len(s + i, len - i)) == 0) {
				*why = "invalid UTF-8";
				return -EINVAL;
			}
			*u8 = true;
			atom = true;
			i += k - 1;
		} else if (addr_atext(s[i])) {
			atom = true;
		} else {
			*why = "invalid character in local part";
			return -EINVAL;
		}
	}
	if (i == len) {
		*why = "missing @";
		return -EINVAL;
	}
	if (i == 0) {
		*why = "empty local part";
		return -EINVAL;
	}
	if (s[i - 1] == '.') {
		*why = "empty atom in local part";
		return -EINVAL;
	}
	*end = i;
	return 0;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]"  4.1.3 */
static int
addr_literal(const unsigned char *s, size_t len, const char **why)
{
	char		buf[64];
	unsigned char	a[16];
	const char	*p;
	size_t		n;
	int		af = AF_INET;

	if (len < 3 || s[len - 1] != ']') {
		*why = "bad address literal";
		return -EINVAL;
	}
	p = (const char *)s + 1;
	n = len - 2;
	if (n > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		af = AF_INET6;
		p += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(buf) || memchr(p, '\0', n) != NULL) {
		*why = "bad address literal";
		return -EINVAL;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (inet_pton(af, buf, a) != 1) {
		/* General-address-literal tags are not registered for use. */
		*why = af == AF_INET6 ? "bad IPv6 address literal" :
		    "bad address literal";
		return -EINVAL;
	}
	return 0;
}

static int
addr_domain_check(const unsigned char *s, size_t len, bool *u8,
    const char **why)
{
	size_t lab = 0, k;

	if (len == 0) {
		*why = "empty domain";
		return -EINVAL;
	}
	if (len > ADDR_DOMAIN_MAX) {
		*why = "domain too long";
		return -EINVAL;
	}
	if (s[0] == '[')
		return addr_literal(s, len, why);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (lab == 0) {
				*why = "empty domain label";
				return -EINVAL;
			}
			if (s[i - 1] == '-') {
				*why = "domain label ends with hyphen";
				return -EINVAL;
			}
			lab = 0;
			continue;
		}
		if (s[i] >= 0x80) {
			if ((k = addr_utf8_len(s + i, len - i)) == 0) {
				*why = "invalid UTF-8";
				return -EINVAL;
			}
			*u8 = true;
			i += k - 1;
			lab += k;
		} else if (addr_letdig(s[i])) {
			lab++;
		} else if (s[i] == '-') {
			if (lab == 0) {
				*why = "domain label starts with hyphen";
				return -EINVAL;
			}
			lab++;
		} else {
			*why = "invalid character in domain";
			return -EINVAL;
		}
		if (lab > ADDR_LABEL_MAX) {
			*why = "domain label too long";
			return -EINVAL;
		}
	}
	if (lab == 0) {
		*why = "empty domain label";
		return -EINVAL;
	}
	if (s[len - 1] == '-') {
		*why = "domain label ends with hyphen";
		return -EINVAL;
	}
	return 0;
}

int
addr_validate(const char *str, size_t len, bool *utf8, const char **why)
{
	const unsigned char	*s = (const unsigned char *)str;
	const char		*dummy;
	size_t			 at;
	bool			 u8 = false;
	int			 rc;

	if (why == NULL)
		why = &dummy;
	if (utf8 != NULL)
		*utf8 = false;
	if (s == NULL || len == 0) {
		*why = "empty address";
		return -EINVAL;
	}
	if (len + 2 > ADDR_PATH_MAX) {
		*why = "address too long";
		return -EINVAL;
	}
	if ((rc = addr_local(s, len, &at, &u8, why)) != 0)
		return rc;
	if (at > ADDR_LOCAL_MAX) {
		*why = "local part too long";
		return -EINVAL;
	}
	if ((rc = addr_domain_check(s + at + 1, len - at - 1, &u8, why)) != 0)
		return rc;
	if (utf8 != NULL)
		*utf8 = u8;
	return 0;
}

const char *
addr_domain(const char *s, size_t len, size_t *domlen)
{
	const char *at = NULL;

	for (size_t i = len; i > 0; i--) {
		if (s[i - 1] == '@') {
			at = s + i - 1;
			break;
		}
	}
	if (at == NULL)
		return NULL;
	if (domlen != NULL)
		*domlen = (size_t)(s + len - at - 1);
	return at + 1;
}

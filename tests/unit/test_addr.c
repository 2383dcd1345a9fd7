#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "mail/addr.h"

static void
ok(const char *s, bool want_utf8)
{
	const char	*why = NULL;
	bool		 u8 = !want_utf8;

	cr_assert_eq(addr_validate(s, strlen(s), &u8, &why), 0,
	    "'%s' rejected: %s", s, why);
	cr_assert_eq(u8, want_utf8, "'%s' utf8 flag", s);
}

static void
bad(const char *s, size_t len, const char *want)
{
	const char	*why = NULL;
	bool		 u8 = true;

	cr_assert_eq(addr_validate(s, len, &u8, &why), -EINVAL,
	    "'%.*s' accepted", (int)len, s);
	cr_assert_not_null(why);
	cr_assert_str_eq(why, want, "'%.*s'", (int)len, s);
	cr_assert_not(u8);
}

#define BAD(lit, why)	bad((lit), sizeof(lit) - 1, (why))

Test(addr, accepts_valid_mailboxes)
{
	ok("a@b", false);
	ok("user@example.com", false);
	ok("first.last+tag@sub.example.co.uk", false);
	ok("!#$%&'*+-/=?^_`{|}~@example.com", false);
	ok("x@1.2.3.4", false);
	ok("x@a-b.c-d.example", false);
	ok("\"john doe\"@example.com", false);
	ok("\"a@b\"@example.com", false);
	ok("\"q\\\"uote\"@example.com", false);
	ok("\"\"@example.com", false);
	ok("user@[192.0.2.1]", false);
	ok("user@[IPv6:2001:db8::1]", false);
	ok("user@[ipv6:::1]", false);
	ok("Ren\xc3\xa9@example.com", true);
	ok("user@b\xc3\xbc" "cher.example", true);
	ok("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac"
	    "\xe5\x8f\xb8", true);
	ok("\"caf\xc3\xa9\"@example.com", true);
}

Test(addr, rejects_structure)
{
	BAD("", "empty address");
	BAD("plainaddress", "missing @");
	BAD("@example.com", "empty local part");
	BAD("user@", "empty domain");
	BAD("a@b@c", "invalid character in domain");
	BAD(".a@b", "empty atom in local part");
	BAD("a.@b", "empty atom in local part");
	BAD("a..b@c", "empty atom in local part");
	BAD("a b@c", "invalid character in local part");
	BAD("a(b)@c", "invalid character in local part");
	BAD("a\"b@c", "invalid character in local part");
	BAD("<a@b>", "invalid character in local part");
	BAD("\"abc@example.com", "unterminated quoted local part");
	BAD("\"abc\"x@example.com", "text after quoted local part");
	BAD("\"abc\"", "missing @");
	BAD("\"a\\\x01\"@b", "bad quoted-pair in local part");
	BAD("\"a\tb\"@c", "control character in local part");
}

Test(addr, rejects_injection)
{
	BAD("a@b\r\nRCPT TO:<x@y>", "invalid character in domain");
	BAD("a\r\n@b", "invalid character in local part");
	BAD("a@b\0c", "invalid character in domain");
	BAD("a\0@b", "invalid character in local part");
	BAD("a@b>", "invalid character in domain");
	BAD("a@b c", "invalid character in domain");
}

Test(addr, rejects_bad_domains)
{
	BAD("a@.b", "empty domain label");
	BAD("a@b.", "empty domain label");
	BAD("a@b..c", "empty domain label");
	BAD("a@-b.c", "domain label starts with hyphen");
	BAD("a@b-.c", "domain label ends with hyphen");
	BAD("a@b.c-", "domain label ends with hyphen");
	BAD("a@b_c.d", "invalid character in domain");
	BAD("a@[300.1.1.1]", "bad address literal");
	BAD("a@[1.2.3]", "bad address literal");
	BAD("a@[IPv6:zz::1]", "bad IPv6 address literal");
	BAD("a@[IPv6:]", "bad address literal");
	BAD("a@[]", "bad address literal");
	BAD("a@[1.2.3.4", "bad address literal");
	BAD("a@[x-tag:stuff]", "bad address literal");
}

Test(addr, rejects_bad_utf8)
{
	BAD("\xc3@b", "invalid UTF-8");
	BAD("\xc0\xaf@b", "invalid UTF-8");		/* overlong */
	BAD("\xed\xa0\x80@b", "invalid UTF-8");		/* surrogate */
	BAD("\xf4\x90\x80\x80@b", "invalid UTF-8");	/* > U+10FFFF */
	BAD("a@b\xff", "invalid UTF-8");
	BAD("a@\xe4\xbe", "invalid UTF-8");		/* truncated */
	BAD("\"\x80\"@b", "invalid UTF-8");
}

Test(addr, length_limits)
{
	char buf[400];

	/* Local part: 64 ok, 65 not (RFC 5321 4.5.3.1.1). */
	memset(buf, 'l', 64);
	strcpy(buf + 64, "@example.com");
	ok(buf, false);
	memset(buf, 'l', 65);
	strcpy(buf + 65, "@example.com");
	bad(buf, strlen(buf), "local part too long");

	/* Label: 63 ok, 64 not. */
	strcpy(buf, "a@");
	memset(buf + 2, 'd', 63);
	strcpy(buf + 65, ".com");
	ok(buf, false);
	memset(buf + 2, 'd', 64);
	strcpy(buf + 66, ".com");
	bad(buf, strlen(buf), "domain label too long");

	/* Path: address of 254 ok (+ "<>" = 256), 255 not. */
	strcpy(buf, "a@");
	for (size_t i = 2; i < 254; i += 2) {
		buf[i] = 'd';
		buf[i + 1] = '.';
	}
	buf[253] = 'd';
	buf[254] = '\0';
	ok(buf, false);
	buf[254] = 'd';
	buf[255] = '\0';
	bad(buf, 255, "address too long");

	/* Domain over 255 octets is caught even before the path limit. */
	cr_assert_eq(addr_validate(buf, 300, NULL, NULL), -EINVAL);
}

Test(addr, length_is_respected)
{
	const char *s = "user@example.com>garbage";

	cr_assert_eq(addr_validate(s, 16, NULL, NULL), 0);
	cr_assert_eq(addr_validate(s, strlen(s), NULL, NULL), -EINVAL);
}

Test(addr, domain_of)
{
	size_t		 n = 0;
	const char	*d;
	const char	*s = "\"a@b\"@Example.COM";

	d = addr_domain(s, strlen(s), &n);
	cr_assert_not_null(d);
	cr_assert_eq(n, 11);
	cr_assert_eq(memcmp(d, "Example.COM", n), 0);
	cr_assert_null(addr_domain("nodomain", 8, &n));
	d = addr_domain("a@", 2, &n);
	cr_assert_not_null(d);
	cr_assert_eq(n, 0);
	/* Only the first len bytes count. */
	cr_assert_null(addr_domain("abc@d", 3, &n));
}

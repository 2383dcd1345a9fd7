#include <criterion/criterion.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/json.h"

static char *
enc(const char *s, size_t len)
{
	static struct buf	b;

	buf_free(&b);
	buf_init(&b);
	cr_assert_eq(json_put_str(&b, s, len), 0);
	return b.data;
}

Test(json, escapes_quotes_backslash_controls)
{
	cr_assert_str_eq(enc("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
	cr_assert_str_eq(enc("l1\nl2\r\t\b\f", 9),
	    "\"l1\\nl2\\r\\t\\b\\f\"");
	cr_assert_str_eq(enc("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\\u007f\"");
	cr_assert_str_eq(enc("a\0b", 3), "\"a\\u0000b\"");
	cr_assert_str_eq(enc("", 0), "\"\"");
}

Test(json, utf8_passes_invalid_replaced)
{
	/* é, €, U+1F600 pass through. */
	cr_assert_str_eq(enc("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9),
	    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	/* Lone continuation, overlong, surrogate, truncated, > U+10FFFF. */
	cr_assert_str_eq(enc("\x80", 1), "\"\xef\xbf\xbd\"");
	cr_assert_str_eq(enc("\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	cr_assert_str_eq(enc("\xed\xa0\x80", 3),
	    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	cr_assert_str_eq(enc("a\xe2\x82", 3), "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
	cr_assert_str_eq(enc("\xf4\x90\x80\x80", 4),
	    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}

Test(json, utf8_seq_lengths)
{
	cr_assert_eq(json_utf8_seq("A", 1), 1);
	cr_assert_eq(json_utf8_seq("\xc3\xa9", 2), 2);
	cr_assert_eq(json_utf8_seq("\xc3\xa9", 1), 0);
	cr_assert_eq(json_utf8_seq("\xef\xbf\xbd", 3), 3);
	cr_assert_eq(json_utf8_seq("\xf4\x8f\xbf\xbf", 4), 4);
	cr_assert_eq(json_utf8_seq("\xe0\x80\x80", 3), 0);
	cr_assert_eq(json_utf8_seq("\xf5\x80\x80\x80", 4), 0);
	cr_assert_eq(json_utf8_seq("", 0), 0);
}

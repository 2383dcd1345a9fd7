#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "out/suppress.h"

Test(suppress, format_parse_round_trip)
{
	char			v[SUPPRESS_VALUE_MAX];
	struct suppress_entry	e;

	cr_assert_eq(suppress_format_value(v, sizeof(v), "550 5.1.1 unknown",
	    "bounce", 1700000000123LL), 0);
	cr_assert_str_eq(v, "550 5.1.1 unknown\x1f" "bounce\x1f" "1700000000123");
	cr_assert_eq(suppress_parse_value(v, strlen(v), &e), 0);
	cr_assert_str_eq(e.reason, "550 5.1.1 unknown");
	cr_assert_str_eq(e.source, "bounce");
	cr_assert_eq(e.ts_ms, 1700000000123LL);
}

Test(suppress, format_null_reason_is_empty)
{
	char			v[SUPPRESS_VALUE_MAX];
	struct suppress_entry	e;

	cr_assert_eq(suppress_format_value(v, sizeof(v), NULL, "manual", 0), 0);
	cr_assert_str_eq(v, "\x1fmanual\x1f" "0");
	cr_assert_eq(suppress_parse_value(v, strlen(v), &e), 0);
	cr_assert_str_eq(e.reason, "");
	cr_assert_eq(e.ts_ms, 0);
}

Test(suppress, format_sanitises_reason)
{
	char			v[SUPPRESS_VALUE_MAX];
	struct suppress_entry	e;

	/* Separators, CR/LF and invalid UTF-8 cannot reach the value. */
	cr_assert_eq(suppress_format_value(v, sizeof(v),
	    "a\x1f" "b\r\nc\xff\xc3\xa9", "complaint", 5), 0);
	cr_assert_str_eq(v, "a b  c?\xc3\xa9\x1f" "complaint\x1f" "5");
	cr_assert_eq(suppress_parse_value(v, strlen(v), &e), 0);
	cr_assert_str_eq(e.reason, "a b  c?\xc3\xa9");
}

Test(suppress, format_truncates_on_char_boundary)
{
	char			reason[SUPPRESS_REASON_MAX + 10];
	char			v[SUPPRESS_VALUE_MAX];
	struct suppress_entry	e;

	/* 'x' then 2-byte characters so the cut falls inside one. */
	reason[0] = 'x';
	for (size_t i = 1; i + 1 < sizeof(reason) - 1; i += 2) {
		reason[i] = (char)0xc3;
		reason[i + 1] = (char)0xa9;
	}
	reason[sizeof(reason) - 1] = '\0';
	cr_assert_eq(suppress_format_value(v, sizeof(v), reason, "bounce", 1),
	    0);
	cr_assert_eq(suppress_parse_value(v, strlen(v), &e), 0);
	cr_assert_eq(strlen(e.reason), SUPPRESS_REASON_MAX - 1);
	cr_assert_eq((unsigned char)e.reason[strlen(e.reason) - 1], 0xa9);
}

Test(suppress, format_rejects_bad_source_and_small_buffer)
{
	char	v[SUPPRESS_VALUE_MAX];

	cr_assert_eq(suppress_format_value(v, sizeof(v), "r", "", 1), -EINVAL);
	cr_assert_eq(suppress_format_value(v, sizeof(v), "r", "Bounce", 1),
	    -EINVAL);
	cr_assert_eq(suppress_format_value(v, sizeof(v), "r", "a b", 1),
	    -EINVAL);
	cr_assert_eq(suppress_format_value(v, sizeof(v), "r", "bounce", -1),
	    -EINVAL);
	cr_assert_eq(suppress_format_value(v, 16, "r", "bounce", 1), -ENOSPC);
}

Test(suppress, parse_rejects_malformed)
{
	struct suppress_entry	e;
	static const char *const bad[] = {
		"", "reason", "reason\x1fsrc", "r\x1f\x1f" "1", "r\x1fsrc\x1f",
		"r\x1fsrc\x1f" "12a", "r\x1fsrc\x1f-1", "r\x1fSRC\x1f" "1",
		"r\nx\x1fsrc\x1f" "1", "r\xff\x1fsrc\x1f" "1",
		"r\x1fsrc\x1f" "1234567890123456789",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(suppress_parse_value(bad[i], strlen(bad[i]), &e),
		    -EINVAL, "accepted bad value #%zu", i);
}

Test(suppress, parse_ignores_later_fields_and_needs_no_nul)
{
	struct suppress_entry	e;
	const char		v[] = "why\x1fimport\x1f" "42\x1f" "future\x1fmore";

	cr_assert_eq(suppress_parse_value(v, sizeof(v) - 1, &e), 0);
	cr_assert_str_eq(e.reason, "why");
	cr_assert_str_eq(e.source, "import");
	cr_assert_eq(e.ts_ms, 42);
	/* Length-bounded: the digits after len are not read. */
	cr_assert_eq(suppress_parse_value("a\x1fs\x1f" "123", 6, &e), 0);
	cr_assert_eq(e.ts_ms, 12);
}

Test(suppress, parse_rejects_overlong_reason)
{
	char			v[SUPPRESS_REASON_MAX + 32];
	struct suppress_entry	e;

	memset(v, 'a', SUPPRESS_REASON_MAX + 1);
	strcpy(v + SUPPRESS_REASON_MAX + 1, "\x1fs\x1f" "1");
	cr_assert_eq(suppress_parse_value(v, strlen(v), &e), -EINVAL);
	/* Exactly the maximum is fine. */
	strcpy(v + SUPPRESS_REASON_MAX, "\x1fs\x1f" "1");
	cr_assert_eq(suppress_parse_value(v, strlen(v), &e), 0);
	cr_assert_eq(strlen(e.reason), SUPPRESS_REASON_MAX);
}

Test(suppress, keys)
{
	char	k[SUPPRESS_KEY_MAX];
	char	name[SUPPRESS_LIST_MAX + 2];

	cr_assert_eq(suppress_key(k, sizeof(k), NULL), 0);
	cr_assert_str_eq(k, "rm:suppress");
	cr_assert_eq(suppress_key(k, sizeof(k), ""), 0);
	cr_assert_str_eq(k, "rm:suppress");
	cr_assert_eq(suppress_key(k, sizeof(k), "News-2026.q1"), 0);
	cr_assert_str_eq(k, "rm:suppress:list:News-2026.q1");
	cr_assert_eq(suppress_key(k, sizeof(k), "a b"), -EINVAL);
	cr_assert_eq(suppress_key(k, sizeof(k), "a:b"), -EINVAL);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	cr_assert_eq(suppress_key(k, sizeof(k), name), -EINVAL);
	name[SUPPRESS_LIST_MAX] = '\0';
	cr_assert_eq(suppress_key(k, sizeof(k), name), 0);
	cr_assert_eq(suppress_key(k, 8, "x"), -ENOSPC);
}

Test(suppress, normalize)
{
	char	a[SUPPRESS_ADDR_MAX + 1];
	char	big[SUPPRESS_ADDR_MAX + 2];

	cr_assert_eq(suppress_normalize(a, sizeof(a), " Foo.Bar@EXAMPLE.Com\t",
	    21), 0);
	cr_assert_str_eq(a, "foo.bar@example.com");
	/* UTF-8 bytes are kept as they are. */
	cr_assert_eq(suppress_normalize(a, sizeof(a), "\xc3\x89@X.org", 8), 0);
	cr_assert_str_eq(a, "\xc3\x89@x.org");
	cr_assert_eq(suppress_normalize(a, sizeof(a), "   ", 3), -EINVAL);
	cr_assert_eq(suppress_normalize(a, sizeof(a), "a b@x", 5), -EINVAL);
	cr_assert_eq(suppress_normalize(a, sizeof(a), "a\n@x", 4), -EINVAL);
	cr_assert_eq(suppress_normalize(a, 3, "abc@x", 5), -ENOSPC);
	memset(big, 'a', sizeof(big));
	cr_assert_eq(suppress_normalize(a, sizeof(a), big, sizeof(big)),
	    -EINVAL);
	cr_assert_eq(suppress_normalize(a, sizeof(a), big, SUPPRESS_ADDR_MAX),
	    0);
}

Test(suppress, source_and_list_names)
{
	cr_assert(suppress_source_valid("unsubscribe"));
	cr_assert(suppress_source_valid("esp-import_2.x"));
	cr_assert_not(suppress_source_valid(""));
	cr_assert_not(suppress_source_valid(NULL));
	cr_assert_not(suppress_source_valid("UPPER"));
	cr_assert_not(suppress_source_valid(
	    "a23456789012345678901234567890123"));
	cr_assert(suppress_list_valid("Marketing"));
	cr_assert_not(suppress_list_valid("*"));
}

#include <criterion/criterion.h>
#include <string.h>

#include "lib/buf.h"

Test(buf, append_grows_and_terminates)
{
	struct buf b;

	buf_init(&b);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(buf_append(&b, "abc", 3), 0);
	cr_assert_eq(b.len, 3000);
	cr_assert_eq(b.data[b.len], '\0');
	cr_assert(b.cap >= 3001);
	buf_free(&b);
}

Test(buf, consume_and_compact)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "hello world");
	buf_consume(&b, 6);
	cr_assert_eq(buf_unread(&b), 5);
	cr_assert_eq(memcmp(buf_peek(&b), "world", 5), 0);
	buf_compact(&b);
	cr_assert_eq(b.off, 0);
	cr_assert_str_eq(b.data, "world");
	buf_consume(&b, 5);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.off, 0);
	buf_free(&b);
}

Test(buf, printf_appends)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%d-%s", 42, "x");
	buf_printf(&b, "/%05u", 7u);
	cr_assert_str_eq(b.data, "42-x/00007");
	buf_free(&b);
}

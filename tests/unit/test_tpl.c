#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "lib/buf.h"
#include "templates/tpl.h"

static const char *const tpl_test_cols[] = { "first_name", "email", "city" };

static struct tpl *
tpl_test_compile(const char *src, enum tpl_ctx ctx, char *err, size_t errlen)
{
	return tpl_compile(src, strlen(src), "t", ctx, tpl_test_cols, 3, err,
	    errlen);
}

/* Render src against three values; returns the malloc'd output buffer. */
static void
tpl_test_render(const char *src, enum tpl_ctx ctx, const char *v0,
    const char *v1, const char *v2, struct buf *out)
{
	const char	*vals[3] = { v0, v1, v2 };
	size_t		 lens[3] = { strlen(v0), strlen(v1), strlen(v2) };
	struct tpl_row	 row = { 3, vals, lens };
	struct tpl	*t;
	char		 err[256];

	t = tpl_test_compile(src, ctx, err, sizeof(err));
	cr_assert_not_null(t, "compile failed: %s", err);
	buf_init(out);
	cr_assert_eq(tpl_render(t, &row, out), 0);
	tpl_free(t);
}

Test(tpl, literal_only)
{
	struct buf	 b;

	tpl_test_render("Hello, world!\n", TPL_CTX_TEXT, "", "", "", &b);
	cr_assert_str_eq(b.data, "Hello, world!\n");
	buf_free(&b);
}

Test(tpl, variables_with_spaces)
{
	struct buf	 b;

	tpl_test_render("Hi {{first_name}}, {{ city }}/{{\temail\n}}!",
	    TPL_CTX_TEXT, "Ann", "a@x", "Oslo", &b);
	cr_assert_str_eq(b.data, "Hi Ann, Oslo/a@x!");
	buf_free(&b);
}

Test(tpl, empty_template)
{
	struct buf	 b;

	tpl_test_render("", TPL_CTX_TEXT, "a", "b", "c", &b);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}

Test(tpl, single_braces_are_literal)
{
	struct buf	 b;

	tpl_test_render("a { b } {c} }}", TPL_CTX_TEXT, "", "", "", &b);
	cr_assert_str_eq(b.data, "a { b } {c} }}");
	buf_free(&b);
}

Test(tpl, text_is_verbatim)
{
	struct buf	 b;

	tpl_test_render("{{first_name}}", TPL_CTX_TEXT, "<b>&\"'\r\n", "",
	    "", &b);
	cr_assert_str_eq(b.data, "<b>&\"'\r\n");
	buf_free(&b);
}

Test(tpl, html_escapes)
{
	struct buf	 b;

	tpl_test_render("<p>{{first_name}}</p>", TPL_CTX_HTML,
	    "<script>alert('x&y')</script>\"", "", "", &b);
	cr_assert_str_eq(b.data, "<p>&lt;script&gt;alert(&#39;x&amp;y&#39;)"
	    "&lt;/script&gt;&quot;</p>");
	buf_free(&b);
}

Test(tpl, header_injection_impossible)
{
	struct buf	 b;
	size_t		 i;

	tpl_test_render("Hello {{first_name}}", TPL_CTX_HEADER,
	    "x\r\nBcc: evil@x\n\x01\x7f\t", "", "", &b);
	cr_assert_str_eq(b.data, "Hello x  Bcc: evil@x    ");
	for (i = 0; i < b.len; i++)
		cr_assert(b.data[i] >= 0x20 && b.data[i] != 0x7f);
	buf_free(&b);
}

Test(tpl, header_literal_controls_removed)
{
	struct buf	 b;

	tpl_test_render("Hi\r\n{{city}}\n", TPL_CTX_HEADER, "", "", "Rome",
	    &b);
	cr_assert_str_eq(b.data, "Hi  Rome ");
	buf_free(&b);
}

Test(tpl, header_keeps_utf8)
{
	struct buf	 b;

	tpl_test_render("{{city}}", TPL_CTX_HEADER, "", "", "Zürich", &b);
	cr_assert_str_eq(b.data, "Zürich");
	buf_free(&b);
}

Test(tpl, unknown_variable_error)
{
	char	 err[256];

	cr_assert_null(tpl_test_compile("line one\n  ab {{ nope }}", TPL_CTX_TEXT,
	    err, sizeof(err)));
	cr_assert_str_eq(err, "t:2:9: unknown variable 'nope'");
}

Test(tpl, unterminated_error)
{
	char	 err[256];

	cr_assert_null(tpl_test_compile("x\ny\n   {{first_name",
	    TPL_CTX_TEXT, err, sizeof(err)));
	cr_assert_str_eq(err, "t:3:4: unterminated tag");
	cr_assert_null(tpl_test_compile("{{first_name}", TPL_CTX_TEXT, err,
	    sizeof(err)));
	cr_assert_str_eq(err, "t:1:1: unterminated tag");
}

Test(tpl, empty_tag_error)
{
	char	 err[256];

	cr_assert_null(tpl_test_compile("a{{  }}", TPL_CTX_TEXT, err,
	    sizeof(err)));
	cr_assert(strncmp(err, "t:1:", 4) == 0, "%s", err);
	cr_assert_null(tpl_test_compile("a{{first_name city}}", TPL_CTX_TEXT,
	    err, sizeof(err)));
	cr_assert(strncmp(err, "t:1:", 4) == 0, "%s", err);
}

Test(tpl, error_buffer_small)
{
	char	 err[8];

	cr_assert_null(tpl_test_compile("{{x}}", TPL_CTX_TEXT, err,
	    sizeof(err)));
	cr_assert_eq(strlen(err), 7);
	cr_assert_null(tpl_test_compile("{{x}}", TPL_CTX_TEXT, NULL, 0));
}

Test(tpl, row_too_short)
{
	const char	*vals[1] = { "a" };
	size_t		 lens[1] = { 1 };
	struct tpl_row	 row = { 1, vals, lens };
	struct tpl	*t;
	struct buf	 b;

	t = tpl_test_compile("{{city}}", TPL_CTX_TEXT, NULL, 0);
	cr_assert_not_null(t);
	buf_init(&b);
	cr_assert_eq(tpl_render(t, &row, &b), -EINVAL);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
	tpl_free(t);
}

Test(tpl, values_with_embedded_nul_and_lens)
{
	const char	*vals[3] = { "a\0b", "", "" };
	size_t		 lens[3] = { 3, 0, 0 };
	struct tpl_row	 row = { 3, vals, lens };
	struct tpl	*t;
	struct buf	 b;

	t = tpl_test_compile("[{{first_name}}]", TPL_CTX_TEXT, NULL, 0);
	cr_assert_not_null(t);
	buf_init(&b);
	cr_assert_eq(tpl_render(t, &row, &b), 0);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(memcmp(b.data, "[a\0b]", 5), 0);
	buf_free(&b);
	tpl_free(t);
}

Test(tpl, render_appends_and_reuses_buffer)
{
	const char	*vals[3] = { "Ann", "a@x", "Oslo" };
	size_t		 lens[3] = { 3, 3, 4 };
	struct tpl_row	 row = { 3, vals, lens };
	struct tpl	*t;
	struct buf	 b;
	char		*data;
	int		 i;

	t = tpl_test_compile("<{{first_name}}&{{city}}>", TPL_CTX_HTML, NULL,
	    0);
	cr_assert_not_null(t);
	buf_init(&b);
	buf_puts(&b, "pre:");
	cr_assert_eq(tpl_render(t, &row, &b), 0);
	cr_assert_str_eq(b.data, "pre:<Ann&Oslo>");
	/* Once grown, a reset buffer is reused: same block every time. */
	data = b.data;
	for (i = 0; i < 100; i++) {
		buf_reset(&b);
		cr_assert_eq(tpl_render(t, &row, &b), 0);
		cr_assert_eq(b.data, data);
	}
	cr_assert_str_eq(b.data, "<Ann&Oslo>");
	buf_free(&b);
	tpl_free(t);
}

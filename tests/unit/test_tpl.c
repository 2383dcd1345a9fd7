#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/msg.h"
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

	t = tpl_test_compile("({{first_name}}&{{city}})", TPL_CTX_HTML, NULL,
	    0);
	cr_assert_not_null(t);
	buf_init(&b);
	buf_puts(&b, "pre:");
	cr_assert_eq(tpl_render(t, &row, &b), 0);
	cr_assert_str_eq(b.data, "pre:(Ann&Oslo)");
	/* Once grown, a reset buffer is reused: same block every time. */
	data = b.data;
	for (i = 0; i < 100; i++) {
		buf_reset(&b);
		cr_assert_eq(tpl_render(t, &row, &b), 0);
		cr_assert_eq(b.data, data);
	}
	cr_assert_str_eq(b.data, "(Ann&Oslo)");
	buf_free(&b);
	tpl_free(t);
}

/* ---- phase 2: the full language ------------------------------------------ */

/*
 * Allocation counting: the test binary's malloc family forwards to glibc's
 * and counts while tpl_test_counting is set. Not under ASan, which has
 * its own allocator that these would bypass.
 */
#if !defined(__SANITIZE_ADDRESS__)
#define TPL_TEST_COUNT_MALLOC 1
extern void	*__libc_malloc(size_t);
extern void	*__libc_calloc(size_t, size_t);
extern void	*__libc_realloc(void *, size_t);
static volatile int	 tpl_test_counting;
static volatile size_t	 tpl_test_nalloc;

void *
malloc(size_t n)
{
	if (tpl_test_counting)
		tpl_test_nalloc++;
	return __libc_malloc(n);
}

void *
calloc(size_t a, size_t b)
{
	if (tpl_test_counting)
		tpl_test_nalloc++;
	return __libc_calloc(a, b);
}

void *
realloc(void *p, size_t n)
{
	if (tpl_test_counting)
		tpl_test_nalloc++;
	return __libc_realloc(p, n);
}
#endif

static const char *const tpl_test_fields[] = { "name", "price", "url" };
static const char *const tpl_test_tagf[] = { "tag" };
static const struct tpl_listdef tpl_test_ldefs[] = {
	{ "items", tpl_test_fields, 3 },
	{ "tags", tpl_test_tagf, 1 },
};

static const char *const tpl_test_cols2[] = { "first_name", "email", "city",
	"url", "flag", "date", "name" };

struct tpl_test_partial {
	const char	*name;
	const char	*src;
};

static const struct tpl_test_partial tpl_test_partials[] = {
	{ "footer", "<p>Bye {{first_name | \"you\"}}</p>" },
	{ "link", "<a href=\"" },
	{ "self", "x{{> self}}" },
	{ "bad", "ok\n  {{nope}}" },
	{ "open", "{{#if flag}}" },
	{ "nested/part", "[{{city}}]" },
	{ "fan1", "{{>fan2}}{{>fan2}}{{>fan2}}{{>fan2}}{{>fan2}}{{>fan2}}" },
	{ "fan2", "{{>fan3}}{{>fan3}}{{>fan3}}{{>fan3}}{{>fan3}}{{>fan3}}" },
	{ "fan3", "{{>fan4}}{{>fan4}}{{>fan4}}{{>fan4}}{{>fan4}}{{>fan4}}" },
	{ "fan4", "{{>fan5}}{{>fan5}}{{>fan5}}{{>fan5}}{{>fan5}}{{>fan5}}" },
	{ "fan5", "{{>fan6}}{{>fan6}}{{>fan6}}{{>fan6}}{{>fan6}}{{>fan6}}" },
	{ "fan6", "" },
};

static int
tpl_test_load(void *arg, const char *name, const char **src, size_t *len)
{
	size_t	 i;

	(void)arg;
	for (i = 0; i < sizeof(tpl_test_partials) /
	    sizeof(tpl_test_partials[0]); i++)
		if (strcmp(name, tpl_test_partials[i].name) == 0) {
			*src = tpl_test_partials[i].src;
			*len = strlen(*src);
			return 0;
		}
	return -ENOENT;
}

static const struct tpl_opts tpl_test_opts = {
	tpl_test_ldefs, 2, tpl_test_load, NULL
};

static struct tpl *
tpl_test_compile2(const char *src, enum tpl_ctx ctx, char *err, size_t errlen)
{
	return tpl_compile_ex(src, strlen(src), "t", ctx, tpl_test_cols2, 7,
	    &tpl_test_opts, err, errlen);
}

/* Values for tpl_test_cols2, and the two lists. */
struct tpl_test_data {
	const char	*v[7];
	const char	*items[9];	/* 3 items x (name, price, url) */
	size_t		 nitems;
	const char	*tags[4];
	size_t		 ntags;
};

static char *
tpl_test_run(const char *src, enum tpl_ctx ctx, const struct tpl_test_data *d)
{
	struct tpl_row	 row = { 7, d->v, NULL };
	struct tpl_list	 lists[2] = { { d->nitems, d->items, NULL },
		{ d->ntags, d->tags, NULL } };
	struct tpl	*t;
	struct buf	 b;
	char		 err[256], *s;

	t = tpl_test_compile2(src, ctx, err, sizeof(err));
	cr_assert_not_null(t, "compile \"%s\": %s", src, err);
	buf_init(&b);
	cr_assert_eq(tpl_render_ex(t, &row, lists, 2, &b), 0);
	s = strdup(b.data);
	buf_free(&b);
	tpl_free(t);
	return s;
}

static void
tpl_test_expect(const char *src, enum tpl_ctx ctx,
    const struct tpl_test_data *d, const char *want)
{
	char	*got = tpl_test_run(src, ctx, d);

	cr_assert_str_eq(got, want, "template \"%s\"", src);
	free(got);
}

static void
tpl_test_experr(const char *src, enum tpl_ctx ctx, const char *want)
{
	char	 err[256];

	cr_assert_null(tpl_test_compile2(src, ctx, err, sizeof(err)),
	    "\"%s\" compiled", src);
	cr_assert_str_eq(err, want, "template \"%s\": got \"%s\"", src,
	    err);
}

static const struct tpl_test_data tpl_test_d = {
	.v = { "Ann", "ann@example.com", "Zürich", "https://x.com/?a=1&b=2",
	    "yes", "2024-03-05", "" },
	.items = { "Tea", "3", "https://shop/t?id=1", "Cake <big>", "5",
	    "javascript:alert(1)" },
	.nitems = 2,
	.tags = { "new", "sale" },
	.ntags = 2,
};

Test(tpl, raw_triple_braces)
{
	struct tpl_test_data d = tpl_test_d;

	d.v[0] = "<b>A&B</b>";
	tpl_test_expect("{{{first_name}}}|{{first_name}}", TPL_CTX_HTML, &d,
	    "<b>A&B</b>|&lt;b&gt;A&amp;B&lt;/b&gt;");
	tpl_test_expect("{{{ first_name | upper }}}", TPL_CTX_HTML, &d,
	    "<B>A&B</B>");
	d.v[0] = "a\r\nBcc: x";
	tpl_test_expect("{{{first_name}}}", TPL_CTX_HEADER, &d, "a  Bcc: x");
}

Test(tpl, defaults)
{
	struct tpl_test_data d = tpl_test_d;

	tpl_test_expect("Hi {{ name | \"there\" }}!", TPL_CTX_TEXT, &d,
	    "Hi there!");
	tpl_test_expect("Hi {{first_name | \"there\"}}!", TPL_CTX_TEXT, &d,
	    "Hi Ann!");
	tpl_test_expect("{{name | default 'a \\'q\\' \\\\'}}", TPL_CTX_TEXT,
	    &d, "a 'q' \\");
	tpl_test_expect("{{name | \"<x>\"}}", TPL_CTX_HTML, &d, "&lt;x&gt;");
	tpl_test_expect("{{name | upper | \"none\" | upper}}", TPL_CTX_TEXT,
	    &d, "NONE");
	tpl_test_expect("{{name|\"}}\"}}", TPL_CTX_TEXT, &d, "}}");
}

Test(tpl, case_filters)
{
	struct tpl_test_data d = tpl_test_d;

	d.v[6] = "jOHN o'neil-smith ÉLODIE zoë иван";
	tpl_test_expect("{{name | upper}}", TPL_CTX_TEXT, &d,
	    "JOHN O'NEIL-SMITH ÉLODIE ZOË ИВАН");
	tpl_test_expect("{{name | lower}}", TPL_CTX_TEXT, &d,
	    "john o'neil-smith élodie zoë иван");
	tpl_test_expect("{{name | title}}", TPL_CTX_TEXT, &d,
	    "John O'neil-Smith Élodie Zoë Иван");
	tpl_test_expect("{{city | upper | lower}}", TPL_CTX_TEXT, &d,
	    "zürich");
}

Test(tpl, urlencode_filter)
{
	struct tpl_test_data d = tpl_test_d;

	d.v[6] = "a b&c/é?~";
	tpl_test_expect("{{name | urlencode}}", TPL_CTX_TEXT, &d,
	    "a%20b%26c%2F%C3%A9%3F~");
	tpl_test_expect("{{name | url}}", TPL_CTX_HTML, &d,
	    "a%20b%26c%2F%C3%A9%3F~");
	tpl_test_expect("{{name | upper | url}}", TPL_CTX_TEXT, &d,
	    "A%20B%26C%2F%C3%89%3F~");
}

Test(tpl, date_filter)
{
	struct tpl_test_data d = tpl_test_d;

	tpl_test_expect("{{date | date \"%d.%m.%Y\"}}", TPL_CTX_TEXT, &d,
	    "05.03.2024");
	tpl_test_expect("{{date | date \"%A, %B %e %Y (%a %b %y) %j %%\"}}",
	    TPL_CTX_TEXT, &d, "Tuesday, March 5 2024 (Tue Mar 24) 065 %");
	d.v[5] = "2000-02-29T13:05:09Z";
	tpl_test_expect("{{date | date \"%Y-%m-%d %H:%M:%S %I%p %Z %z\"}}",
	    TPL_CTX_TEXT, &d, "2000-02-29 13:05:09 01PM UTC +0000");
	d.v[5] = "0";
	tpl_test_expect("{{date | date \"%a %d %b %Y\"}}", TPL_CTX_TEXT, &d,
	    "Thu 01 Jan 1970");
	d.v[5] = "1700000000";
	tpl_test_expect("{{date | date \"%Y-%m-%d %H:%M\"}}", TPL_CTX_TEXT,
	    &d, "2023-11-14 22:13");
	/* Not a date (or an impossible one): the value as it is. */
	d.v[5] = "soon <ish>";
	tpl_test_expect("{{date | date \"%Y\"}}", TPL_CTX_HTML, &d,
	    "soon &lt;ish&gt;");
	d.v[5] = "2023-02-29";
	tpl_test_expect("{{date | date \"%Y\"}}", TPL_CTX_TEXT, &d,
	    "2023-02-29");
	d.v[5] = "";
	tpl_test_expect("{{date | date \"%Y\" | \"n/a\"}}", TPL_CTX_TEXT, &d,
	    "n/a");
	tpl_test_experr("{{date | date \"%Q\"}}", TPL_CTX_TEXT,
	    "t:1:15: bad date format (use %Y %m %d %H %M %S %b %a ..., at "
	    "most 64 bytes)");
	tpl_test_experr("{{date | date}}", TPL_CTX_TEXT,
	    "t:1:14: filter 'date' needs a quoted argument");
}

Test(tpl, conditionals)
{
	struct tpl_test_data d = tpl_test_d;
	static const char *const falsy[] = { "", "0", "false", "FALSE", "no",
		" No ", "  " };
	static const char *const truthy[] = { "1", "yes", "x", "00", "n" };
	const char	*src = "{{#if flag}}Y{{else}}N{{/if}}"
	    "{{#unless flag}}u{{/unless}}{{^flag}}i{{/flag}}{{#flag}}s{{/flag}}";
	size_t		 i;

	for (i = 0; i < sizeof(falsy) / sizeof(falsy[0]); i++) {
		d.v[4] = falsy[i];
		tpl_test_expect(src, TPL_CTX_TEXT, &d, "Nui");
	}
	for (i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++) {
		d.v[4] = truthy[i];
		tpl_test_expect(src, TPL_CTX_TEXT, &d, "Ys");
	}
	d.v[4] = "1";
	tpl_test_expect("{{#if flag}}a{{#if name}}b{{else}}c{{#unless city}}"
	    "d{{else}}e{{/unless}}{{/if}}f{{/if}}g", TPL_CTX_TEXT, &d,
	    "acefg");
	tpl_test_expect("{{ #if flag }}x{{ else }}y{{ /if }}", TPL_CTX_TEXT,
	    &d, "x");
	tpl_test_expect("{{#unless flag}}x{{else}}y{{/unless}}", TPL_CTX_TEXT,
	    &d, "y");
}

Test(tpl, list_sections)
{
	struct tpl_test_data d = tpl_test_d;

	tpl_test_expect("{{#items}}{{name}}={{price}};{{/items}}",
	    TPL_CTX_TEXT, &d, "Tea=3;Cake <big>=5;");
	tpl_test_expect("<ul>{{#each items}}<li>{{name}} {{first_name}}"
	    "</li>{{else}}none{{/each}}</ul>", TPL_CTX_HTML, &d,
	    "<ul><li>Tea Ann</li><li>Cake &lt;big&gt; Ann</li></ul>");
	tpl_test_expect("{{#tags}}[{{.}}]{{/tags}}{{^tags}}none{{/tags}}",
	    TPL_CTX_TEXT, &d, "[new][sale]");
	tpl_test_expect("{{#if items}}has{{/if}}{{#unless tags}}x{{/unless}}",
	    TPL_CTX_TEXT, &d, "has");
	/* Nested loops: inner fields, outer fields, columns all visible. */
	tpl_test_expect("{{#items}}{{name}}:{{#tags}}{{tag}}/{{name}},"
	    "{{/tags}};{{/items}}", TPL_CTX_TEXT, &d,
	    "Tea:new/Tea,sale/Tea,;Cake <big>:new/Cake <big>,sale/Cake <big>,;");
	d.nitems = 0;
	d.ntags = 0;
	tpl_test_expect("{{#items}}{{name}}{{else}}none{{/items}}|"
	    "{{^tags}}empty{{/tags}}|{{#if tags}}t{{else}}f{{/if}}|"
	    "{{#items}}x{{/items}}.", TPL_CTX_TEXT, &d, "none|empty|f|.");
	d.nitems = 1;
	tpl_test_expect("{{#items}}{{name}}{{else}}none{{/items}}",
	    TPL_CTX_TEXT, &d, "Tea");
	/* A field shadows a column of the same name only inside. */
	d.v[6] = "col";
	tpl_test_expect("{{name}}{{#items}}{{name}}{{/items}}{{name}}",
	    TPL_CTX_TEXT, &d, "colTeacol");
}

Test(tpl, loop_variables)
{
	struct tpl_test_data d = tpl_test_d;

	d.tags[2] = "hot";
	d.ntags = 3;
	tpl_test_expect("{{#tags}}{{@number}}.{{tag}}{{#unless @last}}, "
	    "{{/unless}}{{/tags}}", TPL_CTX_TEXT, &d, "1.new, 2.sale, 3.hot");
	tpl_test_expect("{{#each tags}}{{#if @first}}[{{/if}}{{@index}}"
	    "{{#if @last}}]{{/if}}{{/each}}", TPL_CTX_TEXT, &d, "[012]");
	/* The innermost loop's. */
	tpl_test_expect("{{#items}}{{#tags}}{{@index}}{{/tags}}:{{@index}};"
	    "{{/items}}", TPL_CTX_TEXT, &d, "012:0;012:1;");
	tpl_test_experr("{{@index}}", TPL_CTX_TEXT,
	    "t:1:3: unknown variable '@index'");
}

Test(tpl, list_errors)
{
	tpl_test_experr("a {{items}}", TPL_CTX_TEXT,
	    "t:1:5: 'items' is a list: use {{#items}}...{{/items}}");
	tpl_test_experr("{{#each city}}x{{/each}}", TPL_CTX_TEXT,
	    "t:1:9: 'city' is not a list");
	tpl_test_experr("{{price}}", TPL_CTX_TEXT,
	    "t:1:3: unknown variable 'price'");
	tpl_test_experr("{{.}}", TPL_CTX_TEXT, "t:1:3: unknown variable '.'");
}

Test(tpl, render_ex_needs_lists)
{
	const char	*v[7] = { "", "", "", "", "", "", "" };
	struct tpl_row	 row = { 7, v, NULL };
	struct tpl	*t;
	struct buf	 b;

	t = tpl_test_compile2("{{#items}}x{{/items}}", TPL_CTX_TEXT, NULL, 0);
	cr_assert_not_null(t);
	buf_init(&b);
	cr_assert_eq(tpl_render(t, &row, &b), -EINVAL);
	cr_assert_eq(tpl_render_ex(t, &row, NULL, 0, &b), -EINVAL);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
	tpl_free(t);
}

Test(tpl, block_errors)
{
	tpl_test_experr("a\n  {{#if flag}}x", TPL_CTX_TEXT,
	    "t:2:3: unclosed {{#if}}");
	tpl_test_experr("{{#if flag}}\n{{/unless}}", TPL_CTX_TEXT,
	    "t:2:1: {{/unless}} does not close {{#if}} opened at 1:1");
	tpl_test_experr("x{{/if}}", TPL_CTX_TEXT,
	    "t:1:2: {{/if}} without an open block");
	tpl_test_experr("x{{else}}", TPL_CTX_TEXT,
	    "t:1:2: {{else}} outside a block");
	tpl_test_experr("{{#if flag}}{{else}}{{else}}{{/if}}", TPL_CTX_TEXT,
	    "t:1:21: second {{else}} in one block");
	tpl_test_experr("{{#if nope}}{{/if}}", TPL_CTX_TEXT,
	    "t:1:7: unknown variable 'nope'");
	tpl_test_experr("{{#if}}{{/if}}", TPL_CTX_TEXT,
	    "t:1:6: expected a name");
	tpl_test_experr("{{first_name | shout}}", TPL_CTX_TEXT,
	    "t:1:16: unknown filter 'shout'");
	tpl_test_experr("{{first_name | }}", TPL_CTX_TEXT,
	    "t:1:16: expected a filter after '|'");
	tpl_test_experr("{{first_name | \"abc}}", TPL_CTX_TEXT,
	    "t:1:16: unterminated string");
	tpl_test_experr("{{first_name | upper \"x\"}}", TPL_CTX_TEXT,
	    "t:1:22: unexpected '\"' in tag");
	tpl_test_experr("{{{first_name}}", TPL_CTX_TEXT,
	    "t:1:1: unterminated tag");
	tpl_test_experr("{{! never closed", TPL_CTX_TEXT,
	    "t:1:1: unterminated comment");
}

Test(tpl, deep_nesting_refused)
{
	char	 src[2048], err[256];
	size_t	 i, o = 0;

	for (i = 0; i < 40; i++)
		o += (size_t)snprintf(src + o, sizeof(src) - o,
		    "{{#if flag}}");
	cr_assert_null(tpl_test_compile2(src, TPL_CTX_TEXT, err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, "nested too deeply"), "%s", err);
	o = 0;
	for (i = 0; i < 10; i++)
		o += (size_t)snprintf(src + o, sizeof(src) - o, "{{#tags}}");
	cr_assert_null(tpl_test_compile2(src, TPL_CTX_TEXT, err,
	    sizeof(err)));
	cr_assert_not_null(strstr(err, "nested too deeply"), "%s", err);
}

Test(tpl, comments_and_escaped_braces)
{
	struct tpl_test_data d = tpl_test_d;

	tpl_test_expect("a{{! note }}b{{!-- has }} inside --}}c", TPL_CTX_TEXT,
	    &d, "abc");
	tpl_test_expect("\\{{first_name}} {{first_name}}", TPL_CTX_TEXT, &d,
	    "{{first_name}} Ann");
}

Test(tpl, url_context_inferred)
{
	struct tpl_test_data d = tpl_test_d;

	/* Attribute start: a whole URL, normalised, HTML-escaped. */
	tpl_test_expect("<a href=\"{{url}}\">x</a>", TPL_CTX_HTML, &d,
	    "<a href=\"https://x.com/?a=1&amp;b=2\">x</a>");
	d.v[3] = "javascript:alert(1)";
	tpl_test_expect("<a class=x href=\"{{url}}\">", TPL_CTX_HTML, &d,
	    "<a class=x href=\"#blocked\">");
	d.v[3] = "JavaScript:alert(1)";
	tpl_test_expect("<A HREF='{{url}}'>", TPL_CTX_HTML, &d,
	    "<A HREF='#blocked'>");
	d.v[3] = "data:text/html,<script>";
	tpl_test_expect("<img src=\"{{url}}\">", TPL_CTX_HTML, &d,
	    "<img src=\"#blocked\">");
	d.v[3] = " java\tscript:x";
	tpl_test_expect("<a href=\"{{url}}\">", TPL_CTX_HTML, &d,
	    "<a href=\"%20java%09script:x\">");
	d.v[3] = "/path with space/\"q\"é?x=1'";
	tpl_test_expect("<a href=\"{{url}}\">", TPL_CTX_HTML, &d,
	    "<a href=\"/path%20with%20space/%22q%22%C3%A9?x=1&#39;\">");
	d.v[3] = "mailto:a@b.c";
	tpl_test_expect("<a href={{url}}>", TPL_CTX_HTML, &d,
	    "<a href=mailto:a@b.c>");
	d.v[3] = "https://x/?a=1 onmouseover=x";
	tpl_test_expect("<a href={{url}}>", TPL_CTX_HTML, &d,
	    "<a href=https://x/?a&#61;1%20onmouseover&#61;x>");
	/* After the start: one component, fully percent-encoded. */
	d.v[6] = "a b&c=\"d\"/é";
	tpl_test_expect("<a href=\"https://x.com/?q={{name}}&r=1\">",
	    TPL_CTX_HTML, &d,
	    "<a href=\"https://x.com/?q=a%20b%26c%3D%22d%22%2F%C3%A9&r=1\">");
	tpl_test_expect("<a href=\"{{#if flag}}/u/{{/if}}{{name}}\">",
	    TPL_CTX_HTML, &d, "<a href=\"/u/a%20b%26c%3D%22d%22%2F%C3%A9\">");
	/* Not a URL attribute: plain HTML escaping. */
	tpl_test_expect("<a title=\"{{name}}\" href=\"/\">{{name}}</a>",
	    TPL_CTX_HTML, &d, "<a title=\"a b&amp;c=&quot;d&quot;/é\" "
	    "href=\"/\">a b&amp;c=&quot;d&quot;/é</a>");
	tpl_test_expect("<td title={{name}}>", TPL_CTX_HTML, &d,
	    "<td title=a&#32;b&amp;c&#61;&quot;d&quot;/é>");
	/* List fields in URL attributes too. */
	tpl_test_expect("{{#items}}<a href=\"{{url}}\">{{name}}</a>{{/items}}",
	    TPL_CTX_HTML, &d, "<a href=\"https://shop/t?id=1\">Tea</a>"
	    "<a href=\"#blocked\">Cake &lt;big&gt;</a>");
	/* The URL context ends with the attribute. */
	tpl_test_expect("<a href=\"/\" title=\"{{url}}\">{{url}}</a>",
	    TPL_CTX_HTML, &d, "<a href=\"/\" title=\"https://x/?a=1 "
	    "onmouseover=x\">https://x/?a=1 onmouseover=x</a>");
}

Test(tpl, html_context_errors)
{
	tpl_test_experr("<a {{first_name}}>", TPL_CTX_HTML,
	    "t:1:6: variable inside an HTML tag: put it in a quoted "
	    "attribute value");
	tpl_test_experr("<{{first_name}}>", TPL_CTX_HTML,
	    "t:1:4: variable inside an HTML tag: put it in a quoted "
	    "attribute value");
	tpl_test_experr("<p>\n<script>var x = '{{first_name}}';</script>",
	    TPL_CTX_HTML, "t:2:20: variable inside <script> or <style> is "
	    "not supported");
	tpl_test_experr("<style>p { color: {{first_name}} }</style>",
	    TPL_CTX_HTML, "t:1:21: variable inside <script> or <style> is "
	    "not supported");
	tpl_test_experr("<a onclick=\"go('{{first_name}}')\">", TPL_CTX_HTML,
	    "t:1:19: variable inside an event handler attribute");
	tpl_test_experr("{{#if flag}}<a href=\"{{/if}}x\">", TPL_CTX_HTML,
	    "t:1:22: the branches of {{#if}} end in different HTML contexts");
	tpl_test_experr("{{#items}}<a href=\"{{/items}}", TPL_CTX_HTML,
	    "t:1:20: the body of {{#items}} ends in another HTML context "
	    "than it starts in");
}

Test(tpl, html_contexts_allowed)
{
	struct tpl_test_data d = tpl_test_d;

	/* After </script> and inside comments, values are fine again. */
	tpl_test_expect("<script>if (a<b) x();</script><p>{{first_name}}"
	    "<!-- {{first_name}} -->", TPL_CTX_HTML, &d,
	    "<script>if (a<b) x();</script><p>Ann<!-- Ann -->");
	tpl_test_expect("<p style=\"color: {{first_name}}\">"
	    "<br/>{{first_name}}<img alt='{{first_name}}'/>", TPL_CTX_HTML,
	    &d, "<p style=\"color: Ann\"><br/>Ann<img alt='Ann'/>");
	tpl_test_expect("a < b {{first_name}} <!DOCTYPE html>{{first_name}}",
	    TPL_CTX_HTML, &d, "a < b Ann <!DOCTYPE html>Ann");
	/* Raw values may go anywhere: the author vouches for them. */
	tpl_test_expect("<a {{{flag}}}>", TPL_CTX_HTML, &d, "<a yes>");
	/* In TEXT templates HTML-looking text means nothing. */
	tpl_test_expect("<a {{first_name}}>", TPL_CTX_TEXT, &d, "<a Ann>");
}

Test(tpl, partials)
{
	struct tpl_test_data d = tpl_test_d;

	tpl_test_expect("<div>{{> footer}}</div>", TPL_CTX_HTML, &d,
	    "<div><p>Bye Ann</p></div>");
	tpl_test_expect("{{>nested/part}}{{> nested/part }}", TPL_CTX_TEXT, &d,
	    "[Zürich][Zürich]");
	/* The HTML context flows through partials. */
	d.v[3] = "javascript:x";
	tpl_test_expect("{{> link}}{{url}}\">", TPL_CTX_HTML, &d,
	    "<a href=\"#blocked\">");
	d.v[0] = "";
	tpl_test_expect("{{#items}}{{> footer}}{{/items}}", TPL_CTX_HTML, &d,
	    "<p>Bye you</p><p>Bye you</p>");
}

Test(tpl, partial_errors)
{
	char	 err[256];

	tpl_test_experr("a {{> missing}}", TPL_CTX_TEXT,
	    "t:1:7: unknown partial 'missing'");
	tpl_test_experr("x\n{{> bad}}", TPL_CTX_TEXT,
	    "bad:2:5: unknown variable 'nope'");
	tpl_test_experr("{{> self}}", TPL_CTX_TEXT,
	    "self:1:2: partials nested too deeply");
	/* 6^5 empty expansions: bounded work, not an exponential blowup. */
	tpl_test_experr("{{> fan1}}", TPL_CTX_TEXT,
	    "fan5:1:37: more than 4096 partial inclusions");
	tpl_test_experr("{{> open}}{{/if}}", TPL_CTX_TEXT,
	    "open:1:1: unclosed {{#if}}");
	tpl_test_experr("{{#if flag}}{{> footer}}", TPL_CTX_TEXT,
	    "t:1:1: unclosed {{#if}}");
	cr_assert_null(tpl_compile("{{> footer}}", 12, "t", TPL_CTX_TEXT,
	    tpl_test_cols, 3, err, sizeof(err)));
	cr_assert_str_eq(err, "t:1:1: partial 'footer' but no loader");
}

Test(tpl, header_context_full_language)
{
	struct tpl_test_data d = tpl_test_d;

	d.v[0] = "ann\r\nBcc: evil@x";
	tpl_test_expect("{{#if flag}}Hi {{first_name | title}}{{/if}}\r\n",
	    TPL_CTX_HEADER, &d, "Hi Ann  Bcc: Evil@X  ");
	tpl_test_expect("{{name | \"a\\nb\"}}", TPL_CTX_HEADER, &d, "anb");
	d.v[6] = "x\ny";
	tpl_test_expect("{{#items}}{{name}}{{/items}}{{name | url}}{{name}}",
	    TPL_CTX_HEADER, &d, "TeaCake <big>x%0Ayx y");
}

Test(tpl, no_allocation_after_warmup)
{
	struct tpl_test_data d = tpl_test_d;
	struct tpl_row	 row = { 7, d.v, NULL };
	struct tpl_list	 lists[2] = { { d.nitems, d.items, NULL },
		{ d.ntags, d.tags, NULL } };
	struct tpl	*t;
	struct buf	 b;
	char		*data;
	int		 i;
	const char	*src = "<p>Hi {{first_name | lower | title | \"there\"}}"
	    "</p><a href=\"{{url}}?c={{city | url}}\">{{date | date \"%e %B\"}}"
	    "</a>{{#each items}}<li>{{name | upper}} {{price}}{{#tags}}"
	    "{{tag}}{{/tags}}</li>{{else}}none{{/each}}{{{flag}}}";

	t = tpl_test_compile2(src, TPL_CTX_HTML, NULL, 0);
	cr_assert_not_null(t);
	buf_init(&b);
	cr_assert_eq(tpl_render_ex(t, &row, lists, 2, &b), 0);
	data = b.data;
#ifdef TPL_TEST_COUNT_MALLOC
	tpl_test_nalloc = 0;
	tpl_test_counting = 1;
#endif
	for (i = 0; i < 200; i++) {
		buf_reset(&b);
		cr_assert_eq(tpl_render_ex(t, &row, lists, 2, &b), 0);
	}
#ifdef TPL_TEST_COUNT_MALLOC
	tpl_test_counting = 0;
	cr_assert_eq(tpl_test_nalloc, 0, "%zu allocations while rendering",
	    (size_t)tpl_test_nalloc);
	/* And the counter does count: the compiler allocates. */
	tpl_test_counting = 1;
	tpl_free(tpl_test_compile2("x", TPL_CTX_TEXT, NULL, 0));
	tpl_test_counting = 0;
	cr_assert_gt(tpl_test_nalloc, 0);
#endif
	cr_assert_eq(b.data, data);
	cr_assert_str_eq(b.data, "<p>Hi Ann</p><a href=\"https://x.com/?a=1"
	    "&amp;b=2?c=Z%C3%BCrich\">5 March</a><li>TEA 3newsale</li>"
	    "<li>CAKE &lt;BIG&gt; 5newsale</li>yes");
	buf_free(&b);
	tpl_free(t);
}

/* ---- tpl_render_mime: the fast path must match the plain one ----------- */

/* A deterministic generator: tests must not depend on the clock. */
static unsigned long tpl_test_rng = 12345;

static unsigned
tpl_test_rand(unsigned n)
{
	tpl_test_rng = tpl_test_rng * 6364136223846793005ULL +
	    1442695040888963407ULL;
	return (unsigned)((tpl_test_rng >> 33) % n);
}

/*
 * Text made of the things that make MIME encoding hard: spaces and tabs
 * before line ends, CR, LF and CRLF (split across pieces too), '=', "=_",
 * 8-bit bytes, and runs long enough for soft breaks or 998-octet lines.
 */
static void
tpl_test_noise(struct buf *b, unsigned maxlen)
{
	static const char *const bits[] = { " ", "\t", "\r", "\n", "\r\n",
		"=", "_", "=_", "\xc3\xb6", "a", "word", "<&>\"'", "=3D",
		"                                        ", "\x01", "." };
	unsigned	 n = tpl_test_rand(maxlen + 1), k;

	while (n-- > 0) {
		if (tpl_test_rand(40) == 0)
			for (k = tpl_test_rand(1100); k > 0; k--)
				buf_putc(b, (char)('a' + k % 26));
		else
			buf_puts(b, bits[tpl_test_rand(sizeof(bits) /
			    sizeof(bits[0]))]);
	}
}

/* Build with the plain path and the fast path; both must be equal. */
static void
tpl_test_mime_same(const char *src, size_t srclen, enum tpl_ctx ctx,
    const char *const *vals, const size_t *lens, struct tpl_scratch *sc,
    int html)
{
	struct tpl_row	 row = { 3, vals, lens };
	struct msg_input in = {
		.from = "News <news@example.com>", .to = "rcpt@example.org",
		.subject = "Hi", .msgid_domain = "example.com",
		.msgid_local = "abc.123", .date_ms = 1700000000123LL,
	};
	struct msg_encoded enc;
	struct buf	 raw, out, m1, m2;
	struct tpl	*t;
	char		 err[256];

	t = tpl_compile(src, srclen, "t", ctx, tpl_test_cols, 3, err,
	    sizeof(err));
	if (t == NULL)
		return;		/* e.g. a variable inside an HTML tag */
	buf_init(&raw);
	buf_init(&out);
	buf_init(&m1);
	buf_init(&m2);
	cr_assert_eq(tpl_render(t, &row, &raw), 0);
	cr_assert_eq(tpl_render_mime(t, &row, NULL, 0, sc, &out, &enc), 0);
	if (html) {
		in.html = raw.data;
		in.htmllen = raw.len;
		in.text = "plain";
		in.textlen = 5;
	} else {
		in.text = raw.data;
		in.textlen = raw.len;
	}
	cr_assert_eq(msg_build(&m1, &in), 0);
	if (html) {
		in.html = NULL;
		in.html_enc = &enc;
	} else {
		in.text = NULL;
		in.text_enc = &enc;
	}
	cr_assert_eq(msg_build(&m2, &in), 0);
	cr_assert_eq(m1.len, m2.len, "length %zu vs %zu for template "
	    "[%.*s]", m1.len, m2.len, (int)srclen, src);
	cr_assert(memcmp(m1.data, m2.data, m1.len) == 0,
	    "output differs for template [%.*s]", (int)srclen, src);
	buf_free(&raw);
	buf_free(&out);
	buf_free(&m1);
	buf_free(&m2);
	tpl_free(t);
}

Test(tpl, mime_matches_plain_random)
{
	static const char *const tags[] = { "{{first_name}}", "{{email}}",
		"{{city}}", "{{{city}}}", "{{first_name | upper}}",
		"{{#if email}}", "{{/if}}", "{{email | \"x y\"}}" };
	struct tpl_scratch sc;
	struct buf	 src, v[3];
	const char	*vals[3];
	size_t		 lens[3];
	int		 it, k, ifs;

	tpl_scratch_init(&sc);
	for (it = 0; it < 3000; it++) {
		buf_init(&src);
		ifs = 0;
		for (k = tpl_test_rand(12); k >= 0; k--) {
			unsigned	 t = tpl_test_rand(sizeof(tags) /
			    sizeof(tags[0]));

			tpl_test_noise(&src, 8);
			/* Only well-formed blocks: this tests encoding. */
			if (t == 5)
				ifs++;
			else if (t == 6 && ifs == 0)
				continue;
			else if (t == 6)
				ifs--;
			buf_puts(&src, tags[t]);
		}
		while (ifs-- > 0)
			buf_puts(&src, "{{/if}}");
		tpl_test_noise(&src, 6);
		for (k = 0; k < 3; k++) {
			buf_init(&v[k]);
			if (tpl_test_rand(4) != 0)
				tpl_test_noise(&v[k], 6);
			vals[k] = v[k].data != NULL ? v[k].data : "";
			lens[k] = v[k].len;
		}
		tpl_test_mime_same(src.data, src.len, TPL_CTX_TEXT, vals, lens,
		    &sc, 0);
		tpl_test_mime_same(src.data, src.len, TPL_CTX_HTML, vals, lens,
		    &sc, 1);
		for (k = 0; k < 3; k++)
			buf_free(&v[k]);
		buf_free(&src);
	}
	tpl_scratch_fini(&sc);
}

Test(tpl, mime_soft_breaks_at_every_column)
{
	struct tpl_scratch sc;
	struct buf	 src;
	const char	*vals[3] = { "\xc3\xa9", " ", "=" };
	size_t		 lens[3] = { 2, 1, 1 }, pre, k;
	static const char *const tails[] = { " ", "\t", "=", "x", "\n",
		"\r\n", " \n" };

	/*
	 * A value or literal edge at each column 60..80 of a QP line, with
	 * each kind of byte there: soft breaks, the 76th column a last
	 * octet may take, a space that ends a line.
	 */
	tpl_scratch_init(&sc);
	for (pre = 60; pre <= 80; pre++) {
		for (k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
			buf_init(&src);
			while (src.len < pre)
				buf_putc(&src, (char)('a' + src.len % 26));
			buf_puts(&src, "{{first_name}}");
			buf_puts(&src, tails[k]);
			buf_puts(&src, "{{email}}{{city}}");
			buf_puts(&src, tails[(k + 1) % 7]);
			tpl_test_mime_same(src.data, src.len, TPL_CTX_TEXT,
			    vals, lens, &sc, 0);
			buf_free(&src);
		}
	}
	tpl_scratch_fini(&sc);
}

Test(tpl, mime_picks_7bit_and_qp)
{
	const char	*vals[3] = { "Zo\xc3\xab", "a@b.example", "K" };
	size_t		 lens[3] = { 4, 11, 1 };
	struct tpl_row	 row = { 3, vals, lens };
	struct tpl_scratch sc;
	struct msg_encoded enc;
	struct buf	 out;
	struct tpl	*t;
	char		 err[256];

	t = tpl_test_compile("Hi {{city}}\n", TPL_CTX_TEXT, err, sizeof(err));
	cr_assert_not_null(t);
	tpl_scratch_init(&sc);
	buf_init(&out);
	cr_assert_eq(tpl_render_mime(t, &row, NULL, 0, &sc, &out, &enc), 0);
	cr_assert_eq(enc.qp, 0);
	cr_assert_eq(enc.n, 6);
	cr_assert(memcmp(enc.s, "Hi K\r\n", 6) == 0);
	tpl_free(t);
	/* An 8-bit value makes the part QP; the text before stays. */
	t = tpl_test_compile("Hi {{first_name}} \n", TPL_CTX_TEXT, err,
	    sizeof(err));
	cr_assert_not_null(t);
	buf_reset(&out);
	buf_puts(&out, "kept");
	cr_assert_eq(tpl_render_mime(t, &row, NULL, 0, &sc, &out, &enc), 0);
	cr_assert_eq(enc.qp, 1);
	cr_assert_str_eq(out.data, "keptHi Zo=C3=AB=20\r\n");
	cr_assert_eq(enc.s, out.data + 4);
	/* A row too short is refused, the buffer untouched. */
	row.n = 0;
	cr_assert_eq(tpl_render_mime(t, &row, NULL, 0, &sc, &out, &enc),
	    -EINVAL);
	cr_assert_str_eq(out.data, "keptHi Zo=C3=AB=20\r\n");
	tpl_free(t);
	buf_free(&out);
	tpl_scratch_fini(&sc);
}

Test(tpl, mime_lists_match_plain)
{
	static const char *const f[] = { "name" };
	static const struct tpl_listdef ld[] = { { "items", f, 1 } };
	const struct tpl_opts opts = { ld, 1, NULL, NULL };
	const char	*iv[3] = { "a\r", "\nb =", "_c\xc3\xa4" };
	const struct tpl_list list = { 3, iv, NULL };
	const char	*vals[3] = { "x", "y", "z" };
	size_t		 lens[3] = { 1, 1, 1 };
	struct tpl_row	 row = { 3, vals, lens };
	struct tpl_scratch sc;
	struct msg_encoded enc;
	struct buf	 raw, out, m1, m2;
	struct msg_input in = {
		.from = "a@b.example", .to = "c@d.example", .subject = "s",
		.msgid_domain = "e.example", .msgid_local = "1",
	};
	struct tpl	*t;
	char		 err[256];
	const char	*src = "{{#items}}[{{name}}]{{@index}} {{/items}}"
	    "{{^items}}none{{/items}}";

	t = tpl_compile_ex(src, strlen(src), "t", TPL_CTX_TEXT, tpl_test_cols,
	    3, &opts, err, sizeof(err));
	cr_assert_not_null(t, "%s", err);
	tpl_scratch_init(&sc);
	buf_init(&raw);
	buf_init(&out);
	buf_init(&m1);
	buf_init(&m2);
	cr_assert_eq(tpl_render_ex(t, &row, &list, 1, &raw), 0);
	cr_assert_eq(tpl_render_mime(t, &row, &list, 1, &sc, &out, &enc), 0);
	in.text = raw.data;
	in.textlen = raw.len;
	cr_assert_eq(msg_build(&m1, &in), 0);
	in.text = NULL;
	in.text_enc = &enc;
	cr_assert_eq(msg_build(&m2, &in), 0);
	cr_assert_str_eq(m1.data, m2.data);
	cr_assert_eq(tpl_render_mime(t, &row, NULL, 0, &sc, &out, &enc),
	    -EINVAL);
	buf_free(&raw);
	buf_free(&out);
	buf_free(&m1);
	buf_free(&m2);
	tpl_scratch_fini(&sc);
	tpl_free(t);
}

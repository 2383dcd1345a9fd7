/*
 * libFuzzer target for templates/tpl.c: compile and render arbitrary
 * templates. Input: one byte choosing the context, then the template,
 * optionally followed by "\n--8<--\n" and the source of partial "p".
 * Checks: no crash or leak, rendering is deterministic, and in HEADER
 * context no control character ever reaches the output.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "templates/tpl.h"

static const char *fuzz_tpl_partial;
static size_t fuzz_tpl_partial_len;

static int
fuzz_tpl_load(void *arg, const char *name, const char **src, size_t *len)
{
	(void)arg;
	if (strcmp(name, "p") == 0 && fuzz_tpl_partial != NULL) {
		*src = fuzz_tpl_partial;
		*len = fuzz_tpl_partial_len;
		return 0;
	}
	if (strcmp(name, "q") == 0) {
		*src = "<a href=\"{{> p}}{{url}}\">{{name}}</a>";
		*len = strlen(*src);
		return 0;
	}
	return -ENOENT;
}

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const cols[] = { "a", "b", "name", "url", "date",
		"flag" };
	static const char *const vals[] = { "x\r\nBcc: evil@x\x01\x7f",
		"<script>alert('&\"')</script>", "J\xc3\xbcrgen \xff\xfe",
		"javascript:alert(1)", "2024-02-29T10:11:12", "0" };
	static const char *const ifields[] = { "name", "url" };
	static const char *const tfields[] = { "tag" };
	static const struct tpl_listdef ldefs[] = {
		{ "items", ifields, 2 }, { "tags", tfields, 1 },
	};
	static const char *const items[] = { "Tea", "https://x/?a=1&b=2",
		"C\"ake", " data:x" };
	static const char *const tags[] = { "a", "", "\n" };
	struct tpl_opts	 opts = { ldefs, 2, fuzz_tpl_load, NULL };
	struct tpl_row	 row = { 6, vals, NULL };
	struct tpl_list	 lists[2] = { { 2, items, NULL }, { 3, tags, NULL } };
	struct tpl	*t;
	struct buf	 a, b;
	enum tpl_ctx	 ctx;
	const char	*src, *sep;
	size_t		 len, i;
	char		 err[256];

	if (size < 1)
		return 0;
	ctx = (enum tpl_ctx)(data[0] % 3);
	src = (const char *)data + 1;
	len = size - 1;
	fuzz_tpl_partial = NULL;
	sep = memmem(src, len, "\n--8<--\n", 8);
	if (sep != NULL) {
		fuzz_tpl_partial = sep + 8;
		fuzz_tpl_partial_len = len - (size_t)(sep + 8 - src);
		len = (size_t)(sep - src);
	}
	t = tpl_compile_ex(src, len, "fuzz", ctx, cols, 6, &opts, err,
	    sizeof(err));
	if (t == NULL) {
		if (strncmp(err, "fuzz:", 5) != 0 && strncmp(err, "p:", 2) != 0
		    && strncmp(err, "q:", 2) != 0)
			abort();	/* every error says where */
		return 0;
	}
	buf_init(&a);
	buf_init(&b);
	if (tpl_render_ex(t, &row, lists, 2, &a) != 0 ||
	    tpl_render_ex(t, &row, lists, 2, &b) != 0)
		abort();
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	if (ctx == TPL_CTX_HEADER)
		for (i = 0; i < a.len; i++)
			if ((unsigned char)a.data[i] < 0x20 ||
			    a.data[i] == 0x7f)
				abort();
	/* The short-row and missing-list paths must refuse, not crash. */
	row.n = 0;
	(void)tpl_render_ex(t, &row, NULL, 0, &b);
	buf_free(&a);
	buf_free(&b);
	tpl_free(t);
	return 0;
}

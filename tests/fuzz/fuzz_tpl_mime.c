/*
 * libFuzzer target for the render-into-MIME fast path (templates/tpl.c
 * tpl_render_mime, engine/mail/msg.c msg_seg_make and msg_enc_*): it must
 * give byte for byte the message that tpl_render_ex() and msg_build() on
 * the raw text give. Input: one flag byte (1: HTML context, 2: both
 * parts, 4: an attachment, 8: render twice with the same scratch), then
 * NUL-separated fields: the template, the values of columns a b c d, and
 * list items (field x) from the rest.
 * Checks: no crash or leak, same return code, identical output.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mail/msg.h"
#include "templates/tpl.h"

#define FUZZ_NF	16

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_tpl_mime_input(struct msg_input *in, int att)
{
	static const struct msg_attachment a = { "f.txt", "text/plain",
		"abc", 3, NULL };

	memset(in, 0, sizeof(*in));
	in->from = "News <news@example.com>";
	in->to = "rcpt@example.org";
	in->subject = "Hello";
	in->msgid_domain = "example.com";
	in->msgid_local = "abc.123";
	in->date_ms = 1700000000000LL;
	if (att) {
		in->attachments = &a;
		in->nattachments = 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const cols[] = { "a", "b", "c", "d" };
	static const char *const xf[] = { "x" };
	static const struct tpl_listdef ld[] = { { "items", xf, 1 } };
	const struct tpl_opts opts = { ld, 1, NULL, NULL };
	const char	*f[FUZZ_NF], *vals[4];
	size_t		 fl[FUZZ_NF], vlens[4], nf = 0, i, a;
	struct tpl_row	 row;
	struct tpl_list	 list;
	struct tpl	*t;
	struct tpl_scratch sc;
	struct msg_encoded res;
	struct msg_input in;
	struct buf	 raw, enc, m1, m2;
	char		 err[256];
	int		 flags, r1, r2, k;

	if (size < 1)
		return 0;
	flags = data[0];
	for (a = 1, i = 1; i <= size && nf < FUZZ_NF; i++)
		if (i == size || data[i] == '\0') {
			f[nf] = (const char *)data + a;
			fl[nf++] = i - a;
			a = i + 1;
		}
	if (nf == 0)
		return 0;
	for (i = 0; i < 4; i++) {
		vals[i] = i + 1 < nf ? f[i + 1] : "";
		vlens[i] = i + 1 < nf ? fl[i + 1] : 0;
	}
	row = (struct tpl_row){ 4, vals, vlens };
	list = (struct tpl_list){ nf > 5 ? nf - 5 : 0, f + 5, fl + 5 };
	t = tpl_compile_ex(f[0], fl[0], "t", flags & 1 ? TPL_CTX_HTML :
	    TPL_CTX_TEXT, cols, 4, &opts, err, sizeof(err));
	if (t == NULL)
		return 0;
	buf_init(&raw);
	buf_init(&enc);
	buf_init(&m1);
	buf_init(&m2);
	tpl_scratch_init(&sc);
	r1 = tpl_render_ex(t, &row, &list, 1, &raw);
	for (k = 0; k < (flags & 8 ? 2 : 1); k++) {
		buf_reset(&enc);
		buf_puts(&enc, "junk before");	/* appends, as documented */
		r2 = tpl_render_mime(t, &row, &list, 1, &sc, &enc, &res);
		if (r1 != r2)
			abort();
	}
	if (r1 == 0) {
		fuzz_tpl_mime_input(&in, flags & 4);
		if (flags & 1) {
			in.html = raw.data != NULL ? raw.data : "";
			in.htmllen = raw.len;
		} else {
			in.text = raw.data != NULL ? raw.data : "";
			in.textlen = raw.len;
		}
		if (flags & 2) {
			if (flags & 1)
				in.text = "plain";
			else
				in.html = "<p>x</p>";
			if (flags & 1)
				in.textlen = 5;
			else
				in.htmllen = 8;
		}
		r1 = msg_build(&m1, &in);
		if (flags & 1) {
			in.html = NULL;
			in.html_enc = &res;
		} else {
			in.text = NULL;
			in.text_enc = &res;
		}
		r2 = msg_build(&m2, &in);
		if (r1 != r2 || m1.len != m2.len ||
		    (m1.len > 0 && memcmp(m1.data, m2.data, m1.len) != 0))
			abort();
	}
	tpl_scratch_fini(&sc);
	buf_free(&raw);
	buf_free(&enc);
	buf_free(&m1);
	buf_free(&m2);
	tpl_free(t);
	return 0;
}

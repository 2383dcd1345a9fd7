/*
 * fuzz_dkim: the relaxed canonicalisers and dkim_sign on arbitrary
 * messages. Canonical output is a fixed point (canonicalising it again
 * changes nothing), has no WSP before a line end, no WSP runs, no empty
 * lines at the end of a body; a produced signature header is CRLF-folded
 * with short lines and no bare CR or LF.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/buf.h"
#include "mail/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_key	*fuzz_key;
static struct buf	 a, b, sig;

static struct dkim_key *
fuzz_key_make(void)
{
	char		 path[] = "/tmp/fuzz_dkim.XXXXXX", err[256];
	EVP_PKEY	*pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct dkim_key	*k;
	FILE		*f;
	int		 fd;

	if (pk == NULL || (fd = mkstemp(path)) < 0 ||
	    (f = fdopen(fd, "w")) == NULL)
		abort();
	if (PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) != 1)
		abort();
	fclose(f);
	EVP_PKEY_free(pk);
	k = dkim_key_load(path, "example.com", "fuzz", err, sizeof(err));
	unlink(path);
	if (k == NULL)
		abort();
	return k;
}

/*
 * The RFC 6376 3.4.4 steps done the slow, obvious way (line by line,
 * copying) to compare the streaming canonicaliser with.
 */
static void
ref_body(const char *s, size_t n, struct buf *out)
{
	size_t i = 0, keep = 0;

	while (i < n) {
		size_t	j = i, end, k;
		bool	wsp = false;

		while (j < n && s[j] != '\n' &&
		    !(s[j] == '\r' && j + 1 < n && s[j + 1] == '\n'))
			j++;
		end = j;
		while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		for (k = i; k < end; k++) {
			if (s[k] == ' ' || s[k] == '\t') {
				wsp = true;
				continue;
			}
			if (wsp)
				buf_putc(out, ' ');
			wsp = false;
			buf_putc(out, s[k]);
		}
		buf_append(out, "\r\n", 2);
		if (end > i)
			keep = out->len;	/* through this text line */
		i = j < n ? j + (s[j] == '\r' ? 2 : 1) : n;
	}
	out->len = keep;
	if (out->data != NULL)
		out->data[keep] = '\0';
}

static void
check_body(const char *s, size_t n)
{
	if (n == 0)
		return;
	if (n < 2 || memcmp(s + n - 2, "\r\n", 2) != 0)
		abort();
	if (n >= 4 && memcmp(s + n - 4, "\r\n\r\n", 4) == 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\t')
			abort();
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			abort();
		if (s[i] == ' ' && i + 1 < n && s[i + 1] == ' ')
			abort();
		if (s[i] == ' ' && i + 2 < n && s[i + 1] == '\r' &&
		    s[i + 2] == '\n')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	if (fuzz_key == NULL)
		fuzz_key = fuzz_key_make();
	buf_reset(&a);
	buf_reset(&b);
	buf_reset(&sig);
	if (dkim_canon_body(s, size, &a) != 0)
		abort();
	check_body(a.data, a.len);
	ref_body(s, size, &b);
	if (a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len)))
		abort();
	buf_reset(&b);
	if (dkim_canon_body(a.data != NULL ? a.data : "", a.len, &b) != 0 ||
	    a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len)))
		abort();
	buf_reset(&a);
	buf_reset(&b);
	if (dkim_canon_header(s, size, &a) == 0) {
		if (dkim_canon_header(a.data, a.len, &b) != 0 ||
		    a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			abort();
	}
	if (dkim_sign(fuzz_key, s, size, 1700000000, &sig) == 0) {
		const char *p = sig.data, *e = sig.data + sig.len, *nl;

		if (sig.len < 2 || memcmp(e - 2, "\r\n", 2) != 0 ||
		    strncmp(p, "DKIM-Signature: v=1; ", 21) != 0)
			abort();
		for (; p < e; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(e - p));
			if (nl == NULL || nl == p || nl[-1] != '\r' ||
			    nl - p - 1 > 78 ||
			    memchr(p, '\r', (size_t)(nl - p - 1)) != NULL)
				abort();
		}
	} else if (sig.len != 0) {
		abort();
	}
	return 0;
}

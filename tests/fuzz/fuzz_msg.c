/*
 * libFuzzer target for engine/mail/msg.c: arbitrary header values and
 * bodies. Input: fields separated by NUL bytes, in the order subject,
 * text, html, header name, header value, from, to, reply-to.
 * Checks: no crash; on success CRLF-only output, no line over 998
 * octets, and every header line is one msg_build writes or a folded
 * continuation (no value can start a header of its own).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "mail/msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_msg_known(const char *line, size_t n, const char *extra)
{
	static const char *const names[] = { "Date", "Message-ID", "From",
		"To", "Subject", "Reply-To", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding" };
	size_t	 i, k;

	if (n > 0 && (line[0] == ' ' || line[0] == '\t'))
		return 1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		k = strlen(names[i]);
		if (n > k && strncmp(line, names[i], k) == 0 && line[k] == ':')
			return 1;
	}
	k = strlen(extra);
	return n > k && strncasecmp(line, extra, k) == 0 && line[k] == ':';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*copy, *f[8];
	size_t		 lens[8], nf = 0, i, start, line;
	struct msg_header hdr;
	struct msg_input in;
	struct buf	 b;
	int		 r, inhdr = 1;

	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	f[nf] = copy;
	for (i = 0; i <= size && nf < 8; i++)
		if (i == size || copy[i] == '\0') {
			lens[nf] = (size_t)(copy + i - f[nf]);
			nf++;
			if (nf < 8)
				f[nf] = copy + i + 1;
			if (i == size)
				break;
		}
	for (i = nf; i < 8; i++) {
		f[i] = NULL;
		lens[i] = 0;
	}
	hdr.name = f[3] != NULL ? f[3] : "X-Fuzz";
	hdr.value = f[4];
	memset(&in, 0, sizeof(in));
	in.subject = f[0];
	in.text = f[1];
	in.textlen = lens[1];
	in.html = f[2];
	in.htmllen = lens[2];
	in.headers = &hdr;
	in.nheaders = 1;
	in.from = f[5] != NULL ? f[5] : "News <n@example.com>";
	in.to = f[6] != NULL ? f[6] : "r@example.org";
	in.reply_to = f[7];
	in.msgid_local = "fuzz.1";
	in.msgid_domain = "example.com";
	in.date_ms = (int64_t)size * 1000003;
	buf_init(&b);
	r = msg_build(&b, &in);
	if (r != 0 && b.len != 0)
		abort();	/* nothing left behind on failure */
	if (r == 0) {
		if (b.len < 2 || b.data[b.len - 2] != '\r' ||
		    b.data[b.len - 1] != '\n')
			abort();
		for (i = 0, start = 0, line = 0; i < b.len; i++) {
			if (b.data[i] == '\r') {
				if (i + 1 >= b.len || b.data[i + 1] != '\n')
					abort();
				if (inhdr && line == 0)
					inhdr = 0;
				else if (inhdr && !fuzz_msg_known(b.data +
				    start, line, hdr.name))
					abort();
				i++;
				start = i + 1;
				line = 0;
				continue;
			}
			if (b.data[i] == '\n' || ++line > 998)
				abort();
		}
	}
	buf_free(&b);
	free(copy);
	return 0;
}

/*
 * libFuzzer target for the issue 5 parts of engine/mail/msg.c:
 * List-Unsubscribe URIs, Feedback-ID and attachments. Input: fields
 * separated by NUL bytes: text, html, unsub_url, unsub_mailto,
 * feedback_id, then (filename, content_type, content_id, data) for up to
 * two files (an empty content_id field means an attachment).
 * Checks: no crash; on success CRLF-only output, no line over 998
 * octets, every top-level header line is one msg_build writes or a folded
 * continuation, and each boundary only ever appears on its own lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "mail/msg.h"

#define FUZZ_NF	13

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_known(const char *line, size_t n)
{
	static const char *const names[] = { "Date", "Message-ID", "From",
		"To", "Subject", "MIME-Version", "Content-Type",
		"List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
		"Content-Transfer-Encoding" };
	size_t	 i, k;

	if (n > 0 && (line[0] == ' ' || line[0] == '\t'))
		return 1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		k = strlen(names[i]);
		if (n > k && strncmp(line, names[i], k) == 0 && line[k] == ':')
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			*copy, *f[FUZZ_NF];
	size_t			 lens[FUZZ_NF], nf = 0, i, start, line;
	struct msg_attachment	 att[2];
	struct msg_input	 in;
	struct buf		 b;
	const char		*p, *bnd, *body;
	int			 r, inhdr = 1;

	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	f[nf] = copy;
	for (i = 0; i <= size && nf < FUZZ_NF; i++)
		if (i == size || copy[i] == '\0') {
			lens[nf] = (size_t)(copy + i - f[nf]);
			nf++;
			if (nf < FUZZ_NF)
				f[nf] = copy + i + 1;
			if (i == size)
				break;
		}
	for (i = nf; i < FUZZ_NF; i++) {
		f[i] = NULL;
		lens[i] = 0;
	}
	memset(&in, 0, sizeof(in));
	in.from = "News <n@example.com>";
	in.to = "r@example.org";
	in.subject = "s";
	in.text = f[0];
	in.textlen = lens[0];
	in.html = f[1];
	in.htmllen = lens[1];
	in.unsub_url = f[2] != NULL && lens[2] > 0 ? f[2] : NULL;
	in.unsub_mailto = f[3] != NULL && lens[3] > 0 ? f[3] : NULL;
	in.feedback_id = f[4] != NULL && lens[4] > 0 ? f[4] : NULL;
	for (i = 0; i < 2 && f[5 + 4 * i] != NULL; i++) {
		att[i].filename = f[5 + 4 * i];
		att[i].content_type = f[6 + 4 * i] ? f[6 + 4 * i] : "a/b";
		att[i].content_id = f[7 + 4 * i] && lens[7 + 4 * i] > 0 ?
		    f[7 + 4 * i] : NULL;
		att[i].data = f[8 + 4 * i] ? f[8 + 4 * i] : "";
		att[i].len = lens[8 + 4 * i];
		in.nattachments = i + 1;
	}
	in.attachments = att;
	in.msgid_local = "fuzz.1";
	in.msgid_domain = "example.com";
	in.date_ms = 1700000000000LL;
	buf_init(&b);
	r = msg_build(&b, &in);
	if (r == 0) {
		if (b.len < 2 || b.data[b.len - 2] != '\r' ||
		    b.data[b.len - 1] != '\n')
			abort();
		for (i = 0, start = 0; i < b.len; i++) {
			if (b.data[i] == '\n' && (i == 0 ||
			    b.data[i - 1] != '\r'))
				abort();
			if (b.data[i] == '\r' && (i + 1 >= b.len ||
			    b.data[i + 1] != '\n'))
				abort();
			if (b.data[i] != '\n')
				continue;
			line = i - 1 - start;
			if (line > 998)
				abort();
			if (inhdr && line == 0)
				inhdr = 0;
			else if (inhdr && !fuzz_known(b.data + start, line))
				abort();
			start = i + 1;
		}
		/*
		 * In the body (top-level headers may say anything), a
		 * boundary (its base) only after "--" or '"'.
		 */
		body = strstr(b.data, "\r\n\r\n");
		if ((bnd = strstr(b.data, "boundary=\"")) != NULL &&
		    bnd < body) {
			char		 base[40];

			bnd += 10;
			memcpy(base, bnd, 36);
			base[36] = '\0';
			for (p = strstr(body, base); p != NULL;
			    p = strstr(p + 1, base))
				if (!(p[-1] == '"' || (p[-1] == '-' &&
				    p[-2] == '-' && p[-3] == '\n')))
					abort();
		}
	}
	buf_free(&b);
	free(copy);
	return 0;
}

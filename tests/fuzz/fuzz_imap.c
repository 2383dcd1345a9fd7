/*
 * fuzz_imap: arbitrary client bytes into an IMAP session over a small
 * maildir. Byte 0 picks the start state (bit 0: log in and SELECT first)
 * and byte 1 the chunk size the input is fed in.
 */
#include <stddef.h>
#include <stdint.h>

#include "in/imapd.h"

#include "fuzz_insess.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char pre[] = "p LOGIN alice secret\r\nq SELECT INBOX\r\n";
	struct insess_conf	 c;
	struct imapd_session	*s;
	struct buf		 out;
	size_t			 chunk;
	unsigned		 fl = 0;

	if (size < 2)
		return 0;
	fz_init(&c);
	if ((s = imapd_session_new(&c)) == NULL)
		return 0;
	buf_init(&out);
	imapd_session_greeting(s, &out);
	if (data[0] & 1)
		fl = imapd_session_input(s, pre, sizeof(pre) - 1, &out);
	chunk = data[1] == 0 ? size : data[1];
	data += 2;
	size -= 2;
	while (size > 0 && !(fl & INSESS_CLOSE)) {
		size_t n = size < chunk ? size : chunk;

		if (fl & INSESS_STARTTLS_NOW)
			imapd_session_tls_started(s);
		fl = imapd_session_input(s, (const char *)data, n, &out);
		while ((fl & INSESS_DELAY) && !(fl & INSESS_CLOSE))
			fl = imapd_session_input(s, "", 0, &out);
		while ((fl & INSESS_MORE) && !(fl & INSESS_CLOSE)) {
			buf_reset(&out);
			fl = imapd_session_input(s, "", 0, &out);
		}
		if (fl & INSESS_IDLE_WAIT)
			fl |= imapd_session_notify(s, &out);
		data += n;
		size -= n;
		if (out.len > (1u << 20))
			buf_reset(&out);
	}
	imapd_session_free(s);
	buf_free(&out);
	return 0;
}

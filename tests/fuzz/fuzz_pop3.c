/*
 * fuzz_pop3: arbitrary client bytes into a POP3 session over a small
 * maildir. Byte 0 bit 0: log in first; byte 1: chunk size.
 */
#include <stddef.h>
#include <stdint.h>

#include "in/pop3d.h"

#include "fuzz_insess.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char pre[] = "USER alice\r\nPASS secret\r\n";
	struct insess_conf	 c;
	struct pop3d_session	*s;
	struct buf		 out;
	size_t			 chunk;
	unsigned		 fl = 0;

	if (size < 2)
		return 0;
	fz_init(&c);
	if ((s = pop3d_session_new(&c)) == NULL)
		return 0;
	buf_init(&out);
	pop3d_session_greeting(s, &out);
	if (data[0] & 1)
		fl = pop3d_session_input(s, pre, sizeof(pre) - 1, &out);
	chunk = data[1] == 0 ? size : data[1];
	data += 2;
	size -= 2;
	while (size > 0 && !(fl & INSESS_CLOSE)) {
		size_t n = size < chunk ? size : chunk;

		if (fl & INSESS_STARTTLS_NOW)
			pop3d_session_tls_started(s);
		fl = pop3d_session_input(s, (const char *)data, n, &out);
		while ((fl & INSESS_DELAY) && !(fl & INSESS_CLOSE))
			fl = pop3d_session_input(s, "", 0, &out);
		data += n;
		size -= n;
		if (out.len > (1u << 20))
			buf_reset(&out);
	}
	pop3d_session_free(s);
	buf_free(&out);
	return 0;
}

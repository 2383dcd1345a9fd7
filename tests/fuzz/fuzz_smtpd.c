/*
 * fuzz_smtpd: arbitrary client bytes into an SMTP receiver session.
 * Byte 0: chunk size (0 = all at once); byte 1 bit 0: the store "fails".
 * Checks: a message handed over ends with CRLF (or is empty), is within
 * the size limit, and every recipient is in a configured domain.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

#include "in/smtpd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const bd[] = { "bounce.example" };
static const char *const rd[] = { "reply.example", "r2.example" };

static void
fz_check(struct smtpd_session *s)
{
	struct smtpd_message m;

	if (smtpd_session_message(s, &m) != 0)
		abort();
	if (m.len > 4096)
		abort();
	if (m.len > 0 && (m.len < 2 || memcmp(m.data + m.len - 2, "\r\n",
	    2) != 0))
		abort();
	if (m.nrcpt == 0 || m.nrcpt > 5)
		abort();
	for (size_t i = 0; i < m.nrcpt; i++) {
		const char *at = strrchr(m.rcpt[i].addr, '@');
		const char *const *l = m.rcpt[i].kind == SMTPD_RCPT_BOUNCE ?
		    bd : rd;
		size_t n = m.rcpt[i].kind == SMTPD_RCPT_BOUNCE ? 1 : 2;

		if (at == NULL) {
			if (strcasecmp(m.rcpt[i].addr, "postmaster") != 0)
				abort();
			continue;
		}
		if (!smtpd_domain_in(l, n, at + 1, strlen(at + 1)))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_conf c = {
		.hostname = "mx.test", .bounce_domains = bd, .nbounce = 1,
		.reply_domains = rd, .nreply = 2, .max_size = 4096,
		.max_rcpt = 5, .max_commands = 500, .tls_available = true,
		.peer = "192.0.2.1",
	};
	struct smtpd_session	*s;
	struct buf		 out;
	size_t			 chunk;
	unsigned		 fl = 0;
	bool			 fail;

	if (size < 2)
		return 0;
	if ((s = smtpd_session_new(&c)) == NULL)
		return 0;
	buf_init(&out);
	smtpd_session_greeting(s, &out);
	chunk = data[0] == 0 ? size : data[0];
	fail = data[1] & 1;
	data += 2;
	size -= 2;
	while (size > 0 && !(fl & INSESS_CLOSE)) {
		size_t n = size < chunk ? size : chunk;

		if (fl & INSESS_STARTTLS_NOW)
			smtpd_session_tls_started(s);
		fl = smtpd_session_input(s, (const char *)data, n, &out);
		while ((fl & SMTPD_F_MESSAGE) && !(fl & INSESS_CLOSE)) {
			fz_check(s);
			fl = smtpd_session_delivered(s, !fail, &out);
		}
		data += n;
		size -= n;
		if (out.len > (1u << 20))
			buf_reset(&out);
	}
	smtpd_session_free(s);
	buf_free(&out);
	return 0;
}

/*
 * libFuzzer target for dsn_parse() (and through it mime_parse and
 * classify): any bytes must parse without crashing, reading out of
 * bounds or leaking, and the result strings must stay terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dsn.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dsn_result r;
	/* An exact-size heap copy so ASan catches any read past the end. */
	char	*msg = malloc(size ? size : 1);

	if (msg == NULL)
		return 0;
	memcpy(msg, data, size);
	if (dsn_parse(msg, size, &r) == 0) {
		if (strlen(r.recipient) >= sizeof(r.recipient) ||
		    strlen(r.reason) >= sizeof(r.reason) ||
		    strlen(r.status) >= sizeof(r.status) ||
		    r.orig_hdrlen >= sizeof(r.orig_hdr) ||
		    (r.is_bounce && r.kind != DSN_KIND_DSN &&
		    r.kind != DSN_KIND_HEURISTIC))
			abort();
	}
	free(msg);
	return 0;
}

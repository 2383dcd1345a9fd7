/*
 * fuzz_suppress: suppress_parse_value over arbitrary bytes (values come
 * from Redis, written by any producer). What it accepts must be within
 * bounds, and must survive a format/parse round trip unchanged.
 * suppress_normalize and suppress_format_value get the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "out/suppress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct suppress_entry	e, e2;
	char			v[SUPPRESS_VALUE_MAX], a[SUPPRESS_ADDR_MAX + 1];
	char			*s;

	if (suppress_parse_value((const char *)data, size, &e) == 0) {
		if (strlen(e.reason) > SUPPRESS_REASON_MAX ||
		    !suppress_source_valid(e.source) || e.ts_ms < 0)
			abort();
		if (suppress_format_value(v, sizeof(v), e.reason, e.source,
		    e.ts_ms) != 0)
			abort();
		if (suppress_parse_value(v, strlen(v), &e2) != 0 ||
		    strcmp(e.reason, e2.reason) != 0 ||
		    strcmp(e.source, e2.source) != 0 || e.ts_ms != e2.ts_ms)
			abort();
	}
	if (suppress_normalize(a, sizeof(a), (const char *)data, size) == 0) {
		if (strlen(a) == 0 || strlen(a) > SUPPRESS_ADDR_MAX)
			abort();
		for (const char *p = a; *p; p++)
			if ((unsigned char)*p <= 0x20 || (*p >= 'A' && *p <= 'Z'))
				abort();
	}
	/* Any reason text formats into a value that parses back. */
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (suppress_format_value(v, sizeof(v), s, "bounce", 1) != 0 ||
	    suppress_parse_value(v, strlen(v), &e) != 0)
		abort();
	free(s);
	return 0;
}

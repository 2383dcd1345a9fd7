/*
 * fuzz_json: json_put_str over arbitrary bytes (event fields from Redis).
 * The output must be one JSON string: quoted, no raw control characters,
 * well-formed UTF-8 throughout, every backslash starting a valid escape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	b;
	size_t		i, k;

	buf_init(&b);
	if (json_put_str(&b, (const char *)data, size) != 0)
		abort();
	if (b.len < 2 || b.data[0] != '"' || b.data[b.len - 1] != '"')
		abort();
	for (i = 1; i < b.len - 1; i += k) {
		unsigned char	c = (unsigned char)b.data[i];

		if (c < 0x20 || c == 0x7f || c == '"')
			abort();
		if ((k = json_utf8_seq(b.data + i, b.len - 1 - i)) == 0)
			abort();
		if (c == '\\') {
			char	e = b.data[i + 1];

			if (i + 2 > b.len - 1 || strchr("\"\\nrtbfu", e) == NULL ||
			    e == '\0')
				abort();
			k = e == 'u' ? 6 : 2;
			if (i + k > b.len - 1)
				abort();
		}
	}
	buf_free(&b);
	return 0;
}

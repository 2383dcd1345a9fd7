/*
 * fuzz_addr: addr_validate on arbitrary bytes. A valid mailbox never
 * holds a control character or a space outside quotes, fits the RFC 5321
 * path limit and has a non-empty domain.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*s = (const char *)data, *why = NULL, *dom;
	size_t		 domlen = 0;
	bool		 u8 = false, ascii = true;

	if (addr_validate(s, size, &u8, &why) != 0) {
		if (why == NULL)
			abort();
		return 0;
	}
	if (size == 0 || size > 254)
		abort();
	for (size_t i = 0; i < size; i++) {
		if (data[i] < 0x20 || data[i] == 0x7f)
			abort();
		if (data[i] >= 0x80)
			ascii = false;
	}
	if (u8 == ascii)
		abort();
	if ((dom = addr_domain(s, size, &domlen)) == NULL || domlen == 0 ||
	    domlen > 255 || memchr(dom, ' ', domlen) != NULL)
		abort();
	return 0;
}

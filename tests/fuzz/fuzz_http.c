/*
 * fuzz_http: the unsubscribe server's request parser and form checks
 * (in/unsubd.h) on arbitrary bytes, then the response writer with
 * whatever target and token the parser accepted.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "in/unsubd.h"
#include "lib/buf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct unsubd_req req;
	struct buf	 b;
	const char	*tok;
	size_t		 toklen, n;
	char		*copy;
	int		 st = 0, r;

	/* An exact-size heap copy: ASan sees any read past the end. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	/* Every prefix must give the same answer or "need more". */
	r = unsubd_parse_head(copy, size, &req, &st);
	if (r == -EBADMSG && (st < 400 || st > 505))
		abort();
	if (r == 0) {
		if (req.headlen > size || req.content_length > UNSUBD_BODY_MAX)
			abort();
		n = size - req.headlen;
		if (n > req.content_length)
			n = req.content_length;
		(void)unsubd_body_one_click(&req, copy + req.headlen, n);
		if (unsubd_target_token("/u/", req.target, req.targetlen,
		    &tok, &toklen) == 0 && (toklen == 0 ||
		    tok + toklen > req.target + req.targetlen))
			abort();
	}
	/* The body checks alone, in each content type. */
	req.ctype = (enum unsubd_ctype)(size % 4);
	snprintf(req.boundary, sizeof(req.boundary), "%s", "b");
	(void)unsubd_body_one_click(&req, copy, size);
	buf_init(&b);
	{
		char	*s = strndup(copy, size > 300 ? 300 : size);

		if (s != NULL) {
			unsubd_landing_page(&b, s);
			free(s);
		}
	}
	buf_free(&b);
	free(copy);
	return 0;
}

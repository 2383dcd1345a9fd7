/*
 * fuzz_campaign: campaign_def_load_string on arbitrary bytes, with a
 * basedir that does not exist so relative body files never resolve.
 * On success nothing that goes into a header may hold CR or LF, and the
 * From address must validate on its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaigns/campaign.h"
#include "mail/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_line(const char *s)
{
	if (s != NULL && strpbrk(s, "\r\n") != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct campaign_def	*d = NULL;
	char			 err[256];
	unsigned long		 line, col;

	if (campaign_def_load_string((const char *)data, size, "f.yaml",
	    "/nonexistent-fuzz-dir", &d, err, sizeof(err)) != 0) {
		if (d != NULL || sscanf(err, "f.yaml:%lu:%lu: ", &line, &col)
		    != 2 || line == 0 || col == 0)
			abort();
		return 0;
	}
	check_line(d->name);
	check_line(d->from);
	check_line(d->reply_to);
	check_line(d->subject);
	if (addr_validate(d->from_addr, strlen(d->from_addr), NULL, NULL) != 0)
		abort();
	if (d->text == NULL && d->html == NULL)
		abort();
	for (size_t i = 0; i < d->nheaders; i++) {
		check_line(d->headers[i].value);
		if (strpbrk(d->headers[i].name, ": \t\r\n") != NULL)
			abort();
	}
	campaign_def_free(d);
	return 0;
}

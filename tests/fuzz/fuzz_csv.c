/*
 * fuzz_csv: drive the CSV reader over arbitrary bytes and check what it
 * hands out: NUL-terminated fields of the stated length, no control
 * characters but TAB (CR/LF only inside quotes, which we cannot tell
 * apart here, so they are allowed), and strictly increasing line numbers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaigns/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_reader	*r;
	struct csv_record	 rec;
	unsigned long		 last = 0;
	char			 err[128];
	FILE			*f;
	int			 rc;

	if (size == 0)
		return 0;
	if ((f = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	if ((r = csv_new(f)) == NULL) {
		fclose(f);
		return 0;
	}
	/* Every call consumes at least one byte, so this terminates. */
	while ((rc = csv_next(r, &rec, err, sizeof(err))) != 0) {
		if (rc == -EIO)
			abort();
		if (rc == -EINVAL) {
			if (strncmp(err, "line ", 5) != 0)
				abort();
			continue;
		}
		if (rc != 1 || rec.nfields == 0 || rec.nfields > CSV_FIELDS_MAX
		    || rec.line <= last)
			abort();
		last = rec.line;
		for (size_t i = 0; i < rec.nfields; i++) {
			const unsigned char *p =
			    (const unsigned char *)rec.fields[i];

			if (strlen(rec.fields[i]) != rec.lens[i] ||
			    rec.lens[i] >= CSV_RECORD_MAX)
				abort();
			for (size_t k = 0; k < rec.lens[i]; k++)
				if ((p[k] < 0x20 && p[k] != '\t' &&
				    p[k] != '\r' && p[k] != '\n') ||
				    p[k] == 0x7f)
					abort();
		}
	}
	csv_free(r);
	fclose(f);
	return 0;
}

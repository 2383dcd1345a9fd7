/*
 * csv: streaming RFC 4180 reader for recipient lists.
 *
 * Owns: a fixed read buffer and one record's worth of field storage, so
 * memory does not grow with the file (a record is capped at CSV_RECORD_MAX
 * bytes). Accepts CRLF or LF line ends, quoted fields with "" escapes and
 * embedded newlines, a UTF-8 BOM on the first line. Every field must be
 * valid UTF-8 without control characters other than TAB (and CR/LF inside
 * quotes). A bad record is reported with its line number and skipped:
 * the reader resynchronises at the next line end outside quotes.
 * Must not touch: Redis, campaign semantics. Not thread-safe.
 */
#ifndef ENGINE_CAMPAIGNS_CSV_H
#define ENGINE_CAMPAIGNS_CSV_H

#include <stddef.h>
#include <stdio.h>

#define CSV_RECORD_MAX	(64 * 1024)
#define CSV_FIELDS_MAX	256

struct csv_record {
	size_t		  nfields;
	const char	**fields;	/* borrowed, NUL-terminated, valid
					   until the next csv_next() */
	const size_t	 *lens;
	unsigned long	  line;		/* line where the record starts (1-based) */
};

struct csv_reader;

/* Reads from f (not closed by csv_free). NULL on ENOMEM. */
struct csv_reader *csv_new(FILE *f);
void	csv_free(struct csv_reader *r);
/*
 * Next record. Returns 1 with *rec filled; 0 at end of input; -EINVAL for
 * a bad record (err says "line N: why"; call again to continue after it);
 * -EIO on a read error. Blank lines are skipped.
 */
int	csv_next(struct csv_reader *r, struct csv_record *rec, char *err,
	    size_t errlen);

#endif

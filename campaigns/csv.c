/*
 * csv: streaming RFC 4180 reader. See csv.h.
 *
 * One byte-at-a-time state machine over a fixed read buffer. A record's
 * fields are copied into one fixed block (CSV_RECORD_MAX bytes including
 * each field's NUL), so memory is a constant ~130 KiB per reader whatever
 * the file size. When a record turns out bad, the reader keeps running
 * the same state machine (so quotes are still tracked) but stops storing
 * bytes; at the record's end it reports the first problem and the next
 * call starts cleanly at the following record. That is the resync rule:
 * the next line end outside quotes.
 *
 * Line numbers count LF bytes, wherever they are (inside quotes too), so
 * they stay right after multi-line fields.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaigns/csv.h"

#define CSV_READ_SIZE	(64 * 1024)

/*
 * Field parser states. Transitions (outside a bad record too):
 *   FIELD   --'"'-->  QUOTED        FIELD --other--> UNQUOTED
 *   UNQUOTED --','--> FIELD         UNQUOTED --LF--> (record end)
 *   QUOTED  --'"'-->  QUOTE         QUOTED --other (LF too)--> QUOTED
 *   QUOTE   --'"'-->  QUOTED (literal ")
 *   QUOTE   --','-->  FIELD         QUOTE --LF--> (record end)
 *   QUOTE   --other-> UNQUOTED (error: text after closing quote)
 */
enum csv_state {
	CSV_FIELD,	/* at the start of a field */
	CSV_UNQUOTED,
	CSV_QUOTED,
	CSV_QUOTE,	/* saw '"' inside a quoted field */
};

struct csv_reader {
	FILE		*f;		/* borrowed */
	unsigned char	*in;		/* owns; CSV_READ_SIZE bytes */
	size_t		 inpos, inlen;
	bool		 eof, ioerr, started;
	unsigned long	 line;		/* current line, 1-based */

	/* The record being built. */
	char		*rec;		/* owns; CSV_RECORD_MAX bytes */
	size_t		 used;
	size_t		 nfields;
	size_t		 offs[CSV_FIELDS_MAX];
	size_t		 lens[CSV_FIELDS_MAX];
	const char	*fields[CSV_FIELDS_MAX];
	size_t		 fstart;	/* offset of the current field */

	/* UTF-8 decoder state for the current field. */
	unsigned	 u8need;	/* continuation bytes still expected */
	unsigned char	 u8lo, u8hi;	/* allowed range of the next one */
	unsigned char	 u8lead;

	/* First problem in this record, if any. */
	const char	*why;
	unsigned long	 whyline;
};

struct csv_reader *
csv_new(FILE *f)
{
	struct csv_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->in = malloc(CSV_READ_SIZE);
	r->rec = malloc(CSV_RECORD_MAX);
	if (r->in == NULL || r->rec == NULL) {
		csv_free(r);
		return NULL;
	}
	r->f = f;
	r->line = 1;
	return r;
}

void
csv_free(struct csv_reader *r)
{
	if (r == NULL)
		return;
	free(r->in);
	free(r->rec);
	free(r);
}

/* Make at least `want` unread bytes available if the input has them. */
static void
csv_fill(struct csv_reader *r, size_t want)
{
	size_t n;

	while (r->inlen - r->inpos < want && !r->eof && !r->ioerr) {
		if (r->inpos > 0) {
			memmove(r->in, r->in + r->inpos, r->inlen - r->inpos);
			r->inlen -= r->inpos;
			r->inpos = 0;
		}
		n = fread(r->in + r->inlen, 1, CSV_READ_SIZE - r->inlen, r->f);
		r->inlen += n;
		if (n == 0) {
			if (ferror(r->f))
				r->ioerr = true;
			else
				r->eof = true;
		}
	}
}

/* Next byte, or -1 at end of input / on a read error (see r->ioerr). */
static inline int
csv_getc(struct csv_reader *r)
{
	if (r->inpos == r->inlen) {
		csv_fill(r, 1);
		if (r->inpos == r->inlen)
			return -1;
	}
	return r->in[r->inpos++];
}

static inline int
csv_peekc(struct csv_reader *r)
{
	if (r->inpos == r->inlen) {
		csv_fill(r, 1);
		if (r->inpos == r->inlen)
			return -1;
	}
	return r->in[r->inpos];
}

static void
csv_bad(struct csv_reader *r, const char *why)
{
	if (r->why == NULL) {
		r->why = why;
		r->whyline = r->line;
	}
}

static void
csv_field_begin(struct csv_reader *r)
{
	r->u8need = 0;
	if (r->nfields == CSV_FIELDS_MAX) {
		csv_bad(r, "too many fields");
		return;
	}
	r->fstart = r->used;
}

static void
csv_field_end(struct csv_reader *r)
{
	if (r->u8need != 0)
		csv_bad(r, "invalid UTF-8 (truncated sequence)");
	if (r->why != NULL)
		return;
	/* csv_store always leaves room for this NUL. */
	r->rec[r->used] = '\0';
	r->offs[r->nfields] = r->fstart;
	r->lens[r->nfields] = r->used - r->fstart;
	r->nfields++;
	r->used++;
}

/*
 * Validate one content byte (RFC 3629 table 4 ranges: no overlongs, no
 * surrogates, nothing above U+10FFFF; no C0/C1 controls or DEL except
 * TAB, and LF/CR when nl is set) and store it.
 */
static void
csv_store(struct csv_reader *r, int ch, bool nl)
{
	unsigned char c = (unsigned char)ch;

	if (r->u8need > 0) {
		if (c < r->u8lo || c > r->u8hi) {
			csv_bad(r, "invalid UTF-8");
			r->u8need = 0;
			if (c >= 0x80)
				return;
			/* An ASCII byte is checked on its own below. */
		} else {
			/* U+0080..U+009F are the C1 controls. */
			if (r->u8lead == 0xc2 && c < 0xa0)
				csv_bad(r, "control character");
			r->u8lo = 0x80;
			r->u8hi = 0xbf;
			r->u8need--;
			goto store;
		}
	}
	if (c < 0x80) {
		if ((c < 0x20 && c != '\t' && !(nl && (c == '\n' ||
		    c == '\r'))) || c == 0x7f) {
			csv_bad(r, "control character");
			return;
		}
		goto store;
	}
	r->u8lead = c;
	r->u8lo = 0x80;
	r->u8hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		r->u8need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		r->u8need = 2;
		if (c == 0xe0)
			r->u8lo = 0xa0;		/* overlong */
		else if (c == 0xed)
			r->u8hi = 0x9f;		/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		r->u8need = 3;
		if (c == 0xf0)
			r->u8lo = 0x90;		/* overlong */
		else if (c == 0xf4)
			r->u8hi = 0x8f;		/* > U+10FFFF */
	} else {
		/* 0x80..0xc1 (stray continuation, overlong), 0xf5.. */
		csv_bad(r, "invalid UTF-8");
		return;
	}
store:
	if (r->why != NULL)
		return;
	/* Keep one byte for the field's NUL. */
	if (r->used + 1 >= CSV_RECORD_MAX) {
		csv_bad(r, "record too long");
		return;
	}
	r->rec[r->used++] = (char)c;
}

/*
 * Outside quotes a CR must start a CRLF line end (or be the last byte).
 * Only peeks: csv_eol consumes the LF once the field is closed, so a
 * problem found when closing it is reported on the right line.
 */
static bool
csv_cr_ends_line(struct csv_reader *r)
{
	int next = csv_peekc(r);

	if (next == '\n' || next == -1)
		return true;
	csv_bad(r, "bare CR outside quotes");
	return false;
}

static void
csv_eol(struct csv_reader *r, int c)
{
	if (c == '\r') {
		if (csv_peekc(r) != '\n')
			return;
		r->inpos++;
	}
	r->line++;
}

int
csv_next(struct csv_reader *r, struct csv_record *rec, char *err,
    size_t errlen)
{
	enum csv_state	 st;
	unsigned long	 start;
	int		 c;
	bool		 done = false;

	if (!r->started) {
		r->started = true;
		csv_fill(r, 3);
		if (r->inlen - r->inpos >= 3 &&
		    memcmp(r->in + r->inpos, "\xef\xbb\xbf", 3) == 0)
			r->inpos += 3;
	}
	/* Blank lines (LF or CRLF alone) are not records. */
	for (;;) {
		c = csv_getc(r);
		if (c == '\n') {
			r->line++;
		} else if (c == '\r' && csv_peekc(r) == '\n') {
			r->inpos++;
			r->line++;
		} else {
			break;
		}
	}
	if (c == -1) {
		if (r->ioerr) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "line %lu: read error",
				    r->line);
			return -EIO;
		}
		return 0;
	}
	start = r->line;
	r->used = 0;
	r->nfields = 0;
	r->why = NULL;
	st = CSV_FIELD;
	csv_field_begin(r);
	while (!done) {
		if (c == -1) {
			if (r->ioerr) {
				if (err != NULL && errlen > 0)
					snprintf(err, errlen,
					    "line %lu: read error", r->line);
				return -EIO;
			}
			if (st == CSV_QUOTED && r->why == NULL) {
				/* Report where the runaway record began. */
				r->why = "unterminated quoted field";
				r->whyline = start;
			}
			csv_field_end(r);
			break;
		}
		switch (st) {
		case CSV_FIELD:
			if (c == '"') {
				st = CSV_QUOTED;
				break;
			}
			st = CSV_UNQUOTED;
			/* FALLTHROUGH */
		case CSV_UNQUOTED:
			if (c == ',') {
				csv_field_end(r);
				csv_field_begin(r);
				st = CSV_FIELD;
			} else if (c == '\n' ||
			    (c == '\r' && csv_cr_ends_line(r))) {
				csv_field_end(r);
				csv_eol(r, c);
				done = true;
			} else if (c == '\r') {
				/* bare CR: reported by csv_cr_ends_line */
			} else {
				if (c == '"')
					csv_bad(r, "quote in unquoted field");
				csv_store(r, c, false);
			}
			break;
		case CSV_QUOTED:
			if (c == '"') {
				st = CSV_QUOTE;
				break;
			}
			csv_store(r, c, true);
			if (c == '\n')
				r->line++;
			break;
		case CSV_QUOTE:
			if (c == '"') {
				csv_store(r, c, true);
				st = CSV_QUOTED;
			} else if (c == ',') {
				csv_field_end(r);
				csv_field_begin(r);
				st = CSV_FIELD;
			} else if (c == '\n' ||
			    (c == '\r' && csv_cr_ends_line(r))) {
				csv_field_end(r);
				csv_eol(r, c);
				done = true;
			} else if (c != '\r') {
				csv_bad(r, "text after closing quote");
				st = CSV_UNQUOTED;
			}
			break;
		}
		if (!done)
			c = csv_getc(r);
	}
	if (r->why != NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "line %lu: %s", r->whyline,
			    r->why);
		return -EINVAL;
	}
	for (size_t i = 0; i < r->nfields; i++)
		r->fields[i] = r->rec + r->offs[i];
	rec->nfields = r->nfields;
	rec->fields = r->fields;
	rec->lens = r->lens;
	rec->line = start;
	return 1;
}

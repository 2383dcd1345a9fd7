#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaigns/csv.h"

/* A reader over a private copy of data[0..len) (fmemopen needs len > 0). */
struct src {
	FILE			*f;
	char			*copy;
	struct csv_reader	*r;
};

static void
src_open(struct src *s, const char *data, size_t len)
{
	if (len == 0) {
		s->copy = NULL;
		s->f = tmpfile();
	} else {
		s->copy = malloc(len);
		cr_assert_not_null(s->copy);
		memcpy(s->copy, data, len);
		s->f = fmemopen(s->copy, len, "r");
	}
	cr_assert_not_null(s->f);
	s->r = csv_new(s->f);
	cr_assert_not_null(s->r);
}

#define SRC(s, lit)	src_open((s), (lit), sizeof(lit) - 1)

static void
src_close(struct src *s)
{
	csv_free(s->r);
	fclose(s->f);
	free(s->copy);
}

/* Next must be a good record with these fields ("|"-joined) at line. */
static void
expect_rec(struct src *s, unsigned long line, size_t n, const char *const *f)
{
	struct csv_record	rec;
	char			err[128] = "";
	int			rc;

	rc = csv_next(s->r, &rec, err, sizeof(err));
	cr_assert_eq(rc, 1, "rc=%d err=%s", rc, err);
	cr_assert_eq(rec.line, line, "line %lu != %lu", rec.line, line);
	cr_assert_eq(rec.nfields, n, "nfields %zu != %zu", rec.nfields, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(rec.lens[i], strlen(f[i]), "field %zu len", i);
		cr_assert_eq(memcmp(rec.fields[i], f[i], rec.lens[i]), 0,
		    "field %zu: '%s' != '%s'", i, rec.fields[i], f[i]);
		cr_assert_eq(rec.fields[i][rec.lens[i]], '\0');
	}
}

#define EXPECT(s, line, ...) do {					\
	const char *const f_[] = { __VA_ARGS__ };			\
	expect_rec((s), (line), sizeof(f_) / sizeof(f_[0]), f_);	\
} while (0)

static void
expect_err(struct src *s, const char *want)
{
	struct csv_record	rec;
	char			err[128] = "";

	cr_assert_eq(csv_next(s->r, &rec, err, sizeof(err)), -EINVAL,
	    "expected error %s", want);
	cr_assert_str_eq(err, want);
}

static void
expect_end(struct src *s)
{
	struct csv_record	rec;
	char			err[128] = "";

	cr_assert_eq(csv_next(s->r, &rec, err, sizeof(err)), 0, "err=%s", err);
	/* And it stays at the end. */
	cr_assert_eq(csv_next(s->r, &rec, err, sizeof(err)), 0);
}

Test(csv, simple_lf)
{
	struct src s;

	SRC(&s, "email,first_name\na@x.test,Ann\nb@x.test,Bob\n");
	EXPECT(&s, 1, "email", "first_name");
	EXPECT(&s, 2, "a@x.test", "Ann");
	EXPECT(&s, 3, "b@x.test", "Bob");
	expect_end(&s);
	src_close(&s);
}

Test(csv, crlf_and_last_line_without_newline)
{
	struct src s;

	SRC(&s, "a,b\r\nc,d\r\ne,f");
	EXPECT(&s, 1, "a", "b");
	EXPECT(&s, 2, "c", "d");
	EXPECT(&s, 3, "e", "f");
	expect_end(&s);
	src_close(&s);
	SRC(&s, "a,\"b\"");
	EXPECT(&s, 1, "a", "b");
	expect_end(&s);
	src_close(&s);
	SRC(&s, "a,b\r");
	EXPECT(&s, 1, "a", "b");
	expect_end(&s);
	src_close(&s);
}

Test(csv, empty_input_and_only_bom)
{
	struct src s;

	src_open(&s, "", 0);
	expect_end(&s);
	src_close(&s);
	SRC(&s, "\xef\xbb\xbf");
	expect_end(&s);
	src_close(&s);
	SRC(&s, "\n\r\n\n");
	expect_end(&s);
	src_close(&s);
}

Test(csv, bom_stripped_only_at_start)
{
	struct src s;

	SRC(&s, "\xef\xbb\xbf" "email,x\n\xef\xbb\xbfy,z\n");
	EXPECT(&s, 1, "email", "x");
	/* U+FEFF later on is ordinary (valid) text. */
	EXPECT(&s, 2, "\xef\xbb\xbfy", "z");
	expect_end(&s);
	src_close(&s);
}

Test(csv, quoted_fields)
{
	struct src s;

	SRC(&s, "\"a,b\",\"say \"\"hi\"\"\",\"\",plain\n"
	    "\"\"\"\",x\n");
	EXPECT(&s, 1, "a,b", "say \"hi\"", "", "plain");
	EXPECT(&s, 2, "\"", "x");
	expect_end(&s);
	src_close(&s);
}

Test(csv, embedded_newlines_keep_line_numbers)
{
	struct src s;

	SRC(&s, "h1,h2\n"
	    "\"multi\nline\nfield\",x\n"
	    "\"crlf\r\ninside\",y\r\n"
	    "\n"
	    "after,z\n");
	EXPECT(&s, 1, "h1", "h2");
	EXPECT(&s, 2, "multi\nline\nfield", "x");
	EXPECT(&s, 5, "crlf\r\ninside", "y");
	EXPECT(&s, 8, "after", "z");
	expect_end(&s);
	src_close(&s);
}

Test(csv, blank_lines_skipped)
{
	struct src s;

	SRC(&s, "\n\na\n\r\n\nb\n\n");
	EXPECT(&s, 3, "a");
	EXPECT(&s, 6, "b");
	expect_end(&s);
	src_close(&s);
}

Test(csv, empty_fields)
{
	struct src s;

	SRC(&s, ",\na,,b,\n\"\"\n");
	EXPECT(&s, 1, "", "");
	EXPECT(&s, 2, "a", "", "b", "");
	EXPECT(&s, 3, "");
	expect_end(&s);
	src_close(&s);
}

Test(csv, utf8_accepted)
{
	struct src s;

	SRC(&s, "Zo\xc3\xab,\xe6\x97\xa5\xe6\x9c\xac,\xf0\x9f\x98\x80,"
	    "\xf4\x8f\xbf\xbf,\xed\x9f\xbf,\xee\x80\x80,a\tb\n");
	EXPECT(&s, 1, "Zo\xc3\xab", "\xe6\x97\xa5\xe6\x9c\xac",
	    "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf",
	    "\xee\x80\x80", "a\tb");
	expect_end(&s);
	src_close(&s);
}

/* Each bad line is reported, skipped, and the next line still reads. */
static void
bad_then_good(const char *bad, size_t badlen, const char *why)
{
	struct src	s;
	char		buf[256], want[128];
	size_t		n = 0;

	memcpy(buf + n, "ok,1\n", 5);
	n += 5;
	memcpy(buf + n, bad, badlen);
	n += badlen;
	memcpy(buf + n, "\nok,2\n", 6);
	n += 6;
	src_open(&s, buf, n);
	EXPECT(&s, 1, "ok", "1");
	snprintf(want, sizeof(want), "line 2: %s", why);
	expect_err(&s, want);
	EXPECT(&s, 3, "ok", "2");
	expect_end(&s);
	src_close(&s);
}

#define BAD(lit, why) bad_then_good((lit), sizeof(lit) - 1, (why))

Test(csv, utf8_rejected)
{
	BAD("a,\xc0\xaf", "invalid UTF-8");		/* overlong '/' */
	BAD("a,\xc1\xbf", "invalid UTF-8");		/* overlong */
	BAD("\xe0\x80\xaf", "invalid UTF-8");		/* overlong 3-byte */
	BAD("\xf0\x80\x80\xaf", "invalid UTF-8");	/* overlong 4-byte */
	BAD("\xed\xa0\x80", "invalid UTF-8");		/* U+D800 */
	BAD("\xed\xbf\xbf", "invalid UTF-8");		/* U+DFFF */
	BAD("\xf4\x90\x80\x80", "invalid UTF-8");	/* > U+10FFFF */
	BAD("\xf5\x80\x80\x80", "invalid UTF-8");
	BAD("\xff", "invalid UTF-8");
	BAD("x\x80y", "invalid UTF-8");			/* stray */
	BAD("\xc3", "invalid UTF-8 (truncated sequence)");
	BAD("\xc3,b", "invalid UTF-8 (truncated sequence)");
	BAD("\xe6\x97", "invalid UTF-8 (truncated sequence)");
	BAD("\xe6\x97x", "invalid UTF-8");
	BAD("\"\xe6\x97\"", "invalid UTF-8 (truncated sequence)");
}

Test(csv, control_chars_rejected)
{
	BAD("a\x01", "control character");
	BAD("a,\x7f", "control character");
	BAD("a,b\x1b[0m", "control character");
	BAD("a,\xc2\x85", "control character");		/* C1 NEL */
	BAD("a,\xc2\x9f", "control character");
	BAD("\"a\x00\"", "control character");
	BAD("a\rb", "bare CR outside quotes");
	BAD("\"a\"\rb", "bare CR outside quotes");
	BAD("\"a\x0b\"", "control character");
}

Test(csv, quote_errors)
{
	BAD("ab\"c\",d", "quote in unquoted field");
	BAD("\"ab\"c,d", "text after closing quote");
	BAD("\"ab\" ,d", "text after closing quote");
}

Test(csv, c1_boundary_is_text)
{
	struct src s;

	SRC(&s, "\xc2\xa0,\xc2\x7f\n");		/* NBSP ok; then bad */
	expect_err(&s, "line 1: invalid UTF-8");
	expect_end(&s);
	src_close(&s);
}

Test(csv, error_inside_multiline_field_resyncs_after_quotes)
{
	struct src s;

	/*
	 * The bad byte is on line 3 inside a quoted field that ends on
	 * line 4; the next record starts on line 5 even though the bad
	 * field contains a newline and a comma.
	 */
	SRC(&s, "a,b\n\"x\ny\x01\n,z\",w\nc,d\n");
	EXPECT(&s, 1, "a", "b");
	expect_err(&s, "line 3: control character");
	EXPECT(&s, 5, "c", "d");
	expect_end(&s);
	src_close(&s);
}

Test(csv, unterminated_quote_at_eof)
{
	struct src s;

	SRC(&s, "a,b\n\"never\nclosed,x\ny\n");
	EXPECT(&s, 1, "a", "b");
	expect_err(&s, "line 2: unterminated quoted field");
	expect_end(&s);
	src_close(&s);
}

Test(csv, several_errors_in_a_row)
{
	struct src s;

	SRC(&s, "\x01\n\xff\n\"a\"b\nok\n");
	expect_err(&s, "line 1: control character");
	expect_err(&s, "line 2: invalid UTF-8");
	expect_err(&s, "line 3: text after closing quote");
	EXPECT(&s, 4, "ok");
	expect_end(&s);
	src_close(&s);
}

Test(csv, field_count_cap)
{
	struct src	 s;
	char		*buf = malloc(4 * CSV_FIELDS_MAX + 16);
	size_t		 n = 0;
	struct csv_record rec;
	char		 err[128];

	cr_assert_not_null(buf);
	/* Exactly CSV_FIELDS_MAX fields is fine... */
	for (int i = 0; i < CSV_FIELDS_MAX; i++)
		n += (size_t)sprintf(buf + n, "%s%d", i ? "," : "", i % 10);
	buf[n++] = '\n';
	/* ...one more is not. */
	for (int i = 0; i <= CSV_FIELDS_MAX; i++)
		n += (size_t)sprintf(buf + n, "%s%d", i ? "," : "", i % 10);
	n += (size_t)sprintf(buf + n, "\nlast\n");
	src_open(&s, buf, n);
	cr_assert_eq(csv_next(s.r, &rec, err, sizeof(err)), 1);
	cr_assert_eq(rec.nfields, CSV_FIELDS_MAX);
	cr_assert_str_eq(rec.fields[CSV_FIELDS_MAX - 1], "5");
	expect_err(&s, "line 2: too many fields");
	EXPECT(&s, 3, "last");
	expect_end(&s);
	src_close(&s);
	free(buf);
}

Test(csv, record_size_cap)
{
	struct src	 s;
	size_t		 n = 0, big = CSV_RECORD_MAX - 1;
	char		*buf = malloc(2 * CSV_RECORD_MAX + 64);
	struct csv_record rec;
	char		 err[128];

	cr_assert_not_null(buf);
	/* One field of CSV_RECORD_MAX - 1 bytes plus its NUL fits. */
	memset(buf, 'x', big);
	n = big;
	buf[n++] = '\n';
	/* A quoted field one byte longer (with newlines) does not. */
	buf[n++] = '"';
	memset(buf + n, 'y', big + 1);
	buf[n + 10] = '\n';
	n += big + 1;
	n += (size_t)sprintf(buf + n, "\"\nafter\n");
	src_open(&s, buf, n);
	cr_assert_eq(csv_next(s.r, &rec, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(rec.nfields, 1);
	cr_assert_eq(rec.lens[0], big);
	/* Reported where the cap was hit: after the newline in the field. */
	expect_err(&s, "line 3: record too long");
	EXPECT(&s, 4, "after");
	expect_end(&s);
	src_close(&s);
	free(buf);
}

Test(csv, streams_past_the_read_buffer)
{
	FILE		*f = tmpfile();
	struct csv_reader *r;
	struct csv_record rec;
	char		 err[128], want[64];
	unsigned long	 n = 0;
	int		 rc;

	cr_assert_not_null(f);
	/* ~2.4 MB: many read-buffer refills, records across boundaries. */
	for (int i = 0; i < 40000; i++)
		fprintf(f, "user%d@example.test,\"N\xc3\xa9%d\nx\",c%d\r\n", i,
		    i, i);
	rewind(f);
	cr_assert_not_null(r = csv_new(f));
	while ((rc = csv_next(r, &rec, err, sizeof(err))) == 1) {
		cr_assert_eq(rec.nfields, 3);
		cr_assert_eq(rec.line, 2 * n + 1);
		snprintf(want, sizeof(want), "user%lu@example.test", n);
		cr_assert_str_eq(rec.fields[0], want);
		n++;
	}
	cr_assert_eq(rc, 0, "rc=%d %s", rc, err);
	cr_assert_eq(n, 40000);
	csv_free(r);
	fclose(f);
}

Test(csv, read_error_is_eio)
{
	FILE		*f = fopen("/dev/null", "w");	/* unreadable */
	struct csv_reader *r;
	struct csv_record rec;
	char		 err[128];

	cr_assert_not_null(f);
	cr_assert_not_null(r = csv_new(f));
	cr_assert_eq(csv_next(r, &rec, err, sizeof(err)), -EIO);
	csv_free(r);
	fclose(f);
}

Test(csv, shipped_example_recipients)
{
	const char	*p = "campaigns/examples/welcome/recipients.csv";
	const char	*doms[] = { "alpha.test", "beta.test", "gamma.test",
	    "delta.test", "epsilon.test" };
	unsigned	 per[5] = { 0 }, nonascii = 0, comma = 0;
	FILE		*f = fopen(p, "rb");
	struct csv_reader *r;
	struct csv_record rec;
	char		 err[128];
	unsigned long	 n = 0;
	int		 rc;

	if (f == NULL)
		f = fopen("../../campaigns/examples/welcome/recipients.csv",
		    "rb");
	cr_assert_not_null(f);
	cr_assert_not_null(r = csv_new(f));
	cr_assert_eq(csv_next(r, &rec, err, sizeof(err)), 1);
	cr_assert_eq(rec.nfields, 3);
	cr_assert_str_eq(rec.fields[0], "email");
	cr_assert_str_eq(rec.fields[1], "first_name");
	cr_assert_str_eq(rec.fields[2], "city");
	while ((rc = csv_next(r, &rec, err, sizeof(err))) == 1) {
		const char *at;

		cr_assert_eq(rec.nfields, 3);
		cr_assert_not_null(at = strchr(rec.fields[0], '@'));
		for (int i = 0; i < 5; i++)
			if (strcmp(at + 1, doms[i]) == 0)
				per[i]++;
		for (size_t i = 0; i < rec.lens[1]; i++)
			if ((unsigned char)rec.fields[1][i] >= 0x80) {
				nonascii++;
				break;
			}
		if (strchr(rec.fields[2], ',') != NULL)
			comma++;
		n++;
	}
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(n, 1000);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(per[i], 200, "%s: %u", doms[i], per[i]);
	cr_assert(nonascii > 0);
	cr_assert(comma > 0);
	csv_free(r);
	fclose(f);
}

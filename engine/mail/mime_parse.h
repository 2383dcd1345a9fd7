/*
 * mime_parse: a minimal, bounded MIME reader for inbound messages (RFC 5322
 * header fields with folding, RFC 2045 Content-Type parameters and
 * transfer encodings, RFC 2046 multipart).
 *
 * Sans-I/O and allocation-free: everything works on a complete message in
 * memory and returns pointers into it (borrowed for as long as the caller
 * keeps the message) or copies into caller buffers, truncating to their
 * size. Any byte sequence is valid input: malformed or truncated messages
 * yield what can be found (an unterminated multipart ends at the end of
 * input), never a crash or an out-of-bounds read. Nesting is capped at
 * MIME_DEPTH_MAX and the number of entities at MIME_PARTS_MAX.
 * Must not touch: sockets, files, the heap. Pure, thread-safe.
 */
#ifndef ENGINE_MAIL_MIME_PARSE_H
#define ENGINE_MAIL_MIME_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_DEPTH_MAX		8	/* multipart nesting */
#define MIME_PARTS_MAX		128	/* entities visited per walk */
#define MIME_BOUNDARY_MAX	72	/* RFC 2046 5.1.1; longer are cut */

/* One header field; name and value point into the input. */
struct mime_hdr {
	const char	*name;
	size_t		 namelen;
	const char	*value;		/* raw, may hold CRLF+WSP folds */
	size_t		 valuelen;
};

enum mime_cte {
	MIME_CTE_IDENTITY = 0,		/* 7bit, 8bit, binary, unknown */
	MIME_CTE_BASE64,
	MIME_CTE_QP,
};

struct mime_ctype {
	char	 type[32];		/* lower case; "text" by default */
	char	 subtype[64];		/* lower case; "plain" by default */
	char	 boundary[MIME_BOUNDARY_MAX + 1];	/* as given */
	char	 report_type[32];	/* lower case (RFC 6522) */
	char	 charset[32];		/* lower case */
};

/* One entity met by mime_walk. All pointers borrow the walked message. */
struct mime_part {
	unsigned	 depth;		/* 0 = the message itself */
	unsigned	 index;		/* visit order, 0 = the message */
	struct mime_ctype ct;
	enum mime_cte	 cte;
	const char	*hdr;		/* header block, may be empty */
	size_t		 hdrlen;
	const char	*body;		/* still transfer-encoded */
	size_t		 bodylen;
	const struct mime_part *parent;	/* NULL at depth 0 */
};

/*
 * Iterate the header fields of the block p[0..len) starting at *off
 * (initially 0). Returns true with *h filled and *off advanced, or false
 * at the end of the header block: *off is then the offset of the body
 * (after the empty line, or where the first non-header line starts, or
 * len). A leading mbox "From " line is skipped.
 */
bool	mime_hdr_next(const char *p, size_t len, size_t *off,
	    struct mime_hdr *h);
/* Offset of the body of p[0..len) (see mime_hdr_next). */
size_t	mime_body_offset(const char *p, size_t len);
/*
 * Find the first field called name (case-insensitive) in the header block
 * p[0..len) (which may run on into a body: the search stops at its end)
 * and copy its unfolded, trimmed value into out (NUL-terminated,
 * truncated to outsz - 1). Returns the copied length, or -1 when absent.
 */
int	mime_hdr_get(const char *p, size_t len, const char *name, char *out,
	    size_t outsz);
/*
 * Unfold v[0..vlen) (CR/LF and following WSP become one space), trim, and
 * replace other control characters by spaces, into out. Returns the length.
 */
size_t	mime_unfold(const char *v, size_t vlen, char *out, size_t outsz);
/*
 * Decode RFC 2047 encoded-words ("=?utf-8?B?...?=", "=?iso-8859-1?Q?...?=")
 * in an unfolded header value into out (NUL-terminated, truncated to
 * outsz - 1). The decoded bytes keep their declared charset (no
 * conversion); whitespace between adjacent encoded-words is dropped
 * (RFC 2047 6.2); malformed words are copied literally. Returns the length.
 */
size_t	mime_decode_words(const char *in, char *out, size_t outsz);
/* Parse a Content-Type value (defaults text/plain). */
void	mime_ctype_parse(const char *value, struct mime_ctype *ct);
/*
 * Copy the value of parameter name (case-insensitive; quoted strings
 * unquoted) from a header value like `type/sub; a=b; c="d"` into out.
 * Returns its length or -1 when absent.
 */
int	mime_param_get(const char *value, const char *name, char *out,
	    size_t outsz);
enum mime_cte mime_cte_parse(const char *value);
/*
 * Decode in[0..inlen) per cte into out (at most outsz bytes, no NUL added).
 * Base64 skips characters outside the alphabet; quoted-printable keeps
 * malformed escapes literally. Returns the number of bytes written.
 */
size_t	mime_decode(enum mime_cte cte, const char *in, size_t inlen, char *out,
	    size_t outsz);

/*
 * Visitor: return 0 to continue, anything else stops the walk and is
 * returned by mime_walk.
 */
typedef int (*mime_visit_fn)(const struct mime_part *part, void *arg);
/*
 * Visit msg[0..len) and, depth first in order, every entity of its
 * multiparts (containers are visited before their children). Does not
 * descend into message/rfc822 bodies. Returns 0 or the visitor's value.
 */
int	mime_walk(const char *msg, size_t len, mime_visit_fn fn, void *arg);

/* Case-insensitive memmem; NULL when absent or nlen == 0. */
const char *mime_memcasemem(const char *h, size_t hlen, const char *n,
	    size_t nlen);

#endif

/*
 * mime: a small, bounded MIME structure parser for the IMAP server
 * (BODYSTRUCTURE, ENVELOPE, BODY[n] sections). It reads a message already
 * in memory with CRLF line ends and records offsets; it decodes nothing.
 *
 * Bounds: MIME_DEPTH_MAX nesting levels and MIME_NODES_MAX parts; beyond
 * them a multipart is treated as a leaf, so no input makes it recurse or
 * allocate without bound.
 *
 * Owns: struct mime_tree's node array. Must not touch: files, sockets.
 * Worker-local, not thread-safe.
 */
#ifndef ENGINE_IN_MIME_H
#define ENGINE_IN_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define MIME_DEPTH_MAX	16
#define MIME_NODES_MAX	256

struct mime_node {
	size_t			 hdr_off;	/* header fields start */
	size_t			 body_off;	/* after the blank line; the
						 * header section with its
						 * blank line is
						 * [hdr_off, body_off) */
	size_t			 body_len;
	char			 type[32];	/* lowercase, e.g. "text" */
	char			 subtype[64];	/* lowercase, e.g. "plain" */
	bool			 has_ctype;	/* a Content-Type was present */
	unsigned		 nchild;
	struct mime_node	*child;		/* borrows: first part */
	struct mime_node	*next;		/* borrows: next sibling */
	struct mime_node	*msg;		/* borrows: message/rfc822's
						 * encapsulated message */
};

struct mime_tree {
	const char		*base;		/* borrows: the message */
	size_t			 len;
	size_t			 n;
	struct mime_node	 nodes[MIME_NODES_MAX];	/* nodes[0] = root */
};

/* Parse a message (CRLF line ends) into t; t->nodes[0] is the message. */
void	mime_parse(struct mime_tree *t, const char *p, size_t len);

/*
 * The first field called name (case-insensitive) in the header block
 * [hdr, hdr + len): value unfolded (CRLFs dropped) and trimmed, appended
 * to out. 0 or -ENOENT.
 */
int	mime_header_get(const char *hdr, size_t len, const char *name,
	    struct buf *out);

/*
 * Append to out the fields of the header block whose names are (or, with
 * exclude, are not) in names, raw with their folded lines, then CRLF.
 */
void	mime_header_filter(const char *hdr, size_t len,
	    const char *const *names, size_t nnames, bool exclude,
	    struct buf *out);

/*
 * Walk the ";name=value" parameters of a structured value such as
 * Content-Type (starting after the first ';'). cb gets each unquoted name
 * and value. Returns the number of parameters seen.
 */
size_t	mime_params(const char *value, size_t len,
	    void (*cb)(const char *name, size_t nlen, const char *val,
	    size_t vlen, void *arg), void *arg);

/* Lines in [p, p + len) (a final line without CRLF counts). */
size_t	mime_count_lines(const char *p, size_t len);

#endif

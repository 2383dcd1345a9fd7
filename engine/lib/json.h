/*
 * json: writing JSON strings (RFC 8259) into a buf, for the commands
 * that print JSON lines.
 *
 * Owns: nothing; appends to the caller's buf. Must not touch: I/O.
 * Thread-safe (no state).
 */
#ifndef ENGINE_LIB_JSON_H
#define ENGINE_LIB_JSON_H

#include <stddef.h>

#include "lib/buf.h"

/*
 * Length (1..4) of the well-formed UTF-8 sequence at p[0..n), or 0 when
 * the bytes there are not one (overlong forms, surrogates, values above
 * U+10FFFF and truncated sequences are not).
 */
size_t	json_utf8_seq(const char *p, size_t n);
/*
 * Append s[0..len) as a quoted JSON string: '"' and '\\' escaped, control
 * characters as \n, \r, \t, \b, \f or \u00XX, DEL as \u007f, well-formed
 * UTF-8 passed through, every byte of ill-formed UTF-8 replaced by U+FFFD.
 * NUL bytes inside are allowed (\u0000). Returns 0 or -ENOMEM.
 */
int	json_put_str(struct buf *b, const char *s, size_t len);

#endif

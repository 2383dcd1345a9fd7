/*
 * tpl: the template renderer's interface.
 *
 * A template is compiled once per campaign against the campaign's column
 * names (so an unknown variable is a submit-time error with line and
 * column), then rendered once per recipient into a caller's buffer.
 * Rendering does not allocate once the output buffer has grown.
 * Contexts decide escaping: TEXT (as is), HTML (&<>"' escaped), HEADER
 * (CR, LF and other controls can never get through: no header injection).
 * See templates/README.md for the language.
 * Owns: the compiled program. Must not touch: Redis, sockets, MIME.
 */
#ifndef ENGINE_TEMPLATES_TPL_H
#define ENGINE_TEMPLATES_TPL_H

#include <stddef.h>

#include "lib/buf.h"

enum tpl_ctx { TPL_CTX_TEXT, TPL_CTX_HTML, TPL_CTX_HEADER };

struct tpl;

/* One recipient's values, indexed like the columns given at compile time. */
struct tpl_row {
	size_t		  n;
	const char *const *values;
	const size_t	 *lens;
};

/*
 * Compile src[0..len). name is used in errors. On error returns NULL and
 * writes "name:LINE:COL: message" into err.
 */
struct tpl *tpl_compile(const char *src, size_t len, const char *name,
	    enum tpl_ctx ctx, const char *const *columns, size_t ncolumns,
	    char *err, size_t errlen);
void	tpl_free(struct tpl *t);
/* Append the rendering to out. 0, -ENOMEM, or -EINVAL (row too short). */
int	tpl_render(const struct tpl *t, const struct tpl_row *row,
	    struct buf *out);

#endif

/*
 * tpl: the template renderer's interface.
 *
 * A template is compiled once per campaign against the campaign's column
 * names (so an unknown variable is a submit-time error with line and
 * column), then rendered once per recipient into a caller's buffer.
 * Rendering does not allocate once the output buffer has grown.
 * Contexts decide escaping: TEXT (as is), HTML (&<>"' escaped), HEADER
 * (CR, LF and other controls can never get through: no header injection).
 * In HTML the compiler also infers URL attributes (href, src, ...): a
 * value starting one is scheme-checked and normalised, a value inside one
 * is percent-encoded. See templates/README.md for the language.
 * Owns: the compiled program. Must not touch: Redis, sockets, MIME.
 */
#ifndef ENGINE_TEMPLATES_TPL_H
#define ENGINE_TEMPLATES_TPL_H

#include <stddef.h>

#include "lib/buf.h"
#include "mail/msg.h"

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

/*
 * Extensions (templates/README.md): list values for sections, and partials
 * loaded at compile time. tpl_compile() is tpl_compile_ex() without them.
 */

/* A list a section iterates over: a table of n items x nfields values. */
struct tpl_list {
	size_t		  n;		/* items */
	const char *const *values;	/* borrows: n * nfields, item-major */
	const size_t	 *lens;		/* borrows: same shape; NULL = strlen */
};

/* Declares, at compile time, a list's name and its fields' names. */
struct tpl_listdef {
	const char	  *name;
	const char *const *fields;
	size_t		   nfields;
};

struct tpl_opts {
	/* Lists, indexed like the lists given to tpl_render_ex(). */
	const struct tpl_listdef *lists;
	size_t		 nlists;
	/*
	 * Partial loader for {{> name}}: 0 with *src and *len set (borrowed
	 * until tpl_compile_ex() returns), or a negative errno when unknown.
	 * NULL makes every partial an error.
	 */
	int		(*load)(void *arg, const char *name, const char **src,
			    size_t *len);
	void		*load_arg;
};

/*
 * As tpl_compile(), with opts (NULL = none). Partials are compiled inline,
 * so the result does not depend on the loader after this returns.
 */
struct tpl *tpl_compile_ex(const char *src, size_t len, const char *name,
	    enum tpl_ctx ctx, const char *const *columns, size_t ncolumns,
	    const struct tpl_opts *opts, char *err, size_t errlen);
/*
 * As tpl_render(), with list values indexed like opts->lists at compile
 * time. 0, -ENOMEM, or -EINVAL (row or list array too short).
 */
int	tpl_render_ex(const struct tpl *t, const struct tpl_row *row,
	    const struct tpl_list *lists, size_t nlists, struct buf *out);

/*
 * Fast path (issue 5 performance): render straight into a MIME part body
 * for msg_build(), in->text_enc or in->html_enc. The template's static
 * text was prepared for both transfer encodings when it was compiled;
 * per recipient each distinct merged value (column, filters, escaping) is
 * escaped and prepared once, and the body is assembled by copying. The
 * result is byte for byte what tpl_render_ex() and then msg_build() with
 * in->text or in->html make (tests/fuzz/fuzz_tpl_mime.c checks it).
 */

/* Per-worker scratch for tpl_render_mime(), reused across messages. */
struct tpl_scratch {
	struct buf	 vals;	/* owns: merged values and their encodings */
	struct buf	 segs;	/* owns: a struct msg_seg per distinct value */
	struct buf	 plan;	/* owns: segment order, for templates with
				   blocks or lists */
};

void	tpl_scratch_init(struct tpl_scratch *sc);
void	tpl_scratch_fini(struct tpl_scratch *sc);
/*
 * Append the part body for this row to out, in the transfer encoding
 * msg_build() would choose, and describe it in *res (res->s points into
 * out: valid until out changes). 0, -ENOMEM, or -EINVAL (row or list
 * array too short). On error out is left as it was.
 */
int	tpl_render_mime(const struct tpl *t, const struct tpl_row *row,
	    const struct tpl_list *lists, size_t nlists,
	    struct tpl_scratch *sc, struct buf *out, struct msg_encoded *res);

#endif

/*
 * buf: a growable byte buffer with a read cursor.
 *
 * Owns: its heap block. Grows geometrically and never shrinks, so a buffer
 * reused per message stops allocating after warm-up.
 * Must not touch: sockets, TLS, Redis. Worker-local, not thread-safe.
 */
#ifndef ENGINE_LIB_BUF_H
#define ENGINE_LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct buf {
	char	*data;	/* owns; NUL-terminated after every append */
	size_t	 len;	/* bytes in use (from data[0]) */
	size_t	 cap;	/* allocated bytes */
	size_t	 off;	/* read cursor: data[off..len) not yet consumed */
};

void	buf_init(struct buf *b);
void	buf_free(struct buf *b);
/* Empty the buffer, keep the memory. */
void	buf_reset(struct buf *b);
/* Make room for `extra` more bytes (+1 for the NUL). 0 or -ENOMEM. */
int	buf_reserve(struct buf *b, size_t extra);
int	buf_append_slow(struct buf *b, const void *p, size_t n);

/* buf_reserve() with its no-op case inline, for per-message paths. */
static inline int
buf_room(struct buf *b, size_t extra)
{
	if (extra < b->cap - b->len)
		return 0;
	return buf_reserve(b, extra);
}
int	buf_puts(struct buf *b, const char *s);

/*
 * Appends are inline with an out-of-line slow path: renderers and
 * encoders append a byte or a few at a time on the per-message path.
 */
static inline int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n < b->cap - b->len) {	/* room for n bytes and the NUL */
		if (n > 0)
			memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return 0;
	}
	return buf_append_slow(b, p, n);
}

static inline int
buf_putc(struct buf *b, char c)
{
	if (b->len + 1 < b->cap) {
		b->data[b->len++] = c;
		b->data[b->len] = '\0';
		return 0;
	}
	return buf_append_slow(b, &c, 1);
}
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));
/* Unread bytes. */
static inline const char *
buf_peek(const struct buf *b)
{
	return b->data + b->off;
}
static inline size_t
buf_unread(const struct buf *b)
{
	return b->len - b->off;
}
/* Mark n unread bytes consumed; resets the buffer when all are. */
void	buf_consume(struct buf *b, size_t n);
/* Drop consumed bytes by moving the unread ones to the front. */
void	buf_compact(struct buf *b);

#endif

/*
 * unsubd: the one-click unsubscribe endpoint (RFC 8058), a small
 * HTTP/1.1 server on the caller's io_uring loop.
 *
 *   POST <prefix><token>  body List-Unsubscribe=One-Click
 *                         (application/x-www-form-urlencoded or
 *                         multipart/form-data) -> 200, address suppressed
 *   GET  <prefix><token>  -> 200, a landing page whose form POSTs the
 *                         above; GET itself changes nothing (link
 *                         scanners follow every URL in a mail)
 *   bad token             -> 400 (malformed) / 403 (forged, expired),
 *                         never a state change
 *
 * Two layers: a sans-I/O part (request head parser, form body check,
 * response writer), pure functions tested and fuzzed without sockets; and
 * the server, which owns the listening socket, a fixed table of
 * connections and their ops. The state change itself is the owner's
 * (cli/cmd_unsub.c does it in Redis): unsubd calls apply() and the owner
 * answers with unsubd_applied(), so in/ never depends on out/.
 *
 * Limits: request line UNSUBD_LINE_MAX (414), head UNSUBD_HEAD_MAX
 * (431), body UNSUBD_BODY_MAX (413), no chunked bodies (501 + close),
 * Content-Length and Transfer-Encoding together are refused (400,
 * smuggling). A connection that sends nothing for UNSUBD_IDLE_MS, or
 * does not complete a request (or read its response) within
 * UNSUBD_REQ_MS, is closed. Keep-alive per RFC 9112 9.3; after a
 * malformed request the connection is closed.
 *
 * Owns: the listening fd, the connection table, the token key (given).
 * Worker-local, not thread-safe. Must not touch: Redis (the owner's).
 */
#ifndef ENGINE_IN_UNSUBD_H
#define ENGINE_IN_UNSUBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define UNSUBD_LINE_MAX		4096	/* request line, CRLF included */
#define UNSUBD_HEAD_MAX		8192	/* request line + headers */
#define UNSUBD_BODY_MAX		4096	/* a one-click body is ~26 bytes */
#define UNSUBD_HEADERS_MAX	64	/* header fields per request */
#define UNSUBD_BOUNDARY_MAX	70	/* RFC 2046 5.1.1 */
#define UNSUBD_CONN_MAX		256	/* connections at once */
#define UNSUBD_IDLE_MS		30000	/* keep-alive idle */
#define UNSUBD_REQ_MS		10000	/* one request, first byte to last */

enum unsubd_method {
	UNSUBD_M_OTHER,
	UNSUBD_M_GET,
	UNSUBD_M_HEAD,
	UNSUBD_M_POST,
};

enum unsubd_ctype {
	UNSUBD_CT_NONE,
	UNSUBD_CT_URLENCODED,	/* application/x-www-form-urlencoded */
	UNSUBD_CT_MULTIPART,	/* multipart/form-data; boundary=... */
	UNSUBD_CT_OTHER,
};

/* A parsed request head. Pointers borrow the caller's input bytes. */
struct unsubd_req {
	enum unsubd_method method;
	const char	*target;	/* request-target, not NUL-terminated */
	size_t		 targetlen;
	bool		 http11;	/* HTTP/1.1 (else 1.0) */
	bool		 keep_alive;	/* after this request */
	size_t		 content_length;
	enum unsubd_ctype ctype;
	char		 boundary[UNSUBD_BOUNDARY_MAX + 1];
	size_t		 headlen;	/* bytes of request line + headers */
};

/*
 * Parse a request head from data[0..len). 0 with *req filled when the
 * whole head is there (req->headlen bytes); -EAGAIN when more bytes are
 * needed; -EBADMSG when the request must be refused, with *status set
 * to the HTTP status to answer (400, 413, 414, 431, 501, 505) before
 * closing. Never reads past len.
 */
int	unsubd_parse_head(const char *data, size_t len,
	    struct unsubd_req *req, int *status);
/*
 * Does body[0..len) say List-Unsubscribe=One-Click (RFC 8058 3.2) in the
 * request's content type? Percent-encoding and '+' are decoded for the
 * urlencoded form; multipart/form-data needs a part named
 * List-Unsubscribe whose content is One-Click.
 */
bool	unsubd_body_one_click(const struct unsubd_req *req, const char *body,
	    size_t len);
/*
 * The token of a request-target: target must start with prefix, the rest
 * up to '?' or the end is the token (1..UNSUB_TOKEN_MAX characters of
 * base64url). 0 with tok and toklen set, or -ENOENT.
 */
int	unsubd_target_token(const char *prefix, const char *target,
	    size_t targetlen, const char **tok, size_t *toklen);
/*
 * Append a whole response: status line, headers (Content-Type,
 * Content-Length, Connection, Cache-Control: no-store, a strict
 * Content-Security-Policy, nosniff), then body unless head_only.
 * 0 or -ENOMEM.
 */
int	unsubd_respond(struct buf *out, int status, bool keep_alive,
	    bool head_only, const char *ctype, const char *body, size_t len);
/*
 * The GET landing page for address (HTML-escaped): a form that POSTs
 * List-Unsubscribe=One-Click to the same URL. 0 or -ENOMEM.
 */
int	unsubd_landing_page(struct buf *out, const char *address);

/* ---- the server ---- */

struct loop;
struct token_key;
struct unsubd;
struct unsubd_conn;

struct unsubd_opts {
	const char	*host;		/* IP literal to bind */
	uint16_t	 port;		/* 0 = any (tests) */
	const char	*prefix;	/* path before the token, e.g. "/u/" */
	const struct token_key *key;	/* borrowed for the server's life */
	int64_t		 max_age_s;	/* unsub_token_check's max_age */
	/*
	 * Apply an unsubscribe: return 0 and call unsubd_applied(c, ...)
	 * later (exactly once, even if the client went away), or return
	 * -errno to answer 503 at once.
	 */
	int		(*apply)(void *arg, struct unsubd_conn *c,
			    const char *campaign, const char *address);
	void		*arg;
	/* Wall clock in seconds (token age); NULL = time(). */
	int64_t		(*now_s)(void);
};

/*
 * Listen and start accepting on l. NULL with a reason in err (bind,
 * listen, bad options).
 */
struct unsubd *unsubd_new(struct loop *l, const struct unsubd_opts *o,
	    char *err, size_t errlen);
/* The bound port (useful with port 0). */
uint16_t unsubd_port(const struct unsubd *d);
/*
 * The owner's answer to apply(): res 0 = done (200, whether the address
 * was new or already suppressed), -errno = failed (503).
 */
void	unsubd_applied(struct unsubd_conn *c, int res);
/*
 * Release what the loop boundary allows: call after every
 * loop_run_once (connections are freed only there, once no op of theirs
 * is in flight). Also runs the timeouts.
 */
void	unsubd_tick(struct unsubd *d);
/*
 * Stop accepting and close every connection; true once nothing of the
 * server is in flight any more (keep running the loop and calling
 * unsubd_tick until then, then unsubd_free).
 */
bool	unsubd_shutdown(struct unsubd *d);
void	unsubd_free(struct unsubd *d);

#endif

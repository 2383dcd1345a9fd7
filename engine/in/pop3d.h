/*
 * pop3d: a sans-I/O POP3 server session (RFC 1939, RFC 2449 CAPA, RFC 2595
 * STLS, RFC 3206 response codes) over a user's Maildir INBOX.
 *
 * The network layer feeds client bytes in any split to
 * pop3d_session_input() and sends what it appends to out; the returned
 * INSESS_* flags say when to close, start TLS or delay. Logins are refused
 * before TLS unless the peer is loopback. DELE marks are applied only by
 * QUIT in the TRANSACTION state (the UPDATE state); a dropped connection
 * deletes nothing.
 *
 * States:	AUTHORIZATION --USER/PASS ok--> TRANSACTION --QUIT--> (closed)
 *		AUTHORIZATION --QUIT--> (closed)
 *		AUTHORIZATION --STLS--> AUTHORIZATION (after TLS; USER reset)
 *
 * Owns: the session, its input buffer and its open maildir. Must not
 * touch: sockets, TLS. Worker-local, not thread-safe.
 */
#ifndef ENGINE_IN_POP3D_H
#define ENGINE_IN_POP3D_H

#include <stddef.h>

#include "lib/buf.h"

#include "in/insess.h"

/* Longest command line accepted, CRLF included (RFC 2449 asks 255). */
#define POP3D_LINE_MAX	512

struct pop3d_session;

/* NULL on ENOMEM. conf is copied (its pointers are borrowed). */
struct pop3d_session *pop3d_session_new(const struct insess_conf *conf);
void	pop3d_session_free(struct pop3d_session *s);
/* Append the "+OK" greeting. */
void	pop3d_session_greeting(struct pop3d_session *s, struct buf *out);
/*
 * Consume client bytes; returns INSESS_* flags. After INSESS_DELAY the
 * session holds back the rest of the input: call again (len 0 is fine)
 * once the delay is over. After INSESS_CLOSE every further call returns
 * INSESS_CLOSE and appends nothing.
 */
unsigned pop3d_session_input(struct pop3d_session *s, const char *data,
	    size_t len, struct buf *out);
/* The TLS handshake after INSESS_STARTTLS_NOW succeeded. */
void	pop3d_session_tls_started(struct pop3d_session *s);

#endif

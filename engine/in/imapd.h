/*
 * imapd: a sans-I/O IMAP4rev1 server session (RFC 3501 subset, RFC 7888
 * LITERAL+, RFC 2177 IDLE, RFC 4616 AUTH=PLAIN with RFC 4959 SASL-IR,
 * RFC 3691 UNSELECT, RFC 2971 ID) over
 * the Maildir++ store of maildir.h.
 *
 * The network layer feeds client bytes in any split to
 * imapd_session_input() and sends what it appends to out; the returned
 * INSESS_* flags (insess.h) say when to close, start TLS, delay after a
 * failed login, or wait in IDLE. While idling it calls
 * imapd_session_notify() when mail may have arrived (or on a timer), which
 * rescans the mailbox and appends "* n EXPUNGE" / "* N EXISTS".
 *
 * States (RFC 3501 3):
 *	NOTAUTH  --LOGIN/AUTHENTICATE ok--> AUTH
 *	NOTAUTH  --STARTTLS--> NOTAUTH (after TLS)
 *	AUTH     --SELECT/EXAMINE ok--> SELECTED
 *	SELECTED --CLOSE/UNSELECT/failed SELECT--> AUTH
 *	SELECTED --SELECT/EXAMINE ok--> SELECTED (other mailbox)
 *	any      --LOGOUT, limits, fatal errors--> LOGOUT (closed)
 * IDLE and an AUTHENTICATE continuation are sub-states of AUTH/SELECTED
 * and NOTAUTH: the next line ends them.
 *
 * Bounds: IMAPD_LINE_MAX per line, IMAPD_LITERAL_MAX per literal,
 * IMAPD_CMD_MAX per command; a sync literal over the limit gets a tagged
 * BAD, a LITERAL+ one closes the connection (it cannot be skipped safely).
 *
 * Owns: the session, its buffers, the selected maildir. Must not touch:
 * sockets, TLS. Worker-local, not thread-safe.
 */
#ifndef ENGINE_IN_IMAPD_H
#define ENGINE_IN_IMAPD_H

#include <stddef.h>

#include "lib/buf.h"

#include "in/insess.h"

#define IMAPD_LINE_MAX		8192
#define IMAPD_LITERAL_MAX	65536
#define IMAPD_LITERAL_PREAUTH_MAX 1024	/* before LOGIN / AUTHENTICATE */
#define IMAPD_CMD_MAX		(256 * 1024)
/* A FETCH pauses with INSESS_MORE after appending this much. */
#define IMAPD_OUT_HIWAT		(1024 * 1024)

struct imapd_session;

/* NULL on ENOMEM. conf is copied (its pointers are borrowed). */
struct imapd_session *imapd_session_new(const struct insess_conf *conf);
void	imapd_session_free(struct imapd_session *s);
/* Append the "* OK [CAPABILITY ...]" greeting. */
void	imapd_session_greeting(struct imapd_session *s, struct buf *out);
/*
 * Consume client bytes; returns INSESS_* flags. After INSESS_DELAY the
 * rest of the input is held back: call again (len 0 is fine) after the
 * delay. After INSESS_MORE a FETCH is half done: send out, then call again
 * (len 0 is fine; new bytes are queued). INSESS_IDLE_WAIT is set while the
 * client is in IDLE.
 */
unsigned imapd_session_input(struct imapd_session *s, const char *data,
	    size_t len, struct buf *out);
/* The TLS handshake after INSESS_STARTTLS_NOW succeeded. */
void	imapd_session_tls_started(struct imapd_session *s);
/*
 * New mail may have arrived (inotify, a delivery in this process, or a
 * timer): while the client idles, rescan and append EXPUNGE / EXISTS /
 * RECENT responses. Outside IDLE it does nothing (the next NOOP reports).
 * Returns INSESS_* flags (INSESS_IDLE_WAIT while still idling).
 */
unsigned imapd_session_notify(struct imapd_session *s, struct buf *out);
/* Periodic poll; the same as imapd_session_notify(). */
unsigned imapd_session_tick(struct imapd_session *s, struct buf *out);

#endif

/*
 * insess: what the sans-I/O inbound sessions (pop3d, imapd) share: the
 * per-connection configuration and the action flags their *_input() and
 * *_notify() calls return to the network layer.
 *
 * Owns nothing. Must not touch: sockets, TLS. Header-only.
 */
#ifndef ENGINE_IN_INSESS_H
#define ENGINE_IN_INSESS_H

#include <stdbool.h>

struct auth_users;
struct auth_limiter;

/* Flags returned by *_session_input() and friends; the caller always
 * sends the bytes appended to out first. */
#define INSESS_CLOSE		0x01u	/* flush out, then close */
#define INSESS_STARTTLS_NOW	0x02u	/* flush out, then run the TLS server
					 * handshake and call
					 * *_session_tls_started(); bytes that
					 * arrived before it were dropped */
#define INSESS_IDLE_WAIT	0x04u	/* IMAP IDLE: call imapd_session_notify
					 * on new mail (or every few seconds)
					 * until the client ends it */
#define INSESS_DELAY		0x08u	/* a failed login: hold out back for
					 * INSESS_FAIL_DELAY_MS, then call
					 * *_session_input() (len 0 is fine)
					 * to run input held back meanwhile */

#define INSESS_MORE		0x10u	/* a response was cut at a bounded size:
					 * send out, then call
					 * *_session_input() again (len 0 is
					 * fine) to produce the rest */

#define INSESS_FAIL_DELAY_MS	2000
/* Default bound on commands per connection. */
#define INSESS_MAX_COMMANDS	100000u

struct insess_conf {
	const struct auth_users	*users;		/* borrows, outlives sessions */
	struct auth_limiter	*limiter;	/* borrows; NULL = no limit */
	const char		*root;		/* borrows: user U's maildir is
						 * root/U (created on login) */
	const char		*peer;		/* borrows for the call only:
						 * client address (copied) */
	bool			 tls_active;	/* implicit TLS (993/995) */
	bool			 loopback;	/* peer is loopback: plaintext
						 * logins allowed */
	bool			 tls_available;	/* a TLS context exists, so
						 * STARTTLS/STLS is offered */
	unsigned		 max_commands;	/* 0 = INSESS_MAX_COMMANDS */
};

#endif

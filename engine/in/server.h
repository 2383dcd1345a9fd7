/*
 * server: the network side of `ringmail inbound`. One io_uring loop (one
 * thread: inbound volume is small) accepts on the SMTP, IMAP, IMAPS, POP3
 * and POP3S listeners and drives the sans-I/O sessions (smtpd, imapd,
 * pop3d) over plain sockets or core/tls server connections.
 *
 * Per connection: one recv and at most one send in flight; bytes to send
 * are queued in `wire` and swapped into `tx` for the kernel, so a session
 * may append while a send is in flight. Connections are freed only at the
 * loop boundary once no op of theirs is in flight (a completion callback
 * never frees its connection).
 *
 * SMTP messages are stored in the Maildir before 250 (tmp, fsync, rename
 * into new, fsync new; blocking calls on this thread, which is the
 * simple thing at this volume); any failure answers 451 4.3.0. Messages
 * to the bounce domains then go to the report hook (inreport.h) so the
 * caller can record events; the hook's batch is flushed once per loop
 * turn through the turn hook.
 *
 * Owns: listeners, connections, sessions, the ring. Borrows the SSL_CTX,
 * users, limiter and key. Must not touch: Redis (the caller's hooks do).
 * Thread affinity: everything runs on the thread that calls
 * inbound_server_run.
 */
#ifndef ENGINE_IN_SERVER_H
#define ENGINE_IN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "in/inreport.h"

enum inbound_proto {
	INBOUND_SMTP,
	INBOUND_IMAP,
	INBOUND_IMAPS,	/* implicit TLS */
	INBOUND_POP3,
	INBOUND_POP3S,	/* implicit TLS */
	INBOUND__N
};

struct auth_users;
struct auth_limiter;
struct token_key;

struct inbound_conf {
	const char		*listen[INBOUND__N];	/* "host:port"; NULL =
							   off */
	SSL_CTX			*tls;		/* borrows; NULL = no TLS */
	const char		*hostname;	/* banner, Received */
	const char		*root;		/* maildir root */
	const struct auth_users	*users;		/* borrows */
	struct auth_limiter	*limiter;	/* borrows; may be NULL */
	const struct token_key	*verp_key;	/* borrows; may be NULL */
	const char *const	*bounce_domains;
	size_t			 nbounce;
	const char *const	*reply_domains;
	size_t			 nreply;
	const char		*bounce_mailbox;	/* a user name */
	const char		*reply_mailbox;		/* a user name */
	uint64_t		 max_message_size;
	unsigned		 max_recipients;
	unsigned		 max_connections;
	unsigned		 max_connections_per_ip;
	/* Idle timeouts, ms; 0 = defaults (SMTP 5 min, RFC 5321 4.5.3.2.7;
	 * IMAP 30 min, RFC 3501 5.4; POP3 10 min, RFC 1939 3). */
	unsigned		 smtp_timeout_ms;
	unsigned		 imap_timeout_ms;
	unsigned		 pop3_timeout_ms;
	unsigned		 idle_poll_ms;	/* IDLE rescan: 0 = 2 s */
	/* A bounce-domain message was stored: what it reports. */
	void	(*on_report)(void *arg, const struct inreport *r);
	/* End of a loop turn: flush what on_report batched. */
	void	(*on_turn)(void *arg);
	void	*arg;
};

struct inbound_stats {
	uint64_t	naccepted;	/* connections */
	uint64_t	nrefused;	/* over a connection cap */
	uint64_t	nmessages;	/* stored */
	uint64_t	nstore_fail;	/* answered 451 */
};

struct inbound_server;

/*
 * Bind every configured listener and set up the ring. NULL with a message
 * in err on failure (bad address, port in use, ...).
 */
struct inbound_server *inbound_server_new(const struct inbound_conf *conf,
	    char *err, size_t errlen);
/* Run until inbound_server_stop (signal-safe: it sets a flag) or a fatal
 * ring error. 0 or -errno. */
int	inbound_server_run(struct inbound_server *s);
void	inbound_server_stop(struct inbound_server *s);
void	inbound_server_free(struct inbound_server *s);
void	inbound_server_stats(const struct inbound_server *s,
	    struct inbound_stats *out);
/* The local port of a listener (tests bind port 0... config forbids it,
 * so this is for logs), or 0. */
uint16_t inbound_server_port(const struct inbound_server *s,
	    enum inbound_proto p);

/*
 * A server SSL_CTX from PEM files: TLS 1.2+, no compression, no
 * renegotiation, server cipher preference. NULL with a message in err.
 */
SSL_CTX	*inbound_tls_ctx_new(const char *cert_file, const char *key_file,
	    char *err, size_t errlen);

#endif

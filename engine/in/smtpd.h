/*
 * smtpd: sans-I/O SMTP receiver session (RFC 5321) for the bounce and
 * reply domains: EHLO/HELO, STARTTLS (RFC 3207), SIZE (RFC 1870),
 * PIPELINING (RFC 2920), 8BITMIME (RFC 6152), MAIL/RCPT/DATA/RSET/NOOP/
 * QUIT/VRFY/HELP. No sockets, no TLS, no clock, no disk: the network layer
 * moves bytes, stores each complete message and reports the outcome with
 * smtpd_session_delivered().
 *
 * Never an open relay: RCPT is accepted only for an address whose domain
 * is one of the configured bounce or reply domains (or the bare
 * <postmaster>, RFC 5321 4.5.1); anything else gets 550 5.7.1.
 *
 * End of data is CRLF "." CRLF only (RFC 5321 4.1.1.4); a "." line ended
 * by a bare LF, or a bare LF before it, is message data (the SMTP
 * smuggling class of bugs needs a receiver that ends data on anything
 * else). Leading dots are removed from lines that start after a CRLF
 * (4.5.2). Bytes are otherwise stored as received.
 *
 * Transitions (enum smtpd_state in smtpd.c):
 *   GREET  -EHLO/HELO->  READY  -MAIL->  MAIL  -RCPT ok->  RCPT
 *   RCPT   -DATA->  DATA  -CRLF.CRLF->  (SMTPD_F_MESSAGE; wait)
 *          -smtpd_session_delivered->  READY
 *   any    -RSET->  READY (or GREET before EHLO)
 *   READY/GREET -STARTTLS-> (INSESS_STARTTLS_NOW) -tls_started-> GREET
 *   any    -QUIT / limits->  DONE (INSESS_CLOSE)
 *
 * Owns: struct smtpd_session, its line buffer, held-back input and the
 * message being received. Must not touch: sockets, TLS, Redis, Maildir.
 * Worker-local, not thread-safe.
 */
#ifndef ENGINE_IN_SMTPD_H
#define ENGINE_IN_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#include "in/insess.h"

/* A command line, CRLF included (RFC 5321 4.5.3.1.4 says 512; we are
 * lenient up to the text line limit of 4.5.3.1.6). Longer: 500. */
#define SMTPD_LINE_MAX		1000
#define SMTPD_PATH_MAX		256	/* RFC 5321 4.5.3.1.3 */
#define SMTPD_RCPT_MAX		100	/* default; RFC 5321 4.5.3.1.8 */
#define SMTPD_SIZE_DEFAULT	(25u * 1024 * 1024)
/* Consecutive failed commands before the session is closed. */
#define SMTPD_MAX_ERRORS	20

/* Returned with the INSESS_* flags: a message is complete; read it with
 * smtpd_session_message(), store it, then call
 * smtpd_session_delivered(). Input is held back until then. */
#define SMTPD_F_MESSAGE		0x100u

/* Which configured domain list a recipient matched. */
enum smtpd_rcpt_kind {
	SMTPD_RCPT_BOUNCE,
	SMTPD_RCPT_REPLY,
};

struct smtpd_conf {
	const char		*hostname;	/* borrows: banner and EHLO */
	const char *const	*bounce_domains; /* borrows: lower-case */
	size_t			 nbounce;
	const char *const	*reply_domains;	/* borrows: lower-case */
	size_t			 nreply;
	uint64_t		 max_size;	/* 0 = SMTPD_SIZE_DEFAULT */
	unsigned		 max_rcpt;	/* 0 = SMTPD_RCPT_MAX */
	unsigned		 max_commands;	/* 0 = INSESS_MAX_COMMANDS */
	bool			 tls_available;	/* offer STARTTLS */
	bool			 tls_active;	/* implicit TLS (unused: 465) */
	const char		*peer;		/* borrows for the call: IP */
};

struct smtpd_rcpt {
	char			 addr[SMTPD_PATH_MAX + 1];	/* as sent */
	enum smtpd_rcpt_kind	 kind;
	size_t			 local_len;	/* bytes before '@' */
};

/* The message handed to the caller with SMTPD_F_MESSAGE; all borrowed
 * from the session until smtpd_session_delivered(). */
struct smtpd_message {
	const char		*mail_from;	/* "" for the null sender */
	const char		*helo;
	const struct smtpd_rcpt	*rcpt;
	size_t			 nrcpt;
	const char		*data;		/* unstuffed, CRLF kept */
	size_t			 len;
	bool			 tls;		/* received over TLS */
};

struct smtpd_session;

/* NULL on ENOMEM. conf is copied (its pointers are borrowed). */
struct smtpd_session *smtpd_session_new(const struct smtpd_conf *conf);
void	smtpd_session_free(struct smtpd_session *s);
/* Append the 220 greeting. */
void	smtpd_session_greeting(struct smtpd_session *s, struct buf *out);
/*
 * Consume client bytes; returns INSESS_* | SMTPD_F_MESSAGE flags. After
 * SMTPD_F_MESSAGE or INSESS_CLOSE further input is only queued (or, after
 * CLOSE, dropped) and the call appends nothing.
 */
unsigned smtpd_session_input(struct smtpd_session *s, const char *data,
	    size_t len, struct buf *out);
/* The message after SMTPD_F_MESSAGE; -ENOENT when none is waiting. */
int	smtpd_session_message(const struct smtpd_session *s,
	    struct smtpd_message *m);
/*
 * The caller stored the message (ok: 250) or could not (451 4.3.0). The
 * message is dropped, then queued input runs; returns its flags as
 * smtpd_session_input() does.
 */
unsigned smtpd_session_delivered(struct smtpd_session *s, bool ok,
	    struct buf *out);
/* The TLS handshake after INSESS_STARTTLS_NOW succeeded: state is reset
 * to before EHLO (RFC 3207 4.2). */
void	smtpd_session_tls_started(struct smtpd_session *s);
/* Is domain[0..len) one of the list (case-insensitive)? */
bool	smtpd_domain_in(const char *const *list, size_t n, const char *domain,
	    size_t len);

#endif

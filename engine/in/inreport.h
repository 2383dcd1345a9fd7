/*
 * inreport: what one message received for a bounce-domain address means
 * for the sending side. The VERP local part is checked and decoded
 * (mail/token.h), the message is parsed as a DSN / ARF report / auto-reply
 * (mail/dsn.h), and the result says which event to record, if any.
 *
 * Owns: nothing (results are copies). Must not touch: sockets, Redis, the
 * Maildir (the caller has stored the message before asking). Worker-local
 * (the token key is not thread-safe).
 */
#ifndef ENGINE_IN_INREPORT_H
#define ENGINE_IN_INREPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/dsn.h"
#include "mail/token.h"

enum inreport_kind {
	INREPORT_UNATTRIBUTED,	/* no valid VERP token: kept, counted */
	INREPORT_BOUNCED,	/* event "bounced" */
	INREPORT_COMPLAINED,	/* ARF: event "complained" + suppression */
	INREPORT_AUTOREPLY,	/* RFC 3834 / vacation: counted only */
	INREPORT_OTHER,		/* attributed, but a delay notice or plain
				 * mail: counted only */
};

struct inreport {
	enum inreport_kind kind;
	char		 campaign[TOKEN_CAMPAIGN_BUFSZ];
	uint32_t	 index;
	char		 rcpt[DSN_ADDR_MAX];	/* failed address, or "" */
	int		 code;			/* SMTP code or 0 */
	char		 esc[16];		/* "5.1.1" or "" */
	char		 text[DSN_TEXT_MAX];	/* reason, no CR/LF */
	char		 category[32];		/* classify name */
	char		 dest[256];		/* remote MTA or "" */
	bool		 suppress;		/* hard bounce or complaint */
	int		 token_err;		/* verp_decode's result */
};

/*
 * Analyse msg[0..len) sent to the bounce-domain address whose local part
 * is local[0..local_len). key may be NULL (no secret configured: every
 * message is unattributed). Returns 0 or -ENOMEM.
 */
int	inreport_analyze(const struct token_key *key, const char *local,
	    size_t local_len, const char *msg, size_t len,
	    struct inreport *out);
/* "unattributed", "bounced", "complained", "auto-reply", "other". */
const char *inreport_kind_name(enum inreport_kind k);

#endif

/*
 * smtpc: the SMTP client session state machine, sans-I/O.
 *
 * Owns: one session's protocol state, its reply parser and its output
 * buffer. Replies go in (smtpc_recv), bytes to write and events come out.
 * The caller (the connection layer) writes smtpc.out to the socket and
 * consumes what was written, enforces the per-stage deadline named by
 * smtpc_stage() and calls smtpc_timeout() when it passes.
 * Must not touch: sockets, Redis, scheduling, outcome policy (it reports
 * codes; out/outcome decides what they mean).
 *
 * States (one message = one transaction with one recipient):
 *   BANNER -> EHLO -(5xx)-> HELO -> READY
 *   READY -(send_msg)-> MAIL -> RCPT -> DATA -> DOT -> READY
 *   with PIPELINING, MAIL, RCPT and DATA are written in one go and their
 *   replies read in order (RFC 2920); a failed MAIL/RCPT is answered
 *   with the 503/554 to DATA and the message result names the first
 *   failing stage.
 *   after a failed transaction: RSET -> READY
 *   READY -(quit)-> QUIT -> CLOSED;  any fatal error -> CLOSED
 */
#ifndef ENGINE_OUT_SMTPC_H
#define ENGINE_OUT_SMTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "mail/reply.h"

enum smtpc_state {
	SMTPC_BANNER, SMTPC_EHLO, SMTPC_HELO, SMTPC_READY, SMTPC_MAIL,
	SMTPC_RCPT, SMTPC_DATA, SMTPC_DOT, SMTPC_RSET, SMTPC_QUIT,
	SMTPC_CLOSED
};

/* Stage of a message result, for outcome and events. */
enum smtpc_stage {
	SMTPC_ST_CONNECT, SMTPC_ST_BANNER, SMTPC_ST_EHLO, SMTPC_ST_MAIL,
	SMTPC_ST_RCPT, SMTPC_ST_DATA, SMTPC_ST_DOT, SMTPC_ST_QUIT
};

/* Capabilities learned from EHLO. */
#define SMTPC_CAP_PIPELINING	0x01u
#define SMTPC_CAP_SIZE		0x02u
#define SMTPC_CAP_8BITMIME	0x04u
#define SMTPC_CAP_STARTTLS	0x08u
#define SMTPC_CAP_ENHANCED	0x10u
#define SMTPC_CAP_SMTPUTF8	0x20u
#define SMTPC_CAP_CHUNKING	0x40u

/* Events returned by smtpc_recv()/smtpc_timeout() (a bitmask). */
#define SMTPC_EV_READY	0x01u	/* idle in READY: give it a message or quit */
#define SMTPC_EV_RESULT	0x02u	/* c->result holds the current message's result */
#define SMTPC_EV_CLOSE	0x04u	/* session over: close the connection */

struct smtpc_result {
	enum smtpc_stage stage;	/* where it ended */
	int	 code;		/* SMTP code; 0 = no reply (timeout, garbage, close) */
	char	 esc[16];	/* enhanced status code or "" */
	char	 text[512];	/* reply text or our own reason */
};

struct smtpc {
	enum smtpc_state state;
	unsigned	 caps;		/* SMTPC_CAP_* */
	unsigned long	 size_max;	/* SIZE value, 0 = none/unlimited */
	bool		 use_pipelining;/* config: pipeline when offered */
	bool		 in_msg;	/* a message is in progress */
	bool		 txn_failed;	/* MAIL or RCPT failed: RSET next */
	unsigned	 pending;	/* pipelined replies still expected */
	const char	*ehlo_name;	/* borrows from config */
	const char	*body;		/* borrows the caller's message until
					   EV_RESULT: dot-stuffed, ends CRLF.CRLF */
	size_t		 bodylen;
	struct reply_parser rp;
	struct buf	 out;		/* owns: bytes to write */
	struct smtpc_result result;
	unsigned	 nmsgs;		/* transactions completed on session */
};

void	smtpc_init(struct smtpc *c, const char *ehlo_name, bool use_pipelining);
void	smtpc_fini(struct smtpc *c);
/* Start over on a new connection (keeps out's memory). */
void	smtpc_reset(struct smtpc *c);
/*
 * Bytes received. Returns SMTPC_EV_* bits. On a protocol violation the
 * current message (if any) gets a result with code 0 and the session goes
 * to CLOSED (EV_RESULT|EV_CLOSE).
 */
unsigned smtpc_recv(struct smtpc *c, const char *data, size_t len);
/*
 * Start a transaction in READY. from/rcpt are bare addresses (no <>);
 * body is the wire form (dot-stuffed, ending "\r\n.\r\n"), borrowed until
 * the result. Returns 0, or -EBUSY when not READY, -EMSGSIZE when the
 * peer's SIZE is smaller (no bytes are queued; a permanent failure).
 */
int	smtpc_send_msg(struct smtpc *c, const char *from, const char *rcpt,
	    const char *body, size_t bodylen);
/* Queue QUIT (in READY) or just close. */
unsigned smtpc_quit(struct smtpc *c);
/* The stage deadline passed: result (code 0, "timeout in ...") + CLOSE. */
unsigned smtpc_timeout(struct smtpc *c);
/* The peer closed or the socket failed: result for an in-flight message. */
unsigned smtpc_conn_lost(struct smtpc *c, const char *why);
/* Stage whose deadline applies now (for the caller's timer). */
enum smtpc_stage smtpc_stage(const struct smtpc *c);
const char *smtpc_stage_name(enum smtpc_stage st);

/*
 * Wire form of a message: dot-stuff (RFC 5321 4.5.2), normalise every bare
 * CR and bare LF to CRLF (no SMTP smuggling), add a final CRLF if missing
 * and the terminating ".\r\n". Appends to out. 0 or -ENOMEM.
 */
int	smtp_dotstuff(struct buf *out, const char *msg, size_t len);

#endif

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
 *   BANNER -(2xx)-> EHLO -(2xx)-> READY
 *   BANNER -(4xx/5xx)-> QUIT             (result, stage banner)
 *   EHLO -(5xx)-> HELO -(2xx)-> READY    (HELO: no capabilities)
 *   EHLO -(4xx)-> QUIT,  HELO -(4xx/5xx)-> QUIT   (result, stage ehlo)
 *   READY -(send_msg)-> MAIL -> RCPT -> DATA -(354)-> DOT -(2xx)-> READY
 *   MAIL/RCPT/DATA/DOT -(4xx/5xx)-> RSET -(2xx)-> READY
 *   RSET -(4xx/5xx)-> QUIT
 *   with PIPELINING, MAIL, RCPT and DATA are written in one go and their
 *   replies read in order (RFC 2920): the state still steps MAIL -> RCPT
 *   -> DATA, one reply each. A failed MAIL/RCPT gives the result at once
 *   (first failing stage); the rest are consumed: DATA's 503/554 goes on
 *   to RSET, an unexpected 354 is answered with a lone ".\r\n" (DOT,
 *   reply ignored) and then RSET.
 *   READY -(quit)-> QUIT -(any reply)-> CLOSED
 *   421 in any state, protocol garbage, timeout, lost connection,
 *   smtpc_quit outside READY -> CLOSED
 * STARTTLS (RFC 3207; smtpc_set_tls, mode not NONE, TLS not yet up):
 *   EHLO/HELO -(2xx, STARTTLS offered)-> STARTTLS
 *   EHLO/HELO -(2xx, not offered, REQUIRED)-> QUIT   (result, stage ehlo,
 *       code 0, "TLS required but STARTTLS not offered")
 *   STARTTLS -(220)-> TLS_HANDSHAKE, EV_STARTTLS: the caller runs the
 *       handshake; any byte after the 220 in the same read is a protocol
 *       error (response injection, CVE-2011-0411 style)
 *   STARTTLS -(4xx/5xx)-> READY (OPPORTUNISTIC, plain text) or QUIT
 *       (REQUIRED: result, stage ehlo, the reply's code, "STARTTLS
 *       refused: <text>")
 *   TLS_HANDSHAKE -(smtpc_tls_started)-> EHLO (capabilities forgotten,
 *       RFC 3207 4.2), and on from there with c->tls set
 *   TLS_HANDSHAKE -(smtpc_tls_failed)-> CLOSED (result, stage ehlo,
 *       code 0, "STARTTLS: <why>")
 * CHUNKING (RFC 3030; smtpc_set_chunking(true), peer offers CHUNKING,
 * message given with smtpc_send_msg_raw):
 *   READY -> MAIL -> RCPT -> BDAT -(2xx)-> READY   (success, stage dot)
 *   BDAT -(4xx/5xx)-> RSET                         (result, stage dot)
 *   with PIPELINING, MAIL, RCPT and "BDAT <n> LAST" plus the message go
 *   in one write; replies are matched in order as for DATA. After a
 *   failed MAIL/RCPT the BDAT reply is consumed, then RSET.
 * The three states above were appended after SMTPC_CLOSED so existing
 * values did not move.
 *
 * Driving STARTTLS (the connection layer; core/tls does the crypto):
 *   plain: write c->out to the socket, feed received bytes to smtpc_recv.
 *   EV_STARTTLS: drop any further plain bytes of this read (smtpc already
 *   failed the session if there were any), tls_conn_start(), send
 *   t.net_out; on each recv: tls_conn_input(t, rx, n, &plain), send
 *   t.net_out (always, whatever it returned). -EPROTO ->
 *   smtpc_tls_failed(c, t.reason). t.handshake_done -> smtpc_tls_started
 *   (c), then hand any bytes in plain to smtpc_recv. From then on, c->out
 *   goes through tls_conn_write() and t.net_out is what is sent.
 *
 * Results: EV_RESULT is raised exactly once per message given to
 * smtpc_send_msg() or smtpc_send_msg_raw(), and once when session setup fails (result stage
 * BANNER or EHLO: no message was involved; the caller fails its
 * connection attempt). Success is stage DOT with a 2xx code. A code of 0
 * means no usable reply (timeout, garbage, lost connection) and the text
 * says why. Nothing else touches c->result.
 *
 * Thread affinity: worker-local, not thread-safe.
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
	SMTPC_CLOSED,
	SMTPC_STARTTLS,		/* STARTTLS sent, waiting for 220 */
	SMTPC_TLS_HANDSHAKE,	/* 220 came; the caller runs the handshake */
	SMTPC_BDAT		/* BDAT <n> LAST sent, waiting for its reply */
};

/* When to use STARTTLS (smtpc_set_tls). */
enum smtpc_tls_mode {
	SMTPC_TLS_NONE,			/* never */
	SMTPC_TLS_OPPORTUNISTIC,	/* when offered; plain text otherwise
					   or when the server refuses it */
	SMTPC_TLS_REQUIRED		/* fail the session without TLS */
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
#define SMTPC_EV_STARTTLS 0x08u	/* 220 to STARTTLS: run the TLS handshake,
				   then smtpc_tls_started/smtpc_tls_failed */

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
	bool		 txn_failed;	/* transaction failed, result given:
					   later replies are only consumed,
					   RSET next */
	unsigned	 pending;	/* replies still expected to commands
					   sent (up to 3 when pipelined) */
	const char	*ehlo_name;	/* borrows from config */
	const char	*body;		/* borrows the caller's message until
					   EV_RESULT: dot-stuffed, ends CRLF.CRLF */
	size_t		 bodylen;
	struct reply_parser rp;
	struct buf	 out;		/* owns: bytes to write */
	struct smtpc_result result;
	unsigned	 nmsgs;		/* transactions completed on session */
	bool		 pipelined;	/* current transaction was pipelined */
	char		 rcpt[256];	/* copy of rcpt until RCPT is sent
					   (unpipelined); no per-message
					   allocation */
	/* issue 3 (appended): */
	enum smtpc_tls_mode tls_mode;	/* config; kept by smtpc_reset */
	bool		 use_chunking;	/* config; kept by smtpc_reset */
	bool		 tls;		/* TLS is up (smtpc_tls_started) */
	bool		 body_raw;	/* body is canonical, not dot-stuffed
					   (smtpc_send_msg_raw) */
	bool		 chunked;	/* current transaction uses BDAT */
};

/*
 * ehlo_name must be a non-empty token without spaces or CR/LF (config
 * validates it; checked with ENGINE_ASSERT). c must not be moved or
 * copied afterwards: its reply parser's line hook points back at it.
 */
void	smtpc_init(struct smtpc *c, const char *ehlo_name, bool use_pipelining);
void	smtpc_fini(struct smtpc *c);
/* Start over on a new connection (keeps out's memory). */
void	smtpc_reset(struct smtpc *c);
/*
 * Bytes received. Returns SMTPC_EV_* bits. On a protocol violation the
 * current message (if any) gets a result with code 0 and the session goes
 * to CLOSED (EV_RESULT|EV_CLOSE). EV_READY and EV_CLOSE never come
 * together. After CLOSED, input is ignored and EV_CLOSE returned.
 */
unsigned smtpc_recv(struct smtpc *c, const char *data, size_t len);
/*
 * Start a transaction in READY. from/rcpt are bare addresses (no <>);
 * body is the wire form (dot-stuffed, ending "\r\n.\r\n"), borrowed until
 * the result. Returns 0, or -EBUSY when not READY, -EMSGSIZE when the
 * peer's SIZE is smaller (no bytes are queued; a permanent failure).
 * Also, with nothing queued and the session still READY:
 *   -EPROTONOSUPPORT  from or rcpt is not ASCII and the peer does not
 *      offer SMTPUTF8 (RFC 6531 3.2; permanent for this peer);
 *   -EINVAL  an address holds a control character or is over 254
 *      octets, rcpt is empty, or body does not end in the terminator;
 *   -ENOMEM.
 * Adds " SIZE=n" when the peer offers SIZE (n is the size before
 * dot-stuffing, RFC 1870), " BODY=8BITMIME" when it offers 8BITMIME and
 * the body has 8-bit octets, " SMTPUTF8" when needed and offered.
 */
int	smtpc_send_msg(struct smtpc *c, const char *from, const char *rcpt,
	    const char *body, size_t bodylen);
/*
 * Start a transaction in READY with the message in canonical form: every
 * line ends in CRLF (no bare CR or LF), the last one too (or len == 0),
 * NOT dot-stuffed, no terminator (smtp_crlf() makes that form). Borrowed
 * until the result. smtpc picks the transfer: "BDAT <len> LAST" when
 * smtpc_will_chunk(), else DATA, dot-stuffing into c->out when the 354
 * comes. Returns as smtpc_send_msg (-EINVAL also for a non-canonical
 * message); SIZE= is len. smtpc_send_msg (wire form) always uses DATA.
 */
int	smtpc_send_msg_raw(struct smtpc *c, const char *from, const char *rcpt,
	    const char *msg, size_t len);
/* Would smtpc_send_msg_raw use BDAT now (enabled and offered)? */
bool	smtpc_will_chunk(const struct smtpc *c);
/*
 * Configuration, kept across smtpc_reset; set before the EHLO reply.
 * Defaults: SMTPC_TLS_NONE, chunking off.
 */
void	smtpc_set_tls(struct smtpc *c, enum smtpc_tls_mode mode);
void	smtpc_set_chunking(struct smtpc *c, bool on);
/*
 * The handshake after EV_STARTTLS succeeded: from now on everything in
 * c->out goes through TLS, and replies come decrypted. Sets c->tls,
 * forgets the capabilities and queues EHLO again (RFC 3207 4.2). Returns
 * 0, EV_CLOSE when the session was closed meanwhile (a timeout), or
 * EV_RESULT|EV_CLOSE when out of memory.
 * Only valid in TLS_HANDSHAKE or CLOSED.
 */
unsigned smtpc_tls_started(struct smtpc *c);
/*
 * The handshake failed (why: tls_conn reason, may be NULL): result stage
 * ehlo, code 0, "STARTTLS: <why>", and CLOSE; no QUIT, the stream is
 * unusable. Returns EV_RESULT|EV_CLOSE (just EV_CLOSE when already
 * closed). Policy (plain-text retry for opportunistic) is the caller's.
 */
unsigned smtpc_tls_failed(struct smtpc *c, const char *why);
/*
 * Queue QUIT (in READY: returns 0, EV_CLOSE follows the reply) or just
 * close (EV_CLOSE, plus EV_RESULT when a message was in flight; setup is
 * not a failure here: the caller asked). Idempotent while in QUIT.
 */
unsigned smtpc_quit(struct smtpc *c);
/*
 * The stage deadline passed: result (code 0, "timeout waiting for <stage>
 * reply") when a message or setup was in flight, and CLOSE.
 */
unsigned smtpc_timeout(struct smtpc *c);
/*
 * The peer closed or the socket failed: result (code 0, "connection lost
 * during <stage>: why") for an in-flight message or setup, and CLOSE.
 * why may be NULL.
 */
unsigned smtpc_conn_lost(struct smtpc *c, const char *why);
/*
 * Stage whose deadline applies now (for the caller's timer). RSET and
 * idle READY report SMTPC_ST_MAIL (a plain command timeout); CLOSED
 * reports SMTPC_ST_QUIT. STARTTLS and TLS_HANDSHAKE report SMTPC_ST_EHLO
 * (session setup), BDAT reports SMTPC_ST_DOT (its reply is the final one;
 * while the chunk is still being written, the data-block timeout fits).
 */
enum smtpc_stage smtpc_stage(const struct smtpc *c);
const char *smtpc_stage_name(enum smtpc_stage st);

/*
 * Wire form of a message: dot-stuff (RFC 5321 4.5.2), normalise every bare
 * CR and bare LF to CRLF (no SMTP smuggling), add a final CRLF if missing
 * and the terminating ".\r\n". Appends to out. 0 or -ENOMEM.
 */
int	smtp_dotstuff(struct buf *out, const char *msg, size_t len);
/*
 * Canonical form for smtpc_send_msg_raw / BDAT: as smtp_dotstuff, bare CR
 * and LF become CRLF and a final CRLF is added if missing, but no
 * dot-stuffing and no terminator. Appends to out. 0 or -ENOMEM.
 */
int	smtp_crlf(struct buf *out, const char *msg, size_t len);

#endif

/*
 * dsn: recognise and parse asynchronous bounces and feedback that come
 * back to the return path: RFC 3464 delivery status notifications
 * (multipart/report; report-type=delivery-status), RFC 5965 ARF complaint
 * reports, RFC 3834 auto-replies (recognised so they are NOT taken for
 * bounces), and the non-standard plain-text bounces of qmail, Exim,
 * Postfix, Sendmail, older Exchange/Outlook, Gmail and Yahoo (heuristics).
 * Outcomes are classified with classify_reply() (active rule set).
 *
 * Input is one raw RFC 5322 message in memory. Sans-I/O; any bytes are
 * valid input: truncated or malformed reports yield whatever fields can
 * still be found. Only the input bytes are scanned (each part decoded to
 * at most DSN_SCAN_MAX bytes). Heap use is one scratch buffer per call
 * (two for multipart reports), freed before return: this is the inbound
 * path, not the per-message send path.
 *
 * Recipient selection: a DSN names the first recipient whose Action is
 * "failed" (else the first one) and counts all of them (nrcpt, nfailed);
 * heuristics take the first address after the MTA's notice text, or
 * X-Failed-Recipients, or the original message's To. The actions follow
 * classify, except that a final failure always bounces (the remote gave
 * up, whatever the status class) and a delay only defers.
 * Owns: nothing after return (the result holds copies, no pointers).
 * Must not touch: sockets, Redis, the suppression list (callers act on
 * the result). Thread-safe.
 */
#ifndef ENGINE_MAIL_DSN_H
#define ENGINE_MAIL_DSN_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/classify.h"

#define DSN_ADDR_MAX	320	/* RFC 5321 path 256, plus slack */
#define DSN_TEXT_MAX	512	/* reason text kept */
#define DSN_ORIG_HDR_MAX 8192	/* original message headers kept */
#define DSN_SCAN_MAX	(256 * 1024)	/* decoded text scanned per part */

enum dsn_kind {
	DSN_KIND_NONE = 0,	/* not a bounce: ordinary mail */
	DSN_KIND_DSN,		/* RFC 3464 delivery status notification */
	DSN_KIND_ARF,		/* RFC 5965 feedback (complaint) report */
	DSN_KIND_AUTOREPLY,	/* RFC 3834 / vacation: not a bounce */
	DSN_KIND_HEURISTIC,	/* non-standard bounce, found by its text */
};

/*
 * is_bounce is true only for DSN and heuristic kinds reporting a final
 * failure; delay notices (dsn_action "delayed"), ARF complaints (category
 * complaint, action suppress) and auto-replies are not bounces.
 */
struct dsn_result {
	bool		 is_bounce;	/* a recipient failed for good */
	enum dsn_kind	 kind;
	char		 format[16];	/* heuristic: "qmail", "exim", ...;
					   DSN: "rfc3464"; ARF: "arf" */
	char		 recipient[DSN_ADDR_MAX];	/* bare address or "" */
	char		 orig_recipient[DSN_ADDR_MAX];	/* DSN Original-
							   Recipient */
	char		 status[16];	/* RFC 3463 "5.1.1" or "" */
	char		 dsn_action[16];/* failed|delayed|delivered|relayed|
					   expanded (lower case) or "" */
	int		 smtp_code;	/* from the diagnostic, or 0 */
	char		 reason[DSN_TEXT_MAX];	/* diagnostic text */
	char		 remote_mta[256];
	char		 feedback_type[32];	/* ARF Feedback-Type */
	unsigned	 nrcpt;		/* per-recipient blocks seen */
	unsigned	 nfailed;	/* of which Action: failed */
	struct classify_result cls;	/* category and CLASSIFY_A_* */
	/* Header block of the returned original message, when present,
	 * so the caller can read VERP / Message-ID / custom headers. */
	char		 orig_hdr[DSN_ORIG_HDR_MAX];
	size_t		 orig_hdrlen;
	char		 orig_message_id[256];	/* unfolded, or "" */
};

/*
 * Parse msg[0..len) into *out (fully overwritten). Returns 0, or -ENOMEM
 * (out then says "not a bounce"). Never fails on malformed input.
 */
int	dsn_parse(const char *msg, size_t len, struct dsn_result *out);
/* "none", "dsn", "arf", "auto-reply", "heuristic". */
const char *dsn_kind_name(enum dsn_kind k);

#endif

/*
 * msg: builds one RFC 5322 / MIME message from rendered parts.
 *
 * Output: Date, Message-ID, From, To, Subject (RFC 2047 when not ASCII),
 * Reply-To and extra headers when given, MIME-Version, then
 * multipart/alternative (text/plain + text/html) or a single part when only
 * one is present. Bodies are UTF-8; each part is 7bit when it is ASCII with
 * short lines, quoted-printable otherwise. CRLF line ends everywhere, no
 * line over 998 octets, a boundary that cannot occur in the content.
 * Not dot-stuffed: that is the wire's job (smtp_dotstuff).
 * Owns nothing beyond the call. Must not touch: sockets, Redis.
 */
#ifndef ENGINE_MAIL_MSG_H
#define ENGINE_MAIL_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct msg_header {
	const char	*name;
	const char	*value;
};

struct msg_input {
	const char	*from;		/* header value as configured */
	const char	*to;		/* bare recipient address */
	const char	*reply_to;	/* NULL = none */
	const char	*subject;	/* rendered, UTF-8, no CR/LF */
	const char	*text;		/* rendered; NULL = no text part */
	size_t		 textlen;
	const char	*html;		/* rendered; NULL = no html part */
	size_t		 htmllen;
	const struct msg_header *headers; /* extra headers, values UTF-8 */
	size_t		 nheaders;
	const char	*msgid_domain;	/* right side of Message-ID */
	const char	*msgid_local;	/* left side: unique per message */
	int64_t		 date_ms;	/* wall clock for the Date header */
};

/*
 * Append the message to out. 0, -ENOMEM, or -EINVAL (bad header name).
 * Notes on -EINVAL: an extra header name must be 1..76 printable ASCII
 * characters other than ':' and must not be a header msg_build writes
 * itself (Date, Message-ID, From, To, Cc, Bcc, Subject, Reply-To, Sender,
 * MIME-Version, Content-Type, Content-Transfer-Encoding). from, to,
 * msgid_local and msgid_domain must be non-empty and free of controls;
 * to and the Message-ID halves also of spaces and specials such as <>,;
 * an address word that cannot be folded under 998 octets is refused too.
 * Control characters in subject and header values become spaces instead.
 * On error out is left as it was on entry.
 */
int	msg_build(struct buf *out, const struct msg_input *in);

#endif

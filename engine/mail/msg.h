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
 *
 * Optional (issue 5): List-Unsubscribe with the caller's https URL and/or
 * mailto URI, plus List-Unsubscribe-Post: List-Unsubscribe=One-Click when
 * an https URL is given (RFC 8058 3.1); Feedback-ID; attachments. With
 * attachments the body becomes
 *   multipart/mixed
 *     multipart/alternative (text/plain + html-or-related) or one part
 *       multipart/related; type="text/html" (html + inline parts, only
 *       when there is an html part and inline parts)
 *     attachment parts (base64, 76-character lines)
 * (no multipart/mixed when every attachment is inline under the html).
 * Inline parts without an html part become mixed parts with
 * Content-Disposition: inline. Non-ASCII file names are written with
 * RFC 2231 encoding and continuations (filename*0*=utf-8''...).
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

/* A file carried by the message. */
struct msg_attachment {
	const char	*filename;	/* borrows; UTF-8, no controls, 1..255 */
	const char	*content_type;	/* borrows; "type/subtype" tokens */
	const char	*data;		/* borrows; any bytes */
	size_t		 len;
	const char	*content_id;	/* borrows; non-NULL = inline image
					   (multipart/related), written as
					   Content-ID: <content_id> */
};

#define MSG_ATTACH_MAX		64	/* attachments per message */
#define MSG_URI_MAX		900	/* one List-Unsubscribe URI */

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
	/* Issue 5 additions; zero = absent (old callers are unchanged). */
	const char	*unsub_url;	/* "https://..." or NULL */
	const char	*unsub_mailto;	/* "mailto:..." (or a bare address,
					   "mailto:" is added) or NULL */
	const char	*feedback_id;	/* Feedback-ID value or NULL */
	const struct msg_attachment *attachments;
	size_t		 nattachments;
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
 * unsub_url must be https:// and both URIs printable ASCII without space,
 * '<', '>', '"' or ',' and at most MSG_URI_MAX octets; feedback_id
 * printable ASCII without space (at most 200); at most MSG_ATTACH_MAX
 * attachments, each with a valid content type, file name and content id
 * (printable ASCII without space, '<', '>'): else -EINVAL. When msg_build
 * writes List-Unsubscribe (resp. Feedback-ID) itself, extra headers of
 * the names List-Unsubscribe and List-Unsubscribe-Post (resp.
 * Feedback-ID) are left out rather than duplicated.
 * On error out is left as it was on entry.
 */
int	msg_build(struct buf *out, const struct msg_input *in);

#endif

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
	/*
	 * Fast path (see below): bodies already in their transfer encoding,
	 * made by msg_enc_*. When non-NULL they replace text (resp. html)
	 * and the output is byte for byte what text/html would have made.
	 */
	const struct msg_encoded *text_enc;	/* borrows */
	const struct msg_encoded *html_enc;	/* borrows */
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

/*
 * Fast path for the per-recipient renderer (issue 5 performance).
 *
 * A part body is a sequence of segments. Each segment is prepared once:
 * a template's static text when the template is compiled, a merged value
 * once per message. Preparing records facts about the raw text (8-bit
 * bytes, line ends and lengths, "=_") and writes both transfer encodings
 * of it into a store: the 7bit form (line ends as CRLF) and the
 * quoted-printable form with every soft break that does not depend on
 * where the segment lands. Encoding a body is then a memcpy per segment
 * plus the few soft breaks and line-end decisions at segment edges.
 * The result, handed to msg_build() as in->text_enc or in->html_enc, is
 * byte for byte what msg_build() makes from the concatenated raw text
 * (same Content-Transfer-Encoding choice, same QP line breaks).
 * All of it is worker-local; nothing allocates once the buffers grew.
 */
#define MSG_SEG_8BIT	0x001u	/* a NUL or a byte >= 0x80 */
#define MSG_SEG_EOL	0x002u	/* holds a CR or LF */
#define MSG_SEG_LONG	0x004u	/* a line of its own over 998 octets */
#define MSG_SEG_SOL	0x008u	/* starts with CR or LF */
#define MSG_SEG_LF0	0x010u	/* starts with LF */
#define MSG_SEG_CR1	0x020u	/* ends with CR */
#define MSG_SEG_EQ1	0x040u	/* ends with '=' */
#define MSG_SEG_US0	0x080u	/* starts with '_' */
#define MSG_SEG_EQUS	0x100u	/* holds "=_" */
#define MSG_SEG_HOLD	0x200u	/* last byte held back (not CR or LF) */

/* A prepared segment. Offsets are into the store it was made in. */
struct msg_seg {
	uint32_t	 raw;	/* raw octets */
	uint32_t	 h1;	/* raw octets before the first line end */
	uint32_t	 hend;	/* raw octets after the last line end */
	uint32_t	 o7;	/* 7bit form: store offset and length */
	uint32_t	 n7;
	uint32_t	 oqp;	/* QP form: store offset */
	uint32_t	 q1;	/* QP octets of the first line (no breaks) */
	uint32_t	 nqp;	/* QP octets before the held byte's token */
	uint32_t	 qend;	/* column after them (when MSG_SEG_EOL) */
	unsigned	 flags;	/* MSG_SEG_* */
	unsigned char	 last;	/* the held byte (MSG_SEG_HOLD) */
	unsigned char	 lastw;	/* its token's octets at oqp + nqp when it
				   does not depend on what follows, else 0 */
};

/*
 * Prepare store->data[off..off+n) (already in store) as a segment; the
 * encodings are appended to store, and MSG_STORE_PAD octets of room are
 * left after them: the encoder copies short segments in fixed 64- or
 * 128-octet moves and may read that far past a segment's end (so a store keeps
 * the room if it is ever copied elsewhere). 0, or -ENOMEM (also when the
 * store would pass 4 GB).
 */
#define MSG_STORE_PAD	128
int	msg_seg_make(struct buf *store, size_t off, size_t n,
	    struct msg_seg *sg);

/* A body in its transfer encoding, for msg_input.text_enc/html_enc. */
struct msg_encoded {
	const char	*s;	/* borrows: the encoder's output buffer */
	size_t		 n;
	int		 qp;	/* quoted-printable, else 7bit */
	int		 bnd;	/* 7bit only: may hold "=_" (so a boundary) */
};

/* Encoder state for one body, on the caller's stack. */
struct msg_enc {
	struct buf	*b;	/* borrows: the output */
	size_t		 start;	/* b->len at msg_enc_begin */
	size_t		 col;	/* QP: octets on the current output line */
	size_t		 rawcol;	/* raw octets on the current line */
	unsigned	 facts;	/* MSG_SEG_8BIT, MSG_SEG_LONG, MSG_SEG_EQUS
				   seen so far */
	unsigned	 prev;	/* flags of the last non-empty segment */
	int		 qp;
	int		 pend;	/* QP: held byte not yet written, or -1 */
	int		 lean;	/* msg_enc_lean() */
};

/* Start a body appended to b, quoted-printable when qp. */
void	msg_enc_begin(struct msg_enc *e, struct buf *b, int qp);
/* Append a segment prepared in store (its current data). 0 or -ENOMEM. */
int	msg_enc_seg(struct msg_enc *e, const char *store,
	    const struct msg_seg *sg);
/*
 * Append n segments in one call: plan[i] is segs0[plan[i]] (prepared in
 * store0), or with MSG_PLAN_ALT set segs1[plan[i] & ~MSG_PLAN_ALT] (in
 * store1). 0 or -ENOMEM.
 */
#define MSG_PLAN_ALT	0x80000000u
int	msg_enc_plan(struct msg_enc *e, const struct msg_seg *segs0,
	    const char *store0, const struct msg_seg *segs1,
	    const char *store1, const uint32_t *plan, size_t n);
/*
 * Optional, right after msg_enc_begin(): the caller knows the raw facts
 * in advance and vouches for them, so segments are copied without
 * tracking them. It vouches that no segment ends with CR before one that
 * starts with LF and that no raw line (across segments) exceeds 998
 * octets; facts says MSG_SEG_8BIT when a NUL or 8-bit byte occurs and
 * MSG_SEG_EQUS when "=_" may (over-stating is safe, under-stating not).
 */
void	msg_enc_lean(struct msg_enc *e, unsigned facts);
/*
 * Finish. 0 with *res filled when the body got the encoding msg_build()
 * would choose; 1 when it needs the other one (b is cut back: start again
 * with msg_enc_begin(e, b, !qp) and the same segments); -ENOMEM.
 */
int	msg_enc_end(struct msg_enc *e, struct msg_encoded *res);

#endif

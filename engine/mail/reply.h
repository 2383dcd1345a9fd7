/*
 * reply: incremental parser for SMTP replies (RFC 5321 4.2) with RFC 3463
 * enhanced status codes.
 *
 * Owns: the partial-line state of one connection's reply stream. Feed it
 * bytes as they arrive (replies may be split anywhere, several may come in
 * one read); it yields one complete (possibly multi-line) reply at a time.
 * Tolerates bare LF line ends. Lines longer than REPLY_LINE_MAX are a
 * protocol error, as is anything that is not "DDD[ -]text".
 * Must not touch: sockets, session state. Sans-I/O, worker-local.
 */
#ifndef ENGINE_MAIL_REPLY_H
#define ENGINE_MAIL_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define REPLY_LINE_MAX	2048	/* RFC 5321 4.5.3.1.5 says 512; be lenient */
#define REPLY_TEXT_MAX	1024	/* text kept per reply; the rest is cut */

struct reply {
	int	 code;			/* 200..599 */
	char	 esc[16];		/* "5.1.1" or "" when absent */
	char	 text[REPLY_TEXT_MAX];	/* lines joined by ' ', esc removed
					   from each line, NUL-terminated */
	size_t	 textlen;
	unsigned nlines;
};

struct reply_parser {
	char	 line[REPLY_LINE_MAX];
	size_t	 linelen;
	struct reply cur;		/* reply being assembled */
	bool	 in_reply;		/* saw a "DDD-" continuation line */
	bool	 failed;		/* sticky after -EPROTO */
	/*
	 * Optional per-line hook (NULL = none), e.g. for EHLO keywords,
	 * which the joined text cannot keep apart. Called for each
	 * well-formed line as it completes: code, 0-based line number
	 * within the reply, the raw text after "DDD[ -]" (CR removed, esc
	 * kept, may hold any byte but LF). text is only valid during the
	 * call. Borrowed; set with reply_parser_set_line_cb().
	 */
	void	(*line_cb)(void *arg, int code, unsigned lineno,
		    const char *text, size_t len);
	void	*line_arg;		/* borrowed, passed to line_cb */
};

/* Reset to the start of a reply stream; clears the line hook too. */
void	reply_parser_init(struct reply_parser *p);
/* Install (or clear, cb == NULL) the per-line hook. */
void	reply_parser_set_line_cb(struct reply_parser *p,
	    void (*cb)(void *arg, int code, unsigned lineno, const char *text,
	    size_t len), void *arg);
/*
 * Consume bytes from data[0..len). Lines are "DDD text", "DDD-text" or a
 * bare "DDD" with D1 in 2..5; control characters in the text are replaced
 * by '?' in out->text (never in the line hook). Returns:
 *   1  a complete reply is in *out; *used bytes were consumed (call again
 *      with the rest, which may hold more replies);
 *   0  all len bytes consumed (*used == len), no complete reply yet;
 *  -EPROTO  malformed input (bad code, code change within a multi-line
 *      reply, over-long line); out->text says what was wrong, out->code
 *      is 0. The stream is not recoverable: close the connection; later
 *      calls return -EPROTO again without consuming anything.
 */
int	reply_parser_feed(struct reply_parser *p, const char *data, size_t len,
	    size_t *used, struct reply *out);

#endif

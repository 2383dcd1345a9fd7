/*
 * classify: maps one SMTP outcome (reply code, RFC 3463 enhanced status,
 * reply text) to a category and a set of actions.
 *
 * The rules are data: an ordered list in engine/mail/bounce-rules.txt
 * (format documented at the top of that file), embedded into the binary
 * by bounce_rules_data.S and compiled once on first use. A user rule file
 * replaces the built-in set (classify_rules_load + classify_set_rules).
 * First matching rule wins; when none matches, fixed fallbacks by enhanced
 * status and then by reply code apply (see classify.c), so every outcome
 * gets a category.
 *
 * Owns: the compiled rule sets it returns (freed by classify_rules_free)
 * and the process-wide built-in set (never freed).
 * Must not touch: sockets, Redis, the scheduler. Pure apart from the
 * one-time compilation of the built-in rules; classify_reply() is safe to
 * call from several threads at once (glibc regexec on a shared regex_t is,
 * behind a per-regex lock).
 * Cost: 2xx/3xx return at once (no allocation). Otherwise each rule's
 * regex runs only if the reply holds one of the literals the regex needs
 * (a strstr prefilter), so a typical failure runs regexec about once;
 * glibc's regexec allocates internally, so a non-2xx reply is not
 * allocation-free.
 * Used by out/ (synchronous replies) and by dsn (asynchronous bounces).
 */
#ifndef ENGINE_MAIL_CLASSIFY_H
#define ENGINE_MAIL_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

enum classify_category {
	CLASSIFY_UNKNOWN = 0,
	CLASSIFY_DELIVERED,		/* 2xx/3xx: nothing to do */
	CLASSIFY_INVALID_RECIPIENT,	/* mailbox does not exist/disabled */
	CLASSIFY_INVALID_DOMAIN,	/* domain does not exist/no MX */
	CLASSIFY_MAILBOX_FULL,
	CLASSIFY_MESSAGE_TOO_LARGE,
	CLASSIFY_RATE_LIMITED,		/* slow down, try later */
	CLASSIFY_REPUTATION,		/* IP/domain blocklisted, spam block */
	CLASSIFY_POLICY,		/* SPF/DKIM/DMARC, auth, relay policy */
	CLASSIFY_CONTENT_REJECTED,	/* virus, spam content, URLs */
	CLASSIFY_TRANSIENT,		/* network, resources, greylisting */
	CLASSIFY_PROTOCOL,		/* syntax errors, bad sequence */
	CLASSIFY_COMPLAINT,		/* ARF feedback report (dsn only) */
	CLASSIFY__COUNT
};

/* Action bits; a category may imply several. */
#define CLASSIFY_A_BOUNCE	0x1u	/* give up on this recipient */
#define CLASSIFY_A_DEFER	0x2u	/* try this recipient again later */
#define CLASSIFY_A_SUPPRESS	0x4u	/* never mail this address again */
#define CLASSIFY_A_SLOW_DOWN	0x8u	/* cut rate/concurrency for the site */
#define CLASSIFY_A_ALL		0xfu

#define CLASSIFY_RETRY_MAX_S	(7u * 24 * 3600)	/* cap on hints */

struct classify_result {
	enum classify_category category;
	unsigned	 actions;	/* CLASSIFY_A_* */
	unsigned	 retry_after_s;	/* "retry in N min" hint, 0 = none */
	unsigned	 rule_line;	/* matching rule's line, 0 = fallback */
};

struct classify_rules;
struct reply;

/*
 * Stable lower-case names for logs and JSON ("invalid-recipient", ...).
 * Never NULL; "unknown" for out-of-range values.
 */
const char *classify_category_name(enum classify_category c);
/* Parse a category name; -EINVAL when unknown. */
int	classify_category_parse(const char *s, size_t len,
	    enum classify_category *out);
/*
 * Write the action bits as "bounce,suppress" (or "none") into out
 * (always NUL-terminated when outsz > 0). Returns out.
 */
char	*classify_actions_str(unsigned actions, char *out, size_t outsz);
/* Parse one action name; 0 when unknown. */
unsigned classify_action_parse(const char *s, size_t len);

/*
 * Compile a rule set from text (the bounce-rules.txt format). Returns NULL
 * on a syntax error or a bad regex with a message naming the line in
 * err (when errsz > 0), or on ENOMEM.
 */
struct classify_rules *classify_rules_parse(const char *data, size_t len,
	    char *err, size_t errsz);
/* As classify_rules_parse, reading the file at path (at most 1 MiB). */
struct classify_rules *classify_rules_load(const char *path, char *err,
	    size_t errsz);
void	classify_rules_free(struct classify_rules *r);
/*
 * Rules skip regexec() unless the text holds a literal every match needs
 * (on by default). Off only for tests that compare both paths.
 */
void	classify_rules_set_prefilter(struct classify_rules *r, bool on);
size_t	classify_rules_count(const struct classify_rules *r);
/*
 * The built-in set, compiled on first call (thread-safe). A broken
 * built-in file is a build defect: it aborts via log_fatalx.
 */
const struct classify_rules *classify_rules_builtin(void);
/*
 * Make r the set classify_reply() uses (NULL = back to the built-in one).
 * Borrows r: keep it alive until replaced. Call at startup/reload only,
 * not while other threads classify.
 */
void	classify_set_rules(const struct classify_rules *r);

/*
 * Classify one reply with the active rule set. code is the 3-digit reply
 * code, or 0 when unknown (e.g. a DSN that only has a Status); esc is the
 * enhanced status ("5.1.1"), NULL or "" when absent; text may be NULL.
 * A 4xx outcome (by code, or by esc class when code is 0) never bounces or
 * suppresses: those bits become DEFER (RFC 5321 4.2.1, transient). A 5xx
 * outcome never defers unless it is rate-limited: DEFER becomes BOUNCE.
 */
void	classify_reply(int code, const char *esc, const char *text,
	    struct classify_result *out);
/* As classify_reply, for a reply from the reply parser (mail/reply.h). */
void	classify_from_reply(const struct reply *rp,
	    struct classify_result *out);
/* As classify_reply with an explicit rule set (NULL = built-in). */
void	classify_reply_rules(const struct classify_rules *r, int code,
	    const char *esc, const char *text, struct classify_result *out);
/*
 * Extract a "retry in N seconds/minutes/hours" style hint from text.
 * Seconds (capped at CLASSIFY_RETRY_MAX_S), 0 when there is none.
 */
unsigned classify_retry_hint(const char *text);

#endif

/*
 * suppress: keys and value format of the suppression lists, so the CLI,
 * the worker (hard bounces) and the inbound side (complaints,
 * unsubscribes) add entries the same way.
 *
 * An address is suppressed when its normalised form (suppress_normalize)
 * is a field of rm:suppress (global) or of rm:suppress:list:NAME (the
 * campaign's `suppress_list`). The value is informational:
 * "reason FS source FS ts_ms" (FS = 0x1f); a reader ignores fields after
 * the third, so later versions may append. Presence alone suppresses:
 * a value that does not parse still suppresses.
 *
 * Every change is also appended to rm:suppress:log
 * (XADD MAXLEN ~ RM_SUPPRESS_LOG_MAXLEN * op add|remove addr A list NAME|""
 * ts T), written after the hash, so a reader that sees a log entry finds
 * the hash already changed.
 *
 * Owns: nothing (pure functions, no I/O, no allocation). Must not touch:
 * Redis, sockets. Thread-safe.
 */
#ifndef ENGINE_OUT_SUPPRESS_H
#define ENGINE_OUT_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUPPRESS_ADDR_MAX	320	/* 64 local + @ + 255 domain */
#define SUPPRESS_REASON_MAX	512	/* bytes kept of a reason */
#define SUPPRESS_SOURCE_MAX	32
/* A list name is 1..SUPPRESS_LIST_MAX of [A-Za-z0-9_.-]. */
#define SUPPRESS_LIST_MAX	64
#define SUPPRESS_KEY_MAX	(sizeof("rm:suppress:list:") + SUPPRESS_LIST_MAX)
#define SUPPRESS_VALUE_MAX \
	(SUPPRESS_REASON_MAX + SUPPRESS_SOURCE_MAX + 24)

/* Sources used by the tree (any 1..32 of [a-z0-9_.-] is accepted). */
#define SUPPRESS_SRC_MANUAL	"manual"
#define SUPPRESS_SRC_IMPORT	"import"
#define SUPPRESS_SRC_BOUNCE	"bounce"
#define SUPPRESS_SRC_COMPLAINT	"complaint"
#define SUPPRESS_SRC_UNSUBSCRIBE "unsubscribe"

struct suppress_entry {
	char	reason[SUPPRESS_REASON_MAX + 1];
	char	source[SUPPRESS_SOURCE_MAX + 1];
	int64_t	ts_ms;
};

/* A list name: 1..SUPPRESS_LIST_MAX of [A-Za-z0-9_.-]. */
bool	suppress_list_valid(const char *name);
/* A source: 1..SUPPRESS_SOURCE_MAX of [a-z0-9_.-]. */
bool	suppress_source_valid(const char *src);
/*
 * The hash key of list (NULL or "": the global rm:suppress). Returns 0,
 * -EINVAL for an invalid list name, -ENOSPC when out is too small
 * (SUPPRESS_KEY_MAX suffices).
 */
int	suppress_key(char *out, size_t outsz, const char *list);
/*
 * The field name of an address: leading and trailing blanks removed,
 * ASCII letters lower-cased (UTF-8 bytes kept as they are). Returns 0,
 * -EINVAL when empty, longer than SUPPRESS_ADDR_MAX or with a control
 * character or a blank inside, -ENOSPC when out is too small
 * (SUPPRESS_ADDR_MAX + 1 suffices). Does not check the address syntax.
 */
int	suppress_normalize(char *out, size_t outsz, const char *addr,
	    size_t len);
/*
 * Format a value into out (NUL-terminated). reason may be NULL; control
 * characters in it become spaces, invalid UTF-8 becomes '?', and it is cut
 * at SUPPRESS_REASON_MAX bytes on a character boundary, so any bounce
 * text can be passed as it is. Returns 0, -EINVAL for an invalid source or
 * a negative ts_ms, -ENOSPC when out is too small (SUPPRESS_VALUE_MAX
 * suffices).
 */
int	suppress_format_value(char *out, size_t outsz, const char *reason,
	    const char *source, int64_t ts_ms);
/*
 * Parse v[0..len) (need not be NUL-terminated). Returns 0, or -EINVAL
 * when there are fewer than three fields, the reason is too long or has
 * control characters or invalid UTF-8, the source is invalid, or ts_ms is
 * not a decimal number in range.
 */
int	suppress_parse_value(const char *v, size_t len,
	    struct suppress_entry *e);

#endif

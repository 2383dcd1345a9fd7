/*
 * schema: the Redis key and field names of the public contract
 * (documented in README.md, "Redis schema"). Every producer and consumer
 * in the tree takes names from here; change them only with a new
 * RM_SCHEMA_VERSION.
 *
 * Keys of one campaign share the hash tag {ID} so multi-key commands and
 * scripts on them work on Redis Cluster.
 */
#ifndef ENGINE_OUT_SCHEMA_H
#define ENGINE_OUT_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define RM_SCHEMA_VERSION	"1"

#define RM_KEY_CAMPAIGNS	"rm:campaigns"	/* zset id -> created_ms */
#define RM_KEY_ACTIVE		"rm:active"	/* set of ids with work */
#define RM_KEY_EVENTS		"rm:events"	/* stream of outcomes */
#define RM_GROUP		"workers"	/* consumer group on jobs */

/* Per-campaign key suffixes: rm:{ID}:<suffix>. */
#define RM_SFX_META		"meta"		/* hash: definition + state */
#define RM_SFX_STATS		"stats"		/* hash: counters */
#define RM_SFX_JOBS		"jobs"		/* stream: recipient batches */
#define RM_SFX_RETRY		"retry"		/* zset: due_ms -> recipient */
#define RM_SFX_DONE		"done"		/* bitmap: final outcome seen */

/* Separators inside packed recipient data (never valid in CSV input). */
#define RM_FS			'\x1f'		/* between fields */
#define RM_RS			'\x1e'		/* between recipients */

#define RM_ID_MAX		64
#define RM_KEY_MAX		(RM_ID_MAX + 16)

/* Campaign states (meta field "state"). */
#define RM_STATE_SUBMITTING	"submitting"
#define RM_STATE_ACTIVE		"active"
#define RM_STATE_DONE		"done"

/* "rm:{id}:suffix" into out; false when it does not fit. */
static inline bool
rm_key(char *out, size_t outlen, const char *id, const char *suffix)
{
	int	n = snprintf(out, outlen, "rm:{%s}:%s", id, suffix);

	return n > 0 && (size_t)n < outlen;
}

/* A campaign id is 1..64 of [A-Za-z0-9_.-]. */
static inline bool
rm_id_valid(const char *id)
{
	size_t	n = 0;

	for (; id[n] != '\0'; n++) {
		char	c = id[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		    c == '.'))
			return false;
	}
	return n >= 1 && n <= RM_ID_MAX;
}

/*
 * Lua run by workers and submit. Keys of one campaign share a slot; the
 * global RM_KEY_ACTIVE set is the exception (see README, Redis Cluster).
 */

/*
 * Move due retries back into the job stream as one-recipient jobs.
 * KEYS: retry, jobs. ARGV: now_ms, limit. Member: idx FS attempt FS row.
 */
#define RM_LUA_RETRY_PUMP \
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], " \
	"  'LIMIT', 0, tonumber(ARGV[2]))\n" \
	"for _, m in ipairs(due) do\n" \
	"  local a = string.find(m, '\\31', 1, true)\n" \
	"  local b = string.find(m, '\\31', a + 1, true)\n" \
	"  redis.call('XADD', KEYS[2], '*', 'n', '1', 'i', string.sub(m, 1, a - 1), " \
	"    'a', string.sub(m, a + 1, b - 1), 'r', string.sub(m, b + 1))\n" \
	"  redis.call('ZREM', KEYS[1], m)\n" \
	"end\n" \
	"return #due\n"

/*
 * Mark the campaign done once every recipient has a final outcome.
 * KEYS: meta, stats, active. ARGV: id, now_ms.
 */
#define RM_LUA_FINISH \
	"if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end\n" \
	"local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '-1')\n" \
	"local s = redis.call('HMGET', KEYS[2], 'sent', 'bounced', 'failed')\n" \
	"local d = (tonumber(s[1]) or 0) + (tonumber(s[2]) or 0) + (tonumber(s[3]) or 0)\n" \
	"if total >= 0 and d >= total then\n" \
	"  redis.call('HSET', KEYS[1], 'state', 'done', 'finished_ms', ARGV[2])\n" \
	"  redis.call('SREM', KEYS[3], ARGV[1])\n" \
	"  return 1\n" \
	"end\n" \
	"return 0\n"

#endif

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
/*
 * hash: "site FS consumer" (destination key, worker thread) -> "ts_ms FS
 * consumer FS queued FS sessions FS bind FS explain text FS last
 * controller change FS rate_mpd" (the site's current allowed rate in
 * milli-messages per day, 0 = unlimited), written by each worker thread serving the site
 * every second while it has work (one field per thread: threads of a
 * fleet wait on different things), removed when the thread exits; read
 * by `ringmail explain` and `ringmail status --sites`.
 */
#define RM_KEY_SITES		"rm:sites"
/*
 * Drop RM_KEY_SITES fields older than ARGV[2] ms at wall time ARGV[1]
 * (a worker that died leaves its fields behind). KEYS: RM_KEY_SITES.
 * Returns the number dropped.
 */
#define RM_LUA_SITES_PRUNE \
	"local now, age = tonumber(ARGV[1]), tonumber(ARGV[2])\n" \
	"local h, n = redis.call('HGETALL', KEYS[1]), 0\n" \
	"for i = 1, #h, 2 do\n" \
	"  local ts = tonumber(string.match(h[i + 1], '^(%d+)'))\n" \
	"  if ts == nil or now - ts > age then\n" \
	"    redis.call('HDEL', KEYS[1], h[i])\n" \
	"    n = n + 1\n" \
	"  end\n" \
	"end\n" \
	"return n\n"

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
/*
 * Campaign control (issue 4). Transitions, each done atomically by
 * RM_LUA_CONTROL (operator) or by the worker:
 *
 *   submitting -> active | scheduled	submit finished (RM_LUA_SUBMITTED)
 *   scheduled  -> active		worker, once start_ms is due
 *					(RM_LUA_START_DUE)
 *   submitting|scheduled|active -> paused		campaign pause
 *   paused     -> submitting|scheduled|active	campaign resume (the
 *		   state it would be in had it never been paused)
 *   submitting|scheduled|active|paused -> cancelling	campaign cancel
 *   cancelling -> cancelled		worker, once every remaining
 *					recipient has a `cancelled` outcome
 *   active     -> done			worker (RM_LUA_FINISH)
 *
 * done and cancelled are final. Every non-final campaign stays in
 * RM_KEY_ACTIVE so workers see paused and cancelling ones too.
 */
#define RM_STATE_SCHEDULED	"scheduled"	/* waits for start_ms */
#define RM_STATE_PAUSED		"paused"	/* nothing is sent */
#define RM_STATE_CANCELLING	"cancelling"	/* workers end the rest */
#define RM_STATE_CANCELLED	"cancelled"	/* final */

/* Meta fields added by issue 4 (all optional for other producers). */
#define RM_META_START_MS	"start_ms"	/* not before (wall ms) */
#define RM_META_PRIORITY	"priority"	/* 0..9, higher first */
#define RM_META_RATE	"rate_per_s"	/* messages/s cap, decimal */
#define RM_META_SUPPRESS_LIST	"suppress_list"	/* extra list */
#define RM_META_PAUSED_MS	"paused_ms"	/* set while paused */
#define RM_META_RESUMED_MS	"resumed_ms"	/* last resume */
#define RM_META_CANCEL_MS	"cancel_ms"	/* cancel requested */
/*
 * Attachments and inline images (issue 5), written by submit only when
 * the campaign has any:
 *   attachments	records separated by RM_RS, one per file in
 *			campaign order, each
 *			  filename FS content_type FS cid FS length
 *			(cid empty = attachment, else inline image for
 *			Content-ID: <cid>; length in decimal bytes)
 *   attachment.N	the raw bytes of file N (0-based, same order)
 * Files are at most CAMPAIGN_ATTACH_MAX bytes each and
 * CAMPAIGN_ATTACH_TOTAL together (campaigns/campaign.h).
 */
#define RM_META_ATTACHMENTS	"attachments"
#define RM_META_ATTACHMENT_PFX	"attachment."	/* + N */

#define RM_PRIORITY_MIN		0
#define RM_PRIORITY_MAX		9
#define RM_PRIORITY_DEFAULT	5

/*
 * Worker registry: hash consumer name -> "ts_ms FS threads FS host FS pid
 * FS delivered FS held", rewritten by each worker every second. An entry
 * is live while ts_ms is within RM_WORKER_LIVE_MS of now.
 */
#define RM_KEY_WORKERS		"rm:workers"
#define RM_WORKER_LIVE_MS	15000

/*
 * Suppression (see out/suppress.h for the value format). A global hash,
 * one hash per named list, and a change log workers tail.
 *   rm:suppress			hash: lower-cased address -> value
 *   rm:suppress:list:NAME		hash: same, for list NAME
 *   rm:suppress:log			stream: op add|remove, addr, list
 *					(NAME, empty for global), ts (ms)
 */
#define RM_KEY_SUPPRESS		"rm:suppress"
#define RM_KEY_SUPPRESS_LIST	"rm:suppress:list:"	/* + NAME */
#define RM_KEY_SUPPRESS_LOG	"rm:suppress:log"
#define RM_SUPPRESS_LOG_MAXLEN	"100000"	/* XADD MAXLEN ~ */

/* Event types (rm:events field "type"). */
#define RM_EV_DELIVERED		"delivered"
#define RM_EV_DEFERRED		"deferred"
#define RM_EV_BOUNCED		"bounced"
#define RM_EV_FAILED		"failed"
#define RM_EV_EXPIRED		"expired"
#define RM_EV_SUPPRESSED	"suppressed"
#define RM_EV_CANCELLED		"cancelled"
#define RM_EV_COMPLAINED	"complained"
#define RM_EV_UNSUBSCRIBED	"unsubscribed"

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
 * KEYS: retry, jobs. ARGV: now_ms, limit, "all" (cancelling: every one).
 * Member: idx FS attempt FS row.
 */
#define RM_LUA_RETRY_PUMP \
	"local upto = ARGV[1]\n" \
	"if ARGV[3] == 'all' then upto = '+inf' end\n" \
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', upto, " \
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
 * The campaign is over once every recipient has a final outcome: "done",
 * or "cancelled" when it was being cancelled. Shared tail of the scripts
 * below. KEYS[1] meta, KEYS[2] stats, KEYS[akey] the active set; needs
 * locals id, now and akey.
 */
#define RM_LUA_FINISH_TAIL \
	"local st = redis.call('HGET', KEYS[1], 'state')\n" \
	"if st == 'active' or st == 'paused' or st == 'cancelling' then\n" \
	"  local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '-1')\n" \
	"  local s = redis.call('HMGET', KEYS[2], 'sent', 'bounced', 'failed', " \
	"    'expired', 'suppressed', 'cancelled')\n" \
	"  local d = 0\n" \
	"  for _, v in ipairs(s) do d = d + (tonumber(v) or 0) end\n" \
	"  if total >= 0 and d >= total then\n" \
	"    local fin = 'done'\n" \
	"    if st == 'cancelling' then fin = 'cancelled' end\n" \
	"    redis.call('HSET', KEYS[1], 'state', fin, 'finished_ms', now)\n" \
	"    redis.call('SREM', KEYS[akey], id)\n" \
	"    return 1\n" \
	"  end\n" \
	"end\n" \
	"return 0\n"

/* Finish check alone. KEYS: meta, stats, active. ARGV: id, now_ms. */
#define RM_LUA_FINISH \
	"local id, now, akey = ARGV[1], ARGV[2], 3\n" RM_LUA_FINISH_TAIL

/*
 * Record a batch of outcomes of one campaign, idempotently: a final
 * outcome counts and emits its event only if it sets the recipient's done
 * bit, a deferral only if its retry entry is new. So a batch whose reply
 * was lost with the connection can be sent again without double counting.
 * KEYS: meta, stats, jobs, retry, done, events, active, suppress,
 *   suppress log.
 * ARGV: id, now_ms, events maxlen, nrecords, nacks, then RM_REC_FIELDS per
 *   record: kind (f final, d deferred, q requeue), type, counter, idx,
 *   due_ms, retry member, rcpt, attempt, code, esc, stage, dest, text,
 *   category, suppress reason ("" = none), tls ("" = plain), mx host
 *   ("" = none), then the job ids to ack.
 */
#define RM_REC_FIELDS 17
#define RM_LUA_RECORD \
	"local id, now, maxlen, akey = ARGV[1], ARGV[2], ARGV[3], 7\n" \
	"local nr, na = tonumber(ARGV[4]), tonumber(ARGV[5])\n" \
	"local cnt = {}\n" \
	"for k = 0, nr - 1 do\n" \
	"  local b = 5 + k * 17\n" \
	"  local kind, typ, counter, idx = ARGV[b+1], ARGV[b+2], ARGV[b+3], ARGV[b+4]\n" \
	"  local emit = false\n" \
	"  if kind == 'f' then\n" \
	"    emit = redis.call('SETBIT', KEYS[5], idx, 1) == 0\n" \
	"  elseif kind == 'd' then\n" \
	"    emit = redis.call('ZADD', KEYS[4], ARGV[b+5], ARGV[b+6]) == 1\n" \
	"  else\n" \
	"    redis.call('ZADD', KEYS[4], ARGV[b+5], ARGV[b+6])\n" \
	"  end\n" \
	"  if emit then\n" \
	"    cnt[counter] = (cnt[counter] or 0) + 1\n" \
	"    redis.call('XADD', KEYS[6], 'MAXLEN', '~', maxlen, '*', 'v', '1', " \
	"      'type', typ, 'campaign', id, 'rcpt', ARGV[b+7], 'idx', idx, " \
	"      'attempt', ARGV[b+8], 'code', ARGV[b+9], 'esc', ARGV[b+10], " \
	"      'stage', ARGV[b+11], 'dest', ARGV[b+12], 'text', ARGV[b+13], " \
	"      'category', ARGV[b+14], 'tls', ARGV[b+16], 'mx', ARGV[b+17], 'ts', now)\n" \
	"    if ARGV[b+15] ~= '' then\n" \
	"      local a = string.lower(ARGV[b+7])\n" \
	"      if redis.call('HSETNX', KEYS[8], a, ARGV[b+15] .. '\\31bounce\\31' .. now) == 1 then\n" \
	"        redis.call('XADD', KEYS[9], 'MAXLEN', '~', '100000', '*', 'op', 'add', " \
	"          'addr', a, 'list', '', 'ts', now)\n" \
	"      end\n" \
	"    end\n" \
	"  end\n" \
	"end\n" \
	"for c, n in pairs(cnt) do redis.call('HINCRBY', KEYS[2], c, n) end\n" \
	"local b = 5 + nr * 17\n" \
	"for k = 1, na do\n" \
	"  redis.call('XACK', KEYS[3], 'workers', ARGV[b+k])\n" \
	"  redis.call('XDEL', KEYS[3], ARGV[b+k])\n" \
	"end\n" \
	RM_LUA_FINISH_TAIL
/*
 * Operator control of one campaign, atomically.
 * KEYS: meta, active. ARGV: id, op (pause|resume|cancel), now_ms.
 * Returns {1, new_state} on success, {0, current_state} when op is not
 * allowed from the current state, {-1, ""} when the campaign does not
 * exist. Non-final campaigns are (re)added to KEYS[2] so workers notice.
 * Like RM_LUA_FINISH it touches the global RM_KEY_ACTIVE: single node (or
 * one primary) only.
 */
#define RM_LUA_CONTROL \
	"local st = redis.call('HGET', KEYS[1], 'state')\n" \
	"if not st then return {-1, ''} end\n" \
	"local op, now, new = ARGV[2], ARGV[3], nil\n" \
	"if op == 'pause' then\n" \
	"  if st == 'active' or st == 'scheduled' or st == 'submitting' then\n" \
	"    new = 'paused'\n" \
	"    redis.call('HSET', KEYS[1], 'state', new, 'paused_ms', now)\n" \
	"  end\n" \
	"elseif op == 'resume' then\n" \
	"  if st == 'paused' then\n" \
	"    local m = redis.call('HMGET', KEYS[1], 'submitted_ms', 'start_ms')\n" \
	"    if not m[1] then new = 'submitting'\n" \
	"    elseif tonumber(m[2] or '0') > tonumber(now) then new = 'scheduled'\n" \
	"    else new = 'active' end\n" \
	"    redis.call('HSET', KEYS[1], 'state', new, 'resumed_ms', now)\n" \
	"    redis.call('HDEL', KEYS[1], 'paused_ms')\n" \
	"  end\n" \
	"elseif op == 'cancel' then\n" \
	"  if st == 'submitting' or st == 'scheduled' or st == 'active' or " \
	"     st == 'paused' then\n" \
	"    new = 'cancelling'\n" \
	"    redis.call('HSET', KEYS[1], 'state', new, 'cancel_ms', now)\n" \
	"  end\n" \
	"end\n" \
	"if not new then return {0, st} end\n" \
	"redis.call('SADD', KEYS[2], ARGV[1])\n" \
	"return {1, new}\n"

/*
 * End of submission: counters, total, submitted_ms, and the state, unless
 * an operator paused or cancelled the campaign meanwhile.
 * KEYS: meta, stats. ARGV: total, invalid, now_ms.
 * Returns the state the campaign is in afterwards.
 */
#define RM_LUA_SUBMITTED \
	"redis.call('HSET', KEYS[2], 'queued', ARGV[1], 'invalid', ARGV[2])\n" \
	"redis.call('HSET', KEYS[1], 'total', ARGV[1], 'submitted_ms', ARGV[3])\n" \
	"local m = redis.call('HMGET', KEYS[1], 'state', 'start_ms')\n" \
	"local st = m[1]\n" \
	"if st == 'submitting' or st == 'scheduled' then\n" \
	"  if tonumber(m[2] or '0') > tonumber(ARGV[3]) then st = 'scheduled'\n" \
	"  else st = 'active' end\n" \
	"  redis.call('HSET', KEYS[1], 'state', st)\n" \
	"end\n" \
	"return st\n"

/*
 * For workers: a scheduled campaign whose start_ms is due becomes active.
 * A campaign still streaming in (no submitted_ms) becomes submitting.
 * KEYS: meta. ARGV: now_ms. Returns 1 when it changed the state.
 */
#define RM_LUA_START_DUE \
	"local m = redis.call('HMGET', KEYS[1], 'state', 'start_ms', " \
	"  'submitted_ms')\n" \
	"if m[1] ~= 'scheduled' then return 0 end\n" \
	"if tonumber(m[2] or '0') > tonumber(ARGV[1]) then return 0 end\n" \
	"redis.call('HSET', KEYS[1], 'state', m[3] and 'active' or 'submitting')\n" \
	"return 1\n"

/*
 * Fleet-wide shaping (issue 6, out/lease.h formats the calls). Per site
 * (dns_route.site, the MX rollup key), all with the hash tag {SITE}:
 *   rm:shape:{SITE}:tokens	string: the site's GCRA theoretical arrival
 *				time, wall microseconds (may hold a fraction)
 *   rm:shape:{SITE}:slots	zset: holder -> lease expiry (wall ms)
 *   rm:shape:{SITE}:held	hash: holder -> connection slots it holds
 *   rm:shape:{SITE}:wait	zset: holder that asked for more slots than
 *				it got -> expiry (wall ms); they count
 *				towards the fair share
 * Keys expire on their own once nobody uses the site.
 */
#define RM_KEY_SHAPE_PFX	"rm:shape:"
#define RM_SFX_SHAPE_TOKENS	"tokens"
#define RM_SFX_SHAPE_SLOTS	"slots"
#define RM_SFX_SHAPE_HELD	"held"
#define RM_SFX_SHAPE_WAIT	"wait"

/*
 * IP warm-up (issue 6), per source IP (canonical text form):
 *   rm:warmup:{IP}	hash: day (0-based schedule index), date (UTC
 *			YYYYMMDD the counters are for), taken (messages
 *			granted today), sent, deferred, bounced (outcomes
 *			today), last_* (the previous active day's numbers
 *			and whether it advanced)
 */
#define RM_KEY_WARMUP_PFX	"rm:warmup:"

/*
 * Today's budget of a warming source, handed out in small leases.
 * KEYS: the source's hash. ARGV: today (YYYYMMDD), want, max deferral %,
 *   max bounce %, schedule ("200,500,1000": messages per day).
 * On the first call of a new day the previous active day is judged: it
 * advances the schedule one day when it had attempts and its deferral
 * and bounce ratios (of sent + deferred + bounced) stayed at or under
 * the maxima; otherwise the source stays on that day's volume.
 * Returns {n, day, cap}: n granted (0 = today's budget is used up), the
 * schedule day, its daily volume; cap -1 = past the schedule (warm).
 */
#define RM_LUA_WARMUP_TAKE \
	"local today, want = ARGV[1], tonumber(ARGV[2])\n" \
	"local mdef, mbnc = tonumber(ARGV[3]), tonumber(ARGV[4])\n" \
	"local sched = {}\n" \
	"for v in string.gmatch(ARGV[5], '%d+') do " \
	"sched[#sched + 1] = tonumber(v) end\n" \
	"local st = redis.call('HMGET', KEYS[1], 'day', 'date', 'taken', " \
	"  'sent', 'deferred', 'bounced')\n" \
	"local day = tonumber(st[1] or '0') or 0\n" \
	"local taken = tonumber(st[3] or '0') or 0\n" \
	"if st[2] ~= today then\n" \
	"  if st[2] then\n" \
	"    local s = tonumber(st[4] or '0') or 0\n" \
	"    local d = tonumber(st[5] or '0') or 0\n" \
	"    local b = tonumber(st[6] or '0') or 0\n" \
	"    local t = s + d + b\n" \
	"    local adv = 0\n" \
	"    if t > 0 and d * 100 <= mdef * t and b * 100 <= mbnc * t then\n" \
	"      adv = 1\n" \
	"      day = day + 1\n" \
	"    end\n" \
	"    redis.call('HSET', KEYS[1], 'last_date', st[2], 'last_sent', s, " \
	"      'last_deferred', d, 'last_bounced', b, 'last_advanced', adv)\n" \
	"  end\n" \
	"  taken = 0\n" \
	"  redis.call('HSET', KEYS[1], 'day', day, 'date', today, 'taken', 0, " \
	"    'sent', 0, 'deferred', 0, 'bounced', 0)\n" \
	"end\n" \
	"if day >= #sched then return {want, day, -1} end\n" \
	"local cap = sched[day + 1]\n" \
	"local n = cap - taken\n" \
	"if n > want then n = want end\n" \
	"if n < 0 then n = 0 end\n" \
	"if n > 0 then redis.call('HINCRBY', KEYS[1], 'taken', n) end\n" \
	"return {n, day, cap}\n"

/*
 * Outcomes of a warming source, counted for today only (a report that
 * arrives after midnight is dropped rather than judged against the new
 * day). KEYS: the source's hash. ARGV: today, sent, deferred, bounced.
 */
#define RM_LUA_WARMUP_REPORT \
	"if redis.call('HGET', KEYS[1], 'date') ~= ARGV[1] then return 0 end\n" \
	"redis.call('HINCRBY', KEYS[1], 'sent', ARGV[2])\n" \
	"redis.call('HINCRBY', KEYS[1], 'deferred', ARGV[3])\n" \
	"redis.call('HINCRBY', KEYS[1], 'bounced', ARGV[4])\n" \
	"return 1\n"

/*
 * Shared message bucket of a site, handed out in leases so a worker asks
 * Redis once per lease (e.g. 50 messages or 1 s), not per message.
 * GCRA: over any window of W ms the fleet is granted at most
 * burst + W * 1000 / interval_us tokens, however many workers ask.
 * KEYS: tokens. ARGV: now_ms (0 = the Redis server's clock, which avoids
 *   skew between workers), want (>= 1), interval_ns (one message every
 *   this many ns: 1e9 / rate per second), burst (>= 1), lease_ms.
 * Returns {n, t}: n >= 1 tokens granted, to be used before t = now +
 * lease_ms (wall ms; unused ones are simply lost, which errs on the safe
 * side); or {0, t} when none is free, t = when the next one will be.
 */
#define RM_LUA_SHAPE_LEASE \
	"local now = tonumber(ARGV[1])\n" \
	"if now == 0 then\n" \
	"  local tm = redis.call('TIME')\n" \
	"  now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n" \
	"end\n" \
	"local want, t = tonumber(ARGV[2]), tonumber(ARGV[3]) / 1000\n" \
	"local burst, lease = tonumber(ARGV[4]), tonumber(ARGV[5])\n" \
	"local nowus = now * 1000\n" \
	"local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n" \
	"if tat < nowus then tat = nowus end\n" \
	"local n = math.floor((nowus + burst * t - tat) / t + 1e-9)\n" \
	"if n > want then n = want end\n" \
	"if n < 1 then\n" \
	"  return {0, math.ceil((tat - burst * t + t) / 1000)}\n" \
	"end\n" \
	"tat = tat + n * t\n" \
	"redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', " \
	"  math.floor((tat - nowus) / 1000) + 60000)\n" \
	"return {n, now + lease}\n"

/*
 * Connection slots of a site, capped across the fleet: each holder (one
 * worker thread's destination, "consumer/N") holds some slots under one
 * lease that it renews; a holder that stops renewing loses all of them
 * once the lease expires (they are reclaimed by the next call of anyone).
 * KEYS: slots, held, wait. ARGV: op (acquire|renew|release), now_ms
 *   (0 = Redis clock), holder, n, cap, ttl_ms.
 *   acquire: up to n more slots while the total stays <= cap; renews.
 *            Granted fewer than n: the holder is recorded as waiting.
 *   renew:   extends the holder's lease (n, cap ignored).
 *   release: gives back up to n slots; no longer waiting.
 * Returns {changed, held, total, fair}: slots granted/released (renew:
 * held), what the holder holds afterwards (0 after a renew = lease lost),
 * the site's total, and the fair share ceil(cap / holders-or-waiters):
 * a holder above it gives slots back as its sessions end, so a worker
 * that came late is not starved by one that keeps a long queue.
 */
#define RM_LUA_SHAPE_SLOTS \
	"local op, now, h = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n" \
	"local n, cap, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), " \
	"  tonumber(ARGV[6])\n" \
	"if now == 0 then\n" \
	"  local tm = redis.call('TIME')\n" \
	"  now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n" \
	"end\n" \
	"local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)\n" \
	"for _, d in ipairs(dead) do redis.call('HDEL', KEYS[2], d) end\n" \
	"if #dead > 0 then\n" \
	"  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n" \
	"end\n" \
	"redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)\n" \
	"local total = 0\n" \
	"for _, v in ipairs(redis.call('HVALS', KEYS[2])) do\n" \
	"  total = total + tonumber(v)\n" \
	"end\n" \
	"local mine = tonumber(redis.call('HGET', KEYS[2], h) or '0')\n" \
	"local c = 0\n" \
	"if op == 'acquire' then\n" \
	"  c = cap - total\n" \
	"  if c > n then c = n end\n" \
	"  if c < 0 then c = 0 end\n" \
	"  mine = mine + c\n" \
	"  total = total + c\n" \
	"  if c < n then\n" \
	"    redis.call('ZADD', KEYS[3], now + ttl, h)\n" \
	"    redis.call('PEXPIRE', KEYS[3], ttl + 60000)\n" \
	"  else\n" \
	"    redis.call('ZREM', KEYS[3], h)\n" \
	"  end\n" \
	"elseif op == 'renew' then\n" \
	"  c = mine\n" \
	"elseif op == 'release' then\n" \
	"  c = n\n" \
	"  if c > mine then c = mine end\n" \
	"  mine = mine - c\n" \
	"  total = total - c\n" \
	"  redis.call('ZREM', KEYS[3], h)\n" \
	"else\n" \
	"  return redis.error_reply('bad op')\n" \
	"end\n" \
	"if mine > 0 then\n" \
	"  redis.call('HSET', KEYS[2], h, mine)\n" \
	"  redis.call('ZADD', KEYS[1], now + ttl, h)\n" \
	"else\n" \
	"  redis.call('HDEL', KEYS[2], h)\n" \
	"  redis.call('ZREM', KEYS[1], h)\n" \
	"end\n" \
	"if total > 0 then\n" \
	"  redis.call('PEXPIRE', KEYS[1], ttl + 60000)\n" \
	"  redis.call('PEXPIRE', KEYS[2], ttl + 60000)\n" \
	"end\n" \
	"local users = redis.call('HLEN', KEYS[2])\n" \
	"for _, x in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do\n" \
	"  if redis.call('HEXISTS', KEYS[2], x) == 0 then users = users + 1 end\n" \
	"end\n" \
	"if users < 1 then users = 1 end\n" \
	"return {c, mine, total, math.ceil(cap / users)}\n"

#endif

/*
 * worker: the sending engine. See worker.h for the thread model.
 *
 * Life of a recipient in one thread:
 *   fetch (XREADGROUP) -> job -> rcpt queued on its destination
 *   -> an SMTP session in READY takes it: render + MIME + dot-stuff into
 *      the session's wire buffer -> smtpc transaction -> result
 *   -> outcome -> record list -> one MULTI per campaign per loop turn
 *      (counters, event, done bit or retry entry, XACK when the whole
 *      job has outcomes).
 * A job is acknowledged only in the same MULTI as the outcome of its
 * last recipient, so a crash before EXEC leaves it pending in Redis to be
 * reclaimed; the done bitmap lets the reclaimer skip recipients that were
 * already recorded (duplicates are limited to messages in flight).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/tls.h"
#include "core/loop.h"
#include "core/rconn.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mono.h"
#include "lib/strset.h"
#include "mail/classify.h"
#include "mail/dkim.h"
#include "mail/token.h"
#include "mail/addr.h"
#include "mail/msg.h"
#include "out/outcome.h"
#include "out/retry.h"
#include "out/shape.h"
#include "out/lease.h"
#include "out/schema.h"
#include "out/smtpc.h"
#include "out/worker.h"
#include "templates/tpl.h"

#define WORKER_TICK_US		100000	/* longest wait in the loop */
#define WORKER_REFRESH_US	1000000	/* campaign list, retries */
/* Connection slot leases: a dead worker's slots return after this. */
#define WORKER_SLOT_TTL_MS	30000
#define WORKER_SLOT_POLL_US	250000	/* cap reached: ask again after */
/*
 * Holders renew every second: the renewal is also how a holder learns
 * the fair share when another thread or worker starts waiting, so it
 * bounds how long a late thread waits for its share (measured: 12 s
 * for 20,000 messages with a renewal every 10 s, one thread's 20 idle
 * sessions holding every slot while the other had 3,600 queued).
 */
#define WORKER_SLOT_RENEW_US	1000000
#define WORKER_RECLAIM_US	10000000/* XAUTOCLAIM of stale jobs */
#define WORKER_EVENTS_MAXLEN	"1000000"
#define WORKER_RBUF		4096
#define WORKER_FLUSH_US		10000	/* record batching window */

static volatile sig_atomic_t worker_drain_flag;

struct wthread;
struct job;

/*
 * A source IP on a warm-up schedule (config warmup:): today's budget is
 * leased from Redis a few messages at a time (RM_LUA_WARMUP_TAKE); once
 * it is used up, sessions from the source end and its pool's other
 * sources carry the traffic until the next UTC day.
 */
struct wsrc {
	const char	*ip;		/* borrowed: cfg->warmup_sources[i] */
	uint32_t	 tokens;	/* granted, not yet used */
	bool		 inflight;
	bool		 warm;		/* past the schedule: no budget */
	bool		 told;		/* "budget used" logged today */
	mono_us		 retry;		/* no budget before */
	uint32_t	 day;
	int64_t		 cap;
	uint32_t	 nsent, ndef, nbnc;	/* not yet reported */
};

struct wcamp {
	struct wthread	*w;
	char		 id[RM_ID_MAX + 1];
	char		 k_meta[RM_KEY_MAX], k_stats[RM_KEY_MAX];
	char		 k_jobs[RM_KEY_MAX], k_retry[RM_KEY_MAX];
	char		 k_done[RM_KEY_MAX];
	enum { WC_LOADING, WC_READY, WC_BROKEN } st;
	/* The campaign's own state (meta "state"), polled every refresh. */
	enum { CS_UNKNOWN, CS_SCHEDULED, CS_ACTIVE, CS_PAUSED, CS_CANCELLING,
	    CS_OVER } cs;
	bool		 active;	/* in RM_KEY_ACTIVE at the last look */
	bool		 seen;		/* scratch for refresh */
	bool		 polling;	/* a meta poll is in flight */
	int64_t		 start_ms;	/* for retry.max_age (and scheduling) */
	int		 priority;	/* 0..9, higher first; default 5 */
	double		 rate_per_s;	/* campaign-wide cap, 0 = none */
	double		 tokens;	/* this thread's share of it */
	mono_us		 refill_at;
	char		*suppress_list;	/* per-list suppression, NULL = none */
	struct msg_attachment *att;	/* owns array; strings in att_store */
	size_t		 natt;
	char		*att_store;	/* owns: names, types, cids, bytes */
	char		 feedback_id[RM_ID_MAX + 16];
	const struct config_pool *pool;	/* meta "pool" or smtp.pool */
	char		 k_supp_list[RM_KEY_MAX + 64];
	unsigned	 nheld;		/* its recipients in this thread */
	char		*from, *from_addr, *reply_to, *msgid_domain;
	struct tpl	*t_subject, *t_text, *t_html;
	struct msg_header *hdrs;	/* owns array; strings in hdr_store */
	size_t		 nhdrs;
	char		*hdr_store;
	size_t		 ncols;
	size_t		 email_col;
	struct wcamp	*next;
};

struct rcpt {
	struct job	*job;
	uint64_t	 idx;		/* index in the campaign */
	unsigned	 attempt;
	const char	**vals;		/* borrows the job's block */
	size_t		*lens;
	bool		 bad;		/* malformed record */
	bool		 skip;		/* already has an outcome (reclaimed) */
	bool		 suppressed;	/* found on a suppression list */
	struct rcpt	*next;		/* destination queue */
};

struct job {
	struct wcamp	*camp;
	char		 id[48];	/* stream entry id */
	unsigned	 n, remaining;
	bool		 reclaimed;
	bool		 acked;		/* its XACK is in a record batch */
	unsigned	 nchecks;	/* Redis checks before it is queued */
	struct rcpt	*rcpts;		/* in this block */
	struct job	*next;		/* thread's job list */
};

/*
 * One host of a destination (an MX host, or a static route's host) with
 * its addresses and its own failure state: a failing host is skipped for
 * min(15 s * p^2, 1 h) after p consecutive failures (OpenSMTPD's route
 * penalty), so connections fail over to the next MX or address.
 */
struct dhost {
	char		 name[256];
	unsigned	 naddrs;
	unsigned	 next_addr;	/* round robin over addrs */
	struct sockaddr_storage addrs[DNS_ADDR_MAX];
	unsigned	 nfail;
	mono_us		 down_until;
	mono_us		 notls_until;	/* STARTTLS failed: plain for a while */
};

/*
 * The adaptive controller of a destination is shared by the worker's
 * threads (keyed by destination name): each thread keeps its own
 * sessions, queue and parking, but one receiver's limit is found by one
 * controller seeing all of the worker's traffic, not by several AIMD
 * senders competing for it (measured: 118-154 msg/s with two per-thread
 * controllers against a 200/s receiver, 158 with one thread). Each has
 * its own mutex; sctl_mu guards only the table.
 */
struct sctl {
	char		 name[DNS_SITE_MAX + 80];
	pthread_mutex_t	 mu;
	struct shape_ctl ctl;
	unsigned	 nconn;		/* sessions of every thread (under mu) */
	struct sctl	*next;
};

/*
 * A destination: a site (MX rollup: domains with the same MX host set
 * share it, its queue, its sessions and its limits) or a static route.
 */
struct dest {
	char		 name[DNS_SITE_MAX + 80];	/* [pool|]site or host:port */
	bool		 is_static;
	const struct config_pool *pool;	/* borrowed; NULL = no source bind */
	unsigned	*src_nconn;	/* owns: sessions per pool source */
	unsigned	 src_rr;
	/*
	 * Traffic shaping (out/shape): the merged limits for this site and
	 * the adaptive controller that finds its acceptable pace.
	 */
	struct config_shaping cs;
	struct shape_ctl ctl;		/* used only when sc is NULL */
	struct sctl	*sc;		/* the worker's shared controller */
	mono_us		 park_until;	/* no message before (rate, hint) */
	/* Fleet-wide message rate: tokens leased from Redis (out/lease). */
	uint32_t	 fleet_tokens;
	int64_t		 fleet_until_ms;	/* wall: use them before */
	int64_t		 fleet_retry_ms;	/* wall: none free until */
	bool		 lease_inflight;
	/*
	 * Fleet-wide connection cap (connection_limit, x pool sources):
	 * every session holds a slot leased from Redis (out/lease), so the
	 * whole fleet never has more sessions open to the site. Held slots
	 * are kept while the queue wants them and the holder is within its
	 * fair share, renewed every WORKER_SLOT_TTL_MS / 3.
	 */
	bool		 fleet_slots;	/* false: name not a lease key */
	bool		 slots_inflight;
	enum lease_slot_op slots_op;
	uint32_t	 slots_held;	/* granted by Redis */
	uint32_t	 slots_fair;	/* last fair share seen, 0 = unknown */
	uint32_t	 slots_asked;	/* last acquire asked for */
	unsigned	 nslot_quit;	/* sessions quitting to give back */
	bool		 slots_waiting;	/* last acquire got less than asked */
	bool		 slots_resync;	/* a reply was lost: renew to learn */
	unsigned	 slots_refused;	/* 0-slot replies since publishing */
	mono_us		 slots_retry;	/* none free: ask again then */
	mono_us		 slots_renew;	/* next renewal */
	struct wthread	*w;
	mono_us		 conn_park_until; /* no new session before */
	bool		 published;	/* state changed since last publish */
	bool		 pub_ever;	/* has a field in RM_KEY_SITES */
	unsigned	 nidle;		/* scratch: idle sessions (publish) */
	char		 last_event[SHAPE_TEXT_MAX];
	struct dhost	*hosts;		/* owns; by preference */
	unsigned	 nhosts;
	mono_us		 refreshed_at;
	struct dest	*next;		/* thread's list of destinations */
	struct dest	*hnext;		/* hash chain */
	struct dq	*dqs;		/* owns: one FIFO per campaign */
	unsigned	 nq;		/* recipients in all of them */
	unsigned	 nconn;		/* sessions open or opening */
	unsigned	 nopening;	/* not yet READY */
	unsigned	 nfail;
	mono_us		 backoff_until;
	char		 last_why[256];	/* last session failure, for events */
};

#define WORKER_DEST_BUCKETS	4096

static pthread_mutex_t	 sctl_mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * TLS sessions for resumption, per MX host, shared by the worker's
 * threads: a session one thread's connection ended with resumes another
 * thread's next handshake to that host (the connection fair share moves
 * sessions between threads). tls_session_cache is not thread-safe: every
 * use holds tls_mu, and a get takes its own reference under it.
 */
static pthread_mutex_t	 tls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_session_cache tls_cache;

static SSL_SESSION *
tls_cache_get(const char *host)
{
	SSL_SESSION	*s;

	pthread_mutex_lock(&tls_mu);
	if ((s = tls_session_cache_get(&tls_cache, host)) != NULL)
		SSL_SESSION_up_ref(s);
	pthread_mutex_unlock(&tls_mu);
	return s;
}

static void
tls_cache_put(const char *host, SSL_SESSION *s)
{
	pthread_mutex_lock(&tls_mu);
	tls_session_cache_put(&tls_cache, host, s);
	pthread_mutex_unlock(&tls_mu);
}

static void
tls_cache_remove(const char *host)
{
	pthread_mutex_lock(&tls_mu);
	tls_session_cache_remove(&tls_cache, host);
	pthread_mutex_unlock(&tls_mu);
}
static struct sctl	*sctl_tab[WORKER_DEST_BUCKETS];

/*
 * A destination keeps one FIFO per campaign, so dispatch can honour
 * campaign priority and rate caps: a small urgent campaign is not stuck
 * behind a large one that reached the same site first.
 */
struct dq {
	struct wcamp	*camp;
	struct rcpt	*head, *tail;
	unsigned	 n;
	struct dq	*next;
};

enum sc_state { SC_CONNECTING, SC_OPEN, SC_CLOSING };

struct sconn {
	struct wthread	*w;
	struct dest	*d;
	int		 fd;
	enum sc_state	 st;
	bool		 ready_once;	/* reached READY at least once */
	bool		 idle;
	bool		 counted_open;	/* still counted in d->nopening */
	bool		 slot_quit;	/* QUIT to give a fleet slot back */
	struct smtpc	 smtp;
	struct loop_op	 op_conn, op_recv, op_send, op_cancel;
	struct buf	 tx;		/* owns: bytes in the send op */
	struct buf	 wire;		/* owns: the message smtpc borrows */
	struct rcpt	*cur;
	mono_us		 deadline;
	unsigned	 ndeliv;
	char		 why[256];
	struct sconn	*next;
	unsigned	 hi;		/* index of the host in d->hosts */
	int		 si;		/* pool source index, -1 = none */
	struct wsrc	*warm;		/* the source's warm-up, or NULL */
	enum smtpc_stage stage;		/* when the deadline was set */
	bool		 tls_on;	/* STARTTLS done: bytes go through t */
	bool		 tls_up;	/* handshake complete */
	bool		 tls_soft_fail;	/* opportunistic handshake failed */
	struct tls_conn	 t;		/* owns (when tls_on) */
	struct buf	 plain;		/* owns: decrypted bytes for smtpc */
	char		 tlsinfo[96];	/* "TLSv1.3 TLS_AES_..." for events */
	char		 rbuf[WORKER_RBUF];
};

struct rec {
	struct rcpt	*r;
	enum outcome	 o;
	bool		 requeue;	/* back to Redis now, no attempt counted */
	bool		 suppress;	/* add the address to the suppression list */
	int64_t		 due_ms;	/* deferred: when to retry */
	enum classify_category cat;
	struct smtpc_result res;
	const char	*dest;
	char		 tls[96];	/* protocol and cipher, "" = plain */
	char		 mx[256];	/* host the session talked to */
};

/* A record script sent but not yet confirmed: resent after a reconnect. */
struct batch {
	char		*cmd;		/* owns: the formatted command */
	size_t		 len;
	struct wthread	*w;
	struct batch	*next;
};

/*
 * Argument storage for one record script: the strings are built in one
 * buffer (offsets first, pointers after, since the buffer may move).
 */
struct rargs {
	struct buf	 store;
	size_t		*off, *len;
	const char	**argv;
	size_t		 n, cap;
};

struct wthread {
	const struct config *cfg;
	unsigned	 index;
	pthread_t	 tid;
	char		 consumer[128];
	char		 host[64];
	struct loop	 loop;
	struct rconn	 fetch, ctl;
	bool		 fetching;
	bool		 refreshing;
	bool		 draining;
	bool		 until_done;
	bool		 done;
	struct wcamp	*camps;
	struct job	*jobs;
	unsigned	 nheld;		/* recipients in memory */
	struct dest	*dests;		/* one per static route (array) */
	size_t		 ndests;
	struct dest	*dall;		/* every destination, static and MX */
	struct dest	*dhash[WORKER_DEST_BUCKETS];	/* MX sites by key */
	struct dns	*dns;		/* owns: MX resolution */
	mono_us		 wake;		/* earliest parked site/slot, 0 = none */
	mono_us		 last_flush;
	SSL_CTX		*ssl_ctx;	/* borrowed: one per process */
	struct dkim_key	**dkim;		/* owns: this thread's copies */
	size_t		 ndkim;
	struct token_key *verp;		/* owns: this thread's copy, or NULL */
	struct token_key *unsub;	/* owns: this thread's copy, or NULL */
	char		 unsub_url[CONFIG_URL_MAX + UNSUB_TOKEN_BUFSZ];
	char		 unsub_mailto[320 + UNSUB_TOKEN_BUFSZ];
	char		 verp_local[VERP_LOCAL_BUFSZ + 256];
	struct sconn	*conns;
	struct wsrc	*warm;		/* owns: cfg->nwarmup_sources */
	size_t		 nwarm;
	unsigned	 nconns;
	struct rec	*recs;
	size_t		 nrecs, caprecs;
	struct rargs	 rargs;		/* owns: record script arguments */
	struct batch	*unconfirmed;	/* sent, reply pending (FIFO) */
	struct batch	*resend;	/* lost with a connection (FIFO) */
	struct loop_timer t_refresh;
	mono_us		 next_reclaim;
	mono_us		 next_touch;
	unsigned	 ncamps_sendable;
	unsigned	 fleet_threads;	/* live worker threads (heartbeats) */
	struct strset	 recent_supp;	/* suppressions learnt from the log */
	mono_us		 wait_redis_until;
	char		 supp_log_id[48];
	bool		 supp_tailing;
	struct buf	 b_subj, b_text, b_html, b_msg, b_tmp;
	struct tpl_scratch tsc;		/* owns: tpl_render_mime() scratch */
	unsigned long	 nout[OUTCOME__COUNT];
	int		 rc;
};

/* ------------------------------------------------------------------ */
/* campaigns                                                           */

static void
on_ignore(struct rconn *rc, void *r, void *priv)
{
	(void)rc;
	(void)r;
	(void)priv;
}

static void
wcamp_free(struct wcamp *c)
{
	free(c->from);
	free(c->from_addr);
	free(c->reply_to);
	free(c->msgid_domain);
	tpl_free(c->t_subject);
	tpl_free(c->t_text);
	tpl_free(c->t_html);
	free(c->hdrs);
	free(c->hdr_store);
	free(c->suppress_list);
	free(c->att);
	free(c->att_store);
	free(c);
}

static struct wcamp *
wcamp_find(struct wthread *w, const char *id, size_t len)
{
	for (struct wcamp *c = w->camps; c != NULL; c = c->next)
		if (strlen(c->id) == len && memcmp(c->id, id, len) == 0)
			return c;
	return NULL;
}

static struct wcamp *
wcamp_by_jobs_key(struct wthread *w, const char *key, size_t len)
{
	for (struct wcamp *c = w->camps; c != NULL; c = c->next)
		if (strlen(c->k_jobs) == len && memcmp(c->k_jobs, key, len) == 0)
			return c;
	return NULL;
}

static const redisReply *
hash_get(const redisReply *r, const char *field)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, field) == 0 &&
		    r->element[i + 1]->type == REDIS_REPLY_STRING)
			return r->element[i + 1];
	return NULL;
}

static char *
hash_dup(const redisReply *r, const char *field)
{
	const redisReply	*v = hash_get(r, field);

	return v ? strndup(v->str, v->len) : NULL;
}

/* Split a FS-separated string in place; returns the number of fields. */
static size_t
split_fs(char *s, size_t len, char **out, size_t max)
{
	size_t	n = 0;
	char	*p = s, *end = s + len;

	while (n < max) {
		char	*q = memchr(p, RM_FS, (size_t)(end - p));

		out[n++] = p;
		if (q == NULL)
			break;
		*q = '\0';
		p = q + 1;
	}
	return n;
}

/*
 * Attachments from meta (RM_META_ATTACHMENTS: per file "name FS type FS
 * cid FS length", joined by RS; bytes in RM_META_ATTACHMENT_PFX N), copied
 * once per campaign into one block.
 */
static int
wcamp_attachments(struct wcamp *c, const redisReply *meta)
{
	const redisReply	*v = hash_get(meta, RM_META_ATTACHMENTS);
	size_t			 n = 1, total, off;
	char			*list, *p;

	if (v == NULL || v->len == 0)
		return 0;
	for (size_t i = 0; i < v->len; i++)
		if (v->str[i] == RM_RS)
			n++;
	total = v->len + 1;
	for (size_t i = 0; i < n; i++) {
		char			 f[32];
		const redisReply	*d;

		snprintf(f, sizeof(f), RM_META_ATTACHMENT_PFX "%zu", i);
		if ((d = hash_get(meta, f)) == NULL)
			return -EINVAL;
		total += d->len + 1;
	}
	if ((c->att = calloc(n, sizeof(*c->att))) == NULL ||
	    (c->att_store = malloc(total)) == NULL)
		return -ENOMEM;
	memcpy(c->att_store, v->str, v->len);
	c->att_store[v->len] = '\0';
	off = v->len + 1;
	list = c->att_store;
	for (size_t i = 0; i < n; i++) {
		char			*rs = strchr(list, RM_RS), *fld[4], f[32];
		const redisReply	*d;

		if (rs != NULL)
			*rs = '\0';
		if (split_fs(list, strlen(list), fld, 4) != 4)
			return -EINVAL;
		snprintf(f, sizeof(f), RM_META_ATTACHMENT_PFX "%zu", i);
		d = hash_get(meta, f);
		if (d == NULL || strtoull(fld[3], NULL, 10) != d->len)
			return -EINVAL;
		p = c->att_store + off;
		memcpy(p, d->str, d->len);
		p[d->len] = '\0';
		off += d->len + 1;
		c->att[i].filename = fld[0];
		c->att[i].content_type = fld[1];
		c->att[i].content_id = fld[2][0] ? fld[2] : NULL;
		c->att[i].data = p;
		c->att[i].len = d->len;
		list = rs ? rs + 1 : list + strlen(list);
	}
	c->natt = n;
	return 0;
}

static int
wcamp_compile(struct wcamp *c, const redisReply *meta)
{
	const redisReply	*v;
	char			*colstore = NULL, **cols = NULL;
	char			 err[512];
	size_t			 ncols;
	int			 rc = -EINVAL;

	if ((v = hash_get(meta, "columns")) == NULL || v->len == 0) {
		log_error("campaign=%s meta has no columns", c->id);
		return -EINVAL;
	}
	if ((colstore = strndup(v->str, v->len)) == NULL ||
	    (cols = calloc(1024, sizeof(*cols))) == NULL)
		goto out;
	ncols = split_fs(colstore, v->len, cols, 1024);
	c->ncols = ncols;
	v = hash_get(meta, "email_col");
	c->email_col = v ? strtoul(v->str, NULL, 10) : 0;
	if (c->email_col >= ncols) {
		log_error("campaign=%s email_col out of range", c->id);
		goto out;
	}
	c->from = hash_dup(meta, "from");
	c->from_addr = hash_dup(meta, "from_addr");
	c->reply_to = hash_dup(meta, "reply_to");
	c->msgid_domain = hash_dup(meta, "msgid_domain");
	if (c->from == NULL || c->from_addr == NULL) {
		log_error("campaign=%s meta lacks from/from_addr", c->id);
		goto out;
	}
	if (c->msgid_domain == NULL || c->msgid_domain[0] == '\0') {
		const char	*at = strrchr(c->from_addr, '@');

		free(c->msgid_domain);
		c->msgid_domain = strdup(at ? at + 1 : "localhost");
	}
	if ((v = hash_get(meta, "subject")) != NULL)
		c->t_subject = tpl_compile(v->str, v->len, "subject",
		    TPL_CTX_HEADER, (const char *const *)cols, ncols, err,
		    sizeof(err));
	if (c->t_subject == NULL) {
		log_error("campaign=%s subject: %s", c->id,
		    v ? err : "missing");
		goto out;
	}
	if ((v = hash_get(meta, "text")) != NULL &&
	    (c->t_text = tpl_compile(v->str, v->len, "text", TPL_CTX_TEXT,
	    (const char *const *)cols, ncols, err, sizeof(err))) == NULL) {
		log_error("campaign=%s text: %s", c->id, err);
		goto out;
	}
	if ((v = hash_get(meta, "html")) != NULL &&
	    (c->t_html = tpl_compile(v->str, v->len, "html", TPL_CTX_HTML,
	    (const char *const *)cols, ncols, err, sizeof(err))) == NULL) {
		log_error("campaign=%s html: %s", c->id, err);
		goto out;
	}
	if (c->t_text == NULL && c->t_html == NULL) {
		log_error("campaign=%s has neither text nor html", c->id);
		goto out;
	}
	/* headers: name FS value RS name FS value ... */
	if ((v = hash_get(meta, "headers")) != NULL && v->len > 0) {
		size_t	 n = 1;
		char	*p;

		for (size_t i = 0; i < v->len; i++)
			if (v->str[i] == RM_RS)
				n++;
		if ((c->hdr_store = strndup(v->str, v->len)) == NULL ||
		    (c->hdrs = calloc(n, sizeof(*c->hdrs))) == NULL)
			goto out;
		p = c->hdr_store;
		while (p != NULL && *p != '\0') {
			char	*rs = strchr(p, RM_RS), *fs;

			if (rs != NULL)
				*rs = '\0';
			if ((fs = strchr(p, RM_FS)) != NULL) {
				*fs = '\0';
				c->hdrs[c->nhdrs].name = p;
				c->hdrs[c->nhdrs].value = fs + 1;
				c->nhdrs++;
			}
			p = rs ? rs + 1 : NULL;
		}
	}
	if (wcamp_attachments(c, meta) != 0) {
		log_error("campaign=%s attachments record is malformed", c->id);
		goto out;
	}
	/* Feedback-ID (Gmail FBL): campaign id : sender id. */
	snprintf(c->feedback_id, sizeof(c->feedback_id), "%s:ringmail", c->id);
	rc = 0;
out:
	free(cols);
	free(colstore);
	return rc;
}

static void
on_group_create(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wcamp	*c = priv;

	(void)rc;
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
	    strncmp(reply->str, "BUSYGROUP", 9) != 0)
		log_warn("campaign=%s xgroup create: %s", c->id, reply->str);
}

static void
on_meta(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wcamp	*c = priv;

	(void)rc;
	if (reply == NULL) {
		c->st = WC_BROKEN;	/* retried at the next refresh */
		c->active = false;
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
		log_warn("campaign=%s has no meta record", c->id);
		c->st = WC_BROKEN;
		return;
	}
	if (wcamp_compile(c, reply) != 0) {
		c->st = WC_BROKEN;
		return;
	}
	c->st = WC_READY;
	log_info("campaign=%s loaded thread=%u columns=%zu", c->id,
	    c->w->index, c->ncols);
}

static struct wcamp *
wcamp_new(struct wthread *w, const char *id, size_t len)
{
	struct wcamp	*c;

	if (len > RM_ID_MAX || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	memcpy(c->id, id, len);
	if (!rm_id_valid(c->id)) {
		free(c);
		return NULL;
	}
	c->w = w;
	rm_key(c->k_meta, sizeof(c->k_meta), c->id, RM_SFX_META);
	rm_key(c->k_stats, sizeof(c->k_stats), c->id, RM_SFX_STATS);
	rm_key(c->k_jobs, sizeof(c->k_jobs), c->id, RM_SFX_JOBS);
	rm_key(c->k_retry, sizeof(c->k_retry), c->id, RM_SFX_RETRY);
	rm_key(c->k_done, sizeof(c->k_done), c->id, RM_SFX_DONE);
	c->st = WC_LOADING;
	c->next = w->camps;
	w->camps = c;
	return c;
}

static void
wcamp_load(struct wthread *w, struct wcamp *c)
{
	c->st = WC_LOADING;
	rconn_cmd(&w->ctl, on_group_create, c, "XGROUP CREATE %s %s 0 MKSTREAM",
	    c->k_jobs, RM_GROUP);
	if (rconn_cmd(&w->ctl, on_meta, c, "HGETALL %s", c->k_meta) != 0)
		c->st = WC_BROKEN;
}

/* ------------------------------------------------------------------ */
/* records: outcomes batched per loop turn                             */

static void
rec_add(struct wthread *w, struct rcpt *r, enum outcome o, bool requeue,
    const struct smtpc_result *res, const char *dest)
{
	struct rec	*x;

	if (w->nrecs == w->caprecs) {
		size_t	 ncap = w->caprecs ? w->caprecs * 2 : 256;
		void	*p = realloc(w->recs, ncap * sizeof(*w->recs));

		if (p == NULL)
			log_fatalx("out of memory for outcome records");
		w->recs = p;
		w->caprecs = ncap;
	}
	x = &w->recs[w->nrecs++];
	memset(x, 0, sizeof(*x));
	x->r = r;
	x->o = o;
	x->requeue = requeue;
	x->res = *res;
	x->dest = dest;
	x->cat = CLASSIFY_UNKNOWN;
	if (requeue)
		x->due_ms = wall_ms();
	else
		w->nout[o]++;
	r->job->camp->nheld--;
	w->nheld--;
}

/*
 * A recipient's outcome is known (not yet recorded). Here a deferral
 * becomes "expired" past retry.max_age or "failed" past max_attempts, the
 * reply is classified (category in the event; a hard bounce of an invalid
 * mailbox suppresses the address; a "retry in N" hint stretches the
 * delay).
 */
static void
rcpt_done(struct wthread *w, struct rcpt *r, enum outcome o,
    const struct smtpc_result *res, const char *dest)
{
	struct classify_result	 cls;
	struct rec		*x;
	int64_t			 now = wall_ms();

	if (o == OUTCOME_DEFERRED) {
		if (retry_expired(w->cfg, r->job->camp->start_ms, now))
			o = OUTCOME_EXPIRED;
		else if (r->attempt + 1 >= w->cfg->retry_max_attempts)
			o = OUTCOME_FAILED;
	}
	rec_add(w, r, o, false, res, dest);
	x = &w->recs[w->nrecs - 1];
	if (res->code >= 400 || o == OUTCOME_DEFERRED ||
	    o == OUTCOME_BOUNCED) {
		classify_reply(res->code, res->esc, res->text, &cls);
		x->cat = cls.category;
		if (o == OUTCOME_BOUNCED && (cls.actions & CLASSIFY_A_SUPPRESS))
			x->suppress = true;
	} else {
		cls.retry_after_s = 0;
		x->cat = o == OUTCOME_DELIVERED ? CLASSIFY_DELIVERED :
		    CLASSIFY_UNKNOWN;
	}
	if (o == OUTCOME_DEFERRED)
		x->due_ms = now + retry_delay_ms(w->cfg, r->attempt + 1,
		    (double)random() / ((double)RAND_MAX + 1.0),
		    cls.retry_after_s);
}

static void batch_send(struct wthread *w, struct batch *b);

static void
on_batch(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct batch	*b = priv;
	struct wthread	*w = b->w;
	struct batch	**pp;

	(void)rc;
	for (pp = &w->unconfirmed; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	b->next = NULL;
	if (reply == NULL) {
		/*
		 * Lost with the connection: the script is idempotent, so
		 * send it again once Redis is back (it may or may not have
		 * run).
		 */
		for (pp = &w->resend; *pp != NULL; pp = &(*pp)->next)
			;
		*pp = b;
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		log_error("record batch failed thread=%u reply=\"%s\" (its jobs "
		    "stay pending and will be reclaimed)", w->index, reply->str);
	free(b->cmd);
	free(b);
}

static void
batch_send(struct wthread *w, struct batch *b)
{
	struct batch	**pp;

	for (pp = &w->unconfirmed; *pp != NULL; pp = &(*pp)->next)
		;
	if (rconn_cmd_formatted(&w->ctl, on_batch, b, b->cmd, b->len) == 0) {
		*pp = b;
		return;
	}
	for (pp = &w->resend; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = b;
}

static void
batches_resend(struct wthread *w)
{
	struct batch	*b;

	while (w->ctl.connected && (b = w->resend) != NULL) {
		w->resend = b->next;
		b->next = NULL;
		batch_send(w, b);
		if (w->resend == b)
			break;		/* not connected after all */
	}
}

static void
row_pack(struct buf *b, const struct rcpt *r, size_t ncols)
{
	for (size_t i = 0; i < ncols; i++) {
		if (i > 0)
			buf_putc(b, RM_FS);
		buf_append(b, r->vals[i], r->lens[i]);
	}
}


static void
rargs_add(struct rargs *a, const char *s, size_t n)
{
	if (a->n == a->cap) {
		size_t	ncap = a->cap ? a->cap * 2 : 256;

		a->off = realloc(a->off, ncap * sizeof(*a->off));
		a->len = realloc(a->len, ncap * sizeof(*a->len));
		a->argv = realloc(a->argv, ncap * sizeof(*a->argv));
		if (a->off == NULL || a->len == NULL || a->argv == NULL)
			log_fatalx("out of memory for record arguments");
		a->cap = ncap;
	}
	a->off[a->n] = a->store.len;
	a->len[a->n] = n;
	buf_append(&a->store, s, n);
	a->n++;
}

static void
rargs_str(struct rargs *a, const char *s)
{
	rargs_add(a, s, strlen(s));
}

static void
rargs_fmt(struct rargs *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
rargs_fmt(struct rargs *a, const char *fmt, ...)
{
	char	tmp[64];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	rargs_add(a, tmp, n > 0 ? (size_t)n : 0);
}

/* Build and send one record script for recs [from, to) of one campaign. */
static void
rec_flush_camp(struct wthread *w, struct rargs *a, size_t from, size_t to)
{
	struct wcamp	*c = w->recs[from].r->job->camp;
	struct batch	*b;
	size_t		 nacks = 0, i;
	char		*cmd = NULL;
	long long	 len;

	a->n = 0;
	buf_reset(&a->store);
	rargs_str(a, "EVAL");
	rargs_str(a, RM_LUA_RECORD);
	rargs_str(a, "9");
	rargs_str(a, c->k_meta);
	rargs_str(a, c->k_stats);
	rargs_str(a, c->k_jobs);
	rargs_str(a, c->k_retry);
	rargs_str(a, c->k_done);
	rargs_str(a, RM_KEY_EVENTS);
	rargs_str(a, RM_KEY_ACTIVE);
	rargs_str(a, RM_KEY_SUPPRESS);
	rargs_str(a, RM_KEY_SUPPRESS_LOG);
	rargs_str(a, c->id);
	rargs_fmt(a, "%lld", (long long)wall_ms());
	rargs_str(a, WORKER_EVENTS_MAXLEN);
	rargs_fmt(a, "%zu", to - from);
	/* Acks: jobs whose last outstanding recipient is in this run. */
	for (i = from; i < to; i++) {
		struct job	*j = w->recs[i].r->job;

		if (--j->remaining == 0)
			nacks++;
	}
	rargs_fmt(a, "%zu", nacks);
	for (i = from; i < to; i++) {
		struct rec	*x = &w->recs[i];
		struct rcpt	*r = x->r;
		unsigned	 att = x->requeue ? r->attempt : r->attempt + 1;
		bool		 final = !x->requeue && outcome_is_final(x->o);

		rargs_str(a, x->requeue ? "q" : final ? "f" : "d");
		rargs_str(a, outcome_name(x->o));
		rargs_str(a, outcome_counter(x->o));
		rargs_fmt(a, "%llu", (unsigned long long)r->idx);
		rargs_fmt(a, "%lld", (long long)x->due_ms);
		if (final) {
			rargs_str(a, "");
		} else {
			buf_reset(&w->b_tmp);
			buf_printf(&w->b_tmp, "%llu%c%u%c",
			    (unsigned long long)r->idx, RM_FS, att, RM_FS);
			row_pack(&w->b_tmp, r, c->ncols);
			rargs_add(a, w->b_tmp.data, w->b_tmp.len);
		}
		rargs_add(a, r->vals[c->email_col], r->lens[c->email_col]);
		rargs_fmt(a, "%u", r->attempt + 1);
		rargs_fmt(a, "%d", x->res.code);
		rargs_str(a, x->res.esc);
		rargs_str(a, smtpc_stage_name(x->res.stage));
		rargs_str(a, x->dest ? x->dest : "");
		rargs_str(a, x->res.text);
		rargs_str(a, classify_category_name(x->cat));
		rargs_str(a, x->suppress ? classify_category_name(x->cat) : "");
		rargs_str(a, x->tls);
		rargs_str(a, x->mx);
	}
	for (i = from; i < to; i++) {
		struct job	*j = w->recs[i].r->job;

		if (j->remaining == 0 && !j->acked) {
			rargs_str(a, j->id);
			j->acked = true;
		}
	}
	for (i = 0; i < a->n; i++)
		a->argv[i] = a->store.data + a->off[i];
	len = redisFormatCommandArgv(&cmd, (int)a->n, a->argv, a->len);
	if (len < 0 || (b = calloc(1, sizeof(*b))) == NULL)
		log_fatalx("out of memory formatting a record batch");
	b->cmd = cmd;
	b->len = (size_t)len;
	b->w = w;
	batch_send(w, b);
}

static void wake_at(struct wthread *w, mono_us t);

static void
rec_flush(struct wthread *w)
{
	size_t	i, start;

	batches_resend(w);
	if (w->nrecs == 0)
		return;
	/*
	 * Batch across loop turns: one script per campaign at most every
	 * WORKER_FLUSH_US (or 256 outcomes), so at high rates a script
	 * carries many outcomes; the extra latency is bounded and only
	 * widens the at-least-once window by those few milliseconds.
	 */
	if (w->nrecs < 256 && !w->draining &&
	    mono_now() - w->last_flush < WORKER_FLUSH_US) {
		wake_at(w, w->last_flush + WORKER_FLUSH_US);
		return;
	}
	w->last_flush = mono_now();
	/*
	 * Runs of one campaign, at most 500 records per script so no script
	 * holds Redis for long.
	 */
	for (start = 0, i = 1; i <= w->nrecs; i++) {
		if (i == w->nrecs || i - start >= 500 ||
		    w->recs[i].r->job->camp != w->recs[start].r->job->camp) {
			rec_flush_camp(w, &w->rargs, start, i);
			start = i;
		}
	}
	w->nrecs = 0;
	/* Jobs whose every recipient is now in a batch can go. */
	for (struct job **pp = &w->jobs, *j; (j = *pp) != NULL;) {
		if (j->remaining == 0 && j->nchecks == 0) {
			*pp = j->next;
			free(j);
		} else {
			pp = &j->next;
		}
	}
}

/* ------------------------------------------------------------------ */
/* destinations and SMTP sessions                                      */

/* Lower-cased "list FS address" key of the recent-suppression set. */
static size_t
supp_key(char *out, size_t outlen, const char *list, const char *addr,
    size_t alen)
{
	size_t	n = 0, ll = list ? strlen(list) : 0;

	if (ll + 1 + alen > outlen)
		return 0;
	memcpy(out, list ? list : "", ll);
	n = ll;
	out[n++] = RM_FS;
	for (size_t i = 0; i < alen; i++) {
		char	ch = addr[i];

		out[n++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	return n;
}

/* Suppressed (globally or on the campaign's list) since it was fetched? */
static bool
supp_recent(struct wthread *w, const struct rcpt *r)
{
	const struct wcamp	*c = r->job->camp;
	const char		*a = r->vals[c->email_col];
	size_t			 alen = r->lens[c->email_col], n;
	char			 k[600];

	if (w->recent_supp.n == 0)
		return false;
	if ((n = supp_key(k, sizeof(k), NULL, a, alen)) > 0 &&
	    strset_has(&w->recent_supp, k, n))
		return true;
	return c->suppress_list != NULL &&
	    (n = supp_key(k, sizeof(k), c->suppress_list, a, alen)) > 0 &&
	    strset_has(&w->recent_supp, k, n);
}

static void dest_key(char *out, size_t len, const struct config_pool *pool,
    const char *name);
static struct dest *dest_get(struct wthread *w, const char *key,
    const struct config_pool *pool, const char *site, const char *domain);

static struct dest *
dest_for(struct wthread *w, const struct rcpt *r)
{
	const struct wcamp	*c = r->job->camp;
	const struct config_route *rt;
	const struct dest	*proto;
	const char		*dom;
	struct dest		*d;
	size_t			 domlen;
	char			 key[sizeof(d->name)];

	if ((dom = addr_domain(r->vals[c->email_col], r->lens[c->email_col],
	    &domlen)) == NULL)
		return NULL;
	if ((rt = config_route_find(w->cfg, dom, domlen)) == NULL)
		return NULL;
	proto = &w->dests[rt - w->cfg->routes];
	{
		char	dbuf[256];

		snprintf(dbuf, sizeof(dbuf), "%.*s", (int)domlen, dom);
		dest_key(key, sizeof(key), c->pool, proto->name);
		d = dest_get(w, key, c->pool, proto->name, dbuf);
	}
	if (d != NULL && d->hosts == NULL &&
	    proto->nhosts > 0 && (d->hosts = malloc(sizeof(*d->hosts))) != NULL) {
		*d->hosts = *proto->hosts;	/* this pool's own host state */
		d->nhosts = 1;
		d->is_static = true;
	}
	return d;
}

static bool
camp_sendable(const struct wcamp *c)
{
	return c->st == WC_READY && c->cs == CS_ACTIVE;
}

/* Top up this thread's share of the campaign's rate cap. */
static void
camp_refill(struct wthread *w, struct wcamp *c, mono_us now)
{
	double	share, burst;

	if (c->rate_per_s <= 0)
		return;
	share = c->rate_per_s / (w->fleet_threads ? w->fleet_threads : 1);
	burst = share < 1 ? 1 : share;		/* at most a second's worth */
	if (c->refill_at == 0)
		c->tokens = burst;
	else
		c->tokens += share * (double)(now - c->refill_at) / 1e6;
	if (c->tokens > burst)
		c->tokens = burst;
	c->refill_at = now;
}

static bool
camp_has_token(const struct wcamp *c)
{
	return c->rate_per_s <= 0 || c->tokens >= 1.0;
}

/* Make the loop wake up by t (a rate slot or the end of a hint). */
static void
wake_at(struct wthread *w, mono_us t)
{
	if (t > 0 && t != SHAPE_NEVER && (w->wake == 0 || t < w->wake))
		w->wake = t;
}

static uint64_t dest_hash(const char *s);

/* The worker's controller for name, created from conf on first use. */
static struct sctl *
sctl_get(const char *name, const struct shape_ctl_conf *conf)
{
	uint64_t	 b = dest_hash(name) % WORKER_DEST_BUCKETS;
	struct sctl	*sc;

	pthread_mutex_lock(&sctl_mu);
	for (sc = sctl_tab[b]; sc != NULL; sc = sc->next)
		if (strcmp(sc->name, name) == 0)
			break;
	if (sc == NULL && (sc = calloc(1, sizeof(*sc))) != NULL) {
		snprintf(sc->name, sizeof(sc->name), "%s", name);
		pthread_mutex_init(&sc->mu, NULL);
		if (shape_ctl_init(&sc->ctl, conf, mono_now()) != 0)
			log_warn("dest=%s shaping limits inconsistent: clamped",
			    name);
		sc->next = sctl_tab[b];
		sctl_tab[b] = sc;
	}
	pthread_mutex_unlock(&sctl_mu);
	return sc;
}

static void
sctl_free_all(void)
{
	for (size_t b = 0; b < WORKER_DEST_BUCKETS; b++)
		while (sctl_tab[b] != NULL) {
			struct sctl	*sc = sctl_tab[b];

			sctl_tab[b] = sc->next;
			pthread_mutex_destroy(&sc->mu);
			free(sc);
		}
}

/* d's controller, locked until dctl_unlock(d). */
static struct shape_ctl *
dctl_lock(struct dest *d)
{
	if (d->sc == NULL)
		return &d->ctl;
	pthread_mutex_lock(&d->sc->mu);
	return &d->sc->ctl;
}

static void
dctl_unlock(struct dest *d)
{
	if (d->sc != NULL)
		pthread_mutex_unlock(&d->sc->mu);
}

/* Sessions to d of every thread, for the controller's concurrency. */
static void
dctl_nconn_add(struct dest *d, int k)
{
	if (d->sc == NULL)
		return;
	pthread_mutex_lock(&d->sc->mu);
	d->sc->nconn += (unsigned)k;
	pthread_mutex_unlock(&d->sc->mu);
}

/* Report one signal to the site's controller; log and publish changes. */
static void
dest_feedback(struct wthread *w, struct dest *d, enum shape_signal sig,
    uint32_t hint_s)
{
	struct shape_event	ev;
	mono_us			now = mono_now();
	int			k;

	if (sig == SHAPE_NONE)
		return;
	k = shape_ctl_feedback(dctl_lock(d), now, sig, hint_s, &ev);
	dctl_unlock(d);
	if (k == 1) {
		shape_event_format(&ev, now, d->last_event,
		    sizeof(d->last_event));
		log_info("shape dest=%s thread=%u %s", d->name, w->index,
		    d->last_event);
		d->published = false;
	}
}

/* First host (by preference) that is not backing off, or -1. */
static int
dest_pick_host(const struct dest *d, mono_us now)
{
	for (unsigned i = 0; i < d->nhosts; i++)
		if (d->hosts[i].naddrs > 0 && d->hosts[i].down_until <= now)
			return (int)i;
	return -1;
}

/* When the first host comes back. */
static mono_us
dest_next_up(const struct dest *d)
{
	mono_us	t = 0;

	for (unsigned i = 0; i < d->nhosts; i++)
		if (t == 0 || d->hosts[i].down_until < t)
			t = d->hosts[i].down_until;
	return t;
}

static uint64_t
dest_hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/*
 * The destination for a resolved MX route: its site, created on first
 * use. Addresses are refreshed from newer answers every 5 minutes; host
 * failure state is kept across refreshes (matched by name).
 */
static void
dest_key(char *out, size_t len, const struct config_pool *pool,
    const char *name)
{
	if (pool != NULL)
		snprintf(out, len, "%s|%s", pool->name, name);
	else
		snprintf(out, len, "%s", name);
}

/* The destination named key (created empty on first use). */
static struct dest *
dest_get(struct wthread *w, const char *key, const struct config_pool *pool,
    const char *site, const char *domain)
{
	struct shape_ctl_conf	 conf;
	uint64_t	 b = dest_hash(key) % WORKER_DEST_BUCKETS;
	struct dest	*d;

	for (d = w->dhash[b]; d != NULL; d = d->hnext)
		if (strcmp(d->name, key) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	snprintf(d->name, sizeof(d->name), "%s", key);
	d->pool = pool;
	d->w = w;
	if (!(d->fleet_slots = lease_site_ok(key)))
		log_warn("dest=%s cannot be a Redis lease key: its connection "
		    "limit holds per worker thread only", key);
	config_shaping_for(w->cfg, site, domain, NULL, &d->cs);
	shape_ctl_conf_from(&conf, &d->cs);
	if ((d->sc = sctl_get(key, &conf)) == NULL &&
	    shape_ctl_init(&d->ctl, &conf, mono_now()) != 0)
		log_warn("dest=%s shaping limits inconsistent: clamped", key);
	if (pool != NULL &&
	    (d->src_nconn = calloc(pool->nsrc, sizeof(*d->src_nconn))) == NULL) {
		free(d);
		return NULL;
	}
	d->hnext = w->dhash[b];
	w->dhash[b] = d;
	d->next = w->dall;
	w->dall = d;
	return d;
}

static struct dest *
dest_for_route(struct wthread *w, const struct dns_route *rt,
    const struct config_pool *pool, const char *domain)
{
	struct dest	*d;
	mono_us		 now = mono_now();
	char		 key[sizeof(d->name)];

	dest_key(key, sizeof(key), pool, rt->site);
	if ((d = dest_get(w, key, pool, rt->site, domain)) == NULL)
		return NULL;
	if (d->nhosts > 0 && now - d->refreshed_at < 300000000)
		return d;
	if (d->nhosts != rt->nhosts) {
		struct dhost	*nh = calloc(rt->nhosts ? rt->nhosts : 1,
		    sizeof(*nh));

		if (nh == NULL)
			return d;
		for (unsigned i = 0; i < rt->nhosts; i++)
			for (unsigned k = 0; k < d->nhosts; k++)
				if (strcmp(d->hosts[k].name,
				    rt->hosts[i].name) == 0)
					nh[i] = d->hosts[k];
		free(d->hosts);
		d->hosts = nh;
		d->nhosts = rt->nhosts;
	}
	for (unsigned i = 0; i < rt->nhosts; i++) {
		struct dhost	*h = &d->hosts[i];

		if (strcmp(h->name, rt->hosts[i].name) != 0) {
			/* Same set, other order: keep each host's state. */
			for (unsigned k = i + 1; k < d->nhosts; k++)
				if (strcmp(d->hosts[k].name,
				    rt->hosts[i].name) == 0) {
					struct dhost	tmp = *h;

					*h = d->hosts[k];
					d->hosts[k] = tmp;
					break;
				}
		}
		snprintf(h->name, sizeof(h->name), "%s", rt->hosts[i].name);
		h->naddrs = rt->hosts[i].naddrs;
		memcpy(h->addrs, rt->hosts[i].addrs,
		    sizeof(h->addrs[0]) * h->naddrs);
	}
	d->refreshed_at = now;
	return d;
}

static void
dest_push(struct dest *d, struct rcpt *r)
{
	struct wcamp	*c = r->job->camp;
	struct dq	*q;

	for (q = d->dqs; q != NULL; q = q->next)
		if (q->camp == c)
			break;
	if (q == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL)
			log_fatalx("out of memory for a destination queue");
		q->camp = c;
		q->next = d->dqs;
		d->dqs = q;
	}
	r->next = NULL;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->n++;
	d->nq++;
}

static struct rcpt *
dq_pop(struct dest *d, struct dq *q)
{
	struct rcpt	*r = q->head;

	if (r == NULL)
		return NULL;
	q->head = r->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->n--;
	d->nq--;
	return r;
}

/* Any queued recipient (to defer or requeue them all). */
static struct rcpt *
dest_pop(struct dest *d)
{
	for (struct dq *q = d->dqs; q != NULL; q = q->next)
		if (q->n > 0)
			return dq_pop(d, q);
	return NULL;
}

/*
 * The next recipient to send: from the highest-priority sendable campaign
 * with rate budget left; equal priorities take turns (the served queue
 * moves to the back). NULL when nothing may go now.
 */
static struct rcpt *
dest_pop_ready(struct dest *d)
{
	struct dq	*q, *best = NULL, **pp, **bestpp = NULL;

	for (pp = &d->dqs; (q = *pp) != NULL; pp = &q->next) {
		if (q->n == 0 || !camp_sendable(q->camp) ||
		    !camp_has_token(q->camp))
			continue;
		if (best == NULL || q->camp->priority > best->camp->priority) {
			best = q;
			bestpp = pp;
		}
	}
	if (best == NULL)
		return NULL;
	if (best->next != NULL) {
		/* Round robin among equals: move the served queue last. */
		*bestpp = best->next;
		for (q = best->next; q->next != NULL; q = q->next)
			;
		q->next = best;
		best->next = NULL;
	}
	if (best->camp->rate_per_s > 0)
		best->camp->tokens -= 1.0;
	return dq_pop(d, best);
}

/* Take all recipients of one campaign off a destination (pause, cancel). */
static struct rcpt *
dest_take_camp(struct dest *d, const struct wcamp *c)
{
	struct dq	*q, **pp;
	struct rcpt	*list = NULL;

	for (pp = &d->dqs; (q = *pp) != NULL; pp = &q->next) {
		if (q->camp != c)
			continue;
		list = q->head;
		d->nq -= q->n;
		*pp = q->next;
		free(q);
		break;
	}
	return list;
}

/* Free empty queues of campaigns this thread forgets. */
static void
dest_drop_camp(struct dest *d, const struct wcamp *c)
{
	struct rcpt	*r = dest_take_camp(d, c);

	ENGINE_ASSERT(r == NULL);
}

static void result_set(struct smtpc_result *res, enum smtpc_stage st,
    int code, const char *esc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
result_set(struct smtpc_result *res, enum smtpc_stage st, int code,
    const char *esc, const char *fmt, ...)
{
	va_list	ap;

	memset(res, 0, sizeof(*res));
	res->stage = st;
	res->code = code;
	snprintf(res->esc, sizeof(res->esc), "%s", esc);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
}

/* Defer every recipient queued on d: the destination is not reachable. */
static void
dest_defer_all(struct wthread *w, struct dest *d, const char *why)
{
	struct smtpc_result	 res;
	struct rcpt		*r;
	unsigned		 n = 0;

	result_set(&res, SMTPC_ST_CONNECT, 0, "4.4.1", "%s", why);
	while ((r = dest_pop(d)) != NULL) {
		rcpt_done(w, r, OUTCOME_DEFERRED, &res, d->name);
		n++;
	}
	if (n > 0)
		log_warn("dest=%s deferred=%u reason=\"%s\"", d->name, n, why);
}

/*
 * Every host of d is backing off after failures already recorded as
 * deferrals: send the queue back to Redis due when the first host comes
 * back, without spending an attempt on a connection nobody will make.
 */
static void
dest_hold_all(struct wthread *w, struct dest *d, mono_us now)
{
	struct smtpc_result	 res;
	struct rcpt		*r;
	int64_t			 due = wall_ms() + (dest_next_up(d) - now) / 1000;
	unsigned		 n = 0;

	result_set(&res, SMTPC_ST_CONNECT, 0, "", "%s", d->last_why);
	while ((r = dest_pop(d)) != NULL) {
		rec_add(w, r, OUTCOME_DEFERRED, true, &res, d->name);
		w->recs[w->nrecs - 1].due_ms = due;
		n++;
	}
	if (n > 0)
		log_info("dest=%s held=%u until_ms=%lld reason=\"every host is "
		    "backing off\"", d->name, n, (long long)due);
}

static uint32_t
stage_timeout_ms(const struct config_timeouts *t, enum smtpc_stage st)
{
	switch (st) {
	case SMTPC_ST_CONNECT:
		return t->connect;
	case SMTPC_ST_BANNER:
		return t->banner;
	case SMTPC_ST_EHLO:
		return t->ehlo;
	case SMTPC_ST_MAIL:
		return t->mail_from;
	case SMTPC_ST_RCPT:
		return t->rcpt_to;
	case SMTPC_ST_DATA:
		return t->data;
	case SMTPC_ST_DOT:
		return t->data_dot;
	case SMTPC_ST_QUIT:
		return t->ehlo;
	}
	return t->ehlo;
}

static void sconn_close(struct sconn *c, const char *why);
static void sconn_flush(struct sconn *c);
static void sconn_events(struct sconn *c, unsigned ev);

/*
 * Free a closed session once the kernel holds no op of it. Only called
 * from the scheduling pass at the loop boundary, never from a completion
 * callback: callers up the stack may still touch the session (Redis's
 * freeClientAsync, for the same reason). Returns true when freed.
 */
static bool
sconn_reap(struct sconn *c, struct sconn **pp)
{
	struct wthread	*w = c->w;

	if (c->st != SC_CLOSING || c->op_conn.busy || c->op_recv.busy ||
	    c->op_send.busy || c->op_cancel.busy)
		return false;
	if (c->fd >= 0)
		close(c->fd);
	*pp = c->next;
	w->nconns--;
	if (c->tls_on) {
		SSL_SESSION	*sess = c->tls_up ? tls_conn_session_take(&c->t) :
		    NULL;

		if (sess != NULL)
			tls_cache_put(c->d->hosts[c->hi].name, sess);
		tls_conn_fini(&c->t);
	}
	buf_free(&c->plain);
	smtpc_fini(&c->smtp);
	buf_free(&c->tx);
	buf_free(&c->wire);
	free(c);
	return true;
}

static void
sconn_arm_recv(struct sconn *c)
{
	struct io_uring_sqe	*sqe;

	if (c->op_recv.busy || c->st != SC_OPEN)
		return;
	if ((sqe = loop_sqe(&c->w->loop, &c->op_recv)) == NULL) {
		sconn_events(c, smtpc_conn_lost(&c->smtp, "io_uring full"));
		return;
	}
	io_uring_prep_recv(sqe, c->fd, c->rbuf, sizeof(c->rbuf), 0);
}

static void
sconn_set_deadline(struct sconn *c)
{
	uint32_t	ms;

	if (c->idle)
		ms = c->d->cs.timeouts.idle;
	else if (c->st == SC_CONNECTING)
		ms = c->d->cs.timeouts.connect;
	else if (buf_unread(&c->tx) > 0 && smtpc_stage(&c->smtp) == SMTPC_ST_DOT)
		ms = c->d->cs.timeouts.data_block;
	else
		ms = stage_timeout_ms(&c->d->cs.timeouts,
		    smtpc_stage(&c->smtp));
	c->stage = smtpc_stage(&c->smtp);
	c->deadline = mono_now() + (mono_us)ms * 1000;
}

static void
on_lease(struct rconn *rc, void *r, void *priv)
{
	struct dest		*d = priv;
	struct lease_tokens	 lt;

	(void)rc;
	d->lease_inflight = false;
	d->park_until = 0;		/* let the sessions look again */
	if (r == NULL || lease_tokens_parse(r, &lt) != 0) {
		/* Redis unreachable or an error: try again in a second. */
		d->fleet_retry_ms = wall_ms() + 1000;
		return;
	}
	if (lt.n > 0) {
		d->fleet_tokens = lt.n;
		d->fleet_until_ms = lt.until_ms;
	} else {
		d->fleet_retry_ms = lt.until_ms;
	}
}

/*
 * A token of the site's fleet-wide message rate (shaping
 * max_message_rate), leased from Redis in batches so no worker asks per
 * message. Returns 0 with a token taken, or the wall time to look again.
 */
static int64_t
fleet_take(struct wthread *w, struct dest *d)
{
	const struct config_rate *cr = &d->cs.max_message_rate;
	int64_t			 now = wall_ms();
	struct lease_cmd	 cmd;
	uint64_t		 mpd, per_s;
	uint32_t		 want;
	const char		*site;

	if (cr->n == 0 || cr->per_s == 0)
		return 0;
	if (d->fleet_tokens > 0 && now < d->fleet_until_ms) {
		d->fleet_tokens--;
		return 0;
	}
	d->fleet_tokens = 0;
	if (d->lease_inflight)
		return now + 1000;
	if (now < d->fleet_retry_ms)
		return d->fleet_retry_ms;
	mpd = (uint64_t)cr->n * SHAPE_MPD_PER_S / cr->per_s;
	per_s = cr->n / cr->per_s;
	want = per_s < 1 ? 1 : per_s > 50 ? 50 : (uint32_t)per_s;
	site = strchr(d->name, '|') ? strchr(d->name, '|') + 1 : d->name;
	if (lease_tokens_cmd(&cmd, site, want, 0, mpd,
	    per_s < 1 ? 1 : (uint32_t)(per_s > 1000 ? 1000 : per_s), 1000) != 0)
		return 0;	/* a site name Redis cannot key: local limits only */
	if (rconn_cmdargv(&w->ctl, on_lease, d, cmd.argc, cmd.argv,
	    cmd.argvlen) != 0)
		return now + 1000;
	d->lease_inflight = true;
	return now + 1000;
}

/* The site's fleet-wide cap: connection_limit per pool source. */
static uint32_t
dest_conn_cap(const struct dest *d)
{
	uint64_t	cap = (uint64_t)d->cs.connection_limit *
	    (d->pool ? d->pool->nsrc : 1);

	return cap > 100000 ? 100000 : cap < 1 ? 1 : (uint32_t)cap;
}

static void
on_slots(struct rconn *rc, void *r, void *priv)
{
	struct dest		*d = priv;
	struct lease_slots	 ls;
	mono_us			 now = mono_now();

	(void)rc;
	d->slots_inflight = false;
	if (r == NULL || lease_slots_parse(r, &ls) != 0) {
		if (r != NULL && ((redisReply *)r)->type == REDIS_REPLY_ERROR)
			log_warn("dest=%s connection slot lease: %s", d->name,
			    ((redisReply *)r)->str);
		/*
		 * Unknown outcome (an acquire may have been granted): learn
		 * what is held with a renew once Redis answers again.
		 */
		d->slots_retry = now + 1000000;
		d->slots_resync = true;
		d->slots_renew = now + 1000000;
		return;
	}
	if (d->slots_op == LEASE_RENEW && ls.held < d->slots_held)
		log_warn("dest=%s connection slot lease lost (held %u, now %u): "
		    "sessions above it end after their message", d->name,
		    d->slots_held, ls.held);
	d->slots_held = ls.held;
	d->slots_fair = ls.fair;
	if (d->slots_op == LEASE_ACQUIRE) {
		d->slots_waiting = ls.changed < d->slots_asked;
		if (ls.changed == 0) {
			d->slots_refused++;
			/* Jittered, so waiting workers do not ask in step. */
			d->slots_retry = now + WORKER_SLOT_POLL_US +
			    (mono_us)(random() % WORKER_SLOT_POLL_US);
			wake_at(d->w, d->slots_retry);
		} else {
			d->slots_renew = now + WORKER_SLOT_RENEW_US;
			wake_at(d->w, now);
		}
	} else if (d->slots_op == LEASE_RELEASE) {
		d->slots_waiting = false;
	}
}

static void
dest_slots_send(struct wthread *w, struct dest *d, enum lease_slot_op op,
    uint32_t n)
{
	struct lease_cmd	 cmd;
	uint32_t		 cap = dest_conn_cap(d);

	n = n < 1 ? 1 : n > 100000 ? 100000 : n;
	if (lease_slots_cmd(&cmd, op, d->name, w->consumer, n, cap,
	    WORKER_SLOT_TTL_MS, 0) != 0) {
		log_warn("dest=%s holder=%s: no connection slot lease possible; "
		    "its connection limit holds per worker thread only",
		    d->name, w->consumer);
		d->fleet_slots = false;
		return;
	}
	if (rconn_cmdargv(&w->ctl, on_slots, d, cmd.argc, cmd.argv,
	    cmd.argvlen) != 0) {
		d->slots_retry = mono_now() + 1000000;
		return;
	}
	d->slots_inflight = true;
	d->slots_op = op;
	if (op == LEASE_ACQUIRE)
		d->slots_asked = n;
	/* Slots on their way back are not ours to open sessions on. */
	if (op == LEASE_RELEASE)
		d->slots_held -= n < d->slots_held ? n : d->slots_held;
}

/*
 * May d open one more session under the fleet-wide cap? When every held
 * slot is in use, asks Redis for as many more as the queue wants (within
 * the fair share last seen) and says no until the reply.
 */
static bool
dest_slot_ok(struct wthread *w, struct dest *d, mono_us now)
{
	uint32_t	want, cap = dest_conn_cap(d);

	if (!d->fleet_slots || d->nconn < d->slots_held)
		return true;
	if (d->slots_inflight || now < d->slots_retry || !w->ctl.connected ||
	    w->draining || d->nconn >= cap)
		return false;
	want = d->nq > d->nopening ? d->nq - d->nopening : 1;
	if (want > cap - d->nconn)
		want = cap - d->nconn;
	if (d->slots_fair > d->slots_held && want > d->slots_fair -
	    d->slots_held)
		want = d->slots_fair - d->slots_held;
	dest_slots_send(w, d, LEASE_ACQUIRE, want);
	return false;
}

/* More sessions than d may keep: lost lease, or above a fair share. */
static bool
dest_slots_over(const struct dest *d)
{
	unsigned	n = d->nconn - d->nslot_quit;

	if (!d->fleet_slots)
		return false;
	return n > d->slots_held || (d->slots_fair > 0 &&
	    d->slots_held > d->slots_fair && n > d->slots_fair);
}

/*
 * Per loop turn: renew held slots, give back those no session needs
 * (all of them once the queue is empty; down to the fair share while
 * others wait).
 */
static void
dest_slots_trim(struct wthread *w, struct dest *d, mono_us now)
{
	uint32_t	keep;
	bool		demand;

	if (!d->fleet_slots || d->slots_inflight || !w->ctl.connected)
		return;
	if ((d->slots_held > 0 || d->slots_resync) && now >= d->slots_renew) {
		d->slots_resync = false;
		d->slots_renew = now + WORKER_SLOT_RENEW_US;
		dest_slots_send(w, d, LEASE_RENEW, 1);
		return;
	}
	if (d->slots_held <= d->nconn)
		return;
	demand = !w->draining && d->nq > d->nopening &&
	    dest_pick_host(d, now) >= 0;
	keep = d->nconn;
	if (demand) {
		keep = d->slots_held;
		if (d->slots_fair > 0 && keep > d->slots_fair)
			keep = d->slots_fair > d->nconn ? d->slots_fair :
			    d->nconn;
	}
	if (d->slots_held > keep)
		dest_slots_send(w, d, LEASE_RELEASE, d->slots_held - keep);
}

/* ------------------------------------------------------------------ */
/* IP warm-up                                                          */

static uint32_t
warm_today(void)
{
	time_t		t = time(NULL);
	struct tm	tm;

	gmtime_r(&t, &tm);
	return (uint32_t)((tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 +
	    tm.tm_mday);
}

/* Microseconds until the next 00:00 UTC, plus a second. */
static mono_us
warm_until_tomorrow(void)
{
	time_t	t = time(NULL);

	return (mono_us)(86400 - t % 86400 + 1) * 1000000;
}

/* Pool sources and warmup.sources are both canonical text (config). */
static struct wsrc *
warm_find(struct wthread *w, const char *addr)
{
	for (size_t i = 0; i < w->nwarm; i++)
		if (strcmp(w->warm[i].ip, addr) == 0)
			return &w->warm[i];
	return NULL;
}

/* Out of budget until tomorrow: not to be picked for new sessions. */
static bool
warm_spent(const struct wsrc *ws, mono_us now)
{
	return ws != NULL && !ws->warm && ws->tokens == 0 && !ws->inflight &&
	    now < ws->retry;
}

static void
on_warm(struct rconn *rc, void *r, void *priv)
{
	struct wsrc		*ws = priv;
	struct wthread		*w = rc->arg;
	struct lease_warmup	 lw;
	mono_us			 now = mono_now();

	ws->inflight = false;
	if (r == NULL || lease_warmup_parse(r, &lw) != 0) {
		if (r != NULL && ((redisReply *)r)->type == REDIS_REPLY_ERROR)
			log_warn("source=%s warm-up: %s", ws->ip,
			    ((redisReply *)r)->str);
		ws->retry = now + 1000000;
		return;
	}
	ws->day = lw.day;
	ws->cap = lw.cap;
	if (lw.cap < 0) {
		if (!ws->warm)
			log_info("source=%s warm-up done after %u days: no "
			    "daily limit", ws->ip, lw.day);
		ws->warm = true;
	} else if (lw.n == 0) {
		ws->retry = now + warm_until_tomorrow();
		if (!ws->told)
			log_info("source=%s warm-up day=%u volume=%lld used: "
			    "its pools' other sources carry on until 00:00 UTC",
			    ws->ip, lw.day + 1, (long long)lw.cap);
		ws->told = true;
	} else {
		ws->tokens += lw.n;
		ws->told = false;
	}
	wake_at(w, now);
}

/*
 * A message of today's budget for a warming source: 0 with one taken,
 * -EAGAIN while asking Redis, -ENOSPC when today's budget is used up.
 */
static int
warm_take(struct wthread *w, struct wsrc *ws, mono_us now)
{
	const struct config	*cfg = w->cfg;
	struct lease_cmd	 cmd;

	if (ws->warm)
		return 0;
	if (ws->tokens > 0) {
		ws->tokens--;
		return 0;
	}
	if (ws->inflight)
		return -EAGAIN;
	if (now < ws->retry)
		return -ENOSPC;
	if (lease_warmup_cmd(&cmd, ws->ip, warm_today(), 10,
	    cfg->warmup_max_deferral_pct, cfg->warmup_max_bounce_pct,
	    cfg->warmup_schedule, cfg->nwarmup_schedule) != 0 ||
	    rconn_cmdargv(&w->ctl, on_warm, ws, cmd.argc, cmd.argv,
	    cmd.argvlen) != 0) {
		ws->retry = now + 1000000;
		return -EAGAIN;
	}
	ws->inflight = true;
	return -EAGAIN;
}

/* Once a second: today's outcomes of warming sources, for the judging. */
static void
warm_report(struct wthread *w)
{
	struct lease_cmd	cmd;
	uint32_t		today = warm_today();

	for (size_t i = 0; i < w->nwarm; i++) {
		struct wsrc	*ws = &w->warm[i];

		if (ws->nsent + ws->ndef + ws->nbnc == 0)
			continue;
		if (lease_warmup_report_cmd(&cmd, ws->ip, today, ws->nsent,
		    ws->ndef, ws->nbnc) == 0 && rconn_cmdargv(&w->ctl,
		    on_ignore, NULL, cmd.argc, cmd.argv, cmd.argvlen) == 0)
			ws->nsent = ws->ndef = ws->nbnc = 0;
	}
}

/* Every source of d's pool has used today's warm-up budget. */
static bool
dest_warm_blocked(struct wthread *w, const struct dest *d, mono_us now)
{
	if (d->pool == NULL || w->nwarm == 0)
		return false;
	for (size_t i = 0; i < d->pool->nsrc; i++)
		if (!warm_spent(warm_find(w, d->pool->src[i].addr), now))
			return false;
	return true;
}

/*
 * RFC 8058 one-click unsubscribe: an https URL and (optionally) a mailto,
 * both carrying a signed token with campaign and address, so the
 * unsubscribe server needs no lookup.
 */
static void
unsub_links(struct wthread *w, const struct wcamp *cp, const char *to,
    int64_t now_s, struct msg_input *in)
{
	char	tok[UNSUB_TOKEN_BUFSZ];

	if (w->unsub == NULL ||
	    unsub_token_make(w->unsub, cp->id, to, now_s, tok) != 0)
		return;
	if (w->cfg->unsub_url != NULL) {
		snprintf(w->unsub_url, sizeof(w->unsub_url), "%s%s",
		    w->cfg->unsub_url, tok);
		in->unsub_url = w->unsub_url;
	}
	if (w->cfg->unsub_mailto_domain != NULL) {
		snprintf(w->unsub_mailto, sizeof(w->unsub_mailto),
		    "mailto:unsubscribe@%s?subject=unsubscribe-%s",
		    w->cfg->unsub_mailto_domain, tok);
		in->unsub_mailto = w->unsub_mailto;
	}
}

/*
 * DKIM-sign the built message (w->b_msg) with the keys of the From
 * domain (the first, or all with dkim_dual) and put the canonical wire
 * form (signatures first) into wire.
 */
static int
msg_sign_wire(struct wthread *w, const struct wcamp *cp, struct buf *wire)
{
	const char	*fd = strrchr(cp->from_addr, '@');
	int64_t		 now_s = wall_ms() / 1000;
	bool		 signed_one = false;
	int		 e;

	if (w->ndkim == 0 || fd == NULL)
		return smtp_crlf(wire, w->b_msg.data, w->b_msg.len);
	fd++;
	buf_reset(&w->b_tmp);
	for (size_t i = 0; i < w->ndkim; i++) {
		if (strcasecmp(dkim_key_domain(w->dkim[i]), fd) != 0)
			continue;
		if (signed_one && !w->cfg->dkim_dual)
			break;
		if ((e = dkim_sign(w->dkim[i], w->b_msg.data, w->b_msg.len,
		    now_s, &w->b_tmp)) != 0)
			return e;
		signed_one = true;
	}
	if ((e = buf_append(&w->b_tmp, w->b_msg.data, w->b_msg.len)) != 0)
		return e;
	return smtp_crlf(wire, w->b_tmp.data, w->b_tmp.len);
}

/*
 * The envelope sender: a VERP address b-<token>@bounce_domain that maps a
 * bounce back to (campaign, recipient) without a lookup, or the From
 * address when VERP is off.
 */
static const char *
envelope_from(struct wthread *w, const struct wcamp *cp, const struct rcpt *r)
{
	char	local[VERP_LOCAL_BUFSZ];

	if (w->verp == NULL || r->idx > UINT32_MAX ||
	    verp_encode(w->verp, cp->id, (uint32_t)r->idx, local) != 0)
		return cp->from_addr;
	snprintf(w->verp_local, sizeof(w->verp_local), "%s@%s", local,
	    w->cfg->verp_bounce_domain);
	return w->verp_local;
}

/* Take the next recipient of the destination, or go idle / quit. */
static void
sconn_dispatch(struct sconn *c)
{
	struct wthread		*w = c->w;
	struct rcpt		*r;
	struct wcamp		*cp;
	struct smtpc_result	 res;
	struct tpl_row		 row;
	struct msg_input	 in;
	struct msg_encoded	 e_text, e_html;
	char			 local[160];
	int			 e;

	while (c->cur == NULL && c->smtp.state == SMTPC_READY) {
		if (c->ndeliv >= c->d->cs.max_deliveries_per_connection ||
		    (w->draining && c->d->nq == 0)) {
			c->idle = false;
			sconn_events(c, smtpc_quit(&c->smtp));
			return;
		}
		if (c->d->nq > 0 && c->warm != NULL) {
			/* The source's warm-up budget for today. */
			int	k = warm_take(w, c->warm, mono_now());

			if (k == -ENOSPC) {
				/* Used up: end; other sources take over. */
				c->idle = false;
				sconn_events(c, smtpc_quit(&c->smtp));
				return;
			}
			if (k != 0) {
				if (!c->idle) {
					c->idle = true;
					sconn_set_deadline(c);
				}
				return;
			}
			/* Given back below if the site's pace parks it. */
		}
		if (c->d->nq > 0) {
			/* The site's pace: a token per message, or park. */
			mono_us	now = mono_now(), t;

			int64_t	ft;

			t = now < c->d->park_until ? c->d->park_until : 0;
			if (t == 0 && (ft = fleet_take(w, c->d)) != 0)
				t = now + (ft - wall_ms()) * 1000;
			else if (t == 0) {
				t = shape_ctl_take(dctl_lock(c->d), now, 1);
				dctl_unlock(c->d);
				if (t != 0 && c->d->cs.max_message_rate.n > 0)
					c->d->fleet_tokens++;	/* give back */
			}
			if (t != 0) {
				if (c->warm != NULL && !c->warm->warm)
					c->warm->tokens++;
				c->d->park_until = t;
				wake_at(w, t);
				if (!c->idle) {
					c->idle = true;
					sconn_set_deadline(c);
				}
				return;
			}
		}
		if ((r = dest_pop_ready(c->d)) == NULL) {
			if (!c->idle) {
				c->idle = true;
				sconn_set_deadline(c);
			}
			return;
		}
		c->idle = false;
		cp = r->job->camp;
		if (supp_recent(w, r)) {
			/* Suppressed after it was fetched: never sent. */
			result_set(&res, SMTPC_ST_CONNECT, 0, "5.7.1", "%s",
			    "address suppressed after the job was fetched");
			rcpt_done(w, r, OUTCOME_SUPPRESSED, &res, NULL);
			continue;
		}
		row.n = cp->ncols;
		row.values = r->vals;
		row.lens = r->lens;
		buf_reset(&w->b_subj);
		buf_reset(&w->b_text);
		buf_reset(&w->b_html);
		buf_reset(&w->b_msg);
		buf_reset(&c->wire);
		snprintf(local, sizeof(local), "%s.%llu.%u.%08lx", cp->id,
		    (unsigned long long)r->idx, r->attempt,
		    (unsigned long)random());
		memset(&in, 0, sizeof(in));
		in.from = cp->from;
		in.to = r->vals[cp->email_col];
		in.reply_to = cp->reply_to;
		in.headers = cp->hdrs;
		in.nheaders = cp->nhdrs;
		in.msgid_domain = cp->msgid_domain;
		in.msgid_local = local;
		in.date_ms = wall_ms();
		in.feedback_id = cp->feedback_id;
		in.attachments = cp->att;
		in.nattachments = cp->natt;
		unsub_links(w, cp, in.to, in.date_ms / 1000, &in);
		e = tpl_render(cp->t_subject, &row, &w->b_subj);
		/*
		 * Bodies come out already in their transfer encoding: the
		 * template's static text was encoded at compile time, so a
		 * message is mostly copies (tpl_render_mime). e_text/e_html
		 * point into b_text/b_html until msg_build has run.
		 */
		if (e == 0 && cp->t_text) {
			e = tpl_render_mime(cp->t_text, &row, NULL, 0, &w->tsc,
			    &w->b_text, &e_text);
			in.text_enc = &e_text;
		}
		if (e == 0 && cp->t_html) {
			e = tpl_render_mime(cp->t_html, &row, NULL, 0, &w->tsc,
			    &w->b_html, &e_html);
			in.html_enc = &e_html;
		}
		in.subject = w->b_subj.data ? w->b_subj.data : "";
		if (e == 0)
			e = msg_build(&w->b_msg, &in);
		if (e == 0)
			e = msg_sign_wire(w, cp, &c->wire);
		if (e != 0) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "5.3.0",
			    "message could not be built: %s", strerror(-e));
			rcpt_done(w, r, OUTCOME_FAILED, &res, c->d->name);
			continue;
		}
		/* Canonical form: smtpc sends it with BDAT when the peer
		 * offers CHUNKING (and smtp.chunking is on), otherwise with
		 * DATA, dot-stuffing it on the way. */
		e = smtpc_send_msg_raw(&c->smtp, envelope_from(w, cp, r), in.to,
		    c->wire.data, c->wire.len);
		if (e == -EMSGSIZE) {
			result_set(&res, SMTPC_ST_MAIL, 552, "5.3.4",
			    "%s", "message larger than the peer's SIZE limit");
			rcpt_done(w, r, OUTCOME_BOUNCED, &res, c->d->name);
			continue;
		}
		if (e != 0) {
			result_set(&res, SMTPC_ST_MAIL, 553, "5.6.7",
			    "cannot send: %s", e == -EPROTONOSUPPORT ?
			    "address needs SMTPUTF8, which the peer lacks" :
			    strerror(-e));
			rcpt_done(w, r, OUTCOME_BOUNCED, &res, c->d->name);
			continue;
		}
		c->cur = r;
		c->ndeliv++;
		sconn_set_deadline(c);
	}
}

static void
sconn_events(struct sconn *c, unsigned ev)
{
	struct wthread	*w = c->w;
	struct dest	*d = c->d;

	if (ev & SMTPC_EV_RESULT) {
		if (c->cur != NULL) {
			const struct smtpc_result *sr = &c->smtp.result;
			struct classify_result	 cr;
			uint32_t		 hint = 0;
			enum shape_signal	 sig;

			if (sr->code >= 200 && sr->code < 300)
				cr.actions = 0, cr.retry_after_s = 0,
				cr.category = CLASSIFY_DELIVERED, cr.rule_line = 0;
			else
				classify_reply(sr->code, sr->esc, sr->text, &cr);
			sig = shape_signal_of(sr->code, sr->esc, sr->text, &cr,
			    &d->cs, &hint);
			dest_feedback(w, d, sig, 0);
			if (hint > 0)
				dest_feedback(w, d, SHAPE_HINT, hint);
			if (c->warm != NULL) {
				enum outcome	o = outcome_of(&c->smtp.result);

				c->warm->nsent += o == OUTCOME_DELIVERED;
				c->warm->ndef += o == OUTCOME_DEFERRED;
				c->warm->nbnc += o == OUTCOME_BOUNCED;
			}
			rcpt_done(w, c->cur, outcome_of(&c->smtp.result),
			    &c->smtp.result, d->name);
			memcpy(w->recs[w->nrecs - 1].tls, c->tlsinfo,
			    sizeof(c->tlsinfo));
			snprintf(w->recs[w->nrecs - 1].mx,
			    sizeof(w->recs[0].mx), "%s", d->hosts[c->hi].name);
			c->cur = NULL;
		} else if (!c->ready_once) {
			/* Session failed before any transaction. */
			snprintf(c->why, sizeof(c->why), "%s%s%d %s",
			    smtpc_stage_name(c->smtp.result.stage), ": ",
			    c->smtp.result.code, c->smtp.result.text);
		}
	}
	if ((ev & SMTPC_EV_READY) && c->st == SC_OPEN) {
		if (!c->ready_once) {
			c->ready_once = true;
			dest_feedback(w, d, SHAPE_CONN_OK, 0);
			d->nfail = 0;
			d->hosts[c->hi].nfail = 0;
			d->hosts[c->hi].down_until = 0;
			if (c->counted_open) {
				c->counted_open = false;
				d->nopening--;
			}
		}
		sconn_dispatch(c);
	}
	if (ev & SMTPC_EV_CLOSE) {
		sconn_close(c, NULL);
		return;
	}
	sconn_flush(c);
	/*
	 * The stage deadline restarts only when the session moves on (a
	 * complete reply, a new stage), never on a partial read: a peer
	 * trickling one byte a second must not hold a session forever.
	 */
	if (c->st == SC_OPEN && (ev != 0 || smtpc_stage(&c->smtp) != c->stage))
		sconn_set_deadline(c);
}

static void
sconn_on_send(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct sconn	*c = op->arg;

	(void)l;
	(void)flags;
	if (c->st == SC_CLOSING)
		return;		/* reaped at the loop boundary */
	if (res < 0) {
		sconn_events(c, smtpc_conn_lost(&c->smtp, strerror(-res)));
		return;
	}
	buf_consume(&c->tx, (size_t)res);	/* short sends resume below */
	sconn_flush(c);
	sconn_set_deadline(c);
}

static void
sconn_flush(struct sconn *c)
{
	struct io_uring_sqe	*sqe;

	if (c->st != SC_OPEN || c->op_send.busy)
		return;
	if (buf_unread(&c->tx) == 0) {
		struct buf	tmp, *src = &c->smtp.out;

		if (c->tls_on) {
			/* SMTP bytes are encrypted into the TLS output. */
			if (c->tls_up && buf_unread(&c->smtp.out) > 0) {
				if (tls_conn_write(&c->t, buf_peek(&c->smtp.out),
				    buf_unread(&c->smtp.out)) != 0) {
					sconn_events(c, smtpc_conn_lost(&c->smtp,
					    c->t.reason));
					return;
				}
				buf_reset(&c->smtp.out);
			}
			src = &c->t.net_out;
		}
		if (buf_unread(src) == 0)
			return;
		/*
		 * Swap instead of copying: the kernel reads tx while smtpc
		 * (or TLS) may append to the source (a realloc would move
		 * memory under it).
		 */
		buf_reset(&c->tx);
		tmp = c->tx;
		c->tx = *src;
		*src = tmp;
	}
	if ((sqe = loop_sqe(&c->w->loop, &c->op_send)) == NULL) {
		sconn_events(c, smtpc_conn_lost(&c->smtp, "io_uring full"));
		return;
	}
	io_uring_prep_send(sqe, c->fd, buf_peek(&c->tx), buf_unread(&c->tx),
	    MSG_NOSIGNAL);
}

/* RFC 3207: after the 220 to STARTTLS, start the handshake. */
static unsigned
sconn_starttls(struct sconn *c)
{
	struct wthread	*w = c->w;
	struct dhost	*h = &c->d->hosts[c->hi];
	bool		 verify = c->d->cs.tls == CONFIG_TLS_VERIFY;
	SSL_SESSION	*sess;
	int		 rc;

	if (w->ssl_ctx == NULL)
		return smtpc_tls_failed(&c->smtp, "no TLS context");
	sess = tls_cache_get(h->name);
	rc = tls_conn_start(&c->t, w->ssl_ctx, h->name, verify, sess);
	if (sess != NULL)
		SSL_SESSION_free(sess);	/* tls_conn_start took its own */
	if (rc != 0)
		return smtpc_tls_failed(&c->smtp, c->t.reason);
	c->tls_on = true;
	return 0;
}

static void
sconn_plain_input(struct sconn *c, size_t n)
{
	unsigned	ev = smtpc_recv(&c->smtp, c->rbuf, n);

	if (ev & SMTPC_EV_STARTTLS) {
		ev &= ~SMTPC_EV_STARTTLS;
		ev |= sconn_starttls(c);
	}
	sconn_events(c, ev);
}

static void
sconn_tls_input(struct sconn *c, size_t n)
{
	struct dhost	*h = &c->d->hosts[c->hi];
	unsigned	 ev = 0;
	int		 rc;

	rc = tls_conn_input(&c->t, c->rbuf, n, &c->plain);
	if (rc != 0) {
		if (!c->tls_up) {
			tls_cache_remove(h->name);
			if (c->d->cs.tls == CONFIG_TLS_OPPORTUNISTIC) {
				/*
				 * RFC 7435: retry this host once in plain
				 * text rather than not delivering at all.
				 */
				c->tls_soft_fail = true;
				h->notls_until = mono_now() +
				    (mono_us)3600 * 1000000;
				log_warn("dest=%s host=%s tls=failed "
				    "fallback=plaintext reason=\"%s\"",
				    c->d->name, h->name, c->t.reason);
			}
			ev = smtpc_tls_failed(&c->smtp, c->t.reason);
		} else {
			ev = smtpc_conn_lost(&c->smtp, c->t.reason);
		}
		sconn_events(c, ev);
		return;
	}
	if (!c->tls_up && c->t.handshake_done) {
		c->tls_up = true;
		snprintf(c->tlsinfo, sizeof(c->tlsinfo), "%s %s",
		    tls_conn_protocol(&c->t), tls_conn_cipher(&c->t));
		log_debug("dest=%s host=%s tls=\"%s\" resumed=%d", c->d->name,
		    h->name, c->tlsinfo, tls_conn_reused(&c->t));
		ev |= smtpc_tls_started(&c->smtp);
	}
	if (buf_unread(&c->plain) > 0) {
		ev |= smtpc_recv(&c->smtp, buf_peek(&c->plain),
		    buf_unread(&c->plain));
		buf_reset(&c->plain);
	}
	if (c->t.peer_closed && c->st == SC_OPEN)
		ev |= smtpc_conn_lost(&c->smtp, "TLS connection closed by peer");
	sconn_events(c, ev);
}

static void
sconn_on_recv(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct sconn	*c = op->arg;

	(void)l;
	(void)flags;
	if (c->st == SC_CLOSING)
		return;		/* reaped at the loop boundary */
	if (res <= 0) {
		if (c->tls_on && !c->tls_up &&
		    c->d->cs.tls == CONFIG_TLS_OPPORTUNISTIC) {
			/* Closed mid-handshake: retry in plain text too. */
			c->tls_soft_fail = true;
			c->d->hosts[c->hi].notls_until = mono_now() +
			    (mono_us)3600 * 1000000;
		}
		sconn_events(c, smtpc_conn_lost(&c->smtp, res == 0 ?
		    "connection closed by peer" : strerror(-res)));
		return;
	}
	if (c->tls_on)
		sconn_tls_input(c, (size_t)res);
	else
		sconn_plain_input(c, (size_t)res);
	sconn_arm_recv(c);
}

/* Connection-level failure: back off the destination. */
static void
dest_failed(struct wthread *w, struct dest *d, unsigned hi, const char *why)
{
	struct dhost	*h = &d->hosts[hi];
	mono_us		 now = mono_now(), delay;

	/*
	 * The host is skipped for 15 s * p^2 (capped at 1 h): the next
	 * session fails over to the next MX host (or address).
	 */
	snprintf(d->last_why, sizeof(d->last_why), "%s", why);
	if (h->down_until > now) {
		/* A session of the same burst already penalized the host. */
		if (d->nconn == 0 && dest_pick_host(d, now) < 0)
			dest_defer_all(w, d, why);
		return;
	}
	h->nfail++;
	delay = (mono_us)w->cfg->host_penalty_ms * 1000 * h->nfail * h->nfail;
	if (delay > (mono_us)3600 * 1000000)
		delay = (mono_us)3600 * 1000000;
	h->down_until = now + delay;
	d->nfail++;
	log_warn("dest=%s host=%s failure=%u host_down_ms=%lld reason=\"%s\"",
	    d->name, h->name, h->nfail, (long long)(delay / 1000), why);
	/* Every host down and nobody delivering: hand the queue back. */
	if (d->nconn == 0 && dest_pick_host(d, now) < 0) {
		d->backoff_until = dest_next_up(d);
		dest_defer_all(w, d, why);
	}
}

static void
sconn_close(struct sconn *c, const char *why)
{
	struct wthread		*w = c->w;
	struct dest		*d = c->d;
	struct io_uring_sqe	*sqe;
	bool			 failed;

	if (c->st == SC_CLOSING)
		return;
	if (c->cur != NULL) {
		/* smtpc always reports a result first; be safe anyway. */
		struct smtpc_result	res;

		result_set(&res, smtpc_stage(&c->smtp), 0, "4.4.2",
		    "connection closed: %s", why ? why : "unknown");
		rcpt_done(w, c->cur, OUTCOME_DEFERRED, &res, d->name);
		c->cur = NULL;
	}
	failed = !c->ready_once;
	if (why != NULL && failed)
		snprintf(c->why, sizeof(c->why), "%s", why);
	c->st = SC_CLOSING;
	d->nconn--;
	dctl_nconn_add(d, -1);
	if (c->slot_quit)
		d->nslot_quit--;
	if (c->si >= 0)
		d->src_nconn[c->si]--;
	if (c->counted_open) {
		c->counted_open = false;
		d->nopening--;
	}
	if (failed && !c->tls_soft_fail) {
		/*
		 * Connection failures back off per host (p^2 penalties, and
		 * the whole queue is held while every host is down), so the
		 * controller's own connection backoff is not fed: it would
		 * stack a second, longer suspension on the same failures.
		 */
		dest_failed(w, d, c->hi, c->why[0] ? c->why : "session failed");
	}
	if (c->fd >= 0 && (c->op_conn.busy || c->op_recv.busy ||
	    c->op_send.busy)) {
		/* Ops still reference the socket: cancel them all first. */
		if ((sqe = loop_sqe(&w->loop, &c->op_cancel)) != NULL)
			io_uring_prep_cancel_fd(sqe, c->fd,
			    IORING_ASYNC_CANCEL_ALL);
		shutdown(c->fd, SHUT_RDWR);
	}
}

static void
sconn_on_cancel(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	(void)l;
	(void)op;
	(void)res;
	(void)flags;
}

static void
sconn_on_connect(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct sconn	*c = op->arg;

	(void)l;
	(void)flags;
	if (c->st == SC_CLOSING)
		return;		/* reaped at the loop boundary */
	if (res < 0) {
		char	why[128];

		snprintf(why, sizeof(why), "connect to %s: %s", c->d->name,
		    strerror(-res));
		sconn_close(c, why);
		return;
	}
	c->st = SC_OPEN;
	sconn_set_deadline(c);
	sconn_arm_recv(c);
}

/*
 * The pool source for a new session: the one with the fewest sessions to
 * this destination, under smtp.connection_limit each. -1 without a pool,
 * -2 when every source is at its limit.
 */
static int
dest_pick_source(struct wthread *w, struct dest *d)
{
	int	best = -2;

	if (d->pool == NULL)
		return -1;
	for (size_t k = 0; k < d->pool->nsrc; k++) {
		size_t	i = (d->src_rr + k) % d->pool->nsrc;

		if (d->src_nconn[i] >= d->cs.connection_limit ||
		    warm_spent(warm_find(w, d->pool->src[i].addr),
		    mono_now()))
			continue;
		if (best < 0 || d->src_nconn[i] < d->src_nconn[best])
			best = (int)i;
	}
	d->src_rr++;
	return best;
}

/* Sources are bound before connect (IORING_OP_BIND needs 6.11). */
static int
sconn_bind(int fd, const char *addr)
{
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		return bind(fd, (struct sockaddr *)&s4, sizeof(s4));
	}
	if (inet_pton(AF_INET6, addr, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		return bind(fd, (struct sockaddr *)&s6, sizeof(s6));
	}
	errno = EINVAL;
	return -1;
}

static void
sconn_open(struct wthread *w, struct dest *d)
{
	struct sconn		*c;
	struct io_uring_sqe	*sqe;
	int			 one = 1;

	struct dhost		*h;
	const struct sockaddr_storage *sa;
	const char		*ehlo = w->cfg->ehlo_name;
	int			 hi, si;

	if ((hi = dest_pick_host(d, mono_now())) < 0)
		return;
	h = &d->hosts[hi];
	if ((si = dest_pick_source(w, d)) == -2)
		return;		/* every source at its connection limit */
	if (si >= 0) {
		const struct config_source *src = &d->pool->src[si];

		/* An address of the source's family, round robin. */
		sa = NULL;
		for (unsigned k = 0; k < h->naddrs; k++) {
			const struct sockaddr_storage *x =
			    &h->addrs[(h->next_addr + k) % h->naddrs];

			if ((x->ss_family == AF_INET6) ==
			    (strchr(src->addr, ':') != NULL)) {
				sa = x;
				h->next_addr += k + 1;
				break;
			}
		}
		if (sa == NULL) {
			log_warn("dest=%s host=%s has no address of source %s's "
			    "family", d->name, h->name, src->addr);
			h->down_until = mono_now() + 60000000;
			return;
		}
		ehlo = src->ehlo_name ? src->ehlo_name : w->cfg->ehlo_name;
	} else {
		sa = &h->addrs[h->next_addr++ % h->naddrs];
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->w = w;
	c->d = d;
	c->hi = (unsigned)hi;
	c->si = si;
	c->warm = si >= 0 ? warm_find(w, d->pool->src[si].addr) : NULL;
	if (si >= 0)
		d->src_nconn[si]++;
	c->fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	smtpc_init(&c->smtp, ehlo, w->cfg->pipelining);
	smtpc_set_chunking(&c->smtp, w->cfg->chunking);
	switch (d->cs.tls) {
	case CONFIG_TLS_NONE:
		smtpc_set_tls(&c->smtp, SMTPC_TLS_NONE);
		break;
	case CONFIG_TLS_OPPORTUNISTIC:
		smtpc_set_tls(&c->smtp, h->notls_until > mono_now() ?
		    SMTPC_TLS_NONE : SMTPC_TLS_OPPORTUNISTIC);
		break;
	case CONFIG_TLS_REQUIRED:
	case CONFIG_TLS_VERIFY:
		smtpc_set_tls(&c->smtp, SMTPC_TLS_REQUIRED);
		break;
	}
	buf_init(&c->plain);
	buf_init(&c->tx);
	buf_init(&c->wire);
	c->op_conn = (struct loop_op){ .cb = sconn_on_connect, .arg = c };
	c->op_recv = (struct loop_op){ .cb = sconn_on_recv, .arg = c };
	c->op_send = (struct loop_op){ .cb = sconn_on_send, .arg = c };
	c->op_cancel = (struct loop_op){ .cb = sconn_on_cancel, .arg = c };
	c->next = w->conns;
	w->conns = c;
	w->nconns++;
	d->nconn++;
	dctl_nconn_add(d, 1);
	d->nopening++;
	c->counted_open = true;
	c->st = SC_CONNECTING;
	if (c->fd < 0) {
		sconn_close(c, strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (si >= 0 && sconn_bind(c->fd, d->pool->src[si].addr) != 0) {
		char	why[128];

		snprintf(why, sizeof(why), "cannot bind source %s: %s",
		    d->pool->src[si].addr, strerror(errno));
		sconn_close(c, why);
		return;
	}
	sconn_set_deadline(c);
	if ((sqe = loop_sqe(&w->loop, &c->op_conn)) == NULL) {
		sconn_close(c, "io_uring full");
		return;
	}
	io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)sa,
	    sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in));
}

/* One scheduling pass: hand queued recipients to idle sessions, open new
 * sessions where the queue is longer than what is opening, expire
 * deadlines. Runs once per loop turn. */
static void
sched_pass(struct wthread *w)
{
	mono_us		 now = mono_now();
	struct sconn	*c, *next, **pp;

	for (pp = &w->conns; (c = *pp) != NULL;) {
		if (c->st == SC_CLOSING && sconn_reap(c, pp))
			continue;
		pp = &c->next;
	}
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (c->st == SC_CLOSING)
			continue;
		if (c->idle && dest_slots_over(c->d)) {
			/* Give the fleet slot back between messages. */
			c->idle = false;
			c->slot_quit = true;
			c->d->nslot_quit++;
			sconn_events(c, smtpc_quit(&c->smtp));
			continue;
		}
		if (c->idle && ((c->d->nq > 0 && now >= c->d->park_until) ||
		    w->draining)) {
			sconn_dispatch(c);
			sconn_flush(c);
			continue;
		}
		/*
		 * Parked for the site's pace: keep the wake-up armed. The loop
		 * clears w->wake each turn, so an I/O event ending the wait
		 * early would leave these asleep until the 100 ms tick.
		 */
		if (c->idle && c->d->nq > 0)
			wake_at(w, c->d->park_until);
		if (now < c->deadline)
			continue;
		if (c->st == SC_CONNECTING) {
			char	why[128];

			snprintf(why, sizeof(why), "connect to %s: timed out",
			    c->d->name);
			sconn_close(c, why);
		} else if (c->idle) {
			c->idle = false;
			sconn_events(c, smtpc_quit(&c->smtp));
		} else {
			sconn_events(c, smtpc_timeout(&c->smtp));
		}
	}
	for (struct dest *d = w->dall; d != NULL; d = d->next) {
		dest_slots_trim(w, d, now);
		if (d->nq == 0)
			continue;
		if (d->nhosts == 0) {
			dest_defer_all(w, d, "route host could not be resolved");
			continue;
		}
		if (dest_pick_host(d, now) < 0) {
			if (d->nconn == 0)
				dest_hold_all(w, d, now);
			continue;
		}
		if (now < d->conn_park_until)
			continue;
		while (d->nconn < d->cs.connection_limit *
		    (d->pool ? d->pool->nsrc : 1) &&
		    d->nq > d->nopening && dest_pick_host(d, now) >= 0) {
			unsigned	before = d->nconn;
			mono_us		until = 0;
			int		k;

			if (!dest_slot_ok(w, d, now))
				break;
			/* The controller's concurrency and connection rate. */
			{
				struct shape_ctl *sc = dctl_lock(d);

				k = shape_ctl_conn_take(sc, now, d->sc ?
				    d->sc->nconn : d->nconn, &until);
				dctl_unlock(d);
			}
			if (k == -EAGAIN) {
				d->conn_park_until = until;
				wake_at(w, until);
				break;
			}
			if (k != 0)
				break;

			sconn_open(w, d);
			if (d->nconn == before)
				break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* fetching jobs                                                       */

/* Build a job from one stream entry [id, [field, value, ...]]. */
static struct job *
job_from_entry(struct wthread *w, struct wcamp *c, const redisReply *e)
{
	const redisReply	*id, *fv, *rv = NULL;
	struct job		*j;
	uint64_t		 first = 0;
	unsigned		 attempt = 0, n = 0;
	size_t			 sz, ncols = c->ncols;
	char			*data, *p, *end;

	(void)w;
	if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2)
		return NULL;
	id = e->element[0];
	fv = e->element[1];
	if (id->type != REDIS_REPLY_STRING || id->len >= sizeof(j->id) ||
	    fv->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < fv->elements; i += 2) {
		const char		*f = fv->element[i]->str;
		const redisReply	*v = fv->element[i + 1];

		if (fv->element[i]->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(f, "n") == 0)
			n = (unsigned)strtoul(v->str, NULL, 10);
		else if (strcmp(f, "i") == 0)
			first = strtoull(v->str, NULL, 10);
		else if (strcmp(f, "a") == 0)
			attempt = (unsigned)strtoul(v->str, NULL, 10);
		else if (strcmp(f, "r") == 0)
			rv = v;
	}
	if (rv == NULL || n == 0 || n > 100000)
		n = 1;		/* still one outcome to record: "malformed" */
	sz = sizeof(*j) + n * sizeof(struct rcpt) +
	    n * ncols * (sizeof(char *) + sizeof(size_t)) +
	    (rv ? rv->len : 0) + 1;
	if ((j = calloc(1, sz)) == NULL)
		return NULL;
	j->camp = c;
	memcpy(j->id, id->str, id->len);
	j->n = j->remaining = n;
	j->rcpts = (struct rcpt *)(j + 1);
	{
		const char	**vals = (const char **)(j->rcpts + n);
		size_t		 *lens = (size_t *)(vals + n * ncols);

		data = (char *)(lens + n * ncols);
		for (unsigned i = 0; i < n; i++) {
			j->rcpts[i].job = j;
			j->rcpts[i].idx = first + i;
			j->rcpts[i].attempt = attempt;
			j->rcpts[i].vals = vals + i * ncols;
			j->rcpts[i].lens = lens + i * ncols;
			j->rcpts[i].bad = true;
		}
	}
	if (rv == NULL)
		return j;
	memcpy(data, rv->str, rv->len);
	data[rv->len] = '\0';
	p = data;
	end = data + rv->len;
	for (unsigned i = 0; i < n && p <= end; i++) {
		char	*rs = memchr(p, RM_RS, (size_t)(end - p));
		char	*rend = rs ? rs : end;
		size_t	 k = 0;
		char	*f = p;

		*rend = '\0';
		while (k < ncols) {
			char	*fs = memchr(f, RM_FS, (size_t)(rend - f));
			char	*fend = fs ? fs : rend;

			j->rcpts[i].vals[k] = f;
			j->rcpts[i].lens[k] = (size_t)(fend - f);
			*fend = '\0';
			k++;
			if (fs == NULL)
				break;
			f = fs + 1;
		}
		j->rcpts[i].bad = (k != ncols ||
		    addr_validate(j->rcpts[i].vals[c->email_col],
		    j->rcpts[i].lens[c->email_col], NULL, NULL) != 0);
		p = rend + 1;
	}
	return j;
}

static void fetch_more(struct wthread *w);

static void
job_unlink_free(struct wthread *w, struct job *j)
{
	struct job	**pp;

	for (pp = &w->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	free(j);
}

static void rcpt_resolve(struct wthread *w, struct rcpt *r);

/*
 * Every check done: each recipient now gets queued on its destination or
 * an immediate outcome (skipped, malformed, suppressed, cancelled, no
 * route).
 */
static void
job_enqueue(struct wthread *w, struct job *j)
{
	struct smtpc_result	 res;
	struct wcamp		*c = j->camp;
	unsigned		 skipped = 0;

	for (unsigned i = 0; i < j->n; i++) {
		struct rcpt	*r = &j->rcpts[i];
		struct dest	*d;
		const char	*email;

		if (r->skip) {
			skipped++;
			continue;
		}
		if (r->bad) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "5.6.0", "%s",
			    "malformed recipient record in the job stream");
			rcpt_done(w, r, OUTCOME_FAILED, &res, NULL);
			continue;
		}
		email = r->vals[c->email_col];
		if (r->suppressed) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "5.7.1",
			    "%s is on a suppression list", email);
			rcpt_done(w, r, OUTCOME_SUPPRESSED, &res, NULL);
			continue;
		}
		if (c->cs == CS_CANCELLING || c->cs == CS_OVER) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "", "%s",
			    "campaign cancelled");
			rcpt_done(w, r, OUTCOME_CANCELLED, &res, NULL);
			continue;
		}
		if ((d = dest_for(w, r)) == NULL) {
			rcpt_resolve(w, r);
			continue;
		}
		dest_push(d, r);
	}
	if (skipped > 0) {
		log_info("campaign=%s job=%s reclaimed skipped=%u (already "
		    "recorded)", c->id, j->id, skipped);
		j->remaining -= skipped;
		w->nheld -= skipped;
		c->nheld -= skipped;
		if (j->remaining == 0 && !j->acked) {
			/* Nothing left to record: acknowledge it alone. */
			rconn_cmd(&w->ctl, on_ignore, NULL, "XACK %s %s %s",
			    c->k_jobs, RM_GROUP, j->id);
			rconn_cmd(&w->ctl, on_ignore, NULL, "XDEL %s %s",
			    c->k_jobs, j->id);
			j->acked = true;
		}
	}
	if (j->remaining == 0 && j->acked)
		job_unlink_free(w, j);
}

static void
job_check_done(struct wthread *w, struct job *j)
{
	if (--j->nchecks == 0)
		job_enqueue(w, j);
}

/* Reclaimed job: recipients whose done bit is set already have an outcome. */
static void
on_done_bits(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct job	*j = priv;
	uint64_t	 base = j->rcpts[0].idx / 8 * 8;

	if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
		for (unsigned i = 0; i < j->n; i++) {
			uint64_t	bit = j->rcpts[i].idx - base;

			if (bit / 8 < reply->len &&
			    (((unsigned char)reply->str[bit / 8] >>
			    (7 - bit % 8)) & 1))
				j->rcpts[i].skip = true;
		}
	}
	job_check_done(rc->arg, j);
}

/* HMGET over the job's addresses on a suppression hash. */
static void
on_supp(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct job	*j = priv;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements == j->n)
		for (unsigned i = 0; i < j->n; i++)
			if (reply->element[i]->type == REDIS_REPLY_STRING)
				j->rcpts[i].suppressed = true;
	job_check_done(rc->arg, j);
}

static void
job_check_supp(struct wthread *w, struct job *j, const char *key)
{
	struct wcamp	*c = j->camp;
	const char	**argv;
	size_t		 *lens;
	char		 *low;
	size_t		  total = 0, off = 0;
	unsigned	  n = 0;

	for (unsigned i = 0; i < j->n; i++)
		total += j->rcpts[i].bad ? 1 : j->rcpts[i].lens[c->email_col];
	argv = calloc(j->n + 2, sizeof(*argv));
	lens = calloc(j->n + 2, sizeof(*lens));
	low = malloc(total + 1);
	if (argv == NULL || lens == NULL || low == NULL) {
		free(argv);
		free(lens);
		free(low);
		return;
	}
	argv[n] = "HMGET";
	lens[n++] = 5;
	argv[n] = key;
	lens[n++] = strlen(key);
	/* Keys are lower-cased addresses (RM_KEY_SUPPRESS contract). */
	for (unsigned i = 0; i < j->n; i++) {
		const struct rcpt	*r = &j->rcpts[i];
		size_t			 l = r->bad ? 1 : r->lens[c->email_col];
		const char		*a = r->bad ? "-" : r->vals[c->email_col];

		for (size_t k = 0; k < l; k++)
			low[off + k] = (a[k] >= 'A' && a[k] <= 'Z') ?
			    (char)(a[k] + 32) : a[k];
		argv[n] = low + off;
		lens[n++] = l;
		off += l;
	}
	if (rconn_cmdargv(&w->ctl, on_supp, j, (int)n, argv, lens) == 0)
		j->nchecks++;
	free(argv);
	free(lens);
	free(low);
}

/*
 * A fetched job is checked against Redis before its recipients queue:
 * done bits (reclaimed jobs only) and the suppression hashes, in one
 * pipelined round trip per job, not per message.
 */
static void
job_start(struct wthread *w, struct job *j)
{
	struct wcamp	*c = j->camp;
	char		 s[24], e[24];

	j->nchecks = 1;		/* held until all checks are queued */
	if (j->reclaimed) {
		snprintf(s, sizeof(s), "%llu",
		    (unsigned long long)(j->rcpts[0].idx / 8));
		snprintf(e, sizeof(e), "%llu",
		    (unsigned long long)(j->rcpts[j->n - 1].idx / 8));
		if (rconn_cmd(&w->ctl, on_done_bits, j, "GETRANGE %s %s %s",
		    c->k_done, s, e) == 0)
			j->nchecks++;
	}
	job_check_supp(w, j, RM_KEY_SUPPRESS);
	if (c->suppress_list != NULL)
		job_check_supp(w, j, c->k_supp_list);
	job_check_done(w, j);
}

/* MX route of a recipient's domain is known (or failed). */
static void
on_route(void *arg, const struct dns_route *rt)
{
	struct rcpt		*r = arg;
	struct wcamp		*c = r->job->camp;
	struct wthread		*w = c->w;
	struct smtpc_result	 res;
	struct dest		*d;
	const char		*email = r->vals[c->email_col];

	switch (rt->status) {
	case 0: {
		char		 dbuf[256];
		const char	*at = memchr(email, '@', r->lens[c->email_col]);

		snprintf(dbuf, sizeof(dbuf), "%s", at ? at + 1 : "");
		if ((d = dest_for_route(w, rt, c->pool, dbuf)) != NULL &&
		    d->nhosts > 0) {
			dest_push(d, r);
			return;
		}
	}
		result_set(&res, SMTPC_ST_CONNECT, 0, "4.3.0", "%s",
		    "out of memory for a destination");
		rcpt_done(w, r, OUTCOME_DEFERRED, &res, NULL);
		return;
	case -ENODATA:
		/* RFC 7505 3: the domain accepts no mail. */
		result_set(&res, SMTPC_ST_CONNECT, 556, "5.1.10", "%s: %s",
		    email, rt->why[0] ? rt->why : "domain has a null MX");
		rcpt_done(w, r, OUTCOME_BOUNCED, &res, NULL);
		return;
	case -ENOENT:
	case -EINVAL:
		result_set(&res, SMTPC_ST_CONNECT, 550, "5.1.2", "%s: %s",
		    email, rt->why[0] ? rt->why : "domain not found");
		rcpt_done(w, r, OUTCOME_BOUNCED, &res, NULL);
		return;
	default:
		result_set(&res, SMTPC_ST_CONNECT, 0, "4.4.3", "%s: %s",
		    email, rt->why[0] ? rt->why : "DNS lookup failed");
		rcpt_done(w, r, OUTCOME_DEFERRED, &res, NULL);
		return;
	}
}

/* No static route: find the domain's MX route (c-ares, via the ring). */
static void
rcpt_resolve(struct wthread *w, struct rcpt *r)
{
	const struct wcamp	*c = r->job->camp;
	const char		*dom;
	size_t			 domlen;
	char			 domain[256];
	struct smtpc_result	 res;

	dom = addr_domain(r->vals[c->email_col], r->lens[c->email_col],
	    &domlen);
	if (dom == NULL || domlen >= sizeof(domain) || w->dns == NULL) {
		result_set(&res, SMTPC_ST_CONNECT, 0, "4.4.4",
		    "no route for the domain of %s", r->vals[c->email_col]);
		rcpt_done(w, r, OUTCOME_DEFERRED, &res, NULL);
		return;
	}
	memcpy(domain, dom, domlen);
	domain[domlen] = '\0';
	if (dns_resolve_route(w->dns, domain, on_route, r) != 0) {
		result_set(&res, SMTPC_ST_CONNECT, 0, "4.3.0", "%s",
		    "out of memory for a DNS lookup");
		rcpt_done(w, r, OUTCOME_DEFERRED, &res, NULL);
	}
}

static bool
job_held(const struct wthread *w, const struct wcamp *c, const char *id)
{
	for (const struct job *j = w->jobs; j != NULL; j = j->next)
		if (j->camp == c && strcmp(j->id, id) == 0)
			return true;
	return false;
}

static void
take_entries(struct wthread *w, struct wcamp *c, const redisReply *entries,
    bool reclaimed)
{
	if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t k = 0; k < entries->elements; k++) {
		const redisReply *e = entries->element[k];
		struct job	*j;

		/*
		 * A reclaim can return a job this thread still holds (its idle
		 * time grew while Redis was away, or the loop lagged): never
		 * take it twice.
		 */
		if (reclaimed && e != NULL && e->type == REDIS_REPLY_ARRAY &&
		    e->elements == 2 && job_held(w, c, e->element[0]->str))
			continue;
		if ((j = job_from_entry(w, c, e)) == NULL)
			continue;
		j->next = w->jobs;
		w->jobs = j;
		w->nheld += j->n;
		c->nheld += j->n;
		j->reclaimed = reclaimed;
		job_start(w, j);
	}
}

static void
on_fetch(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;

	(void)rc;
	w->fetching = false;
	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warn("fetch failed thread=%u reply=\"%s\"", w->index,
		    reply->str);
		/* NOGROUP etc.: reload campaigns at the next refresh. */
		for (struct wcamp *c = w->camps; c != NULL; c = c->next)
			if (c->st == WC_READY)
				c->st = WC_BROKEN;
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY)
		return;		/* nil: BLOCK timed out */
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply	*s = reply->element[i];
		struct wcamp		*c;

		if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
		    s->element[0]->type != REDIS_REPLY_STRING)
			continue;
		c = wcamp_by_jobs_key(w, s->element[0]->str,
		    s->element[0]->len);
		if (c != NULL)
			take_entries(w, c, s->element[1], false);
	}
	fetch_more(w);
}

/*
 * Read more jobs from every campaign that may take more: sendable (or
 * being cancelled, whose remaining jobs are read to be cancelled), under
 * its share of worker.max_queued (so one huge campaign cannot fill memory
 * and starve the others), and with rate budget left.
 */
static void
fetch_more(struct wthread *w)
{
	const char	*argv[16 + 2 * 256];
	size_t		 lens[16 + 2 * 256];
	char		 count[16];
	unsigned	 ncamps = 0, share;
	int		 n = 0, nk = 0;
	mono_us		 now = mono_now();

	if (w->fetching || w->draining || !w->fetch.connected ||
	    w->nheld >= w->cfg->max_queued)
		return;
	for (struct wcamp *c = w->camps; c != NULL; c = c->next)
		if (c->active && c->st == WC_READY &&
		    (c->cs == CS_ACTIVE || c->cs == CS_CANCELLING))
			ncamps++;
	if (ncamps == 0)
		return;
	share = w->cfg->max_queued / ncamps;
	if (share < w->cfg->fetch_batch)
		share = w->cfg->fetch_batch;
	snprintf(count, sizeof(count), "%u", w->cfg->fetch_batch);
	argv[n++] = "XREADGROUP";
	argv[n++] = "GROUP";
	argv[n++] = RM_GROUP;
	argv[n++] = w->consumer;
	argv[n++] = "COUNT";
	argv[n++] = count;
	argv[n++] = "BLOCK";
	argv[n++] = "1000";
	argv[n++] = "STREAMS";
	for (struct wcamp *c = w->camps; c != NULL && nk < 256; c = c->next) {
		if (!c->active || c->st != WC_READY || c->nheld >= share)
			continue;
		if (c->cs == CS_ACTIVE) {
			camp_refill(w, c, now);
			if (!camp_has_token(c))
				continue;
		} else if (c->cs != CS_CANCELLING) {
			continue;
		}
		argv[n + nk++] = c->k_jobs;
	}
	if (nk == 0)
		return;
	n += nk;
	for (int k = 0; k < nk; k++)
		argv[n++] = ">";
	for (int k = 0; k < n; k++)
		lens[k] = strlen(argv[k]);
	if (rconn_cmdargv(&w->fetch, on_fetch, w, n, argv, lens) == 0)
		w->fetching = true;
}

static void
on_reclaim(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wcamp	*c = priv;
	struct wthread	*w = rc->arg;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 2)
		return;
	if (reply->element[1]->type == REDIS_REPLY_ARRAY &&
	    reply->element[1]->elements > 0)
		log_info("campaign=%s reclaimed=%zu thread=%u", c->id,
		    reply->element[1]->elements, w->index);
	take_entries(rc->arg, c, reply->element[1], true);
	/*
	 * A full batch: a dead worker's jobs are still waiting. Reclaim
	 * again at the next refresh (1 s) rather than in 10 s, while this
	 * thread has room, so recovering a crashed worker's share does not
	 * take fetch_batch jobs per 10 s.
	 */
	if (reply->element[1]->type == REDIS_REPLY_ARRAY &&
	    reply->element[1]->elements >= w->cfg->fetch_batch &&
	    w->nheld < w->cfg->max_queued)
		w->next_reclaim = 0;
}

/* ------------------------------------------------------------------ */
/* periodic refresh: campaign list and states, retries, reclaim, heartbeat */

/* Move a campaign's queued recipients out (pause: requeue; cancel). */
static unsigned
camp_pull_queued(struct wthread *w, struct wcamp *c, enum outcome o,
    bool requeue, const char *why)
{
	struct smtpc_result	 res;
	struct rcpt		*r, *next;
	unsigned		 n = 0;

	result_set(&res, SMTPC_ST_CONNECT, 0, "", "%s", why);
	for (struct dest *d = w->dall; d != NULL; d = d->next)
		for (r = dest_take_camp(d, c); r != NULL; r = next) {
			next = r->next;
			if (requeue)
				rec_add(w, r, o, true, &res, NULL);
			else
				rcpt_done(w, r, o, &res, NULL);
			n++;
		}
	return n;
}

static int
camp_state_parse(const char *s, size_t len)
{
	static const struct { const char *name; int cs; } tab[] = {
		{ RM_STATE_SUBMITTING, CS_ACTIVE },
		{ RM_STATE_ACTIVE, CS_ACTIVE },
		{ RM_STATE_SCHEDULED, CS_SCHEDULED },
		{ RM_STATE_PAUSED, CS_PAUSED },
		{ RM_STATE_CANCELLING, CS_CANCELLING },
		{ RM_STATE_CANCELLED, CS_OVER },
		{ RM_STATE_DONE, CS_OVER },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == len &&
		    memcmp(tab[i].name, s, len) == 0)
			return tab[i].cs;
	return CS_UNKNOWN;
}

static const char *
rstr(const redisReply *r, size_t i)
{
	return (r->elements > i && r->element[i]->type == REDIS_REPLY_STRING) ?
	    r->element[i]->str : NULL;
}

/* HMGET meta state start_ms priority rate_per_s suppress_list
 * submitted_ms created_ms */
static void
on_camp_poll(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wcamp	*c = priv;
	struct wthread	*w = rc->arg;
	const char	*v;
	int		 cs;
	unsigned	 n;

	c->polling = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 8 || (v = rstr(reply, 0)) == NULL)
		return;
	cs = camp_state_parse(v, reply->element[0]->len);
	c->start_ms = 0;
	if ((v = rstr(reply, 1)) != NULL)
		c->start_ms = strtoll(v, NULL, 10);
	if (c->start_ms <= 0 && (v = rstr(reply, 5)) != NULL)
		c->start_ms = strtoll(v, NULL, 10);
	if (c->start_ms <= 0 && (v = rstr(reply, 6)) != NULL)
		c->start_ms = strtoll(v, NULL, 10);
	c->priority = (v = rstr(reply, 2)) ? atoi(v) : 5;
	c->rate_per_s = (v = rstr(reply, 3)) ? strtod(v, NULL) : 0;
	if (c->rate_per_s < 0)
		c->rate_per_s = 0;
	if ((v = rstr(reply, 4)) != NULL && v[0] != '\0' &&
	    (c->suppress_list == NULL || strcmp(c->suppress_list, v) != 0)) {
		free(c->suppress_list);
		c->suppress_list = strdup(v);
		snprintf(c->k_supp_list, sizeof(c->k_supp_list), "%s%s",
		    RM_KEY_SUPPRESS_LIST, v);
	}
	if ((v = rstr(reply, 7)) != NULL && v[0] != '\0') {
		if ((c->pool = config_pool_find(w->cfg, v)) == NULL) {
			log_error("campaign=%s names pool '%s', which config.yaml "
			    "does not define: not sending it", c->id, v);
			cs = CS_UNKNOWN;
		}
	} else {
		c->pool = config_pool_find(w->cfg, w->cfg->pool);
	}
	if (cs == (int)c->cs)
		return;
	if (cs == CS_PAUSED) {
		n = camp_pull_queued(w, c, OUTCOME_DEFERRED, true,
		    "campaign paused");
		log_info("campaign=%s paused thread=%u requeued=%u", c->id,
		    w->index, n);
	} else if (cs == CS_CANCELLING) {
		n = camp_pull_queued(w, c, OUTCOME_CANCELLED, false,
		    "campaign cancelled");
		log_info("campaign=%s cancelling thread=%u cancelled=%u",
		    c->id, w->index, n);
	} else if (cs == CS_ACTIVE && c->cs == CS_PAUSED) {
		log_info("campaign=%s resumed thread=%u", c->id, w->index);
	}
	c->cs = cs;
}

static void
on_supp_log(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;
	const redisReply *entries;

	(void)rc;
	w->supp_tailing = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 1 || reply->element[0]->elements != 2)
		return;
	entries = reply->element[0]->element[1];
	for (size_t i = 0; i < entries->elements; i++) {
		const redisReply	*e = entries->element[i];
		const redisReply	*fv;
		const char		*op = NULL, *addr = NULL, *list = "";
		size_t			 alen = 0, n;
		char			 k[600];

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
			continue;
		snprintf(w->supp_log_id, sizeof(w->supp_log_id), "%s",
		    e->element[0]->str);
		fv = e->element[1];
		for (size_t f = 0; f + 1 < fv->elements; f += 2) {
			const char	*name = fv->element[f]->str;

			if (strcmp(name, "op") == 0)
				op = fv->element[f + 1]->str;
			else if (strcmp(name, "addr") == 0) {
				addr = fv->element[f + 1]->str;
				alen = fv->element[f + 1]->len;
			} else if (strcmp(name, "list") == 0)
				list = fv->element[f + 1]->str;
		}
		if (op == NULL || addr == NULL ||
		    (n = supp_key(k, sizeof(k), list, addr, alen)) == 0)
			continue;
		if (strcmp(op, "add") == 0) {
			if (strset_add(&w->recent_supp, k, n) == -ENOSPC)
				log_warn("recent suppression set full thread=%u",
				    w->index);
		} else if (strcmp(op, "remove") == 0) {
			strset_del(&w->recent_supp, k, n);
		}
	}
}

static void
on_supp_log_start(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;

	(void)rc;
	w->supp_tailing = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	if (reply->elements > 0 && reply->element[0]->elements == 2)
		snprintf(w->supp_log_id, sizeof(w->supp_log_id), "%s",
		    reply->element[0]->element[0]->str);
	else
		strcpy(w->supp_log_id, "0-0");
}

/* HVALS rm:workers: count the live threads for rate shares. */
static void
on_workers(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;
	int64_t		 now = wall_ms();
	unsigned	 n = 0;

	(void)rc;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply	*v = reply->element[i];
		long long		 ts;
		const char		*fs;
		unsigned long		 th = 1;

		if (v->type != REDIS_REPLY_STRING)
			continue;
		ts = strtoll(v->str, NULL, 10);
		if ((fs = memchr(v->str, RM_FS, v->len)) != NULL)
			th = strtoul(fs + 1, NULL, 10);
		if (now - ts <= 15000)
			n += th ? (unsigned)th : 1;
	}
	w->fleet_threads = n ? n : 1;
}

/*
 * Keep the jobs this thread holds from looking abandoned: XCLAIM them to
 * ourselves (JUSTID: no delivery count) well within worker.claim_idle,
 * so other workers only reclaim jobs of a worker that really stopped.
 */
static void
jobs_touch(struct wthread *w)
{
	const char	*argv[1024 + 8];
	size_t		 lens[1024 + 8];
	int		 n;

	for (struct wcamp *c = w->camps; c != NULL; c = c->next) {
		n = 0;
		argv[n++] = "XCLAIM";
		argv[n++] = c->k_jobs;
		argv[n++] = RM_GROUP;
		argv[n++] = w->consumer;
		argv[n++] = "0";
		for (struct job *j = w->jobs; j != NULL; j = j->next) {
			if (j->camp != c || j->acked)
				continue;
			argv[n++] = j->id;
			if (n == 1024 + 5)
				break;
		}
		if (n == 5)
			continue;
		argv[n++] = "JUSTID";
		for (int k = 0; k < n; k++)
			lens[k] = strlen(argv[k]);
		rconn_cmdargv(&w->ctl, on_ignore, NULL, n, argv, lens);
	}
}

/*
 * Publish each busy site's state and binding constraint (RM_KEY_SITES)
 * for `ringmail explain` and `status --sites`: one HSET per refresh.
 */
static void
sites_publish(struct wthread *w, const char *ms)
{
	struct rargs	 a;
	mono_us		 now = mono_now();
	size_t		 nd = 0;

	for (struct dest *d = w->dall; d != NULL; d = d->next)
		d->nidle = 0;
	for (struct sconn *c = w->conns; c != NULL; c = c->next)
		if (c->st != SC_CLOSING && (c->idle || c->st == SC_CONNECTING))
			c->d->nidle++;
	memset(&a, 0, sizeof(a));
	buf_init(&a.store);
	rargs_str(&a, "HSET");
	rargs_str(&a, RM_KEY_SITES);
	for (struct dest *d = w->dall; d != NULL && nd < 1000; d = d->next) {
		struct shape_explain	ex;
		char			text[SHAPE_TEXT_MAX];
		const char		*bind;

		if (d->nq == 0 && d->nconn == 0 && d->published)
			continue;
		d->published = (d->nq == 0 && d->nconn == 0);
		bind = shape_bind_name(shape_explain(dctl_lock(d), now,
		    d->nconn - d->nidle, &ex, text, sizeof(text)));
		dctl_unlock(d);
		if (d->nq > 0 && d->park_until > now &&
		    d->cs.max_message_rate.n > 0 && d->fleet_tokens == 0) {
			char	r[CONFIG_RATE_STR_MAX];

			bind = "rate";
			config_rate_format(&d->cs.max_message_rate, r, sizeof(r));
			snprintf(text, sizeof(text), "rate: fleet-wide %s shared "
			    "by every worker holds the next message for %.3f s",
			    r, (double)(d->park_until - now) / 1e6);
		}
		if (d->nq > 0 && d->fleet_slots && d->slots_refused > 0) {
			bind = "concurrency";
			snprintf(text, sizeof(text), "connections: fleet-wide "
			    "connection_limit %u reached: %u requests for a "
			    "connection slot refused since the last report (this "
			    "thread holds %u, fair share %u)", dest_conn_cap(d),
			    d->slots_refused, d->slots_held, d->slots_fair);
		}
		d->slots_refused = 0;
		if (d->nq > 0 && dest_warm_blocked(w, d, now)) {
			bind = "warmup";
			snprintf(text, sizeof(text), "warm-up: every source of "
			    "pool %s has used today's volume of its warm-up "
			    "schedule; next at 00:00 UTC", d->pool->name);
		}
		if (d->nq > 0 && dest_pick_host(d, now) < 0) {
			bind = "backoff";
			snprintf(text, sizeof(text), "backoff: every host of the "
			    "site failed; next try in %.1f s",
			    (double)(dest_next_up(d) - now) / 1e6);
		}
		buf_reset(&w->b_tmp);
		buf_printf(&w->b_tmp, "%s%c%s", d->name, RM_FS, w->consumer);
		rargs_add(&a, w->b_tmp.data, w->b_tmp.len);
		d->pub_ever = true;
		buf_reset(&w->b_tmp);
		{
			/*
			 * The site's live budget, for ETAs: the controller's
			 * current rate, within the fleet-wide configured
			 * one (milli-messages per day; 0 = unlimited).
			 */
			uint64_t rmpd = ex.rate_mpd,
			    fmpd = shape_mpd_of(&d->cs.max_message_rate);

			if (fmpd != 0 && (rmpd == 0 || fmpd < rmpd))
				rmpd = fmpd;
			buf_printf(&w->b_tmp, "%s%c%s%c%u%c%u%c%s%c%s%c%s%c%llu",
			    ms, RM_FS, w->consumer, RM_FS, d->nq, RM_FS,
			    d->nconn, RM_FS, bind, RM_FS, text, RM_FS,
			    d->last_event, RM_FS, (unsigned long long)rmpd);
		}
		rargs_add(&a, w->b_tmp.data, w->b_tmp.len);
		nd++;
	}
	if (nd > 0) {
		for (size_t i = 0; i < a.n; i++)
			a.argv[i] = a.store.data + a.off[i];
		rconn_cmdargv(&w->ctl, on_ignore, NULL, (int)a.n, a.argv,
		    a.len);
	}
	buf_free(&a.store);
	free(a.off);
	free(a.len);
	free(a.argv);
}

static bool
camp_in_use(const struct wthread *w, const struct wcamp *c)
{
	if (c->nheld > 0 || w->nrecs > 0)
		return true;
	for (const struct job *j = w->jobs; j != NULL; j = j->next)
		if (j->camp == c)
			return true;
	return false;
}

static void
on_active(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;
	mono_us		 now = mono_now();
	bool		 reclaim = now >= w->next_reclaim;
	char		 ms[24], idle[24], lim[16], hb[256];
	struct wcamp	**pp, *c;

	(void)rc;
	w->refreshing = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (c = w->camps; c != NULL; c = c->next)
		c->seen = false;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply	*e = reply->element[i];

		if (e->type != REDIS_REPLY_STRING)
			continue;
		if ((c = wcamp_find(w, e->str, e->len)) == NULL &&
		    (c = wcamp_new(w, e->str, e->len)) != NULL)
			wcamp_load(w, c);
		if (c == NULL)
			continue;
		c->seen = true;
		if (c->st == WC_BROKEN)
			wcamp_load(w, c);
	}
	snprintf(ms, sizeof(ms), "%lld", (long long)wall_ms());
	snprintf(idle, sizeof(idle), "%u", w->cfg->claim_idle_ms);
	snprintf(lim, sizeof(lim), "%u", w->cfg->fetch_batch * 16);
	/* Touch our own jobs first: the reclaims below run after it. */
	if (now >= w->next_touch || reclaim) {
		mono_us	every = (mono_us)w->cfg->claim_idle_ms * 1000 / 3;

		jobs_touch(w);
		w->next_touch = now + (every > 1000000 ? every : 1000000);
	}
	for (pp = &w->camps; (c = *pp) != NULL;) {
		c->active = c->seen;
		if (!c->active && !camp_in_use(w, c)) {
			/* Finished elsewhere and nothing of it held here. */
			*pp = c->next;
			for (struct dest *d = w->dall; d != NULL; d = d->next)
				dest_drop_camp(d, c);
			wcamp_free(c);
			continue;
		}
		pp = &c->next;
		if (!c->active || c->st != WC_READY)
			continue;
		if (!c->polling && rconn_cmd(&w->ctl, on_camp_poll, c,
		    "HMGET %s state start_ms priority rate_per_s suppress_list "
		    "submitted_ms created_ms pool", c->k_meta) == 0)
			c->polling = true;
		if (c->cs == CS_SCHEDULED)
			rconn_cmd(&w->ctl, on_ignore, NULL, "EVAL %s 1 %s %s",
			    RM_LUA_START_DUE, c->k_meta, ms);
		/* Due retries go back into the stream (atomic script); when
		 * cancelling, all of them, to be cancelled. */
		if (c->cs == CS_ACTIVE || c->cs == CS_CANCELLING)
			rconn_cmd(&w->ctl, on_ignore, NULL,
			    "EVAL %s 2 %s %s %s %s %s", RM_LUA_RETRY_PUMP,
			    c->k_retry, c->k_jobs, ms, lim,
			    c->cs == CS_CANCELLING ? "all" : "due");
		if (reclaim && !w->draining)
			rconn_cmd(&w->ctl, on_reclaim, c,
			    "XAUTOCLAIM %s %s %s %s 0-0 COUNT %u", c->k_jobs,
			    RM_GROUP, w->consumer, idle, w->cfg->fetch_batch);
	}
	if (reclaim) {
		w->next_reclaim = now + WORKER_RECLAIM_US;
		/* Site records of workers gone for 10 min (crashed, or the
		 * site went quiet): one thread per worker tidies. */
		if (w->index == 0)
			rconn_cmd(&w->ctl, on_ignore, NULL, "EVAL %s 1 %s %s %d",
			    RM_LUA_SITES_PRUNE, RM_KEY_SITES, ms, 600000);
	}
	sites_publish(w, ms);
	/* Heartbeat: ts FS threads FS host FS pid FS delivered FS held. */
	snprintf(hb, sizeof(hb), "%s%c1%c%s%c%d%c%lu%c%u", ms, RM_FS, RM_FS,
	    w->host, RM_FS, (int)getpid(), RM_FS,
	    w->nout[OUTCOME_DELIVERED], RM_FS, w->nheld);
	rconn_cmd(&w->ctl, on_ignore, NULL, "HSET %s %s %s", RM_KEY_WORKERS,
	    w->consumer, hb);
	rconn_cmd(&w->ctl, on_workers, w, "HVALS %s", RM_KEY_WORKERS);
	/* Late suppressions, learnt within a refresh. */
	if (w->nheld == 0)
		strset_clear(&w->recent_supp);
	if (!w->supp_tailing) {
		if (w->supp_log_id[0] == '\0' &&
		    rconn_cmd(&w->ctl, on_supp_log_start, w,
		    "XREVRANGE %s + - COUNT 1", RM_KEY_SUPPRESS_LOG) == 0)
			w->supp_tailing = true;
		else if (w->supp_log_id[0] != '\0' &&
		    rconn_cmd(&w->ctl, on_supp_log, w,
		    "XREAD COUNT 1000 STREAMS %s %s", RM_KEY_SUPPRESS_LOG,
		    w->supp_log_id) == 0)
			w->supp_tailing = true;
	}
	if (w->until_done && reply->elements == 0 && w->nheld == 0 &&
	    !w->draining) {
		log_info("no active campaign left thread=%u: finishing",
		    w->index);
		w->draining = true;
	}
	fetch_more(w);
}

static void
refresh(struct loop *l, struct loop_timer *t)
{
	struct wthread	*w = t->arg;

	loop_timer_at(l, t, mono_now() + WORKER_REFRESH_US);
	if (w->ctl.connected)
		warm_report(w);
	if (w->refreshing || !w->ctl.connected)
		return;
	if (rconn_cmd(&w->ctl, on_active, w, "SMEMBERS %s", RM_KEY_ACTIVE) == 0)
		w->refreshing = true;
}

static void
on_ctl_up(struct rconn *rc)
{
	struct wthread	*w = rc->arg;

	w->refreshing = false;
	w->supp_tailing = false;
	for (struct wcamp *c = w->camps; c != NULL; c = c->next)
		c->polling = false;
	batches_resend(w);
	refresh(&w->loop, &w->t_refresh);
}

static void
on_fetch_up(struct rconn *rc)
{
	struct wthread	*w = rc->arg;

	w->fetching = false;
	fetch_more(w);
}

/* ------------------------------------------------------------------ */
/* threads                                                             */

static void
begin_drain(struct wthread *w)
{
	struct smtpc_result	res;
	struct rcpt		*r;
	unsigned		 n = 0;

	w->draining = true;
	/* Queued but not started: straight back to Redis, due now. */
	result_set(&res, SMTPC_ST_CONNECT, 0, "", "%s", "worker draining");
	for (struct dest *d = w->dall; d != NULL; d = d->next)
		while ((r = dest_pop(d)) != NULL) {
			rec_add(w, r, OUTCOME_DEFERRED, true, &res, NULL);
			n++;
		}
	log_info("draining thread=%u requeued=%u in_flight_sessions=%u",
	    w->index, n, w->nconns);
}

static void *
wthread_main(void *arg)
{
	struct wthread	*w = arg;
	const struct config *cfg = w->cfg;
	int		 r;

	if ((r = loop_init(&w->loop, 1024)) != 0) {
		log_msgc(LOG_ERROR, -r, "io_uring setup failed thread=%u",
		    w->index);
		w->rc = 1;
		return NULL;
	}
	{
		struct dns_opts	o = {
			.servers = cfg->dns_servers,
			.timeout_ms = cfg->dns_timeout_ms,
			.tries = cfg->dns_tries,
			.cache_max = cfg->dns_cache_size,
			.port = cfg->remote_port,
		};

		if ((w->dns = dns_new(&w->loop, &o)) == NULL)
			log_error("dns resolver setup failed thread=%u: domains "
			    "without a static route will be deferred",
			    w->index);
	}
	w->fetch.on_up = on_fetch_up;
	w->fetch.arg = w;
	w->ctl.on_up = on_ctl_up;
	w->ctl.arg = w;
	rconn_start(&w->fetch, &w->loop, "fetch", cfg->redis_host,
	    cfg->redis_port, cfg->redis_password, cfg->redis_db);
	rconn_start(&w->ctl, &w->loop, "ctl", cfg->redis_host,
	    cfg->redis_port, cfg->redis_password, cfg->redis_db);
	w->t_refresh.fn = refresh;
	w->t_refresh.arg = w;
	loop_timer_at(&w->loop, &w->t_refresh, mono_now() + WORKER_REFRESH_US);
	for (;;) {
		mono_us	wait = WORKER_TICK_US, now = mono_now();

		if (w->wake != 0) {
			wait = w->wake <= now ? 0 : w->wake - now;
			if (wait > WORKER_TICK_US)
				wait = WORKER_TICK_US;
			w->wake = 0;
		}
		if ((r = loop_run_once(&w->loop, wait)) < 0) {
			log_msgc(LOG_ERROR, -r, "io_uring wait failed");
			w->rc = 1;
			break;
		}
		if (worker_drain_flag && !w->draining)
			begin_drain(w);
		sched_pass(w);
		rec_flush(w);
		fetch_more(w);
		if (!w->draining || w->nconns > 0 || w->nheld > 0 ||
		    w->nrecs > 0)
			continue;
		if (w->ctl.connected && w->ctl.npending == 0 &&
		    w->unconfirmed == NULL && w->resend == NULL)
			break;
		/*
		 * Outcomes not confirmed by Redis: wait for it to come back,
		 * but not forever; their jobs stay pending and are reclaimed
		 * (recording is idempotent, so nothing is counted twice).
		 */
		if (w->ctl.connected)
			w->wait_redis_until = 0;
		else if (w->wait_redis_until == 0)
			w->wait_redis_until = mono_now() + 30000000;
		else if (mono_now() > w->wait_redis_until) {
			log_warn("thread=%u exiting with unrecorded outcomes: "
			    "redis unreachable for 30 s", w->index);
			break;
		}
	}
	log_info("thread=%u done delivered=%lu bounced=%lu deferred=%lu "
	    "failed=%lu expired=%lu suppressed=%lu cancelled=%lu "
	    "redis_cmds=%lu", w->index,
	    w->nout[OUTCOME_DELIVERED], w->nout[OUTCOME_BOUNCED],
	    w->nout[OUTCOME_DEFERRED], w->nout[OUTCOME_FAILED],
	    w->nout[OUTCOME_EXPIRED], w->nout[OUTCOME_SUPPRESSED],
	    w->nout[OUTCOME_CANCELLED], w->fetch.ncmds + w->ctl.ncmds);
	if (w->ctl.connected) {
		warm_report(w);
		rconn_cmd(&w->ctl, on_ignore, NULL, "HDEL %s %s",
		    RM_KEY_WORKERS, w->consumer);
		for (struct dest *d = w->dall; d != NULL; d = d->next)
			if (d->pub_ever) {
				buf_reset(&w->b_tmp);
				buf_printf(&w->b_tmp, "%s%c%s", d->name, RM_FS,
				    w->consumer);
				rconn_cmd(&w->ctl, on_ignore, NULL, "HDEL %s %b",
				    RM_KEY_SITES, w->b_tmp.data, w->b_tmp.len);
			}
		/* Slots still held (a reply lost on the way): give back. */
		for (struct dest *d = w->dall; d != NULL; d = d->next)
			if (d->fleet_slots && (d->slots_held > 0 ||
			    d->slots_resync || d->slots_inflight))
				dest_slots_send(w, d, LEASE_RELEASE, 100000);
		for (int i = 0; i < 100 && w->ctl.npending > 0; i++)
			loop_run_once(&w->loop, 10000);
	}
	rconn_free(&w->fetch);
	rconn_free(&w->ctl);
	dns_free(w->dns);
	w->dns = NULL;
	/* Let the cancels complete before the ring goes. */
	for (int i = 0; i < 100 && w->loop.ninflight > 0; i++)
		loop_run_once(&w->loop, 10000);
	loop_fini(&w->loop);
	return NULL;
}

void
worker_request_drain(void)
{
	worker_drain_flag = 1;
}

static int
resolve_route(const struct config_route *rt, struct dest *d)
{
	struct addrinfo	 hints, *res = NULL;
	char		 port[8];
	int		 e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", rt->port);
	/*
	 * Resolved once, before the threads start, so no loop thread ever
	 * blocks in a resolver (MX lookups through c-ares come later).
	 */
	if ((e = getaddrinfo(rt->host, port, &hints, &res)) != 0) {
		log_error("route domain=%s host=%s cannot be resolved: %s",
		    rt->domain, rt->host, gai_strerror(e));
		return -ENOENT;
	}
	if ((d->hosts = calloc(1, sizeof(*d->hosts))) == NULL) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	snprintf(d->hosts[0].name, sizeof(d->hosts[0].name), "%s", rt->host);
	for (struct addrinfo *ai = res; ai != NULL &&
	    d->hosts[0].naddrs < DNS_ADDR_MAX; ai = ai->ai_next)
		memcpy(&d->hosts[0].addrs[d->hosts[0].naddrs++], ai->ai_addr,
		    ai->ai_addrlen);
	d->nhosts = 1;
	freeaddrinfo(res);
	return 0;
}

/* Everything the threads share that is loaded from files at startup. */
struct wsecrets {
	SSL_CTX		 *ssl_ctx;
	struct dkim_key	**keys;		/* cfg->ndkim of them */
	struct token_key *verp, *unsub;
};

static void
secrets_free(const struct config *cfg, struct wsecrets *s)
{
	SSL_CTX_free(s->ssl_ctx);
	for (size_t i = 0; s->keys != NULL && i < cfg->ndkim; i++)
		dkim_key_free(s->keys[i]);
	free(s->keys);
	token_key_free(s->verp);
	token_key_free(s->unsub);
	memset(s, 0, sizeof(*s));
}

/*
 * TLS context, DKIM keys and token secrets; a missing, unreadable or
 * wrong key is a startup error (2) naming the config entry.
 */
static int
secrets_load(const struct config *cfg, struct wsecrets *s)
{
	char	err[512];

	memset(s, 0, sizeof(*s));

	/* Made unless no layer of the config ever uses STARTTLS. */
	if (config_tls_used(cfg) &&
	    (s->ssl_ctx = tls_client_ctx_new(cfg->tls_ca_file, err,
	    sizeof(err))) == NULL) {
		log_error("TLS setup failed: %s", err);
		goto fail1;
	}

	if (cfg->pool != NULL && config_pool_find(cfg, cfg->pool) == NULL) {
		log_error("smtp.pool: no pool named '%s' under pools:",
		    cfg->pool);
		goto fail2;
	}

	if (cfg->ndkim > 0 &&
	    (s->keys = calloc(cfg->ndkim, sizeof(*s->keys))) == NULL)
		goto fail1;
	for (size_t i = 0; i < cfg->ndkim; i++) {
		const struct config_dkim *cd = &cfg->dkim[i];

		s->keys[i] = dkim_key_load(cd->key_file, cd->domain, cd->selector,
		    err, sizeof(err));
		if (s->keys[i] == NULL) {
			log_error("dkim[%zu] domain=%s selector=%s: %s", i,
			    cd->domain, cd->selector, err);
			goto fail2;
		}
		if ((cd->algorithm == CONFIG_DKIM_RSA &&
		    dkim_key_alg(s->keys[i]) != DKIM_ALG_RSA_SHA256) ||
		    (cd->algorithm == CONFIG_DKIM_ED25519 &&
		    dkim_key_alg(s->keys[i]) != DKIM_ALG_ED25519_SHA256)) {
			log_error("dkim[%zu] domain=%s selector=%s: %s holds a "
			    "%s key, not the configured algorithm", i,
			    cd->domain, cd->selector, cd->key_file,
			    dkim_alg_name(dkim_key_alg(s->keys[i])));
			goto fail2;
		}
		if (cfg->ndkim_headers > 0 && dkim_key_add_headers(s->keys[i],
		    (const char *const *)cfg->dkim_headers,
		    cfg->ndkim_headers, err, sizeof(err)) != 0) {
			log_error("dkim_headers: %s", err);
			goto fail2;
		}
	}
	if (cfg->verp_bounce_domain != NULL &&
	    (s->verp = token_key_load(cfg->verp_secret_file, err,
	    sizeof(err))) == NULL) {
		log_error("verp.secret_file: %s", err);
		goto fail2;
	}

	if (cfg->unsub_secret_file != NULL &&
	    (s->unsub = token_key_load(cfg->unsub_secret_file, err,
	    sizeof(err))) == NULL) {
		log_error("unsubscribe.secret_file: %s", err);
		goto fail2;
	}
	return 0;
fail1:
	secrets_free(cfg, s);
	return 1;
fail2:
	secrets_free(cfg, s);
	return 2;
}

int
worker_run(const struct config *cfg, const struct worker_opts *o)
{
	SSL_CTX		*ssl_ctx;
	struct dkim_key	**keys;
	struct token_key *verp, *unsub;
	struct wthread	*ws;
	struct dest	*proto;
	char		 host[64];
	unsigned	 n = o->threads ? o->threads : cfg->worker_threads;
	int		 rc = 0;

	if (n == 0) {
		long	nc = sysconf(_SC_NPROCESSORS_ONLN);

		n = nc > 0 ? (unsigned)nc : 1;
	}
	struct wsecrets	 sec;

	if ((rc = secrets_load(cfg, &sec)) != 0)
		return rc;
	ssl_ctx = sec.ssl_ctx;
	keys = sec.keys;
	verp = sec.verp;
	unsub = sec.unsub;
	if ((proto = calloc(cfg->nroutes + 1, sizeof(*proto))) == NULL)
		return 1;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		proto[i].is_static = true;
		snprintf(proto[i].name, sizeof(proto[i].name), "%s:%u",
		    cfg->routes[i].host, cfg->routes[i].port);
		resolve_route(&cfg->routes[i], &proto[i]);
	}
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "host");
	host[sizeof(host) - 1] = '\0';
	srandom((unsigned)(getpid() ^ (unsigned)wall_ms()));
	if (tls_session_cache_init(&tls_cache, 1024 * n) != 0)
		return 1;
	if ((ws = calloc(n, sizeof(*ws))) == NULL)
		return 1;
	log_info("worker starting threads=%u redis=%s:%u routes=%zu", n,
	    cfg->redis_host, cfg->redis_port, cfg->nroutes);
	for (unsigned i = 0; i < n; i++) {
		struct wthread	*w = &ws[i];

		w->cfg = cfg;
		w->index = i;
		w->until_done = o->until_done;
		snprintf(w->consumer, sizeof(w->consumer), "%s-%d-%u", host,
		    (int)getpid(), i);
		snprintf(w->host, sizeof(w->host), "%s", host);
		strset_init(&w->recent_supp, 1000000);
		w->ssl_ctx = ssl_ctx;
		if (cfg->ndkim > 0 &&
		    (w->dkim = calloc(cfg->ndkim, sizeof(*w->dkim))) == NULL)
			return 1;
		for (size_t k = 0; k < cfg->ndkim; k++)
			if ((w->dkim[k] = dkim_key_dup(keys[k])) == NULL)
				return 1;
		w->ndkim = cfg->ndkim;
		if (verp != NULL && (w->verp = token_key_dup(verp)) == NULL)
			return 1;
		if (unsub != NULL && (w->unsub = token_key_dup(unsub)) == NULL)
			return 1;
		w->fleet_threads = n;
		w->ndests = cfg->nroutes;
		w->dests = calloc(cfg->nroutes ? cfg->nroutes : 1,
		    sizeof(*w->dests));
		if (w->dests == NULL)
			return 1;
		memcpy(w->dests, proto, cfg->nroutes * sizeof(*w->dests));
		for (size_t d = 0; d < cfg->nroutes; d++) {
			struct dest	*dd = &w->dests[d];

			/* Each thread has its own copy of the host state. */
			if (proto[d].nhosts > 0 && (dd->hosts = malloc(
			    sizeof(*dd->hosts))) != NULL)
				*dd->hosts = *proto[d].hosts;
			else
				dd->nhosts = 0;
		}
		if (cfg->nwarmup_sources > 0) {
			if ((w->warm = calloc(cfg->nwarmup_sources,
			    sizeof(*w->warm))) == NULL)
				return 1;
			w->nwarm = cfg->nwarmup_sources;
			for (size_t k = 0; k < w->nwarm; k++)
				w->warm[k].ip = cfg->warmup_sources[k];
		}
		tpl_scratch_init(&w->tsc);
		buf_init(&w->b_subj);
		buf_init(&w->b_text);
		buf_init(&w->b_html);
		buf_init(&w->b_msg);
		buf_init(&w->b_tmp);
		if (pthread_create(&w->tid, NULL, wthread_main, w) != 0) {
			log_error("cannot start thread %u", i);
			return 1;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct wthread	*w = &ws[i];

		pthread_join(w->tid, NULL);
		rc |= w->rc;
		while (w->camps != NULL) {
			struct wcamp	*c = w->camps;

			w->camps = c->next;
			wcamp_free(c);
		}
		while (w->jobs != NULL) {
			struct job	*j = w->jobs;

			w->jobs = j->next;
			free(j);
		}
		while (w->dall != NULL) {
			struct dest	*d = w->dall;

			w->dall = d->next;
			while (d->dqs != NULL) {
				struct dq	*q = d->dqs;

				d->dqs = q->next;
				free(q);
			}
			free(d->hosts);
			free(d->src_nconn);
			free(d);
		}
		for (size_t d = 0; d < w->ndests; d++)
			free(w->dests[d].hosts);
		free(w->dests);
		free(w->recs);
		strset_fini(&w->recent_supp);
		buf_free(&w->rargs.store);
		free(w->rargs.off);
		free(w->rargs.len);
		free(w->rargs.argv);
		for (size_t k = 0; k < w->ndkim; k++)
			dkim_key_free(w->dkim[k]);
		free(w->dkim);
		token_key_free(w->verp);
		token_key_free(w->unsub);
		while (w->resend != NULL || w->unconfirmed != NULL) {
			struct batch	*b = w->resend ? w->resend :
			    w->unconfirmed;

			if (b == w->resend)
				w->resend = b->next;
			else
				w->unconfirmed = b->next;
			free(b->cmd);
			free(b);
		}
		free(w->warm);
		tpl_scratch_fini(&w->tsc);
		buf_free(&w->b_subj);
		buf_free(&w->b_text);
		buf_free(&w->b_html);
		buf_free(&w->b_msg);
		buf_free(&w->b_tmp);
	}
	free(ws);
	sctl_free_all();
	tls_session_cache_fini(&tls_cache);
	for (size_t i = 0; i < cfg->nroutes; i++)
		free(proto[i].hosts);
	free(proto);
	secrets_free(cfg, &sec);
	return rc;
}

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
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "core/config.h"
#include "core/loop.h"
#include "core/rconn.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mono.h"
#include "mail/addr.h"
#include "mail/msg.h"
#include "out/outcome.h"
#include "out/schema.h"
#include "out/smtpc.h"
#include "out/worker.h"
#include "templates/tpl.h"

#define WORKER_TICK_US		100000	/* longest wait in the loop */
#define WORKER_REFRESH_US	1000000	/* campaign list, retries */
#define WORKER_RECLAIM_US	10000000/* XAUTOCLAIM of stale jobs */
#define WORKER_EVENTS_MAXLEN	"1000000"
#define WORKER_RBUF		4096

static volatile sig_atomic_t worker_drain_flag;

struct wthread;
struct job;

struct wcamp {
	struct wthread	*w;
	char		 id[RM_ID_MAX + 1];
	char		 k_meta[RM_KEY_MAX], k_stats[RM_KEY_MAX];
	char		 k_jobs[RM_KEY_MAX], k_retry[RM_KEY_MAX];
	char		 k_done[RM_KEY_MAX];
	enum { WC_LOADING, WC_READY, WC_BROKEN } st;
	bool		 active;	/* in RM_KEY_ACTIVE at the last look */
	bool		 seen;		/* scratch for refresh */
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
	struct rcpt	*next;		/* destination queue */
};

struct job {
	struct wcamp	*camp;
	char		 id[48];	/* stream entry id */
	unsigned	 n, remaining;
	bool		 reclaimed;
	struct rcpt	*rcpts;		/* in this block */
	struct job	*next;		/* thread's job list */
};

struct dest {
	const struct config_route *route;
	char		 name[320];	/* "host:port" */
	struct sockaddr_storage addr;
	socklen_t	 addrlen;
	bool		 resolved;
	struct rcpt	*qhead, *qtail;
	unsigned	 nq;
	unsigned	 nconn;		/* sessions open or opening */
	unsigned	 nopening;	/* not yet READY */
	unsigned	 nfail;
	mono_us		 backoff_until;
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
	struct smtpc	 smtp;
	struct loop_op	 op_conn, op_recv, op_send, op_cancel;
	struct buf	 tx;		/* owns: bytes in the send op */
	struct buf	 wire;		/* owns: the message smtpc borrows */
	struct rcpt	*cur;
	mono_us		 deadline;
	unsigned	 ndeliv;
	char		 why[256];
	struct sconn	*next;
	char		 rbuf[WORKER_RBUF];
};

struct rec {
	struct rcpt	*r;
	enum outcome	 o;
	bool		 requeue;	/* drain: back to Redis now, no attempt */
	struct smtpc_result res;
	const char	*dest;
};

struct wthread {
	const struct config *cfg;
	unsigned	 index;
	pthread_t	 tid;
	char		 consumer[128];
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
	struct dest	*dests;		/* one per route */
	size_t		 ndests;
	struct sconn	*conns;
	unsigned	 nconns;
	struct rec	*recs;
	size_t		 nrecs, caprecs;
	struct loop_timer t_refresh;
	mono_us		 next_reclaim;
	struct buf	 b_subj, b_text, b_html, b_msg, b_tmp;
	unsigned long	 ndelivered, nbounced, ndeferred, nfailed;
	int		 rc;
};

/* ------------------------------------------------------------------ */
/* campaigns                                                           */

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
	x->r = r;
	x->o = o;
	x->requeue = requeue;
	x->res = *res;
	x->dest = dest;
	if (!requeue) {
		switch (o) {
		case OUTCOME_DELIVERED:
			w->ndelivered++;
			break;
		case OUTCOME_BOUNCED:
			w->nbounced++;
			break;
		case OUTCOME_DEFERRED:
			w->ndeferred++;
			break;
		case OUTCOME_FAILED:
			w->nfailed++;
			break;
		}
	}
}

/* A recipient's outcome is known (not yet recorded). */
static void
rcpt_done(struct wthread *w, struct rcpt *r, enum outcome o,
    const struct smtpc_result *res, const char *dest)
{
	struct smtpc_result	 tmp;

	if (o == OUTCOME_DEFERRED &&
	    r->attempt + 1 >= w->cfg->retry_max_attempts) {
		/* Out of attempts: the last error becomes final. */
		tmp = *res;
		o = OUTCOME_FAILED;
		res = &tmp;
	}
	rec_add(w, r, o, false, res, dest);
	w->nheld--;
}

static void
on_exec(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;

	if (reply == NULL) {
		log_warn("record batch lost with the connection thread=%u "
		    "(jobs stay pending and will be reclaimed)", w->index);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		log_error("record batch failed conn=%s reply=\"%s\"", rc->name,
		    reply->str);
	else if (reply->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < reply->elements; i++)
			if (reply->element[i]->type == REDIS_REPLY_ERROR)
				log_error("record command %zu failed: %s", i,
				    reply->element[i]->str);
}

static void
on_ignore(struct rconn *rc, void *r, void *priv)
{
	(void)rc;
	(void)r;
	(void)priv;
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
rec_event(struct wthread *w, const struct rec *x)
{
	const struct rcpt	*r = x->r;
	struct wcamp		*c = r->job->camp;
	char			 idx[24], att[12], code[8], ts[24];
	const char		*argv[32];
	size_t			 lens[32];
	int			 n = 0;

#define ARG(s) do { argv[n] = (s); lens[n] = strlen(s); n++; } while (0)
#define ARGN(s, l) do { argv[n] = (s); lens[n] = (l); n++; } while (0)
	snprintf(idx, sizeof(idx), "%llu", (unsigned long long)r->idx);
	snprintf(att, sizeof(att), "%u", r->attempt + 1);
	snprintf(code, sizeof(code), "%d", x->res.code);
	snprintf(ts, sizeof(ts), "%lld", (long long)wall_ms());
	ARG("XADD"); ARG(RM_KEY_EVENTS); ARG("MAXLEN"); ARG("~");
	ARG(WORKER_EVENTS_MAXLEN); ARG("*");
	ARG("v"); ARG(RM_SCHEMA_VERSION);
	ARG("type"); ARG(outcome_name(x->o));
	ARG("campaign"); ARG(c->id);
	ARG("rcpt"); ARGN(r->vals[c->email_col], r->lens[c->email_col]);
	ARG("idx"); ARG(idx);
	ARG("attempt"); ARG(att);
	ARG("code"); ARG(code);
	ARG("esc"); ARG(x->res.esc);
	ARG("stage"); ARG(smtpc_stage_name(x->res.stage));
	ARG("dest"); ARG(x->dest ? x->dest : "");
	ARG("text"); ARG(x->res.text);
	ARG("ts"); ARG(ts);
#undef ARG
#undef ARGN
	rconn_cmdargv(&w->ctl, on_ignore, NULL, n, argv, lens);
}

/* Send one campaign's run of records [from, to) as one MULTI. */
static void
rec_flush_camp(struct wthread *w, size_t from, size_t to)
{
	struct wcamp	*c = w->recs[from].r->job->camp;
	unsigned long	 cnt[4] = { 0, 0, 0, 0 };
	char		 num[32], due[32];
	int64_t		 now = wall_ms();

	rconn_cmd(&w->ctl, on_ignore, NULL, "MULTI");
	for (size_t i = from; i < to; i++) {
		struct rec	*x = &w->recs[i];
		struct rcpt	*r = x->r;
		struct job	*j = r->job;

		if (x->requeue || x->o == OUTCOME_DEFERRED) {
			unsigned att = x->requeue ? r->attempt : r->attempt + 1;
			int64_t	 when = now;

			if (!x->requeue) {
				/* Fixed delay, +-10% jitter: no retry storm. */
				int64_t	d = w->cfg->retry_delay_ms;

				when = now + d - d / 10 +
				    (d > 10 ? random() % (d / 5 + 1) : 0);
			}
			buf_reset(&w->b_tmp);
			buf_printf(&w->b_tmp, "%llu%c%u%c",
			    (unsigned long long)r->idx, RM_FS, att, RM_FS);
			row_pack(&w->b_tmp, r, c->ncols);
			snprintf(due, sizeof(due), "%lld", (long long)when);
			rconn_cmd(&w->ctl, on_ignore, NULL, "ZADD %s %s %b",
			    c->k_retry, due, w->b_tmp.data, w->b_tmp.len);
		} else {
			snprintf(num, sizeof(num), "%llu",
			    (unsigned long long)r->idx);
			rconn_cmd(&w->ctl, on_ignore, NULL, "SETBIT %s %s 1",
			    c->k_done, num);
		}
		if (!x->requeue) {
			cnt[x->o]++;
			rec_event(w, x);
		}
		if (--j->remaining == 0) {
			rconn_cmd(&w->ctl, on_ignore, NULL, "XACK %s %s %s",
			    c->k_jobs, RM_GROUP, j->id);
			rconn_cmd(&w->ctl, on_ignore, NULL, "XDEL %s %s",
			    c->k_jobs, j->id);
		}
	}
	for (int o = 0; o < 4; o++)
		if (cnt[o] > 0)
			rconn_cmd(&w->ctl, on_ignore, NULL,
			    "HINCRBY %s %s %lu", c->k_stats,
			    outcome_counter((enum outcome)o), cnt[o]);
	snprintf(num, sizeof(num), "%lld", (long long)now);
	rconn_cmd(&w->ctl, on_ignore, NULL, "EVAL %s 3 %s %s %s %s %s",
	    RM_LUA_FINISH, c->k_meta, c->k_stats, RM_KEY_ACTIVE, c->id, num);
	rconn_cmd(&w->ctl, on_exec, w, "EXEC");
}

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

static void
rec_flush(struct wthread *w)
{
	size_t	 i, start;

	if (w->nrecs == 0 || !w->ctl.connected)
		return;
	for (start = 0, i = 1; i <= w->nrecs; i++) {
		if (i == w->nrecs || w->recs[i].r->job->camp !=
		    w->recs[start].r->job->camp) {
			rec_flush_camp(w, start, i);
			start = i;
		}
	}
	w->nrecs = 0;
	/* Jobs whose every recipient is now recorded can go. */
	for (struct job **pp = &w->jobs, *j; (j = *pp) != NULL;) {
		if (j->remaining == 0) {
			*pp = j->next;
			free(j);
		} else {
			pp = &j->next;
		}
	}
}

/* ------------------------------------------------------------------ */
/* destinations and SMTP sessions                                      */

static struct dest *
dest_for(struct wthread *w, const char *email, size_t len)
{
	const struct config_route *rt;
	const char		*dom;
	size_t			 domlen;

	if ((dom = addr_domain(email, len, &domlen)) == NULL)
		return NULL;
	if ((rt = config_route_find(w->cfg, dom, domlen)) == NULL)
		return NULL;
	return &w->dests[rt - w->cfg->routes];
}

static void
dest_push(struct dest *d, struct rcpt *r)
{
	r->next = NULL;
	if (d->qtail)
		d->qtail->next = r;
	else
		d->qhead = r;
	d->qtail = r;
	d->nq++;
}

static struct rcpt *
dest_pop(struct dest *d)
{
	struct rcpt	*r = d->qhead;

	if (r == NULL)
		return NULL;
	d->qhead = r->next;
	if (d->qhead == NULL)
		d->qtail = NULL;
	d->nq--;
	return r;
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

static uint32_t
stage_timeout_ms(const struct config *cfg, enum smtpc_stage st)
{
	switch (st) {
	case SMTPC_ST_CONNECT:
		return cfg->timeouts.connect;
	case SMTPC_ST_BANNER:
		return cfg->timeouts.banner;
	case SMTPC_ST_EHLO:
		return cfg->timeouts.ehlo;
	case SMTPC_ST_MAIL:
		return cfg->timeouts.mail_from;
	case SMTPC_ST_RCPT:
		return cfg->timeouts.rcpt_to;
	case SMTPC_ST_DATA:
		return cfg->timeouts.data;
	case SMTPC_ST_DOT:
		return cfg->timeouts.data_dot;
	case SMTPC_ST_QUIT:
		return cfg->timeouts.ehlo;
	}
	return cfg->timeouts.ehlo;
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
		ms = c->w->cfg->timeouts.idle;
	else if (c->st == SC_CONNECTING)
		ms = c->w->cfg->timeouts.connect;
	else if (buf_unread(&c->tx) > 0 && smtpc_stage(&c->smtp) == SMTPC_ST_DOT)
		ms = c->w->cfg->timeouts.data_block;
	else
		ms = stage_timeout_ms(c->w->cfg, smtpc_stage(&c->smtp));
	c->deadline = mono_now() + (mono_us)ms * 1000;
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
	char			 local[160];
	int			 e;

	while (c->cur == NULL && c->smtp.state == SMTPC_READY) {
		if (c->ndeliv >= w->cfg->max_deliveries_per_connection ||
		    (w->draining && c->d->nq == 0)) {
			c->idle = false;
			sconn_events(c, smtpc_quit(&c->smtp));
			return;
		}
		if ((r = dest_pop(c->d)) == NULL) {
			if (!c->idle) {
				c->idle = true;
				sconn_set_deadline(c);
			}
			return;
		}
		c->idle = false;
		cp = r->job->camp;
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
		e = tpl_render(cp->t_subject, &row, &w->b_subj);
		if (e == 0 && cp->t_text) {
			e = tpl_render(cp->t_text, &row, &w->b_text);
			in.text = w->b_text.data ? w->b_text.data : "";
			in.textlen = w->b_text.len;
		}
		if (e == 0 && cp->t_html) {
			e = tpl_render(cp->t_html, &row, &w->b_html);
			in.html = w->b_html.data ? w->b_html.data : "";
			in.htmllen = w->b_html.len;
		}
		in.subject = w->b_subj.data ? w->b_subj.data : "";
		if (e == 0)
			e = msg_build(&w->b_msg, &in);
		if (e == 0)
			e = smtp_dotstuff(&c->wire, w->b_msg.data, w->b_msg.len);
		if (e != 0) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "5.3.0",
			    "message could not be built: %s", strerror(-e));
			rcpt_done(w, r, OUTCOME_FAILED, &res, c->d->name);
			continue;
		}
		e = smtpc_send_msg(&c->smtp, cp->from_addr, in.to,
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
			rcpt_done(w, c->cur, outcome_of(&c->smtp.result),
			    &c->smtp.result, d->name);
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
			d->nfail = 0;
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
	if (c->st == SC_OPEN)
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
		struct buf	tmp;

		if (buf_unread(&c->smtp.out) == 0)
			return;
		/*
		 * Swap instead of copying: the kernel reads tx while smtpc
		 * may append to out (a realloc would move memory under it).
		 */
		buf_reset(&c->tx);
		tmp = c->tx;
		c->tx = c->smtp.out;
		c->smtp.out = tmp;
	}
	if ((sqe = loop_sqe(&c->w->loop, &c->op_send)) == NULL) {
		sconn_events(c, smtpc_conn_lost(&c->smtp, "io_uring full"));
		return;
	}
	io_uring_prep_send(sqe, c->fd, buf_peek(&c->tx), buf_unread(&c->tx),
	    MSG_NOSIGNAL);
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
		sconn_events(c, smtpc_conn_lost(&c->smtp, res == 0 ?
		    "connection closed by peer" : strerror(-res)));
		return;
	}
	sconn_events(c, smtpc_recv(&c->smtp, c->rbuf, (size_t)res));
	sconn_arm_recv(c);
}

/* Connection-level failure: back off the destination. */
static void
dest_failed(struct wthread *w, struct dest *d, const char *why)
{
	mono_us	delay = 1000000;

	d->nfail++;
	for (unsigned i = 1; i < d->nfail && delay < 60000000; i++)
		delay *= 2;
	if (delay > 60000000)
		delay = 60000000;
	d->backoff_until = mono_now() + delay;
	log_warn("dest=%s failure=%u backoff_ms=%lld reason=\"%s\"", d->name,
	    d->nfail, (long long)(delay / 1000), why);
	/* Nobody can deliver the queue now: hand it back to Redis. */
	if (d->nconn == 0)
		dest_defer_all(w, d, why);
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
	if (c->counted_open) {
		c->counted_open = false;
		d->nopening--;
	}
	if (failed)
		dest_failed(w, d, c->why[0] ? c->why : "session failed");
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

static void
sconn_open(struct wthread *w, struct dest *d)
{
	struct sconn		*c;
	struct io_uring_sqe	*sqe;
	int			 one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->w = w;
	c->d = d;
	c->fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	smtpc_init(&c->smtp, w->cfg->ehlo_name, w->cfg->pipelining);
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
	d->nopening++;
	c->counted_open = true;
	c->st = SC_CONNECTING;
	if (c->fd < 0) {
		sconn_close(c, strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sconn_set_deadline(c);
	if ((sqe = loop_sqe(&w->loop, &c->op_conn)) == NULL) {
		sconn_close(c, "io_uring full");
		return;
	}
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&d->addr,
	    d->addrlen);
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
		if (c->idle && (c->d->nq > 0 || w->draining)) {
			sconn_dispatch(c);
			sconn_flush(c);
			continue;
		}
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
	for (size_t i = 0; i < w->ndests; i++) {
		struct dest	*d = &w->dests[i];

		if (d->nq == 0)
			continue;
		if (!d->resolved) {
			dest_defer_all(w, d, "route host could not be resolved");
			continue;
		}
		if (now < d->backoff_until) {
			if (d->nconn == 0)
				dest_defer_all(w, d, "destination backing off "
				    "after connection failures");
			continue;
		}
		while (d->nconn < w->cfg->connection_limit &&
		    d->nq > d->nopening)
			sconn_open(w, d);
	}
}

/* ------------------------------------------------------------------ */
/* fetching jobs                                                       */

static void
job_enqueue(struct wthread *w, struct job *j)
{
	struct smtpc_result	 res;

	for (unsigned i = 0; i < j->n; i++) {
		struct rcpt	*r = &j->rcpts[i];
		struct dest	*d;
		const char	*email;

		if (r->bad) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "5.6.0", "%s",
			    "malformed recipient record in the job stream");
			rcpt_done(w, r, OUTCOME_FAILED, &res, NULL);
			continue;
		}
		if (r->job == NULL)
			continue;	/* skipped: already done */
		email = r->vals[j->camp->email_col];
		if ((d = dest_for(w, email, r->lens[j->camp->email_col])) ==
		    NULL) {
			result_set(&res, SMTPC_ST_CONNECT, 0, "4.4.4",
			    "no route for the domain of %s", email);
			rcpt_done(w, r, OUTCOME_DEFERRED, &res, NULL);
			continue;
		}
		dest_push(d, r);
	}
}

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
on_done_bits(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct job	*j = priv;
	struct wthread	*w = rc->arg;
	uint64_t	 base = j->rcpts[0].idx / 8 * 8;
	unsigned	 skipped = 0;

	/* Recipients whose done bit is set already have an outcome. */
	if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
		for (unsigned i = 0; i < j->n; i++) {
			uint64_t	bit = j->rcpts[i].idx - base;

			if (bit / 8 < reply->len &&
			    (((unsigned char)reply->str[bit / 8] >>
			    (7 - bit % 8)) & 1)) {
				j->rcpts[i].job = NULL;
				j->rcpts[i].bad = false;
				skipped++;
			}
		}
	}
	if (skipped > 0) {
		log_info("campaign=%s job=%s reclaimed skipped=%u (already "
		    "recorded)", j->camp->id, j->id, skipped);
		j->remaining -= skipped;
		w->nheld -= skipped;
	}
	if (j->remaining == 0) {
		rconn_cmd(&w->ctl, on_ignore, NULL, "XACK %s %s %s",
		    j->camp->k_jobs, RM_GROUP, j->id);
		rconn_cmd(&w->ctl, on_ignore, NULL, "XDEL %s %s",
		    j->camp->k_jobs, j->id);
		job_unlink_free(w, j);
		return;
	}
	/* Restore the back pointer cleared for skipped ones only. */
	for (unsigned i = 0; i < j->n; i++)
		if (j->rcpts[i].job != NULL || j->rcpts[i].bad)
			j->rcpts[i].job = j;
	job_enqueue(w, j);
}

static void
take_entries(struct wthread *w, struct wcamp *c, const redisReply *entries,
    bool reclaimed)
{
	char	 s[24], e[24];

	if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t k = 0; k < entries->elements; k++) {
		struct job	*j = job_from_entry(w, c, entries->element[k]);

		if (j == NULL)
			continue;
		j->next = w->jobs;
		w->jobs = j;
		w->nheld += j->n;
		if (!reclaimed) {
			job_enqueue(w, j);
			continue;
		}
		j->reclaimed = true;
		snprintf(s, sizeof(s), "%llu",
		    (unsigned long long)(j->rcpts[0].idx / 8));
		snprintf(e, sizeof(e), "%llu",
		    (unsigned long long)(j->rcpts[j->n - 1].idx / 8));
		if (rconn_cmd(&w->ctl, on_done_bits, j, "GETRANGE %s %s %s",
		    c->k_done, s, e) != 0)
			on_done_bits(&w->ctl, NULL, j);
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

static void
fetch_more(struct wthread *w)
{
	const char	*argv[16 + 2 * 256];
	size_t		 lens[16 + 2 * 256];
	char		 count[16];
	int		 n = 0, nk = 0;

	if (w->fetching || w->draining || !w->fetch.connected ||
	    w->nheld >= w->cfg->max_queued)
		return;
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
	for (struct wcamp *c = w->camps; c != NULL && nk < 256; c = c->next)
		if (c->st == WC_READY && c->active)
			argv[n + nk++] = c->k_jobs;
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

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 2)
		return;
	if (reply->element[1]->type == REDIS_REPLY_ARRAY &&
	    reply->element[1]->elements > 0)
		log_info("campaign=%s reclaimed=%zu thread=%u", c->id,
		    reply->element[1]->elements, ((struct wthread *)rc->arg)->index);
	take_entries(rc->arg, c, reply->element[1], true);
}

/* ------------------------------------------------------------------ */
/* periodic refresh: campaign list, retries, reclaim                   */

static void
on_active(struct rconn *rc, void *r, void *priv)
{
	redisReply	*reply = r;
	struct wthread	*w = priv;
	mono_us		 now = mono_now();
	bool		 reclaim = now >= w->next_reclaim;
	char		 ms[24], idle[24], lim[16];

	(void)rc;
	w->refreshing = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (struct wcamp *c = w->camps; c != NULL; c = c->next)
		c->seen = false;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply	*e = reply->element[i];
		struct wcamp		*c;

		if (e->type != REDIS_REPLY_STRING)
			continue;
		if ((c = wcamp_find(w, e->str, e->len)) == NULL &&
		    (c = wcamp_new(w, e->str, e->len)) != NULL)
			wcamp_load(w, c);
		if (c == NULL)
			continue;
		c->seen = true;
		c->active = true;
		if (c->st == WC_BROKEN)
			wcamp_load(w, c);
	}
	snprintf(ms, sizeof(ms), "%lld", (long long)wall_ms());
	snprintf(idle, sizeof(idle), "%u", w->cfg->claim_idle_ms);
	snprintf(lim, sizeof(lim), "%u", w->cfg->fetch_batch * 16);
	for (struct wcamp *c = w->camps; c != NULL; c = c->next) {
		c->active = c->seen;
		if (!c->active || c->st != WC_READY)
			continue;
		/* Due retries go back into the stream (atomic script). */
		rconn_cmd(&w->ctl, on_ignore, NULL, "EVAL %s 2 %s %s %s %s",
		    RM_LUA_RETRY_PUMP, c->k_retry, c->k_jobs, ms, lim);
		if (reclaim && !w->draining)
			rconn_cmd(&w->ctl, on_reclaim, c,
			    "XAUTOCLAIM %s %s %s %s 0-0 COUNT %u", c->k_jobs,
			    RM_GROUP, w->consumer, idle, w->cfg->fetch_batch);
	}
	if (reclaim)
		w->next_reclaim = now + WORKER_RECLAIM_US;
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
	for (size_t i = 0; i < w->ndests; i++)
		while ((r = dest_pop(&w->dests[i])) != NULL) {
			rec_add(w, r, OUTCOME_DEFERRED, true, &res, NULL);
			w->nheld--;
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
		if ((r = loop_run_once(&w->loop, WORKER_TICK_US)) < 0) {
			log_msgc(LOG_ERROR, -r, "io_uring wait failed");
			w->rc = 1;
			break;
		}
		if (worker_drain_flag && !w->draining)
			begin_drain(w);
		sched_pass(w);
		rec_flush(w);
		fetch_more(w);
		if (w->draining && w->nconns == 0 && w->nheld == 0 &&
		    w->nrecs == 0 && w->ctl.npending == 0 &&
		    (w->jobs == NULL || !w->ctl.connected))
			break;
	}
	log_info("thread=%u done delivered=%lu bounced=%lu deferred=%lu "
	    "failed=%lu", w->index, w->ndelivered, w->nbounced, w->ndeferred,
	    w->nfailed);
	rconn_free(&w->fetch);
	rconn_free(&w->ctl);
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
	memcpy(&d->addr, res->ai_addr, res->ai_addrlen);
	d->addrlen = res->ai_addrlen;
	d->resolved = true;
	freeaddrinfo(res);
	return 0;
}

int
worker_run(const struct config *cfg, const struct worker_opts *o)
{
	struct wthread	*ws;
	struct dest	 proto[256];
	char		 host[64];
	unsigned	 n = o->threads ? o->threads : cfg->worker_threads;
	int		 rc = 0;

	if (n == 0) {
		long	nc = sysconf(_SC_NPROCESSORS_ONLN);

		n = nc > 0 ? (unsigned)nc : 1;
	}
	if (cfg->nroutes > 256) {
		log_error("too many routes (%zu > 256)", cfg->nroutes);
		return 1;
	}
	memset(proto, 0, sizeof(proto));
	for (size_t i = 0; i < cfg->nroutes; i++) {
		proto[i].route = &cfg->routes[i];
		snprintf(proto[i].name, sizeof(proto[i].name), "%s:%u",
		    cfg->routes[i].host, cfg->routes[i].port);
		resolve_route(&cfg->routes[i], &proto[i]);
	}
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "host");
	host[sizeof(host) - 1] = '\0';
	srandom((unsigned)(getpid() ^ (unsigned)wall_ms()));
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
		w->ndests = cfg->nroutes;
		w->dests = calloc(cfg->nroutes ? cfg->nroutes : 1,
		    sizeof(*w->dests));
		if (w->dests == NULL)
			return 1;
		memcpy(w->dests, proto, cfg->nroutes * sizeof(*w->dests));
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
		free(w->dests);
		free(w->recs);
		buf_free(&w->b_subj);
		buf_free(&w->b_text);
		buf_free(&w->b_html);
		buf_free(&w->b_msg);
		buf_free(&w->b_tmp);
	}
	free(ws);
	return rc;
}

/* rconn: hiredis async over io_uring polls. See rconn.h. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/rconn.h"
#include "lib/log.h"

struct rconn_cb {
	struct rconn	*rc;
	void		(*fn)(struct rconn *, void *, void *);
	void		*privdata;
};

static void rconn_connect(struct rconn *rc);

static void
rconn_arm(struct rconn *rc, bool write)
{
	struct loop_op		*op;
	struct io_uring_sqe	*sqe;

	if (rc->io == NULL || rc->ac == NULL)
		return;
	op = write ? &rc->io->op_write : &rc->io->op_read;
	if (op->busy)
		return;
	if ((sqe = loop_sqe(rc->loop, op)) == NULL)
		return;
	io_uring_prep_poll_add(sqe, rc->ac->c.fd, write ? POLLOUT : POLLIN);
}

/* Retire the current io block: cancel its polls, free it when idle. */
static void
rconn_io_retire(struct rconn *rc)
{
	struct rconn_io		*io = rc->io;
	struct loop_op		*ops[2];
	struct io_uring_sqe	*sqe;

	if (io == NULL)
		return;
	rc->io = NULL;
	io->rc = NULL;
	io->ac = NULL;
	ops[0] = &io->op_read;
	ops[1] = &io->op_write;
	for (int i = 0; i < 2; i++) {
		if (!ops[i]->busy)
			continue;
		if ((sqe = io_uring_get_sqe(&rc->loop->ring)) == NULL)
			continue;
		io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)ops[i]);
		io_uring_sqe_set_data(sqe, NULL);
	}
	if (!io->op_read.busy && !io->op_write.busy)
		free(io);
}

static void
rconn_poll_done(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct rconn_io	*io = op->arg;
	struct rconn	*rc = io->rc;
	bool		 write = (op == &io->op_write);

	(void)l;
	(void)flags;
	if (rc == NULL) {
		/* A poll of a context already gone. */
		if (!io->op_read.busy && !io->op_write.busy)
			free(io);
		return;
	}
	if (res < 0 && res != -ECANCELED) {
		log_warn("redis conn=%s poll error=%d", rc->name, -res);
	}
	if (write) {
		if (rc->want_write)
			redisAsyncHandleWrite(rc->ac);
	} else {
		if (rc->want_read)
			redisAsyncHandleRead(rc->ac);
	}
	/* The handlers may have freed the context (disconnect). */
	if (rc->ac == NULL)
		return;
	if (rc->want_read)
		rconn_arm(rc, false);
	if (rc->want_write)
		rconn_arm(rc, true);
}

static void
ev_add_read(void *p)
{
	struct rconn	*rc = p;

	rc->want_read = true;
	rconn_arm(rc, false);
}

static void
ev_del_read(void *p)
{
	((struct rconn *)p)->want_read = false;
}

static void
ev_add_write(void *p)
{
	struct rconn	*rc = p;

	rc->want_write = true;
	rconn_arm(rc, true);
}

static void
ev_del_write(void *p)
{
	((struct rconn *)p)->want_write = false;
}

static void
ev_cleanup(void *p)
{
	struct rconn	*rc = p;

	rc->want_read = rc->want_write = false;
}

static void
rconn_retry(struct loop *l, struct loop_timer *t)
{
	(void)l;
	rconn_connect(t->arg);
}

static void
rconn_schedule_retry(struct rconn *rc)
{
	mono_us	delay = 100000;

	if (rc->closing)
		return;
	for (unsigned i = 0; i < rc->nfail && delay < 5000000; i++)
		delay *= 2;
	if (delay > 5000000)
		delay = 5000000;
	rc->nfail++;
	loop_timer_at(rc->loop, &rc->retry, mono_now() + delay);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn	*rc = ac->data;

	if (rc == NULL)
		return;
	if (status != REDIS_OK && !rc->closing)
		log_warn("redis conn=%s lost host=%s port=%u reason=\"%s\"",
		    rc->name, rc->host, rc->port,
		    ac->errstr ? ac->errstr : "?");
	rc->ac = NULL;		/* hiredis frees it after this returns */
	rc->connected = false;
	rc->want_read = rc->want_write = false;
	rconn_io_retire(rc);
	rconn_schedule_retry(rc);
}

static void
on_auth(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply	*reply = r;
	struct rconn	*rc = priv;

	(void)ac;
	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR)
		log_error("redis conn=%s setup failed reply=\"%.*s\"", rc->name,
		    (int)reply->len, reply->str);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn	*rc = ac->data;

	if (status != REDIS_OK) {
		log_warn("redis conn=%s connect failed host=%s port=%u "
		    "reason=\"%s\"", rc->name, rc->host, rc->port,
		    ac->errstr ? ac->errstr : "?");
		rc->ac = NULL;
		rc->want_read = rc->want_write = false;
		rconn_io_retire(rc);
		rconn_schedule_retry(rc);
		return;
	}
	if (rc->nfail > 0)
		log_info("redis conn=%s reconnected host=%s port=%u", rc->name,
		    rc->host, rc->port);
	rc->connected = true;
	rc->nfail = 0;
	if (rc->password != NULL && rc->password[0] != '\0')
		redisAsyncCommand(rc->ac, on_auth, rc, "AUTH %s", rc->password);
	if (rc->db != 0)
		redisAsyncCommand(rc->ac, on_auth, rc, "SELECT %u", rc->db);
	if (rc->on_up != NULL)
		rc->on_up(rc);
}

static void
rconn_connect(struct rconn *rc)
{
	redisAsyncContext	*ac;

	if (rc->closing)
		return;
	ac = redisAsyncConnect(rc->host, rc->port);
	if (ac == NULL) {
		rconn_schedule_retry(rc);
		return;
	}
	if (ac->err) {
		log_warn("redis conn=%s connect failed host=%s port=%u "
		    "reason=\"%s\"", rc->name, rc->host, rc->port, ac->errstr);
		redisAsyncFree(ac);
		rconn_schedule_retry(rc);
		return;
	}
	if ((rc->io = calloc(1, sizeof(*rc->io))) == NULL) {
		redisAsyncFree(ac);
		rconn_schedule_retry(rc);
		return;
	}
	rc->io->rc = rc;
	rc->io->ac = ac;
	rc->io->op_read.cb = rconn_poll_done;
	rc->io->op_read.arg = rc->io;
	rc->io->op_write.cb = rconn_poll_done;
	rc->io->op_write.arg = rc->io;
	rc->ac = ac;
	ac->data = rc;
	ac->ev.data = rc;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* hiredis waits for writability to learn the connect result. */
	ev_add_write(rc);
}

int
rconn_start(struct rconn *rc, struct loop *l, const char *name,
    const char *host, uint16_t port, const char *password, uint32_t db)
{
	void	(*on_up)(struct rconn *) = rc->on_up;
	void	*arg = rc->arg;

	memset(rc, 0, sizeof(*rc));
	rc->on_up = on_up;
	rc->arg = arg;
	rc->loop = l;
	rc->name = name;
	if (strlen(host) >= sizeof(rc->host))
		return -EINVAL;
	strcpy(rc->host, host);
	rc->port = port;
	rc->password = (char *)(uintptr_t)password;
	rc->db = db;
	rc->retry.fn = rconn_retry;
	rc->retry.arg = rc;
	rconn_connect(rc);
	return 0;
}

static void
rconn_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rconn_cb	*cb = priv;

	(void)ac;
	cb->rc->npending--;
	cb->fn(cb->rc, reply, cb->privdata);
	free(cb);
}

int
rconn_cmdargv(struct rconn *rc, void (*fn)(struct rconn *, void *, void *),
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
	struct rconn_cb	*cb;

	if (rc->ac == NULL || !rc->connected)
		return -ENOTCONN;
	if ((cb = malloc(sizeof(*cb))) == NULL)
		return -ENOMEM;
	cb->rc = rc;
	cb->fn = fn;
	cb->privdata = privdata;
	if (redisAsyncCommandArgv(rc->ac, rconn_reply, cb, argc, argv,
	    argvlen) != REDIS_OK) {
		free(cb);
		return -ENOTCONN;
	}
	rc->npending++;
	rc->ncmds++;
	return 0;
}

int
rconn_cmd_formatted(struct rconn *rc,
    void (*fn)(struct rconn *, void *, void *), void *privdata,
    const char *cmd, size_t len)
{
	struct rconn_cb	*cb;

	if (rc->ac == NULL || !rc->connected)
		return -ENOTCONN;
	if ((cb = malloc(sizeof(*cb))) == NULL)
		return -ENOMEM;
	cb->rc = rc;
	cb->fn = fn;
	cb->privdata = privdata;
	if (redisAsyncFormattedCommand(rc->ac, rconn_reply, cb, cmd, len) !=
	    REDIS_OK) {
		free(cb);
		return -ENOTCONN;
	}
	rc->npending++;
	rc->ncmds++;
	return 0;
}

int
rconn_cmd(struct rconn *rc, void (*fn)(struct rconn *, void *, void *),
    void *privdata, const char *fmt, ...)
{
	struct rconn_cb	*cb;
	va_list		 ap;
	int		 r;

	if (rc->ac == NULL || !rc->connected)
		return -ENOTCONN;
	if ((cb = malloc(sizeof(*cb))) == NULL)
		return -ENOMEM;
	cb->rc = rc;
	cb->fn = fn;
	cb->privdata = privdata;
	va_start(ap, fmt);
	r = redisvAsyncCommand(rc->ac, rconn_reply, cb, fmt, ap);
	va_end(ap);
	if (r != REDIS_OK) {
		free(cb);
		return -ENOTCONN;
	}
	rc->npending++;
	rc->ncmds++;
	return 0;
}

void
rconn_close(struct rconn *rc)
{
	rc->closing = true;
	loop_timer_cancel(rc->loop, &rc->retry);
	if (rc->ac != NULL)
		redisAsyncDisconnect(rc->ac);
}

void
rconn_free(struct rconn *rc)
{
	rc->closing = true;
	loop_timer_cancel(rc->loop, &rc->retry);
	if (rc->ac != NULL) {
		redisAsyncContext	*ac = rc->ac;

		/* Its disconnect callback retires the io block (if connected). */
		redisAsyncFree(ac);
		rc->ac = NULL;
	}
	rconn_io_retire(rc);
	rc->connected = false;
}

bool
rconn_idle(const struct rconn *rc)
{
	return rc->ac == NULL && rc->io == NULL;
}

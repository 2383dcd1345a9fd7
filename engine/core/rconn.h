/*
 * rconn: a hiredis async connection driven by the worker's io_uring.
 *
 * Owns: one redisAsyncContext (replaced on reconnect), its two poll ops
 * and its reconnect timer. hiredis asks for read/write interest through
 * its ev hooks; we arm POLL_ADD ops for them and call
 * redisAsyncHandleRead/Write on completion, so no Redis I/O ever blocks
 * the loop thread. On disconnect it reconnects with exponential backoff
 * (100 ms .. 5 s); callbacks of commands in flight get a NULL reply.
 * Must not touch: job semantics (callers own what commands mean).
 * Worker-local, not thread-safe.
 */
#ifndef ENGINE_CORE_RCONN_H
#define ENGINE_CORE_RCONN_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "core/loop.h"

/*
 * The poll ops of one hiredis context. A poll holds a reference to the
 * socket, so after a disconnect its completion can arrive late: the io
 * block lives on (dead) until both ops have completed, and a new context
 * gets a new block.
 */
struct rconn_io {
	struct loop_op		 op_read;
	struct loop_op		 op_write;
	struct rconn		*rc;		/* NULL once dead */
	redisAsyncContext	*ac;		/* borrowed; NULL once dead */
};

struct rconn {
	struct loop		*loop;		/* borrowed */
	redisAsyncContext	*ac;		/* owns; NULL while down */
	char			 host[64];
	uint16_t		 port;
	char			*password;	/* borrowed from config, may be NULL */
	uint32_t		 db;
	const char		*name;		/* for logs ("fetch", "record") */
	struct rconn_io		*io;		/* owns: polls of the current context */
	bool			 want_read, want_write;
	bool			 connected;
	bool			 closing;
	unsigned		 nfail;		/* consecutive failures, for backoff */
	struct loop_timer	 retry;
	/* Called once each time the connection is (re)established. */
	void			(*on_up)(struct rconn *rc);
	void			*arg;		/* for the owner */
	unsigned		 npending;	/* commands sent, replies not yet seen */
	unsigned long		 ncmds;		/* commands sent in all (metrics) */
};

/* Start connecting; 0 or -errno. host must be an IP literal. */
int	rconn_start(struct rconn *rc, struct loop *l, const char *name,
	    const char *host, uint16_t port, const char *password,
	    uint32_t db);
/*
 * Queue a command (redisFormatCommand syntax). fn(rc, reply, privdata)
 * runs when the reply arrives, with reply NULL when the connection was
 * lost. Returns 0, or -ENOTCONN when down (fn is not called).
 */
int	rconn_cmd(struct rconn *rc, void (*fn)(struct rconn *, void *, void *),
	    void *privdata, const char *fmt, ...);
int	rconn_cmdargv(struct rconn *rc,
	    void (*fn)(struct rconn *, void *, void *), void *privdata,
	    int argc, const char **argv, const size_t *argvlen);
/* A command already in RESP form (redisFormatCommandArgv). */
int	rconn_cmd_formatted(struct rconn *rc,
	    void (*fn)(struct rconn *, void *, void *), void *privdata,
	    const char *cmd, size_t len);
/* Close; ops in flight complete later (check rconn_idle before freeing). */
void	rconn_close(struct rconn *rc);
bool	rconn_idle(const struct rconn *rc);
/*
 * Drop the connection now: pending callbacks get a NULL reply. The poll
 * ops still complete later through the loop (keep running it until the
 * loop has nothing in flight).
 */
void	rconn_free(struct rconn *rc);

#endif

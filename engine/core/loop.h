/*
 * loop: one io_uring per worker thread, hidden behind a few functions.
 *
 * Owns: the ring, the list of timers, the submission policy. Every
 * submission carries a struct loop_op pointer as user_data; on completion
 * the op's callback runs with the CQE's res and flags. An op must stay
 * alive until its completion arrives (the kernel may still write into its
 * buffers): owners count ops in flight and free only at zero.
 * Must not touch: protocol logic. Worker-local, not thread-safe.
 */
#ifndef ENGINE_CORE_LOOP_H
#define ENGINE_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "lib/mono.h"

struct loop;
struct loop_op;

typedef void loop_cb(struct loop *l, struct loop_op *op, int res,
	    unsigned flags);

struct loop_op {
	loop_cb	*cb;
	void	*arg;		/* borrowed: the owner (conn, redis ctx, ...) */
	bool	 busy;		/* submitted, completion not yet seen */
};

struct loop_timer {
	mono_us		 due;		/* 0 = not armed */
	void		(*fn)(struct loop *l, struct loop_timer *t);
	void		*arg;
	struct loop_timer *next;	/* armed list, unsorted (few timers) */
};

struct loop {
	struct io_uring	 ring;
	struct loop_timer *timers;
	unsigned	 ninflight;	/* submitted ops not yet completed */
	uint64_t	 ncqes;
	bool		 stop;
};

/* 0 or -errno (io_uring_queue_init). entries: SQ size; CQ is 4x. */
int	loop_init(struct loop *l, unsigned entries);
void	loop_fini(struct loop *l);
/*
 * A fresh SQE bound to op (op->busy set). Flushes the SQ to the kernel
 * when it is full, so it only fails (NULL) if the kernel refuses work.
 */
struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op);
/*
 * One iteration: submit, wait up to max_wait_us for at least one CQE (or
 * the nearest timer), run the callbacks of every ready CQE, then the due
 * timers. Returns the number of CQEs handled or -errno.
 */
int	loop_run_once(struct loop *l, mono_us max_wait_us);
/* Arm (or re-arm) a timer to fire once at `due`. */
void	loop_timer_at(struct loop *l, struct loop_timer *t, mono_us due);
void	loop_timer_cancel(struct loop *l, struct loop_timer *t);

#endif

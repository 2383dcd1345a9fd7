/* loop: io_uring per worker thread. See loop.h. */
#include <errno.h>
#include <string.h>

#include <liburing.h>

#include "core/loop.h"
#include "lib/log.h"

int
loop_init(struct loop *l, unsigned entries)
{
	struct io_uring_params	p;
	int			r;

	memset(l, 0, sizeof(*l));
	memset(&p, 0, sizeof(p));
	/*
	 * A CQ four times the SQ: "it's very important to never overflow
	 * the CQ ring" (liburing examples/proxy.c). CLAMP keeps a large
	 * request working on small kernels; SINGLE_ISSUER because only this
	 * thread submits.
	 */
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP |
	    IORING_SETUP_SINGLE_ISSUER;
	p.cq_entries = entries * 4;
	r = io_uring_queue_init_params(entries, &l->ring, &p);
	if (r == -EINVAL) {
		/* Kernels before 6.0 lack SINGLE_ISSUER. */
		p.flags &= ~(unsigned)IORING_SETUP_SINGLE_ISSUER;
		r = io_uring_queue_init_params(entries, &l->ring, &p);
	}
	return r;
}

void
loop_fini(struct loop *l)
{
	io_uring_queue_exit(&l->ring);
}

struct io_uring_sqe *
loop_sqe(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe	*sqe;

	if ((sqe = io_uring_get_sqe(&l->ring)) == NULL) {
		/* SQ full: hand what we have to the kernel and retry. */
		if (io_uring_submit(&l->ring) < 0)
			return NULL;
		if ((sqe = io_uring_get_sqe(&l->ring)) == NULL)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, op);
	op->busy = true;
	l->ninflight++;
	return sqe;
}

void
loop_timer_at(struct loop *l, struct loop_timer *t, mono_us due)
{
	struct loop_timer	*it;

	for (it = l->timers; it != NULL; it = it->next)
		if (it == t)
			break;
	if (it == NULL) {
		t->next = l->timers;
		l->timers = t;
	}
	t->due = due;
}

void
loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	struct loop_timer	**pp;

	for (pp = &l->timers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	t->due = 0;
	t->next = NULL;
}

static void
loop_run_timers(struct loop *l)
{
	struct loop_timer	*t, **pp;
	mono_us			 now = mono_now();
	bool			 again = true;

	/* A timer callback may re-arm itself or others: rescan after each. */
	while (again) {
		again = false;
		for (pp = &l->timers; (t = *pp) != NULL; pp = &t->next) {
			if (t->due > now)
				continue;
			*pp = t->next;
			t->next = NULL;
			t->due = 0;
			t->fn(l, t);
			again = true;
			break;
		}
	}
}

int
loop_run_once(struct loop *l, mono_us max_wait_us)
{
	struct io_uring_cqe	*cqe;
	struct __kernel_timespec ts;
	struct loop_timer	*t;
	mono_us			 now = mono_now(), wait = max_wait_us;
	unsigned		 head, n = 0;
	int			 r;

	for (t = l->timers; t != NULL; t = t->next)
		if (t->due - now < wait)
			wait = t->due > now ? t->due - now : 0;
	ts.tv_sec = wait / 1000000;
	ts.tv_nsec = (wait % 1000000) * 1000;
	r = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN &&
	    r != -EBUSY)
		return r;
	/*
	 * Callbacks may submit new SQEs but never reap CQEs, so walking the
	 * CQ while they run is safe; advance once per batch.
	 */
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct loop_op	*op = io_uring_cqe_get_data(cqe);
		int		 res = cqe->res;
		unsigned	 flags = cqe->flags;

		n++;
		if (op == NULL)
			continue;
		if (!(flags & IORING_CQE_F_MORE)) {
			op->busy = false;
			l->ninflight--;
		}
		op->cb(l, op, res, flags);
	}
	io_uring_cq_advance(&l->ring, n);
	l->ncqes += n;
	loop_run_timers(l);
	return (int)n;
}

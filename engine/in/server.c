/* server: io_uring network side of `ringmail inbound`. See server.h. */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/mono.h"
#include "core/loop.h"
#include "core/tls.h"

#include "in/auth.h"
#include "in/imapd.h"
#include "in/inreport.h"
#include "in/insess.h"
#include "in/maildir.h"
#include "in/pop3d.h"
#include "in/server.h"
#include "in/smtpd.h"

#define INBOUND_RBUF		16384
#define INBOUND_TURN_US		250000	/* longest wait per loop turn */
#define INBOUND_MAX_MAILBOXES	8	/* distinct mailboxes per message */
#define INBOUND_WIRE_HIWAT	(2u * 1024 * 1024)	/* unsent bytes */

static const char *const inbound_proto_name[INBOUND__N] = {
	"smtp", "imap", "imaps", "pop3", "pop3s",
};

struct inbound_listener {
	struct inbound_server	*srv;
	enum inbound_proto	 proto;
	int			 fd;		/* owns; -1 = off */
	uint16_t		 port;
	struct loop_op		 op;
	struct loop_op		 op_cancel;	/* at shutdown */
	struct sockaddr_storage	 sa;		/* accept's peer */
	socklen_t		 salen;
};

/* A message being stored (see store_next). */
struct inbound_store {
	int			 step;		/* enum store_step */
	struct maildir_delivery	 d;
	int			 dirfd;		/* new/ while its fsync runs */
	char			 boxes[INBOUND_MAX_MAILBOXES][AUTH_USER_MAX + 1];
	size_t			 nbox, ibox;
	char			 hdr[1024];	/* Return-Path, Received */
	size_t			 hlen;
};

/* Connection states: OPEN -> CLOSING (ops cancelled) -> reaped. */
struct inbound_conn {
	struct inbound_server	*srv;
	enum inbound_proto	 proto;
	int			 fd;		/* owns */
	char			 peer[INET6_ADDRSTRLEN];
	bool			 closing;
	bool			 close_after_flush;
	bool			 tls_on;
	bool			 starttls_wait;	/* handshake before
						 * *_tls_started() */
	bool			 more;		/* INSESS_MORE pending */
	bool			 idle;		/* INSESS_IDLE_WAIT */
	mono_us			 delay_until;	/* INSESS_DELAY; 0 = none */
	mono_us			 deadline;
	mono_us			 next_tick;	/* IDLE rescan */
	struct loop_op		 op_recv, op_send, op_cancel;
	struct loop_op		 op_store;	/* fsyncs of a delivery */
	struct inbound_store	 store;
	struct buf		 out;		/* owns: session output */
	struct buf		 wire;		/* owns: bytes to send */
	struct buf		 tx;		/* owns: in flight */
	struct buf		 plain;		/* owns: TLS plaintext in */
	struct tls_conn		 tls;
	struct smtpd_session	*smtp;		/* owns one of these */
	struct imapd_session	*imap;
	struct pop3d_session	*pop3;
	struct inbound_conn	*next;
	char			 rbuf[INBOUND_RBUF];
};

struct inbound_server {
	struct inbound_conf	 conf;		/* copy; pointers borrowed */
	struct loop		 loop;
	bool			 loop_ok;
	struct inbound_listener	 lis[INBOUND__N];
	struct inbound_conn	*conns;
	unsigned		 nconns;
	bool			 new_mail;	/* wake IDLE sessions */
	volatile int		 stop;
	struct inbound_stats	 st;
};

static void conn_close(struct inbound_conn *c, const char *why);
static void conn_handle(struct inbound_conn *c, unsigned fl);

/* ------------------------------------------------------------------ */
/* TLS context */

SSL_CTX *
inbound_tls_ctx_new(const char *cert_file, const char *key_file, char *err,
    size_t errlen)
{
	SSL_CTX		*ctx;
	unsigned long	 e;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5:!RC4:!3DES") != 1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	e = ERR_peek_last_error();
	snprintf(err, errlen, "TLS (%s, %s): %s", cert_file, key_file,
	    e ? ERR_reason_error_string(e) : "setup failed");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Listeners */

/* "host:port" or "[v6]:port" -> a bound, listening socket. */
static int
listener_open(const char *spec, uint16_t *port_out, char *err, size_t errlen)
{
	char			 host[256], port[8];
	const char		*colon;
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	int			 fd = -1, one = 1, r;
	size_t			 hl;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (rb == NULL || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - spec - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, hl);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			goto bad;
		hl = (size_t)(colon - spec);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, spec, hl);
	}
	host[hl] = '\0';
	snprintf(port, sizeof(port), "%s", colon + 1);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(hl > 0 ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", spec, gai_strerror(r));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 512) != 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", spec, strerror(-r));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	*port_out = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port_out = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
bad:
	snprintf(err, errlen, "%s: expected host:port", spec);
	return -EINVAL;
}

static void on_accept(struct loop *l, struct loop_op *op, int res,
    unsigned flags);

static void
listener_arm(struct inbound_listener *li)
{
	struct io_uring_sqe *sqe;

	if (li->fd < 0 || li->op.busy || li->srv->stop)
		return;
	if ((sqe = loop_sqe(&li->srv->loop, &li->op)) == NULL)
		return;		/* retried at the next turn */
	li->salen = sizeof(li->sa);
	io_uring_prep_accept(sqe, li->fd, (struct sockaddr *)&li->sa,
	    &li->salen, SOCK_CLOEXEC);
}

/* ------------------------------------------------------------------ */
/* Sending */

/* Move session output (encrypted when TLS is on) to the wire queue. */
static void
conn_emit(struct inbound_conn *c)
{
	if (buf_unread(&c->out) > 0) {
		if (c->tls_on) {
			if (tls_conn_write(&c->tls, buf_peek(&c->out),
			    buf_unread(&c->out)) != 0)
				c->close_after_flush = true;
		} else {
			buf_append(&c->wire, buf_peek(&c->out),
			    buf_unread(&c->out));
		}
		buf_reset(&c->out);
	}
	if (c->tls_on && buf_unread(&c->tls.net_out) > 0) {
		buf_append(&c->wire, buf_peek(&c->tls.net_out),
		    buf_unread(&c->tls.net_out));
		buf_reset(&c->tls.net_out);
	}
}

static void on_send(struct loop *l, struct loop_op *op, int res,
    unsigned flags);

static void
conn_flush(struct inbound_conn *c)
{
	struct io_uring_sqe	*sqe;

	if (c->closing || c->op_send.busy)
		return;
	if (buf_unread(&c->tx) == 0) {
		struct buf	tmp;

		if (buf_unread(&c->wire) == 0) {
			if (c->close_after_flush)
				conn_close(c, NULL);
			return;
		}
		/* Swap, never copy: the kernel reads tx while the session
		 * appends to wire (a realloc would move memory under it). */
		buf_reset(&c->tx);
		tmp = c->tx;
		c->tx = c->wire;
		c->wire = tmp;
	}
	if ((sqe = loop_sqe(&c->srv->loop, &c->op_send)) == NULL) {
		conn_close(c, "io_uring full");
		return;
	}
	io_uring_prep_send(sqe, c->fd, buf_peek(&c->tx), buf_unread(&c->tx),
	    MSG_NOSIGNAL);
}

static unsigned
conn_timeout_ms(const struct inbound_conn *c)
{
	const struct inbound_conf *cf = &c->srv->conf;

	switch (c->proto) {
	case INBOUND_SMTP:
		return cf->smtp_timeout_ms;
	case INBOUND_IMAP:
	case INBOUND_IMAPS:
		return cf->imap_timeout_ms;
	case INBOUND_POP3:
	case INBOUND_POP3S:
		return cf->pop3_timeout_ms;
	case INBOUND__N:
		break;
	}
	return 60000;
}

static void on_recv(struct loop *l, struct loop_op *op, int res,
    unsigned flags);

static void
conn_arm_recv(struct inbound_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->closing || c->close_after_flush || c->op_recv.busy ||
	    c->delay_until != 0 || c->more || c->store.step != 0)
		return;
	/* Backpressure: a client that pipelines commands without reading
	 * the answers is not read until they drain. */
	if (buf_unread(&c->wire) + buf_unread(&c->tx) > INBOUND_WIRE_HIWAT)
		return;
	if ((sqe = loop_sqe(&c->srv->loop, &c->op_recv)) == NULL) {
		conn_close(c, "io_uring full");
		return;
	}
	io_uring_prep_recv(sqe, c->fd, c->rbuf, sizeof(c->rbuf), 0);
}

/* ------------------------------------------------------------------ */
/* Sessions */

static unsigned
sess_input(struct inbound_conn *c, const char *p, size_t n)
{
	if (c->smtp != NULL)
		return smtpd_session_input(c->smtp, p, n, &c->out);
	if (c->imap != NULL)
		return imapd_session_input(c->imap, p, n, &c->out);
	return pop3d_session_input(c->pop3, p, n, &c->out);
}

static void
sess_tls_started(struct inbound_conn *c)
{
	if (c->smtp != NULL)
		smtpd_session_tls_started(c->smtp);
	else if (c->imap != NULL)
		imapd_session_tls_started(c->imap);
	else
		pop3d_session_tls_started(c->pop3);
}

/* Which user's maildir takes a copy for recipient r. */
static const char *
rcpt_mailbox(const struct inbound_server *s, const struct smtpd_rcpt *r,
    char *tmp, size_t tmpsz)
{
	char		path[MAILDIR_PATH_MAX];
	struct stat	st;

	if (r->kind == SMTPD_RCPT_BOUNCE)
		return s->conf.bounce_mailbox;
	/* A reply-domain user with a maildir gets their own copy. */
	if (r->local_len < tmpsz && strchr(r->addr, '@') != NULL) {
		memcpy(tmp, r->addr, r->local_len);
		tmp[r->local_len] = '\0';
		for (char *q = tmp; *q != '\0'; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		if (auth_user_valid(tmp) && snprintf(path, sizeof(path),
		    "%s/%s/cur", s->conf.root, tmp) < (int)sizeof(path) &&
		    stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return tmp;
	}
	return s->conf.reply_mailbox;
}

/*
 * Storing a message, driven by the ring so fsyncs of several connections
 * overlap. Per mailbox copy:
 *   open tmp/ file, write (page cache)  -> FSYNC file   (STORE_FILE)
 *   close, rename into new/, open new/  -> FSYNC new/   (STORE_DIR)
 * then the next mailbox, then 250 (or 451 on any failure). The session is
 * in its WAIT state meanwhile and we do not read, so input stays bounded.
 */
enum store_step {
	STORE_IDLE,
	STORE_FILE,	/* fsync of the tmp/ file in flight */
	STORE_DIR,	/* fsync of new/ in flight */
};

static void store_next(struct inbound_conn *c);

static void
store_finish(struct inbound_conn *c, int r)
{
	struct inbound_server	*s = c->srv;
	struct inbound_store	*st = &c->store;
	struct smtpd_message	 m;
	bool			 ok = r == 0;

	st->step = STORE_IDLE;
	if (smtpd_session_message(c->smtp, &m) != 0)
		ok = false;
	else if (!ok) {
		log_msgc(LOG_WARN, -r, "inbound store peer=%s from=<%s> "
		    "nrcpt=%zu", c->peer, m.mail_from, m.nrcpt);
		s->st.nstore_fail++;
	} else {
		s->st.nmessages++;
		s->new_mail = true;
		log_info("inbound received peer=%s from=<%s> nrcpt=%zu "
		    "size=%zu tls=%d", c->peer, m.mail_from, m.nrcpt, m.len,
		    (int)m.tls);
		/* Stored: now tell the sending side what it means. */
		for (size_t i = 0; i < m.nrcpt; i++) {
			struct inreport rep;

			if (m.rcpt[i].kind != SMTPD_RCPT_BOUNCE)
				continue;
			if (inreport_analyze(s->conf.verp_key, m.rcpt[i].addr,
			    m.rcpt[i].local_len, m.data, m.len, &rep) != 0)
				continue;
			log_info("inbound report rcpt=<%s> kind=%s campaign=%s "
			    "idx=%u addr=<%s> esc=%s category=%s",
			    m.rcpt[i].addr, inreport_kind_name(rep.kind),
			    rep.campaign, rep.index, rep.rcpt, rep.esc,
			    rep.category);
			if (s->conf.on_report != NULL)
				s->conf.on_report(s->conf.arg, &rep);
		}
	}
	conn_handle(c, smtpd_session_delivered(c->smtp, ok, &c->out));
}

static void
on_store(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct inbound_conn	*c = op->arg;
	struct inbound_store	*st = &c->store;
	int			 r;

	(void)l;
	(void)flags;
	if (st->step == STORE_FILE) {
		close(st->d.fd);
		st->d.fd = -1;
		if (res < 0 || c->closing) {
			maildir_deliver_abort(&st->d);
			if (!c->closing)
				store_finish(c, res < 0 ? res : -EIO);
			else
				st->step = STORE_IDLE;
			return;
		}
		if ((r = maildir_deliver_commit(&st->d, false, 0)) != 0) {
			maildir_deliver_abort(&st->d);
			store_finish(c, r);
			return;
		}
		/* The file is in new/; make the rename durable. */
		char p[MAILDIR_PATH_MAX + 8];
		struct io_uring_sqe *sqe;

		snprintf(p, sizeof(p), "%s/new", st->d.dir);
		if ((st->dirfd = open(p, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) < 0) {
			store_finish(c, -errno);
			return;
		}
		if ((sqe = loop_sqe(&c->srv->loop, &c->op_store)) == NULL) {
			close(st->dirfd);
			st->dirfd = -1;
			store_finish(c, -EAGAIN);
			return;
		}
		io_uring_prep_fsync(sqe, st->dirfd, 0);
		st->step = STORE_DIR;
		return;
	}
	if (st->step == STORE_DIR) {
		close(st->dirfd);
		st->dirfd = -1;
		if (c->closing) {
			st->step = STORE_IDLE;
			return;
		}
		/* A failed directory fsync answers 451 although the file is
		 * in new/: the client's retry makes a duplicate, never a
		 * loss. */
		if (res < 0) {
			store_finish(c, res);
			return;
		}
		st->ibox++;
		store_next(c);
	}
}

/* Start the copy for mailbox st->ibox, or finish. */
static void
store_next(struct inbound_conn *c)
{
	struct inbound_store	*st = &c->store;
	struct smtpd_message	 m;
	struct io_uring_sqe	*sqe;
	char			 dir[MAILDIR_PATH_MAX];
	int			 r;

	if (st->ibox == st->nbox) {
		store_finish(c, 0);
		return;
	}
	if (smtpd_session_message(c->smtp, &m) != 0) {
		store_finish(c, -ENOENT);
		return;
	}
	if (snprintf(dir, sizeof(dir), "%s/%s", c->srv->conf.root,
	    st->boxes[st->ibox]) >= (int)sizeof(dir)) {
		store_finish(c, -ENAMETOOLONG);
		return;
	}
	if ((r = maildir_create(dir)) != 0 ||
	    (r = maildir_deliver_open(&st->d, dir)) != 0) {
		store_finish(c, r);
		return;
	}
	if ((r = maildir_deliver_write(&st->d, st->hdr, st->hlen)) != 0 ||
	    (r = maildir_deliver_write(&st->d, m.data, m.len)) != 0) {
		maildir_deliver_abort(&st->d);
		store_finish(c, r);
		return;
	}
	if ((sqe = loop_sqe(&c->srv->loop, &c->op_store)) == NULL) {
		maildir_deliver_abort(&st->d);
		store_finish(c, -EAGAIN);
		return;
	}
	io_uring_prep_fsync(sqe, st->d.fd, 0);
	st->step = STORE_FILE;
}

/* SMTPD_F_MESSAGE: work out the mailboxes and the trace header, start. */
static void
store_start(struct inbound_conn *c)
{
	struct inbound_server	*s = c->srv;
	struct inbound_store	*st = &c->store;
	struct smtpd_message	 m;
	char			 date[64], ubuf[AUTH_USER_MAX + 1];
	time_t			 now = time(NULL);
	struct tm		 tm;
	int			 n;

	st->nbox = st->ibox = 0;
	if (smtpd_session_message(c->smtp, &m) != 0) {
		store_finish(c, -ENOENT);
		return;
	}
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 5321 4.4: trace fields. Paths and HELO are checked by smtpd
	 * (no controls, no spaces in paths), so no header injection. */
	n = snprintf(st->hdr, sizeof(st->hdr), "Return-Path: <%s>\r\n"
	    "Received: from %s ([%s])\r\n\tby %s with %s;\r\n\t%s\r\n",
	    m.mail_from, m.helo[0] ? m.helo : "unknown", c->peer,
	    s->conf.hostname, m.tls ? "ESMTPS" : "ESMTP", date);
	st->hlen = n < 0 ? 0 : (size_t)n >= sizeof(st->hdr) ?
	    sizeof(st->hdr) - 1 : (size_t)n;
	/* One copy per distinct mailbox. */
	for (size_t i = 0; i < m.nrcpt; i++) {
		const char	*u = rcpt_mailbox(s, &m.rcpt[i], ubuf,
		    sizeof(ubuf));
		bool		 dup = false;

		for (size_t j = 0; j < st->nbox && !dup; j++)
			dup = strcmp(st->boxes[j], u) == 0;
		if (dup)
			continue;
		if (st->nbox == INBOUND_MAX_MAILBOXES) {
			store_finish(c, -E2BIG);
			return;
		}
		snprintf(st->boxes[st->nbox++], sizeof(st->boxes[0]), "%s", u);
	}
	store_next(c);
}

/* Act on a session's flags; see in/README.md "What the network layer
 * must do". */
static void
conn_handle(struct inbound_conn *c, unsigned fl)
{
	if ((fl & SMTPD_F_MESSAGE) && !(fl & INSESS_CLOSE) &&
	    c->smtp != NULL && c->store.step == STORE_IDLE) {
		/* Send what came before (e.g. pipelined RCPT replies are
		 * already out; this is the rest), then store; the 250 or 451
		 * and the rest of the input follow in store_finish(). */
		conn_emit(c);
		conn_flush(c);
		store_start(c);
		return;
	}
	c->idle = (fl & INSESS_IDLE_WAIT) != 0;
	c->more = (fl & INSESS_MORE) != 0;
	if (fl & INSESS_DELAY) {
		/* Hold the answer back too: that is the point. */
		c->delay_until = mono_now() +
		    (mono_us)INSESS_FAIL_DELAY_MS * 1000;
		return;
	}
	conn_emit(c);
	if (fl & INSESS_CLOSE) {
		c->close_after_flush = true;
		if (c->tls_on && c->tls.handshake_done) {
			tls_conn_shutdown(&c->tls);
			conn_emit(c);
		}
	} else if ((fl & INSESS_STARTTLS_NOW) && !c->tls_on) {
		/* The OK went into wire as plain text above; everything
		 * after it is TLS. */
		if (tls_conn_accept(&c->tls, c->srv->conf.tls) != 0) {
			c->close_after_flush = true;
		} else {
			c->tls_on = true;
			c->starttls_wait = true;
		}
	}
	c->deadline = mono_now() + (mono_us)(c->idle ? 30u * 60 * 1000 :
	    conn_timeout_ms(c)) * 1000;
	conn_flush(c);
	conn_arm_recv(c);
}

static void
conn_input(struct inbound_conn *c, const char *p, size_t n)
{
	int r;

	if (!c->tls_on) {
		conn_handle(c, sess_input(c, p, n));
		return;
	}
	buf_reset(&c->plain);
	r = tls_conn_input(&c->tls, p, n, &c->plain);
	conn_emit(c);		/* handshake flights, alerts */
	if (r != 0) {
		log_info("inbound tls peer=%s proto=%s error=\"%s\"", c->peer,
		    inbound_proto_name[c->proto], c->tls.reason);
		c->close_after_flush = true;
		conn_flush(c);
		return;
	}
	if (c->starttls_wait && c->tls.handshake_done) {
		c->starttls_wait = false;
		sess_tls_started(c);
	}
	if (c->tls.peer_closed) {
		c->close_after_flush = true;
		conn_flush(c);
		return;
	}
	if (buf_unread(&c->plain) > 0) {
		/* Nothing below feeds input again, so plain stays put. */
		conn_handle(c, sess_input(c, buf_peek(&c->plain),
		    buf_unread(&c->plain)));
		buf_reset(&c->plain);
	} else {
		conn_flush(c);
		conn_arm_recv(c);
	}
}

/* ------------------------------------------------------------------ */
/* Completions */

static void
on_recv(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct inbound_conn *c = op->arg;

	(void)l;
	(void)flags;
	if (c->closing)
		return;		/* reaped at the loop boundary */
	if (res <= 0) {
		conn_close(c, res == 0 ? NULL : strerror(-res));
		return;
	}
	conn_input(c, c->rbuf, (size_t)res);
}

static void
on_send(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct inbound_conn *c = op->arg;

	(void)l;
	(void)flags;
	if (c->closing)
		return;
	if (res < 0) {
		conn_close(c, strerror(-res));
		return;
	}
	buf_consume(&c->tx, (size_t)res);
	if (buf_unread(&c->tx) == 0 && buf_unread(&c->wire) == 0 && c->more &&
	    !c->close_after_flush) {
		/* INSESS_MORE: the last part is out; make the next one. */
		c->more = false;
		conn_handle(c, sess_input(c, "", 0));
		return;
	}
	conn_flush(c);
	conn_arm_recv(c);	/* if it waited for the backlog to drain */
}

static void
on_cancel(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	(void)l;
	(void)op;
	(void)res;
	(void)flags;
}

static bool
peer_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
		    >> 24) == 127;
	if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		    (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void
peer_string(const struct sockaddr_storage *sa, char *out, size_t outsz)
{
	const void *a = sa->ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->ss_family, a, out, (socklen_t)outsz) == NULL)
		snprintf(out, outsz, "unknown");
}

static void
conn_new(struct inbound_listener *li, int fd)
{
	struct inbound_server	*s = li->srv;
	struct inbound_conn	*c, *it;
	struct insess_conf	 ic;
	char			 peer[INET6_ADDRSTRLEN];
	unsigned		 nsame = 0;
	bool			 implicit;

	peer_string(&li->sa, peer, sizeof(peer));
	for (it = s->conns; it != NULL; it = it->next)
		nsame += !it->closing && strcmp(it->peer, peer) == 0;
	if (s->nconns >= s->conf.max_connections ||
	    nsame >= s->conf.max_connections_per_ip) {
		static const char busy[] = "421 4.7.0 Too many connections\r\n";

		/* Best effort and non-blocking: the socket buffer is empty. */
		if (li->proto == INBOUND_SMTP)
			(void)!send(fd, busy, sizeof(busy) - 1,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		s->st.nrefused++;
		log_info("inbound refused peer=%s proto=%s conns=%u "
		    "from_peer=%u", peer, inbound_proto_name[li->proto],
		    s->nconns, nsame);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->srv = s;
	c->proto = li->proto;
	c->fd = fd;
	memcpy(c->peer, peer, sizeof(peer));
	c->op_recv = (struct loop_op){ on_recv, c, false };
	c->op_send = (struct loop_op){ on_send, c, false };
	c->op_cancel = (struct loop_op){ on_cancel, c, false };
	c->op_store = (struct loop_op){ on_store, c, false };
	c->store.dirfd = -1;
	c->store.d.fd = -1;
	buf_init(&c->out);
	buf_init(&c->wire);
	buf_init(&c->tx);
	buf_init(&c->plain);
	implicit = li->proto == INBOUND_IMAPS || li->proto == INBOUND_POP3S;
	memset(&ic, 0, sizeof(ic));
	ic.users = s->conf.users;
	ic.limiter = s->conf.limiter;
	ic.root = s->conf.root;
	ic.peer = peer;
	ic.tls_active = implicit;
	ic.loopback = peer_loopback(&li->sa);
	ic.tls_available = s->conf.tls != NULL;
	if (li->proto == INBOUND_SMTP) {
		struct smtpd_conf sc = {
			.hostname = s->conf.hostname,
			.bounce_domains = s->conf.bounce_domains,
			.nbounce = s->conf.nbounce,
			.reply_domains = s->conf.reply_domains,
			.nreply = s->conf.nreply,
			.max_size = s->conf.max_message_size,
			.max_rcpt = s->conf.max_recipients,
			.tls_available = s->conf.tls != NULL,
			.peer = peer,
		};

		if ((c->smtp = smtpd_session_new(&sc)) != NULL)
			smtpd_session_greeting(c->smtp, &c->out);
	} else if (li->proto == INBOUND_IMAP || li->proto == INBOUND_IMAPS) {
		if ((c->imap = imapd_session_new(&ic)) != NULL)
			imapd_session_greeting(c->imap, &c->out);
	} else {
		if ((c->pop3 = pop3d_session_new(&ic)) != NULL)
			pop3d_session_greeting(c->pop3, &c->out);
	}
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	s->st.naccepted++;
	if (c->smtp == NULL && c->imap == NULL && c->pop3 == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	if (implicit) {
		if (tls_conn_accept(&c->tls, s->conf.tls) != 0) {
			conn_close(c, "TLS setup failed");
			return;
		}
		c->tls_on = true;
	}
	conn_emit(c);
	c->deadline = mono_now() + (mono_us)conn_timeout_ms(c) * 1000;
	conn_flush(c);
	conn_arm_recv(c);
}

static void
on_accept(struct loop *l, struct loop_op *op, int res, unsigned flags)
{
	struct inbound_listener *li = op->arg;

	(void)l;
	(void)flags;
	if (res >= 0)
		conn_new(li, res);
	else if (res != -ECANCELED && !li->srv->stop)
		log_msgc(LOG_WARN, -res, "inbound accept proto=%s",
		    inbound_proto_name[li->proto]);
	listener_arm(li);
}

/* ------------------------------------------------------------------ */
/* Closing and the loop boundary */

static void
conn_close(struct inbound_conn *c, const char *why)
{
	struct io_uring_sqe *sqe;

	if (c->closing)
		return;
	c->closing = true;
	if (why != NULL)
		log_info("inbound close peer=%s proto=%s reason=\"%s\"",
		    c->peer, inbound_proto_name[c->proto], why);
	if (c->op_recv.busy || c->op_send.busy) {
		/* Ops still reference the socket: cancel them first. */
		if ((sqe = loop_sqe(&c->srv->loop, &c->op_cancel)) != NULL)
			io_uring_prep_cancel_fd(sqe, c->fd,
			    IORING_ASYNC_CANCEL_ALL);
		shutdown(c->fd, SHUT_RDWR);
	}
}

/* Free a closed connection once the kernel holds no op of it. */
static bool
conn_reap(struct inbound_conn *c, struct inbound_conn **pp)
{
	if (!c->closing || c->op_recv.busy || c->op_send.busy ||
	    c->op_cancel.busy || c->op_store.busy)
		return false;
	*pp = c->next;
	c->srv->nconns--;
	close(c->fd);
	smtpd_session_free(c->smtp);
	imapd_session_free(c->imap);
	pop3d_session_free(c->pop3);	/* without QUIT: deletes nothing */
	tls_conn_fini(&c->tls);
	buf_free(&c->out);
	buf_free(&c->wire);
	buf_free(&c->tx);
	buf_free(&c->plain);
	free(c);
	return true;
}

/* Once per loop turn: reap, timeouts, login delays, IDLE rescans. */
static void
server_sweep(struct inbound_server *s)
{
	struct inbound_conn	*c, **pp;
	mono_us			 now = mono_now();
	mono_us			 poll = (mono_us)(s->conf.idle_poll_ms ?
	    s->conf.idle_poll_ms : 2000) * 1000;
	bool			 wake = s->new_mail;

	s->new_mail = false;
	for (pp = &s->conns; (c = *pp) != NULL;) {
		if (c->closing && conn_reap(c, pp))
			continue;
		pp = &c->next;
	}
	for (c = s->conns; c != NULL; c = c->next) {
		if (c->closing)
			continue;
		if (c->delay_until != 0) {
			if (now >= c->delay_until) {
				c->delay_until = 0;
				conn_emit(c);	/* the held-back answer */
				conn_handle(c, sess_input(c, "", 0));
			}
			continue;
		}
		if (c->idle && c->imap != NULL && (wake || now >=
		    c->next_tick)) {
			mono_us dl = c->deadline;

			c->next_tick = now + poll;
			conn_handle(c, imapd_session_tick(c->imap, &c->out));
			/* A rescan is not client activity: the 30-minute
			 * IDLE limit still counts from the last input. */
			if (c->idle)
				c->deadline = dl;
			continue;
		}
		/* Also while a send is stuck or INSESS_MORE waits on it: a
		 * client that stops reading is dropped, not kept forever. */
		if (now >= c->deadline) {
			if (c->close_after_flush) {
				conn_close(c, "timeout flushing");
			} else if (c->smtp != NULL) {
				/* RFC 5321 4.5.3.2: say why, then close. */
				buf_puts(&c->out, "421 4.4.2 Timeout, closing "
				    "connection\r\n");
				conn_emit(c);
				c->close_after_flush = true;
				c->deadline = now + 5000000;
				conn_flush(c);
			} else {
				conn_close(c, "timeout");
			}
		}
	}
	for (int i = 0; i < INBOUND__N; i++)
		listener_arm(&s->lis[i]);
}

/* ------------------------------------------------------------------ */
/* Lifecycle */

struct inbound_server *
inbound_server_new(const struct inbound_conf *conf, char *err, size_t errlen)
{
	struct inbound_server	*s;
	int			 r, nlis = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->conf = *conf;
	if (s->conf.hostname == NULL)
		s->conf.hostname = "localhost";
	if (s->conf.max_connections == 0)
		s->conf.max_connections = 1000;
	if (s->conf.max_connections_per_ip == 0)
		s->conf.max_connections_per_ip = 20;
	if (s->conf.smtp_timeout_ms == 0)
		s->conf.smtp_timeout_ms = 5 * 60 * 1000;
	if (s->conf.imap_timeout_ms == 0)
		s->conf.imap_timeout_ms = 30 * 60 * 1000;
	if (s->conf.pop3_timeout_ms == 0)
		s->conf.pop3_timeout_ms = 10 * 60 * 1000;
	for (int i = 0; i < INBOUND__N; i++) {
		s->lis[i].fd = -1;
		s->lis[i].srv = s;
		s->lis[i].proto = (enum inbound_proto)i;
		s->lis[i].op = (struct loop_op){ on_accept, &s->lis[i], false };
		s->lis[i].op_cancel = (struct loop_op){ on_cancel, NULL,
		    false };
	}
	if ((r = loop_init(&s->loop, 256)) != 0) {
		snprintf(err, errlen, "io_uring: %s", strerror(-r));
		goto fail;
	}
	s->loop_ok = true;
	/* The root itself; user maildirs are made on first delivery or
	 * login. */
	if (mkdir(s->conf.root, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "maildir_root %s: %s", s->conf.root,
		    strerror(errno));
		goto fail;
	}
	for (int i = 0; i < INBOUND__N; i++) {
		const char *spec = conf->listen[i];

		if (spec == NULL || spec[0] == '\0')
			continue;
		if ((i == INBOUND_IMAPS || i == INBOUND_POP3S) &&
		    conf->tls == NULL) {
			snprintf(err, errlen, "listen_%s needs a TLS "
			    "certificate", inbound_proto_name[i]);
			goto fail;
		}
		if ((r = listener_open(spec, &s->lis[i].port, err,
		    errlen)) < 0)
			goto fail;
		s->lis[i].fd = r;
		nlis++;
		log_info("inbound listen proto=%s addr=%s port=%u",
		    inbound_proto_name[i], spec, s->lis[i].port);
	}
	if (nlis == 0) {
		snprintf(err, errlen, "no listener configured");
		goto fail;
	}
	return s;
fail:
	inbound_server_free(s);
	return NULL;
}

int
inbound_server_run(struct inbound_server *s)
{
	int r;

	for (int i = 0; i < INBOUND__N; i++)
		listener_arm(&s->lis[i]);
	while (!s->stop) {
		if ((r = loop_run_once(&s->loop, INBOUND_TURN_US)) < 0)
			return r;
		server_sweep(s);
		if (s->conf.on_turn != NULL)
			s->conf.on_turn(s->conf.arg);
	}
	return 0;
}

void
inbound_server_stop(struct inbound_server *s)
{
	s->stop = 1;
}

void
inbound_server_free(struct inbound_server *s)
{
	struct inbound_conn *c;

	if (s == NULL)
		return;
	s->stop = 1;		/* no accept is re-armed */
	for (c = s->conns; c != NULL; c = c->next)
		conn_close(c, NULL);
	for (int i = 0; i < INBOUND__N; i++)
		if (s->lis[i].fd >= 0)
			shutdown(s->lis[i].fd, SHUT_RDWR);
	/* Drain: every op completes (cancelled) before memory goes. */
	for (int i = 0; s->loop_ok && i < INBOUND__N; i++) {
		struct io_uring_sqe *sqe;

		if (s->lis[i].fd >= 0 && s->lis[i].op.busy &&
		    (sqe = loop_sqe(&s->loop, &s->lis[i].op_cancel)) != NULL)
			io_uring_prep_cancel_fd(sqe, s->lis[i].fd, 0);
	}
	for (int spins = 0; s->loop_ok && s->loop.ninflight > 0 &&
	    spins < 100; spins++)
		loop_run_once(&s->loop, 10000);
	for (struct inbound_conn **pp = &s->conns; (c = *pp) != NULL;)
		if (!conn_reap(c, pp))
			pp = &c->next;
	for (int i = 0; i < INBOUND__N; i++)
		if (s->lis[i].fd >= 0)
			close(s->lis[i].fd);
	if (s->loop_ok)
		loop_fini(&s->loop);
	free(s);
}

void
inbound_server_stats(const struct inbound_server *s, struct inbound_stats *out)
{
	*out = s->st;
}

uint16_t
inbound_server_port(const struct inbound_server *s, enum inbound_proto p)
{
	return p < INBOUND__N && s->lis[p].fd >= 0 ? s->lis[p].port : 0;
}

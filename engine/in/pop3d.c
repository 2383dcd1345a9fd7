/* pop3d: sans-I/O POP3 session. See pop3d.h. */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/buf.h"
#include "lib/log.h"

#include "in/auth.h"
#include "in/maildir.h"
#include "in/pop3d.h"

/* Consecutive failed commands before we give up on the client. */
#define POP3D_MAX_ERRORS	20

enum pop3d_state {
	POP3D_AUTH,	/* AUTHORIZATION */
	POP3D_TRANS,	/* TRANSACTION */
	POP3D_DONE,	/* closed (after QUIT, error or limits) */
};

struct pop3d_session {
	struct insess_conf	 conf;		/* copy; pointers borrowed */
	char			 peer[64];
	enum pop3d_state	 state;
	struct buf		 in;		/* owns: partial line */
	struct buf		 pend;		/* owns: input held back by
						 * INSESS_DELAY */
	bool			 discarding;	/* dropping an over-long line */
	bool			 tls_active;
	bool			 have_user;
	char			 user[AUTH_USER_MAX + 1];
	struct maildir_box	*box;		/* owns */
	size_t			 nmsg;		/* messages at login */
	bool			*deleted;	/* owns: nmsg marks */
	int			 lock_fd;	/* owns: flock()ed maildrop
						 * lock, -1 when none */
	unsigned		 ncmd;
	unsigned		 nerr;
};

struct pop3d_session *
pop3d_session_new(const struct insess_conf *conf)
{
	struct pop3d_session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conf = *conf;
	snprintf(s->peer, sizeof(s->peer), "%s",
	    conf->peer ? conf->peer : "");
	s->conf.peer = s->peer;
	if (s->conf.max_commands == 0)
		s->conf.max_commands = INSESS_MAX_COMMANDS;
	s->tls_active = conf->tls_active;
	s->lock_fd = -1;
	buf_init(&s->in);
	buf_init(&s->pend);
	return s;
}

void
pop3d_session_free(struct pop3d_session *s)
{
	if (s == NULL)
		return;
	buf_free(&s->in);
	buf_free(&s->pend);
	maildir_box_free(s->box);
	free(s->deleted);
	if (s->lock_fd >= 0)
		close(s->lock_fd);	/* releases the flock */
	free(s);
}

void
pop3d_session_greeting(struct pop3d_session *s, struct buf *out)
{
	(void)s;
	buf_puts(out, "+OK ringmail POP3 server ready\r\n");
}

void
pop3d_session_tls_started(struct pop3d_session *s)
{
	s->tls_active = true;
	/* RFC 2595 4: forget what was said in plaintext. */
	s->have_user = false;
	buf_reset(&s->in);
	buf_reset(&s->pend);
	s->discarding = false;
}

static bool
pop3d_secure(const struct pop3d_session *s)
{
	return s->tls_active || s->conf.loopback;
}

/* Dot-stuff p (RFC 1939 3) and terminate the multi-line response. */
static void
pop3d_put_stuffed(struct buf *out, const char *p, size_t n)
{
	bool	 bol = true;
	size_t	 i = 0;

	while (i < n) {
		const char	*nl = memchr(p + i, '\n', n - i);
		size_t		 k = nl ? (size_t)(nl - (p + i)) + 1 : n - i;

		if (bol && p[i] == '.')
			buf_putc(out, '.');
		buf_append(out, p + i, k);
		bol = nl != NULL;
		i += k;
	}
	if (n > 0 && !(n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n'))
		buf_puts(out, "\r\n");
	buf_puts(out, ".\r\n");
}

/* Parse a message number argument; index or -1 (with -ERR sent). */
static long
pop3d_msgno(struct pop3d_session *s, const char *arg, struct buf *out)
{
	char		*end;
	unsigned long	 n;

	if (arg == NULL || *arg < '0' || *arg > '9') {
		buf_puts(out, "-ERR message number required\r\n");
		return -1;
	}
	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno != 0 || (*end != '\0' && *end != ' ') || n == 0 ||
	    n > s->nmsg || s->deleted[n - 1]) {
		buf_puts(out, "-ERR no such message\r\n");
		return -1;
	}
	return (long)n - 1;
}

static uint64_t
pop3d_size(struct pop3d_session *s, size_t i)
{
	uint64_t	 sz = 0;

	if (maildir_msg_size(s->box, i, &sz) != 0)
		return 0;
	return sz;
}

static void
pop3d_capa(struct pop3d_session *s, struct buf *out)
{
	buf_puts(out, "+OK Capability list follows\r\n");
	if (s->state == POP3D_AUTH && pop3d_secure(s))
		buf_puts(out, "USER\r\n");
	buf_puts(out, "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n");
	if (s->state == POP3D_AUTH && s->conf.tls_available && !s->tls_active)
		buf_puts(out, "STLS\r\n");
	buf_puts(out, "IMPLEMENTATION ringmail\r\n.\r\n");
}

static int
pop3d_lock(struct pop3d_session *s, const char *dir)
{
	char	 p[MAILDIR_PATH_MAX + 32];
	int	 fd;

	if ((size_t)snprintf(p, sizeof(p), "%s/ringmail-pop3.lock", dir) >=
	    sizeof(p))
		return -ENAMETOOLONG;
	if ((fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -EWOULDBLOCK;
	}
	s->lock_fd = fd;
	return 0;
}

/* PASS: check, open the maildrop. Returns INSESS_* flags. */
static unsigned
pop3d_login(struct pop3d_session *s, const char *pass, struct buf *out)
{
	char	 path[MAILDIR_PATH_MAX];
	int	 r, err;

	if (auth_limiter_check(s->conf.limiter, s->peer) != 0) {
		log_info("pop3d login user=%s src=%s result=blocked", s->user,
		    s->peer);
		buf_puts(out, "-ERR [AUTH] too many failed logins, "
		    "try later\r\n");
		return INSESS_DELAY;
	}
	if (s->conf.users == NULL || auth_users_check(s->conf.users, s->user,
	    pass, strlen(pass)) != 0) {
		auth_limiter_fail(s->conf.limiter, s->peer);
		log_info("pop3d login user=%s src=%s result=fail", s->user,
		    s->peer);
		s->have_user = false;
		buf_puts(out, "-ERR [AUTH] invalid user name or password\r\n");
		return INSESS_DELAY;
	}
	auth_limiter_success(s->conf.limiter, s->peer);
	log_info("pop3d login user=%s src=%s tls=%d result=ok", s->user,
	    s->peer, s->tls_active);
	if (snprintf(path, sizeof(path), "%s/%s", s->conf.root,
	    s->user) >= (int)sizeof(path) || (r = maildir_create(path)) != 0) {
		buf_puts(out, "-ERR [SYS/TEMP] maildrop unavailable\r\n");
		return INSESS_CLOSE;
	}
	/* RFC 1939 8: one POP3 session per maildrop at a time. */
	if (pop3d_lock(s, path) != 0) {
		s->have_user = false;
		buf_puts(out, "-ERR [IN-USE] maildrop already in use\r\n");
		return 0;
	}
	if ((s->box = maildir_box_open(path, true, &err)) == NULL) {
		buf_puts(out, "-ERR [SYS/TEMP] maildrop unavailable\r\n");
		return INSESS_CLOSE;
	}
	s->nmsg = s->box->nmsg;
	if ((s->deleted = calloc(s->nmsg + 1, sizeof(bool))) == NULL) {
		buf_puts(out, "-ERR [SYS/TEMP] out of memory\r\n");
		return INSESS_CLOSE;
	}
	s->state = POP3D_TRANS;
	buf_printf(out, "+OK %s has %zu messages\r\n", s->user, s->nmsg);
	return 0;
}

static unsigned
pop3d_quit(struct pop3d_session *s, struct buf *out)
{
	size_t	 left = 0, failed = 0;

	if (s->state == POP3D_TRANS) {
		/* RFC 1939 6: the UPDATE state. */
		for (size_t i = 0; i < s->nmsg; i++) {
			if (!s->deleted[i])
				left++;
			else if (maildir_msg_unlink(s->box, i) != 0)
				failed++;
		}
	}
	s->state = POP3D_DONE;
	if (failed > 0)
		buf_puts(out, "-ERR [SYS/TEMP] some deleted messages not "
		    "removed\r\n");
	else
		buf_printf(out, "+OK ringmail POP3 server signing off "
		    "(%zu messages left)\r\n", left);
	return INSESS_CLOSE;
}

static void
pop3d_list_one(struct pop3d_session *s, size_t i, bool uidl, bool single,
    struct buf *out)
{
	if (uidl)
		buf_printf(out, "%s%zu %u.%u\r\n", single ? "+OK " : "", i + 1,
		    s->box->uidvalidity, s->box->msgs[i].uid);
	else
		buf_printf(out, "%s%zu %llu\r\n", single ? "+OK " : "", i + 1,
		    (unsigned long long)pop3d_size(s, i));
}

static void
pop3d_retr(struct pop3d_session *s, size_t i, long top, struct buf *out)
{
	struct buf	 m;
	size_t		 n;

	buf_init(&m);
	if (maildir_msg_read(s->box, i, &m) != 0) {
		buf_puts(out, "-ERR [SYS/TEMP] message unavailable\r\n");
		buf_free(&m);
		return;
	}
	n = m.len;
	if (top >= 0) {
		/* Header, the blank line, then top body lines. */
		const char	*p = m.data, *end = m.data + m.len;
		bool		 in_body = false;
		long		 lines = 0;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			if (in_body && lines >= top)
				break;
			if (in_body)
				lines++;
			else if ((nl == p + 1 && *p == '\r') || nl == p)
				in_body = true;
			p = nl ? nl + 1 : end;
		}
		n = (size_t)(p - m.data);
		buf_puts(out, "+OK top of message follows\r\n");
	} else {
		buf_printf(out, "+OK %zu octets\r\n", m.len);
	}
	pop3d_put_stuffed(out, m.data, n);
	buf_free(&m);
}

/* One command line (without CRLF). Returns INSESS_* flags. */
static unsigned
pop3d_command(struct pop3d_session *s, char *line, struct buf *out)
{
	char		*arg, *arg2 = NULL;
	size_t		 kl;
	bool		 ok = true;
	unsigned	 fl = 0;
	long		 i;

	kl = strcspn(line, " ");
	arg = line[kl] == ' ' ? line + kl + 1 : NULL;
	line[kl] = '\0';
	if (++s->ncmd > s->conf.max_commands) {
		buf_puts(out, "-ERR too many commands\r\n");
		s->state = POP3D_DONE;
		return INSESS_CLOSE;
	}
	if (strcasecmp(line, "QUIT") == 0)
		return pop3d_quit(s, out);
	if (strcasecmp(line, "CAPA") == 0) {
		pop3d_capa(s, out);
		goto done;
	}
	if (s->state == POP3D_AUTH) {
		if (strcasecmp(line, "STLS") == 0) {
			if (!s->conf.tls_available || s->tls_active) {
				buf_puts(out, "-ERR STLS not available\r\n");
				ok = false;
				goto done;
			}
			buf_puts(out, "+OK Begin TLS negotiation\r\n");
			return INSESS_STARTTLS_NOW;
		}
		if (strcasecmp(line, "USER") == 0) {
			if (!pop3d_secure(s)) {
				buf_puts(out, "-ERR [AUTH] plaintext login "
				    "disabled, use STLS\r\n");
				ok = false;
			} else if (arg == NULL || !auth_user_valid(arg)) {
				/* Same answer as for a bad password later. */
				s->have_user = false;
				buf_puts(out, "-ERR [AUTH] invalid user "
				    "name\r\n");
				ok = false;
			} else {
				snprintf(s->user, sizeof(s->user), "%s", arg);
				s->have_user = true;
				buf_puts(out, "+OK send PASS\r\n");
			}
			goto done;
		}
		if (strcasecmp(line, "PASS") == 0) {
			if (!pop3d_secure(s)) {
				buf_puts(out, "-ERR [AUTH] plaintext login "
				    "disabled, use STLS\r\n");
				ok = false;
			} else if (!s->have_user || arg == NULL) {
				buf_puts(out, "-ERR USER first\r\n");
				ok = false;
			} else {
				fl = pop3d_login(s, arg, out);
				ok = s->state == POP3D_TRANS;
				OPENSSL_cleanse(arg, strlen(arg));
			}
			goto done;
		}
		buf_puts(out, "-ERR unknown command or not logged in\r\n");
		ok = false;
		goto done;
	}
	/* TRANSACTION */
	if (strcasecmp(line, "NOOP") == 0) {
		buf_puts(out, "+OK\r\n");
	} else if (strcasecmp(line, "STAT") == 0) {
		size_t		 n = 0;
		uint64_t	 total = 0;

		for (size_t k = 0; k < s->nmsg; k++) {
			if (s->deleted[k])
				continue;
			n++;
			total += pop3d_size(s, k);
		}
		buf_printf(out, "+OK %zu %llu\r\n", n,
		    (unsigned long long)total);
	} else if (strcasecmp(line, "LIST") == 0 ||
	    strcasecmp(line, "UIDL") == 0) {
		bool uidl = strcasecmp(line, "UIDL") == 0;

		if (arg != NULL) {
			if ((i = pop3d_msgno(s, arg, out)) < 0)
				ok = false;
			else
				pop3d_list_one(s, (size_t)i, uidl, true, out);
		} else {
			buf_puts(out, "+OK\r\n");
			for (size_t k = 0; k < s->nmsg; k++)
				if (!s->deleted[k])
					pop3d_list_one(s, k, uidl, false, out);
			buf_puts(out, ".\r\n");
		}
	} else if (strcasecmp(line, "RETR") == 0) {
		if ((i = pop3d_msgno(s, arg, out)) < 0)
			ok = false;
		else
			pop3d_retr(s, (size_t)i, -1, out);
	} else if (strcasecmp(line, "TOP") == 0) {
		char		*end;
		unsigned long	 k;

		if (arg != NULL && (arg2 = strchr(arg, ' ')) != NULL)
			arg2++;
		if (arg2 == NULL || *arg2 < '0' || *arg2 > '9') {
			buf_puts(out, "-ERR usage: TOP msg n\r\n");
			ok = false;
		} else if ((i = pop3d_msgno(s, arg, out)) < 0) {
			ok = false;
		} else {
			errno = 0;
			k = strtoul(arg2, &end, 10);
			if (errno != 0 || *end != '\0' || k > 100000000) {
				buf_puts(out, "-ERR bad line count\r\n");
				ok = false;
			} else {
				pop3d_retr(s, (size_t)i, (long)k, out);
			}
		}
	} else if (strcasecmp(line, "DELE") == 0) {
		if ((i = pop3d_msgno(s, arg, out)) < 0) {
			ok = false;
		} else {
			s->deleted[i] = true;
			buf_printf(out, "+OK message %ld deleted\r\n", i + 1);
		}
	} else if (strcasecmp(line, "RSET") == 0) {
		memset(s->deleted, 0, s->nmsg * sizeof(bool));
		buf_printf(out, "+OK maildrop has %zu messages\r\n", s->nmsg);
	} else {
		buf_puts(out, "-ERR unknown command\r\n");
		ok = false;
	}
done:
	if (ok) {
		s->nerr = 0;
	} else if (++s->nerr >= POP3D_MAX_ERRORS) {
		buf_puts(out, "-ERR too many errors, bye\r\n");
		s->state = POP3D_DONE;
		fl |= INSESS_CLOSE;
	}
	return fl;
}

static unsigned
pop3d_process(struct pop3d_session *s, const char *data, size_t len,
    struct buf *out)
{
	unsigned	 fl = 0;

	while (len > 0 && s->state != POP3D_DONE) {
		const char	*nl = memchr(data, '\n', len);
		size_t		 k = nl ? (size_t)(nl - data) + 1 : len;
		char		*line;
		size_t		 ll;

		if (s->discarding) {
			if (nl != NULL) {
				s->discarding = false;
				buf_puts(out, "-ERR line too long\r\n");
				if (++s->nerr >= POP3D_MAX_ERRORS) {
					s->state = POP3D_DONE;
					return INSESS_CLOSE;
				}
			}
			data += k;
			len -= k;
			continue;
		}
		if (buf_unread(&s->in) + k > POP3D_LINE_MAX) {
			buf_reset(&s->in);
			s->discarding = true;
			continue;	/* re-run this chunk in discard mode */
		}
		buf_append(&s->in, data, k);
		data += k;
		len -= k;
		if (nl == NULL)
			break;
		line = s->in.data;
		ll = s->in.len - 1;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		line[ll] = '\0';
		if (strlen(line) != ll) {
			buf_puts(out, "-ERR NUL in command\r\n");
			buf_reset(&s->in);
			continue;
		}
		fl |= pop3d_command(s, line, out);
		OPENSSL_cleanse(s->in.data, s->in.len);
		buf_reset(&s->in);
		if (fl & (INSESS_STARTTLS_NOW | INSESS_CLOSE | INSESS_DELAY))
			break;
	}
	if (fl & (INSESS_STARTTLS_NOW | INSESS_CLOSE)) {
		/* Pipelined plaintext after STLS must not reach the TLS
		 * session (CVE-2011-0411 class). */
		buf_reset(&s->in);
		s->discarding = false;
	} else if (fl & INSESS_DELAY && len > 0) {
		/* Keep what follows for the call after the delay. */
		buf_append(&s->pend, data, len);
	}
	if (s->state == POP3D_DONE)
		fl |= INSESS_CLOSE;
	return fl;
}

unsigned
pop3d_session_input(struct pop3d_session *s, const char *data, size_t len,
    struct buf *out)
{
	struct buf	 work;
	unsigned	 fl;

	if (s->state == POP3D_DONE)
		return INSESS_CLOSE;
	if (buf_unread(&s->pend) == 0)
		return pop3d_process(s, data, len, out);
	/* Bytes held back by a login delay go first. */
	work = s->pend;
	buf_init(&s->pend);
	if (buf_append(&work, data, len) != 0) {
		buf_free(&work);
		s->state = POP3D_DONE;
		return INSESS_CLOSE;
	}
	fl = pop3d_process(s, buf_peek(&work), buf_unread(&work), out);
	buf_free(&work);
	return fl;
}

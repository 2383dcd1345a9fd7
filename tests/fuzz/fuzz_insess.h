/*
 * Shared by fuzz_imap and fuzz_pop3: a small temp store with user
 * alice/secret (cheap scrypt) and two messages, rebuilt now and then
 * because the sessions under test expunge, copy and create folders.
 */
#ifndef TESTS_FUZZ_FUZZ_INSESS_H
#define TESTS_FUZZ_FUZZ_INSESS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "in/auth.h"
#include "in/insess.h"
#include "in/maildir.h"
#include "lib/log.h"

static char			 fz_root[64];
static char			 fz_inbox[128];
static struct auth_users	*fz_users;
static unsigned			 fz_iter;

static int
fz_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

static void
fz_atexit(void)
{
	nftw(fz_root, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void
fz_fill(void)
{
	static const char m1[] = "From: \"A\" <a@example.com>\r\nTo: b@x, "
	    "grp: c@y, d@z;\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n";
	static const char m2[] = "Content-Type: multipart/mixed; "
	    "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n"
	    "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n"
	    "inner\r\n--b--\r\n";

	maildir_create(fz_inbox);
	maildir_deliver(fz_inbox, m1, sizeof(m1) - 1);
	maildir_deliver(fz_inbox, m2, sizeof(m2) - 1);
}

static void
fz_init(struct insess_conf *c)
{
	char	 h[AUTH_HASH_MAX], text[256];
	int	 err;

	if (fz_users == NULL) {
		log_set_level(LOG_ERROR);
		strcpy(fz_root, "/tmp/rm-fuzz-XXXXXX");
		if (mkdtemp(fz_root) == NULL)
			abort();
		atexit(fz_atexit);
		snprintf(fz_inbox, sizeof(fz_inbox), "%s/alice", fz_root);
		if (auth_hash_password_params("secret", 6, 16, 1, 1, h,
		    sizeof(h)) != 0)
			abort();
		snprintf(text, sizeof(text), "alice:%s\n", h);
		fz_users = auth_users_parse(text, strlen(text), &err, NULL);
		fz_fill();
	}
	if (++fz_iter % 256 == 0) {
		fz_atexit();
		mkdir(fz_root, 0700);
		fz_fill();
	}
	memset(c, 0, sizeof(*c));
	c->users = fz_users;
	c->root = fz_root;
	c->peer = "192.0.2.1";
	c->loopback = true;
	c->tls_available = true;
	c->max_commands = 500;
}

#endif

/* Shared fixtures for the pop3d and imapd unit tests (not a suite). */
#ifndef TESTS_UNIT_INSESS_TEST_H
#define TESTS_UNIT_INSESS_TEST_H

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "in/auth.h"
#include "in/insess.h"
#include "in/maildir.h"
#include "lib/log.h"

struct insess_fix {
	char			 root[64];
	char			 inbox[128];
	struct auth_users	*users;
	struct auth_limiter	*lim;
	struct insess_conf	 conf;
};

static inline void
insess_fix_init(struct insess_fix *f)
{
	char	 h[AUTH_HASH_MAX], text[256];
	int	 err;

	memset(f, 0, sizeof(*f));
	log_set_level(LOG_WARN);	/* login lines would clutter the run */
	strcpy(f->root, "/tmp/rm-insess-XXXXXX");
	cr_assert_not_null(mkdtemp(f->root));
	snprintf(f->inbox, sizeof(f->inbox), "%s/alice", f->root);
	cr_assert_eq(maildir_create(f->inbox), 0);
	cr_assert_eq(auth_hash_password_params("secret", 6, 1024, 8, 1, h,
	    sizeof(h)), 0);
	snprintf(text, sizeof(text), "alice:%s\n", h);
	cr_assert_not_null(f->users = auth_users_parse(text, strlen(text),
	    &err, NULL));
	cr_assert_not_null(f->lim = auth_limiter_new(3, 10000000, 60000000));
	f->conf.users = f->users;
	f->conf.limiter = f->lim;
	f->conf.root = f->root;
	f->conf.peer = "192.0.2.7";
	f->conf.loopback = true;
	f->conf.tls_available = true;
}

static inline void
insess_fix_fini(struct insess_fix *f)
{
	char	 cmd[128];

	auth_users_free(f->users);
	auth_limiter_free(f->lim);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	cr_assert_eq(system(cmd), 0);
}

/* Deliver into folder (NULL = INBOX) of alice. */
static inline void
insess_fix_deliver(struct insess_fix *f, const char *folder, const char *msg)
{
	char	 p[256];

	if (folder == NULL)
		snprintf(p, sizeof(p), "%s", f->inbox);
	else
		snprintf(p, sizeof(p), "%s/.%s", f->inbox, folder);
	cr_assert_eq(maildir_create(p), 0);
	cr_assert_eq(maildir_deliver(p, msg, strlen(msg)), 0);
}

#endif

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "in/auth.h"
#include "lib/mono.h"

/* Cheap parameters keep the suite fast; the format is the same. */
#define N_TEST	1024

Test(auth, hash_and_verify)
{
	char	 h[AUTH_HASH_MAX];

	cr_assert_eq(auth_hash_password_params("secret", 6, N_TEST, 8, 1, h,
	    sizeof(h)), 0);
	cr_assert_eq(strncmp(h, "$scrypt$1024$8$1$", 17), 0, "%s", h);
	cr_assert_eq(auth_verify(h, "secret", 6), 0);
	cr_assert_eq(auth_verify(h, "secreT", 6), -EACCES);
	cr_assert_eq(auth_verify(h, "", 0), -EACCES);
}

Test(auth, default_params_format)
{
	char	 h[AUTH_HASH_MAX];

	cr_assert_eq(auth_hash_password("pw", 2, h, sizeof(h)), 0);
	cr_assert_eq(strncmp(h, "$scrypt$32768$8$1$", 18), 0, "%s", h);
	cr_assert_eq(auth_verify(h, "pw", 2), 0);
	cr_assert_eq(auth_hash_password("pw", 2, h, 20), -ENOSPC);
}

Test(auth, salts_differ)
{
	char	 a[AUTH_HASH_MAX], b[AUTH_HASH_MAX];

	cr_assert_eq(auth_hash_password_params("x", 1, N_TEST, 8, 1, a,
	    sizeof(a)), 0);
	cr_assert_eq(auth_hash_password_params("x", 1, N_TEST, 8, 1, b,
	    sizeof(b)), 0);
	cr_assert_str_neq(a, b);
}

Test(auth, malformed_hashes_rejected)
{
	cr_assert_eq(auth_verify("plain", "x", 1), -EINVAL);
	cr_assert_eq(auth_verify("$scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "x", 1), -EINVAL);
	cr_assert_eq(auth_verify("$scrypt$1024$8$1$!!!$AAAA", "x", 1),
	    -EINVAL);
	cr_assert_eq(auth_verify("$scrypt$1024$8$1$AAAAAAAAAAAAAAAAAAAAAA==",
	    "x", 1), -EINVAL);
	cr_assert_eq(auth_verify("$scrypt$99999999999$8$1$a$b", "x", 1),
	    -EINVAL);
}

Test(auth, users_file)
{
	char		 h[AUTH_HASH_MAX], text[512], path[] = "/tmp/rm-usersXXXXXX";
	struct auth_users *u;
	unsigned	 line = 0;
	int		 err, fd;

	cr_assert_eq(auth_hash_password_params("pw1", 3, N_TEST, 8, 1, h,
	    sizeof(h)), 0);
	snprintf(text, sizeof(text), "# comment\n\nalice:%s\r\n", h);
	cr_assert_geq(fd = mkstemp(path), 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_not_null(u = auth_users_load(path, &err, &line));
	unlink(path);
	cr_assert_eq(auth_users_check(u, "alice", "pw1", 3), 0);
	cr_assert_eq(auth_users_cache_hits(u), 0);
	cr_assert_eq(auth_users_check(u, "alice", "pw1", 3), 0);
	cr_assert_eq(auth_users_cache_hits(u), 1);
	cr_assert_eq(auth_users_check(u, "alice", "pw2", 3), -EACCES);
	cr_assert_eq(auth_users_check(u, "alice", "pw", 2), -EACCES);
	cr_assert_eq(auth_users_cache_hits(u), 1);
	/* An unknown user with alice's password is still refused. */
	cr_assert_eq(auth_users_check(u, "bob", "pw1", 3), -EACCES);
	auth_users_free(u);

	cr_assert_null(auth_users_parse("ok:$scrypt$x\n../x:$scrypt$y\n", 28,
	    &err, &line));
	cr_assert_eq(err, -EINVAL);
	cr_assert_eq(line, 2);
	cr_assert_null(auth_users_parse("nocolon\n", 8, &err, &line));
	cr_assert_null(auth_users_load("/nonexistent/users", &err, NULL));
	cr_assert_eq(err, -ENOENT);
}

Test(auth, user_names)
{
	cr_assert(auth_user_valid("alice@example.com"));
	cr_assert_not(auth_user_valid(""));
	cr_assert_not(auth_user_valid(".."));
	cr_assert_not(auth_user_valid("a/b"));
	cr_assert_not(auth_user_valid("a b"));
}

Test(auth, limiter_blocks_then_recovers)
{
	mono_us			 now = 1000000;
	struct auth_limiter	*l;

	mono_set_fake(&now);
	cr_assert_not_null(l = auth_limiter_new(3, 10000000, 60000000));
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), 0);
	auth_limiter_fail(l, "192.0.2.1");
	auth_limiter_fail(l, "192.0.2.1");
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), 0);
	auth_limiter_fail(l, "192.0.2.1");
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), -EAGAIN);
	/* Other addresses are unaffected. */
	cr_assert_eq(auth_limiter_check(l, "192.0.2.2"), 0);
	now += 59000000;
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), -EAGAIN);
	now += 1000000;
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), 0);
	/* Refilled by now (60 s / 10 s), so one failure does not block. */
	auth_limiter_fail(l, "192.0.2.1");
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), 0);
	auth_limiter_success(l, "192.0.2.1");
	cr_assert_eq(auth_limiter_check(l, "192.0.2.1"), 0);
	auth_limiter_free(l);
	mono_set_fake(NULL);
}

Test(auth, sasl_plain)
{
	char	 u[65], p[257];

	/* "\0tim\0tanstaaftanstaaf" (RFC 4616 example) */
	cr_assert_eq(auth_sasl_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 28, u,
	    sizeof(u), p, sizeof(p)), 0);
	cr_assert_str_eq(u, "tim");
	cr_assert_str_eq(p, "tanstaaftanstaaf");
	/* "Ursel\0Kurt\0xipj3plmq": authzid differs */
	cr_assert_eq(auth_sasl_plain("VXJzZWwAS3VydAB4aXBqM3BsbXE=", 28, u,
	    sizeof(u), p, sizeof(p)), -EPERM);
	cr_assert_eq(auth_sasl_plain("AHRpbQ==", 8, u, sizeof(u), p,
	    sizeof(p)), -EINVAL);
	cr_assert_eq(auth_sasl_plain("!!!!", 4, u, sizeof(u), p, sizeof(p)),
	    -EINVAL);
}

Test(auth, cmd_passwd_prints_hash_line)
{
	char	*argv[] = { (char *)"passwd", (char *)"alice", NULL };
	char	*bad[] = { (char *)"passwd", (char *)"../x", NULL };
	char	 line[256], path[] = "/tmp/rm-pwXXXXXX";
	int	 in[2], saved_in, saved_out, fd, rc;
	FILE	*f;

	cr_assert_eq(cmd_passwd(2, bad), 2);
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(write(in[1], "hunter2\n", 8), 8);
	close(in[1]);
	cr_assert_geq(fd = mkstemp(path), 0);
	fflush(stdout);
	saved_in = dup(0);
	saved_out = dup(1);
	dup2(in[0], 0);
	dup2(fd, 1);
	clearerr(stdin);
	rc = cmd_passwd(2, argv);
	fflush(stdout);
	dup2(saved_in, 0);
	dup2(saved_out, 1);
	close(in[0]);
	close(fd);
	cr_assert_eq(rc, 0);
	cr_assert_not_null(f = fopen(path, "r"));
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
	line[strcspn(line, "\n")] = '\0';
	cr_assert_eq(strncmp(line, "alice:$scrypt$32768$8$1$", 24), 0, "%s",
	    line);
	cr_assert_eq(auth_verify(line + 6, "hunter2", 7), 0);
}

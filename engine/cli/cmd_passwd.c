/*
 * cmd_passwd: `ringmail passwd USER` reads a password from stdin (without
 * echo on a terminal) and prints "USER:$scrypt$..." for the users file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "in/auth.h"

#include "cli/cmd.h"

/* Read one line from stdin into pw; the newline is dropped. */
static int
cmd_passwd_read(const char *prompt, char *pw, size_t len)
{
	struct termios	 old, quiet;
	bool		 tty = isatty(STDIN_FILENO) == 1;
	size_t		 n;
	char		*ok;

	if (tty) {
		fputs(prompt, stderr);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) != 0)
			return -errno;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
			return -errno;
	}
	ok = fgets(pw, (int)len, stdin);
	if (tty)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (ok == NULL)
		return -EIO;
	n = strcspn(pw, "\r\n");
	if (pw[n] == '\0' && n == len - 1)
		return -E2BIG;	/* no newline within the limit */
	pw[n] = '\0';
	return 0;
}

int
cmd_passwd(int argc, char **argv)
{
	char	 pw[AUTH_PASS_MAX + 2], pw2[AUTH_PASS_MAX + 2];
	char	 hash[AUTH_HASH_MAX];
	int	 r;

	if (argc != 2 || !auth_user_valid(argv[1])) {
		fprintf(stderr, "usage: ringmail passwd USER\n"
		    "  USER: 1-%d of A-Z a-z 0-9 . _ @ + -\n"
		    "  reads the password from stdin, prints USER:HASH\n",
		    AUTH_USER_MAX);
		return 2;
	}
	if ((r = cmd_passwd_read("Password: ", pw, sizeof(pw))) != 0) {
		fprintf(stderr, "ringmail passwd: %s\n", r == -E2BIG ?
		    "password too long" : "no password read");
		return 1;
	}
	if (isatty(STDIN_FILENO) == 1) {
		r = cmd_passwd_read("Again: ", pw2, sizeof(pw2));
		if (r != 0 || strcmp(pw, pw2) != 0) {
			OPENSSL_cleanse(pw, sizeof(pw));
			OPENSSL_cleanse(pw2, sizeof(pw2));
			fprintf(stderr, "ringmail passwd: passwords differ\n");
			return 1;
		}
		OPENSSL_cleanse(pw2, sizeof(pw2));
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "ringmail passwd: empty password\n");
		return 1;
	}
	r = auth_hash_password(pw, strlen(pw), hash, sizeof(hash));
	OPENSSL_cleanse(pw, sizeof(pw));
	if (r != 0) {
		fprintf(stderr, "ringmail passwd: hashing failed (%s)\n",
		    strerror(-r));
		return 1;
	}
	printf("%s:%s\n", argv[1], hash);
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * cmd_dkim: `ringmail dkim-sign --key K --domain D --selector S FILE`
 * signs one message file (or "-" for stdin) and prints the signed message:
 * the DKIM-Signature header(s) followed by the message with its line ends
 * made CRLF. --key/--selector may be given twice for a dual signature
 * (e.g. RSA + Ed25519), --header NAME adds a signed header, --time T
 * fixes t=, --dns prints the TXT record for each key instead. A testing
 * and operator tool; the worker signs through mail/dkim.h directly.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "mail/dkim.h"

#include "cli/cmd.h"

#define CMD_DKIM_KEYS		2
#define CMD_DKIM_MSG_MAX	(64 * 1024 * 1024)

static int
cmd_dkim_usage(void)
{
	fprintf(stderr, "usage: ringmail dkim-sign --key PEM --domain D "
	    "--selector S [--key PEM2 --selector S2]\n"
	    "         [--header NAME]... [--time UNIX] [--dns] FILE|-\n");
	return 2;
}

/* Read the message, turning every bare LF into CRLF. */
static int
cmd_dkim_read(const char *path, struct buf *out)
{
	FILE	*f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	int	 c, prev = 0, rc = 0;

	if (f == NULL)
		return -errno;
	while ((c = getc(f)) != EOF) {
		if (c == '\n' && prev != '\r' && buf_putc(out, '\r') != 0)
			rc = -ENOMEM;
		if (buf_putc(out, (char)c) != 0)
			rc = -ENOMEM;
		if (rc != 0 || out->len > CMD_DKIM_MSG_MAX) {
			rc = rc != 0 ? rc : -EFBIG;
			break;
		}
		prev = c;
	}
	if (rc == 0 && ferror(f))
		rc = -EIO;
	if (f != stdin)
		fclose(f);
	return rc;
}

int
cmd_dkim(int argc, char **argv)
{
	const char	*keys[CMD_DKIM_KEYS], *sels[CMD_DKIM_KEYS];
	const char	*hdrs[DKIM_HEADERS_MAX], *domain = NULL, *file = NULL;
	struct dkim_key	*k[CMD_DKIM_KEYS] = { NULL, NULL };
	struct buf	 msg, sig;
	size_t		 nkey = 0, nsel = 0, nhdr = 0;
	int64_t		 now = (int64_t)time(NULL);
	char		 err[512];
	int		 dns = 0, rc = 1, r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--dns") == 0) {
			dns = 1;
			continue;
		}
		if (a[0] == '-' && a[1] != '\0' && v == NULL)
			return cmd_dkim_usage();
		if (strcmp(a, "--key") == 0 && nkey < CMD_DKIM_KEYS)
			keys[nkey++] = v;
		else if (strcmp(a, "--selector") == 0 && nsel < CMD_DKIM_KEYS)
			sels[nsel++] = v;
		else if (strcmp(a, "--domain") == 0)
			domain = v;
		else if (strcmp(a, "--header") == 0 && nhdr < DKIM_HEADERS_MAX)
			hdrs[nhdr++] = v;
		else if (strcmp(a, "--time") == 0)
			now = strtoll(v, NULL, 10);
		else if ((a[0] != '-' || a[1] == '\0') && file == NULL) {
			file = a;
			continue;
		} else
			return cmd_dkim_usage();
		i++;
	}
	if (nkey == 0 || nkey != nsel || domain == NULL ||
	    (file == NULL && !dns))
		return cmd_dkim_usage();
	buf_init(&msg);
	buf_init(&sig);
	for (size_t i = 0; i < nkey; i++) {
		if ((k[i] = dkim_key_load(keys[i], domain, sels[i], err,
		    sizeof(err))) == NULL ||
		    dkim_key_add_headers(k[i], hdrs, nhdr, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "ringmail dkim-sign: %s\n", err);
			rc = 2;
			goto out;
		}
	}
	if (dns) {
		for (size_t i = 0; i < nkey; i++) {
			buf_reset(&sig);
			if (dkim_key_dns_txt(k[i], &sig) != 0)
				goto out;
			printf("%s._domainkey.%s TXT \"%s\"\n", sels[i], domain,
			    sig.data);
		}
		rc = 0;
		goto out;
	}
	if ((r = cmd_dkim_read(file, &msg)) != 0) {
		fprintf(stderr, "ringmail dkim-sign: %s: %s\n", file,
		    strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < nkey; i++) {
		if ((r = dkim_sign(k[i], msg.data != NULL ? msg.data : "",
		    msg.len, now, &sig)) != 0) {
			fprintf(stderr, "ringmail dkim-sign: %s\n", r == -EINVAL ?
			    "the message needs exactly one From header" :
			    strerror(-r));
			goto out;
		}
	}
	if (fwrite(sig.data, 1, sig.len, stdout) != sig.len ||
	    (msg.len > 0 && fwrite(msg.data, 1, msg.len, stdout) != msg.len) ||
	    fflush(stdout) != 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < nkey; i++)
		dkim_key_free(k[i]);
	buf_free(&msg);
	buf_free(&sig);
	return rc;
}

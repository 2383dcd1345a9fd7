/*
 * fuzz_mime: an arbitrary message through the MIME structure parser and
 * the IMAP renderings built on it (ENVELOPE, BODYSTRUCTURE, sections):
 * the message is stored in a temp maildir and fetched by an IMAP session.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "in/imapd.h"
#include "in/mime.h"

#include "fuzz_insess.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char cmds[] = "a LOGIN alice secret\r\nb SELECT INBOX\r\n"
	    "c FETCH * (ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[1] "
	    "BODY.PEEK[1.MIME] BODY.PEEK[2.1] BODY.PEEK[2.HEADER] "
	    "BODY.PEEK[1.2.3.TEXT] BODY.PEEK[HEADER.FIELDS (From To)])\r\n"
	    "d SEARCH OR HEADER X-A b BODY x\r\ne STORE * +FLAGS "
	    "(\\Deleted)\r\nf EXPUNGE\r\n";
	static struct mime_tree	 t;
	struct insess_conf	 c;
	struct imapd_session	*s;
	struct buf		 out;
	char			 p[256];
	int			 fd;

	mime_parse(&t, (const char *)data, size);
	fz_init(&c);
	/* Plain write into new/: fsync would make every run take ms. */
	snprintf(p, sizeof(p), "%s/new/fuzz.%u", fz_inbox, fz_iter);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);
	if ((s = imapd_session_new(&c)) == NULL)
		return 0;
	buf_init(&out);
	(void)imapd_session_input(s, cmds, sizeof(cmds) - 1, &out);
	imapd_session_free(s);
	buf_free(&out);
	return 0;
}

#include <criterion/criterion.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "in/maildir.h"

static char	 root[64];

static void
setup(void)
{
	strcpy(root, "/tmp/rm-maildir-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	cr_assert_eq(maildir_create(root), 0);
}

static void
rm_rf(const char *p)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	cr_assert_eq(system(cmd), 0);
}

static void
teardown(void)
{
	rm_rf(root);
}

static size_t
count_dir(const char *sub)
{
	char		 p[256];
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0;

	snprintf(p, sizeof(p), "%s/%s", root, sub);
	cr_assert_not_null(d = opendir(p));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

TestSuite(maildir, .init = setup, .fini = teardown);

Test(maildir, deliver_lands_in_new_with_sizes)
{
	struct maildir_delivery	 d;

	cr_assert_eq(maildir_deliver_open(&d, root), 0);
	cr_assert_eq(count_dir("tmp"), 1);
	cr_assert_eq(maildir_deliver_write(&d, "Subject: x\n\nbody\r\n", 18), 0);
	cr_assert_eq(maildir_deliver_sync(&d), 0);
	cr_assert_eq(maildir_deliver_commit(&d, false, 0), 0);
	cr_assert_eq(maildir_deliver_syncdir(&d), 0);
	cr_assert_eq(count_dir("tmp"), 0);
	cr_assert_eq(count_dir("new"), 1);
	/* 18 bytes on disk, two bare LFs -> 20 with CRLF. */
	cr_assert(strstr(d.final_name, ",S=18,W=20") != NULL, "%s",
	    d.final_name);
}

Test(maildir, abort_removes_tmp)
{
	struct maildir_delivery	 d;

	cr_assert_eq(maildir_deliver_open(&d, root), 0);
	cr_assert_eq(maildir_deliver_write(&d, "x", 1), 0);
	maildir_deliver_abort(&d);
	cr_assert_eq(count_dir("tmp"), 0);
	cr_assert_eq(count_dir("new"), 0);
}

Test(maildir, open_rw_moves_new_to_cur_and_reads_crlf)
{
	struct maildir_box	*box;
	struct buf		 b;
	int			 err;

	cr_assert_eq(maildir_deliver(root, "A: 1\n\nx\n", 8), 0);
	cr_assert_not_null(box = maildir_box_open(root, true, &err));
	cr_assert_eq(box->nmsg, 1);
	cr_assert(box->msgs[0].recent);
	cr_assert_eq(box->msgs[0].uid, 1);
	cr_assert_eq(box->uidnext, 2);
	cr_assert_eq(count_dir("new"), 0);
	cr_assert_eq(count_dir("cur"), 1);
	cr_assert_eq(box->msgs[0].size, 11);
	buf_init(&b);
	cr_assert_eq(maildir_msg_read(box, 0, &b), 0);
	cr_assert_str_eq(b.data, "A: 1\r\n\r\nx\r\n");
	buf_free(&b);
	maildir_box_free(box);
}

Test(maildir, uids_stable_across_reopen_and_flags_in_name)
{
	struct maildir_box	*box;
	uint32_t		 uv;
	int			 err;

	for (int i = 0; i < 3; i++)
		cr_assert_eq(maildir_deliver(root, "X: y\r\n\r\nz\r\n", 11), 0);
	cr_assert_not_null(box = maildir_box_open(root, true, &err));
	cr_assert_eq(box->nmsg, 3);
	uv = box->uidvalidity;
	cr_assert_eq(maildir_msg_set_flags(box, 1, MAILDIR_F_SEEN |
	    MAILDIR_F_FLAGGED), 0);
	cr_assert(strstr(box->msgs[1].name, ":2,FS") != NULL);
	cr_assert_eq(maildir_msg_unlink(box, 0), 0);
	maildir_box_free(box);

	cr_assert_eq(maildir_deliver(root, "X: y\r\n\r\nw\r\n", 11), 0);
	cr_assert_not_null(box = maildir_box_open(root, false, &err));
	cr_assert_eq(box->uidvalidity, uv);
	cr_assert_eq(box->nmsg, 3);
	cr_assert_eq(box->msgs[0].uid, 2);
	cr_assert_eq(box->msgs[0].flags, MAILDIR_F_SEEN | MAILDIR_F_FLAGGED);
	cr_assert_eq(box->msgs[1].uid, 3);
	cr_assert_eq(box->msgs[2].uid, 4);
	cr_assert(box->msgs[2].recent);
	cr_assert_eq(box->uidnext, 5);
	/* Read-only: flags cannot change, new/ stays. */
	cr_assert_eq(maildir_msg_set_flags(box, 0, 0), -EROFS);
	cr_assert_eq(count_dir("new"), 1);
	maildir_box_free(box);
}

Test(maildir, rescan_sees_new_and_gone)
{
	struct maildir_box	*a, *b;
	size_t			 nnew = 0;
	int			 err;

	cr_assert_eq(maildir_deliver(root, "a\r\n", 3), 0);
	cr_assert_eq(maildir_deliver(root, "b\r\n", 3), 0);
	cr_assert_not_null(a = maildir_box_open(root, true, &err));
	cr_assert_not_null(b = maildir_box_open(root, true, &err));
	cr_assert_eq(maildir_msg_unlink(b, 0), 0);
	/* b renames message 2; a still finds it by rescanning. */
	cr_assert_eq(maildir_msg_set_flags(b, 1, MAILDIR_F_SEEN), 0);
	cr_assert_eq(maildir_deliver(root, "c\r\n", 3), 0);
	cr_assert_eq(maildir_box_rescan(a, &nnew), 0);
	cr_assert_eq(nnew, 1);
	cr_assert_eq(a->nmsg, 3);
	cr_assert(a->msgs[0].gone);
	cr_assert_not(a->msgs[1].gone);
	cr_assert_eq(a->msgs[1].flags, MAILDIR_F_SEEN);
	cr_assert_eq(a->msgs[2].uid, 3);
	maildir_box_forget(a, 0);
	cr_assert_eq(a->nmsg, 2);
	cr_assert_eq(a->msgs[0].uid, 2);
	maildir_box_free(a);
	maildir_box_free(b);
}

Test(maildir, names_cannot_escape)
{
	char	 p[256];

	cr_assert(maildir_name_valid("INBOX"));
	cr_assert(maildir_name_valid("inbox"));
	cr_assert(maildir_name_valid("Archive.2024"));
	cr_assert_not(maildir_name_valid(""));
	cr_assert_not(maildir_name_valid(".."));
	cr_assert_not(maildir_name_valid("../etc"));
	cr_assert_not(maildir_name_valid("a/b"));
	cr_assert_not(maildir_name_valid("a..b"));
	cr_assert_not(maildir_name_valid(".hidden"));
	cr_assert_not(maildir_name_valid("x."));
	cr_assert_not(maildir_name_valid("a\nb"));
	cr_assert_not(maildir_name_valid("a*"));
	memset(p, 'a', 201);
	p[201] = '\0';
	cr_assert_not(maildir_name_valid(p));
	cr_assert_eq(maildir_box_path("/r", "../x", p, sizeof(p)), -EINVAL);
	cr_assert_eq(maildir_box_path("/r", "INBOX", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/r");
	cr_assert_eq(maildir_box_path("/r", "Sent", p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/r/.Sent");
	cr_assert_eq(maildir_box_path("/r", "Sent", p, 5), -ENAMETOOLONG);
}

static int
collect(const char *name, void *arg)
{
	strcat(arg, name);
	strcat(arg, ";");
	return 0;
}

Test(maildir, list_folders)
{
	char	 p[256], out[256] = "";

	snprintf(p, sizeof(p), "%s/.Sent", root);
	cr_assert_eq(maildir_create(p), 0);
	snprintf(p, sizeof(p), "%s/.notadir", root);
	cr_assert_eq(mkdir(p, 0700), 0);
	cr_assert_eq(maildir_list(root, collect, out), 0);
	cr_assert_str_eq(out, "INBOX;Sent;");
}

Test(maildir, flags_roundtrip)
{
	char	 s[8];

	maildir_flags_str(MAILDIR_F_ALL, s);
	cr_assert_str_eq(s, "DFRST");
	cr_assert_eq(maildir_flags_parse("x:2,DFRST"), MAILDIR_F_ALL);
	cr_assert_eq(maildir_flags_parse("x:2,S"), MAILDIR_F_SEEN);
	cr_assert_eq(maildir_flags_parse("x"), 0);
}

Test(maildir, new_uids_follow_arrival_order_not_string_order)
{
	struct maildir_box	*box;
	char			 p[256];
	FILE			*f;
	int			 err;
	/* Written by another tool, without zero padding. */
	static const char *const names[] = { "1700000000.M100000P1Q10.h",
	    "1700000000.M95P1Q2.h", "1700000000.M100000P1Q9.h",
	    "999999999.M5P1Q1.h" };

	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/new/%s", root, names[i]);
		cr_assert_not_null(f = fopen(p, "w"));
		fputs("x\n", f);
		fclose(f);
	}
	cr_assert_not_null(box = maildir_box_open(root, true, &err));
	cr_assert_eq(box->nmsg, 4);
	cr_assert_str_eq(box->msgs[0].base, "999999999.M5P1Q1.h");
	cr_assert_str_eq(box->msgs[1].base, "1700000000.M95P1Q2.h");
	cr_assert_str_eq(box->msgs[2].base, "1700000000.M100000P1Q9.h");
	cr_assert_str_eq(box->msgs[3].base, "1700000000.M100000P1Q10.h");
	cr_assert_eq(box->msgs[3].uid, 4);
	/* No W= in these names: the size is measured once, with CRLF. */
	cr_assert_eq(box->msgs[0].size, 0);
	{
		uint64_t sz;

		cr_assert_eq(maildir_msg_size(box, 0, &sz), 0);
		cr_assert_eq(sz, 3);
	}
	maildir_box_free(box);
}
